"""cuDNN's benchmark mode while inference sessions run on a GPU, the caller's setting after.

``torch.backends.cudnn.benchmark`` is one setting for the whole process. Saving and restoring
it around each session (as ``cudnn.flags()`` does) goes wrong when sessions overlap in two
threads: the one that ends last restores the value the other one set, and benchmark mode
stays on for good (non-deterministic kernels in the caller's later work). ``cudnn.flags()``
also put the caller's other cuDNN settings to their defaults inside the block. Here the first
session to begin saves the caller's value and turns benchmark mode on, the last one to end
puts the saved value back, and no other setting is touched.

.. versionadded:: 0.2
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import torch

__all__ = ["cudnn_benchmark"]

_LOCK = threading.Lock()
_sessions = 0
_callers: bool | None = None  # the caller's value, saved by the first session


def _forget_after_fork() -> None:
    """A forked child has none of its parent's sessions running: it starts counting anew."""
    global _LOCK, _sessions, _callers
    _LOCK = threading.Lock()
    if _callers is not None:
        torch.backends.cudnn.benchmark = _callers
    _sessions, _callers = 0, None


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_after_fork)


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device) -> Iterator[None]:
    """cuDNN benchmark mode (fastest kernels for fixed input sizes) while the block runs on a
    CUDA ``device``, unless the caller asked for deterministic cuDNN; the caller's setting
    once the last overlapping block ends. Nothing on other devices.

    Examples
    --------
    >>> import torch
    >>> with cudnn_benchmark(torch.device("cpu")):
    ...     torch.backends.cudnn.benchmark
    False
    """
    global _sessions, _callers
    cudnn = torch.backends.cudnn
    if device.type != "cuda" or cudnn.deterministic:
        yield
        return
    with _LOCK:
        if _sessions == 0:
            _callers = cudnn.benchmark
            cudnn.benchmark = True
        _sessions += 1
    try:
        yield
    finally:
        with _LOCK:
            _sessions -= 1
            if _sessions == 0 and _callers is not None:
                cudnn.benchmark, _callers = _callers, None
