"""Copies of tensors to a device, non-blocking only where that is safe: toward CUDA.

``tensor.to(device, non_blocking=True)`` returns at once. Toward a CUDA GPU that is what
pays: the copy is queued on the GPU's stream, ahead of the kernels that read it, and torch
keeps the source alive until it has run. Elsewhere it is a race:

- toward the CPU, a copy out of a CUDA tensor may still be running when the host reads the
  result (``.numpy()``, ``float()``, a CPU kernel), which then sees whatever the memory held
  before, with no error;
- toward Apple MPS, a copy from ordinary (pageable) host memory can read the source after it
  is freed or reused and give wrong values, with no error (reported in
  pytorch/pytorch#139550 and #189690).

:func:`copy_to` asks for a non-blocking copy only when the destination is a CUDA device.

.. versionadded:: 0.2
"""

from __future__ import annotations

import torch

__all__ = ["copy_to"]


def copy_to(
    tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``tensor`` on ``device`` (in ``dtype``, when given): a non-blocking copy toward a
    CUDA GPU, a blocking one toward the CPU or MPS (done when this returns).

    Examples
    --------
    >>> copy_to(torch.arange(3), torch.device("cpu"), torch.float32)
    tensor([0., 1., 2.])
    """
    return tensor.to(device, dtype, non_blocking=device.type == "cuda")
