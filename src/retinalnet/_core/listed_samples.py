"""What a data set lists of its images, through the wrappers it comes in.

The checks before a fit (a class without images, training data of one class) and the names
digest of a resumed run read a data set's ``targets`` and ``samples``. A ``Subset`` has a
``dataset`` too, its parent, whose lists are not the subset's: they are taken at the
subset's ``indices``. A ``ConcatDataset``'s are its parts' one after the other, a
``DataLoader``'s its data set's. Another wrapper is read through only when it holds as many
items as the data set it wraps (a transform around it); else it lists nothing.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from typing import Any

from torch.utils.data import ConcatDataset, DataLoader, Subset

__all__ = ["listed_names", "listed_targets"]

_DEPTH = 8  # wrappers read through, at most


def listed_targets(data: object) -> list[int] | None:
    """The class index of each image of ``data``, in order; ``None`` when it does not list
    them as integers (no ``targets``, class names, one-hot rows: the data loader's own check
    of the targets speaks for those)."""
    targets: list[int] | None = _listed(data, _own_targets, 0)
    return targets


def listed_names(data: object) -> list[str] | None:
    """``"path relative to its data set's root<TAB>class name"`` for each image of
    ``data``, in order; ``None`` when it does not list its files (``samples`` and
    ``classes``)."""
    names: list[str] | None = _listed(data, _own_names, 0)
    return names


def _listed(data: object, own: Any, depth: int) -> Any:
    mine = own(data)
    if mine is not None or depth >= _DEPTH:
        return mine
    if isinstance(data, DataLoader):
        return _listed(data.dataset, own, depth + 1)
    if isinstance(data, Subset):
        parent = _listed(data.dataset, own, depth + 1)
        try:
            return None if parent is None else [parent[index] for index in data.indices]
        except (IndexError, TypeError):
            return None
    if isinstance(data, ConcatDataset):
        parts = [_listed(part, own, depth + 1) for part in data.datasets]
        return None if any(part is None for part in parts) else [x for p in parts for x in p]
    inner = getattr(data, "dataset", None)
    if inner is None or inner is data or _length(inner) != _length(data):
        return None  # a wrapper that picks or adds items: its own order is unknown
    return _listed(inner, own, depth + 1)


def _own_targets(data: object) -> list[int] | None:
    targets = getattr(data, "targets", None)
    if targets is None or isinstance(targets, str):
        return None
    try:
        return [operator.index(target) for target in targets]
    except TypeError:  # names, one-hot rows, floats: not class indices
        return None


def _own_names(data: object) -> list[str] | None:
    samples, classes = getattr(data, "samples", None), getattr(data, "classes", None)
    if not isinstance(samples, Sequence) or not isinstance(classes, Sequence):
        return None
    root = str(getattr(data, "root", ""))
    names = [str(name) for name in classes]
    try:
        return [
            f"{os.path.relpath(path, root) if root else path}\t{names[target]}"
            for path, target in samples
        ]
    except (TypeError, ValueError, IndexError):  # samples of another shape
        return None


def _length(data: object) -> int | None:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None
