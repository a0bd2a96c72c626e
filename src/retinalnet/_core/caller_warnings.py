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


_WATCHED = ("torch", "multiprocessing", "concurrent")
"""The modules whose folders are skipped once they are imported (``threading``'s file too)."""


class _FrameFilter:
    """Whether a code file lies in the skipped folders, decided once per file name.

    Resolving a file name reads the file system (an ``lstat`` per path component), and a
    warning per image would resolve every frame of the stack each time: the decision is
    kept by ``co_filename``.
    """

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes = prefixes
        self._skips: dict[str, bool] = {}

    def skips(self, filename: str) -> bool:
        skips = self._skips.get(filename)  # an absolute name: decided once
        if skips is not None:
            return skips
        key = filename
        if not Path(filename).is_absolute():
            # "<string>", "<stdin>": resolved against the working folder, which may change
            key = f"{Path.cwd()}\0{filename}"
            skips = self._skips.get(key)
            if skips is not None:
                return skips
        skips = str(Path(filename).resolve()).startswith(self.prefixes)
        self._skips[key] = skips  # a race only decides the same file twice
        return skips


_FILTERS: dict[tuple[str | None, ...], _FrameFilter] = {}
"""One filter per set of imported watched modules (torch may be imported after a warning)."""


def _module_file(name: str) -> str | None:
    module_file: str | None = getattr(sys.modules.get(name), "__file__", None)
    return module_file


def _frame_filter() -> _FrameFilter:
    """The filter of the skipped folders as the imported modules are now."""
    key = tuple(_module_file(name) for name in (*_WATCHED, "threading"))
    frame_filter = _FILTERS.get(key)
    if frame_filter is None:
        frame_filter = _FILTERS[key] = _FrameFilter(_skipped_folders())
    return frame_filter


def _skipped_folders() -> tuple[str, ...]:
    """retinalnet's folder, torch's when it is imported (its DataLoader calls the data sets,
    so a warning of a data set would point into it), and the standard library's process and
    thread machinery that runs a DataLoader worker (a warning there has no user frame)."""
    folders = [_PACKAGE]
    for name in _WATCHED:
        module_file = _module_file(name)
        if module_file:
            folders.append(str(Path(module_file).resolve().parent))
    prefixes = tuple(folder + "/" for folder in folders) + tuple(
        folder + "\\" for folder in folders
    )
    threading_file = _module_file("threading")
    return prefixes + ((str(Path(threading_file).resolve()),) if threading_file else ())


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` at the first frame outside retinalnet, torch and
    the standard library's process machinery (a DataLoader worker's).

    When every frame is inside them (the command line), the outermost frame is named; the
    command line shows warnings without their location anyway. Each code file's place is
    resolved once (a warning per image costs a walk of the stack, no file system access).
    """
    skips = _frame_filter().skips
    frame = sys._getframe(1)
    level = 2  # stacklevel 2: the caller of this function
    while frame.f_back is not None and skips(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
