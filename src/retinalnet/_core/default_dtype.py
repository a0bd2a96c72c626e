"""Networks built in float32 whatever torch's default dtype is.

A scientific notebook may set ``torch.set_default_dtype(torch.float64)`` for its own
numbers. Every module built under that default gets float64 weights, and a model the
library builds itself (:func:`~retinalnet.models.create_model`, a checkpoint's
``build_model``, :meth:`~retinalnet.Predictor.from_checkpoint`) would be refused by its own
float32 check (:func:`~retinalnet._core.model_use.check_float32_weights`), with no model in
the user's hands to call ``.float()`` on. :func:`float32_default` builds them in float32,
as their checkpoints and pretrained weights are, and puts the user's default back.

.. versionadded:: 0.2
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["float32_default", "set_by_default"]


@contextlib.contextmanager
def float32_default() -> Iterator[None]:
    """torch's default dtype float32 inside the block, the caller's again after it.

    The default is process-wide: it is only changed when it is not float32 already.

    Examples
    --------
    >>> import torch
    >>> torch.set_default_dtype(torch.float64)
    >>> with float32_default():
    ...     torch.nn.Linear(2, 2).weight.dtype
    torch.float32
    >>> torch.get_default_dtype()
    torch.float64
    >>> torch.set_default_dtype(torch.float32)
    """
    before = torch.get_default_dtype()
    if before == torch.float32:
        yield
        return
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def set_by_default(dtype: torch.dtype) -> bool:
    """Whether tensors of ``dtype`` (other than float32) come from torch's default dtype:
    a module built by hand under ``torch.set_default_dtype(dtype)`` has such weights."""
    return dtype != torch.float32 and dtype == torch.get_default_dtype()
