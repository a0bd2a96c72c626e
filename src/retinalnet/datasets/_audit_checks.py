"""The checks of :func:`~retinalnet.datasets.audit`'s arguments, each said in one line before
any file is read."""

from __future__ import annotations

import math
import os
from pathlib import Path

from retinalnet._core.counts import as_integer, as_number
from retinalnet._core.folders import nonempty_path
from retinalnet.datasets._audit_report import MAX_ASPECT
from retinalnet.datasets._files import LAYOUT_FOLDER

__all__ = ["check_bounds", "check_root_and_progress"]


def check_bounds(min_side: int, max_side: int, max_aspect: float) -> tuple[int, int, float]:
    for name, value in (("min_side", min_side), ("max_side", max_side)):
        number = as_integer(value)
        if number is None or number < 1:
            raise ValueError(f"{name} must be a positive int (pixels), got {value!r}")
    min_side, max_side = int(min_side), int(max_side)
    if min_side > max_side:
        raise ValueError(
            f"min_side must be at most max_side, got min_side={min_side!r} > max_side={max_side!r}"
        )
    # NaN compares false with everything, so `max_aspect < 1` alone would let it switch the
    # check off; infinity would too
    aspect = as_number(max_aspect)
    if aspect is None or not math.isfinite(aspect) or aspect < 1:
        raise ValueError(
            f"max_aspect must be a number >= 1 and finite (longer side / shorter side), got "
            f"{max_aspect!r}; the default is {MAX_ASPECT}"
        )
    return min_side, max_side, float(max_aspect)


def check_root_and_progress(root: object, progress: object) -> Path:
    """``root`` as a Path, or a one-line error for it or for ``progress``."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or path), got {type(root).__name__}")
    path = nonempty_path(root, name="root", what=LAYOUT_FOLDER)
    if not (isinstance(progress, bool) or callable(progress)):
        raise TypeError(
            f"progress must be True, False or a function progress(done, total), got {progress!r}"
        )
    return path
