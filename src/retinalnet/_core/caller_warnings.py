"""Warnings that point at the user's code, not at the line inside retinalnet that warns.

``warnings.warn(..., stacklevel=N)`` counts frames, and the same check is reached through
calls of different depths (a data set read by the Trainer, by ``evaluate()``, by a
DataLoader, by the Predictor): a fixed ``N`` points into retinalnet, or into torch's data
loading, for most of them. :func:`warn_caller` walks out of both and points at the first
frame of the caller's own code, as ``warnings.warn(skip_file_prefixes=...)`` does from
Python 3.12.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

__all__ = ["warn_caller"]

_PACKAGE = str(Path(__file__).resolve().parent.parent)
"""The folder of the retinalnet package."""


def _skipped_folders() -> tuple[str, ...]:
    """retinalnet's folder, torch's when it is imported (its DataLoader calls the data sets,
    so a warning of a data set would point into it), and the standard library's process and
    thread machinery that runs a DataLoader worker (a warning there has no user frame)."""
    folders = [_PACKAGE]
    for name in ("torch", "multiprocessing", "concurrent"):
        module_file = getattr(sys.modules.get(name), "__file__", None)
        if module_file:
            folders.append(str(Path(module_file).resolve().parent))
    prefixes = tuple(folder + "/" for folder in folders) + tuple(
        folder + "\\" for folder in folders
    )
    threading_file = getattr(sys.modules.get("threading"), "__file__", None)
    return prefixes + ((str(Path(threading_file).resolve()),) if threading_file else ())


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` at the first frame outside retinalnet, torch and
    the standard library's process machinery (a DataLoader worker's).

    When every frame is inside them (the command line), the outermost frame is named; the
    command line shows warnings without their location anyway.
    """
    skipped = _skipped_folders()
    frame = sys._getframe(1)
    level = 2  # stacklevel 2: the caller of this function
    while frame.f_back is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(
        skipped
    ):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
