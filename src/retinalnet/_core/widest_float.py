"""The widest floating-point dtype a device computes in: float64, float32 on Apple MPS.

Sums of losses and log-probabilities are kept in float64 where the device has it, so a
long evaluation adds up without rounding drift and a tiny probability keeps its log. Apple's
MPS has no float64: making a float64 tensor there raises ("Cannot convert a MPS Tensor to
float64 dtype"), so there the same numbers are kept in float32, the widest it has.

.. versionadded:: 0.2
"""

from __future__ import annotations

import torch

__all__ = ["NO_FLOAT64_DEVICE_TYPES", "widest_float"]

NO_FLOAT64_DEVICE_TYPES: frozenset[str] = frozenset({"mps"})
"""Device types without float64 (the tests add ``"meta"`` to stand in for MPS)."""


def widest_float(device: torch.device) -> torch.dtype:
    """``torch.float64``, or ``torch.float32`` on a device without float64 (Apple MPS).

    Examples
    --------
    >>> widest_float(torch.device("cpu")), widest_float(torch.device("mps"))
    (torch.float64, torch.float32)
    """
    return torch.float32 if device.type in NO_FLOAT64_DEVICE_TYPES else torch.float64
