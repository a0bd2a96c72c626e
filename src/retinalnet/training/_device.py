"""Choosing the device to run on."""

from __future__ import annotations

import torch

__all__ = ["resident_device", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` into a device.

    ``"auto"`` picks CUDA if available, then Apple's MPS, then the CPU.

    Raises
    ------
    ValueError
        If the name is not a device, or names one this machine does not have.
    """
    if isinstance(device, torch.device):
        chosen = device
    elif device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    else:
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(
                f"device {device!r} is not a device name; use 'auto', 'cpu', 'cuda', "
                "'cuda:N' or 'mps'"
            ) from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} asks for CUDA, which this machine does not have; "
            "use device='auto' or 'cpu'"
        )
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device {device!r} asks for Apple MPS, which is not available; "
            "use device='auto' or 'cpu'"
        )
    return chosen


def resident_device(nbytes: int, device: torch.device) -> torch.device | None:
    """Where to keep ``nbytes`` of training data for ``device``: on the GPU itself when it
    fits in half of the GPU's free memory (no copy per batch), else ``None`` (host memory).

    On a CPU the data already is where it is used, so the answer is ``None`` too.
    """
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return device if 2 * nbytes <= free else None
