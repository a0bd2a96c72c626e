"""The argument checks of the synthetic data writers (:class:`SyntheticOCT`,
:func:`make_synthetic_kermany`): one-line errors naming the argument and the fix."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from retinalnet._core.classes import KERMANY_CLASSES
from retinalnet._core.folders import nonempty_path
from retinalnet.datasets._render import _check_size, _is_int

__all__ = ["check_counts", "check_root", "check_seed", "check_shape"]

# the longest side of a scan: Kermany's are at most 1536 wide; a million would never fit
_MAX_SIDE: Final = 4096


def check_shape(shape: object, name: str = "shape") -> tuple[int, int]:
    """``shape`` as ``(height, width)``, each side from 32 to ``_MAX_SIDE``, or a ValueError."""
    height, width = _check_size(shape, name)
    if max(height, width) > _MAX_SIDE:
        raise ValueError(
            f"{name} must have each side at most {_MAX_SIDE} pixels, got {shape!r}; pass e.g. "
            f"{name}=(496, 512) (the Kermany scan size)"
        )
    return height, width


def check_root(root: object, function: str) -> Path:
    """``root`` as a Path to a folder that exists or can be made, or a one-line error."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"{function} root must be a folder path (str or path), got {root!r}")
    path = nonempty_path(
        root, name=f"{function} root", what="the folder to write to, e.g. 'oct-demo'"
    )
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "is" if folder == path else f"is inside {str(folder)!r}, which is"
                raise ValueError(
                    f"{function} root {str(path)!r} {where} a file, not a folder; pass a "
                    "folder path (it is created if missing)"
                )
            break
    return path


def check_seed(seed: object, name: str = "seed") -> int:
    """Return ``seed`` as an int or raise a TypeError/ValueError that names it."""
    if not _is_int(seed):
        raise TypeError(
            f"{name} must be a non-negative int, got {seed!r} of type {type(seed).__name__}; "
            f"pass e.g. {name}=0"
        )
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed!r}; pass e.g. {name}=0")
    return int(seed)


def _check_count(count: object, where: str) -> int:
    """Return an image count as an int or raise an error naming ``where`` it came from."""
    if not _is_int(count):
        raise TypeError(
            f"{where} must be an int number of images, got {count!r} of type {type(count).__name__}"
        )
    if count < 0:
        raise ValueError(f"{where} must be >= 0 images, got {count!r}")
    return int(count)


def check_counts(counts: object, name: str) -> dict[str, int]:
    """Turn an int or a ``{class name: count}`` mapping into a count for every class."""
    if isinstance(counts, Mapping):
        unknown = [key for key in counts if key not in KERMANY_CLASSES]
        if unknown:
            raise ValueError(
                f"{name} has unknown class name {unknown[0]!r}; the keys must be among "
                f"{list(KERMANY_CLASSES)} (classes left out get 0 images)"
            )
        return {
            label: _check_count(counts.get(label, 0), f"{name}[{label!r}]")
            for label in KERMANY_CLASSES
        }
    count = _check_count(counts, name)
    return dict.fromkeys(KERMANY_CLASSES, count)
