"""Networks built in float32 whatever torch's default dtype is.

A scientific notebook may set ``torch.set_default_dtype(torch.float64)`` for its own
numbers. Every module built under that default gets float64 weights, and a model the
library builds itself (:func:`~retinalnet.models.create_model`, a checkpoint's
``build_model``, :meth:`~retinalnet.Predictor.from_checkpoint`) would be refused by its own
float32 check (:func:`~retinalnet._core.model_use.check_float32_weights`), with no model in
the user's hands to call ``.float()`` on. :func:`in_float32` casts what it builds to float32,
as their checkpoints and pretrained weights are.

torch's default dtype is one setting for the whole process, not per thread: the library never
changes it. Switching it to float32 while a network is built (as 0.2's first versions did)
gave another thread of the process float32 tensors where it had asked for float64, and a
model built at the same time in another thread float64 weights.

.. versionadded:: 0.2
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

__all__ = ["in_float32", "set_by_default"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def in_float32(module: ModuleT) -> ModuleT:
    """``module`` with float32 weights when torch's default dtype is another floating type
    (its modules were built in that dtype); unchanged, and not copied, otherwise.

    Casting from float64 loses nothing the float32 checkpoints and pretrained weights had.
    A seeded random initialisation under a float64 default draws other numbers than under
    float32 (torch draws in the dtype of the weights), and the build takes longer and twice
    the memory while it runs (VGG16 with its ImageNet weights, 2 CPU cores: 10 s and 2.3 GB
    at peak, against 2.4 s and 1.2 GB under float32).

    Examples
    --------
    >>> import torch
    >>> torch.set_default_dtype(torch.float64)
    >>> in_float32(torch.nn.Linear(2, 2)).weight.dtype
    torch.float32
    >>> torch.get_default_dtype()
    torch.float64
    >>> torch.set_default_dtype(torch.float32)
    """
    if torch.get_default_dtype() != torch.float32:
        module.float()
    return module


def set_by_default(dtype: torch.dtype) -> bool:
    """Whether tensors of ``dtype`` (other than float32) come from torch's default dtype:
    a module built by hand under ``torch.set_default_dtype(dtype)`` has such weights."""
    return dtype != torch.float32 and dtype == torch.get_default_dtype()
