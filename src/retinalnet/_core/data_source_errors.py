"""What a fit, an evaluation or a prediction says when its data is no data set or loader:
the argument, what it got, and what to pass (a folder path gets the data set that reads it)."""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

from retinalnet._core.classes import KERMANY_SPLITS

__all__ = ["not_a_data_source"]


def not_a_data_source(data: object, name: str | None = None) -> str:
    """Why ``data``, given as the argument ``name``, is no data set or loader, and what to
    pass: for a folder path the data set that reads it (``KermanyOCT(root, split)``), for
    a list a :class:`~torch.utils.data.Dataset` around it."""
    what = f"the {name} argument" if name else "the data"
    kind = type(data).__name__
    expected = (
        "expected a map-style torch Dataset (a subclass of torch.utils.data.Dataset with "
        "__getitem__ and __len__) or a DataLoader"
    )
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.suffix.lower() in (".csv", ".json"):
            reader = f"a manifest with KermanyOCT.from_manifest({str(path)!r}, split, root=...)"
        elif path.name in KERMANY_SPLITS:
            reader = f"a Kermany-layout folder with KermanyOCT({str(path.parent)!r}, {path.name!r})"
        else:
            reader = (
                f"a Kermany-layout folder with KermanyOCT({str(path)!r}, split), split "
                "'train', 'val' or 'test'"
            )
        return (
            f"{what} {str(path)!r} is a path ({kind}), not a data set: {expected}; read "
            f"{reader} (from retinalnet.datasets)"
        )
    if isinstance(data, Dataset):  # no length to batch by
        return (
            f"{what} ({kind}) is a torch Dataset without __len__ (an IterableDataset, or a "
            f"class that does not define it): {expected}; give it a __len__, or pass "
            "DataLoader(data, batch_size=...)"
        )
    if isinstance(data, tuple) and len(data) == 2 and all(map(_is_tensor, data)):
        return (
            f"{what} (a tuple of two tensors) is not a torch Dataset: {expected}; pass "
            "TensorDataset(images, labels) (from torch.utils.data)"
        )
    if isinstance(data, (list, tuple)):
        return (
            f"{what} ({kind} of {len(data)} item(s)) is not a torch Dataset: {expected}; "
            "wrap the (image, label) pairs in a torch.utils.data.Dataset subclass, or read a "
            "Kermany-layout folder with KermanyOCT(root, split)"
        )
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):  # another library's
        return (
            f"{what} ({kind}) is not a torch Dataset: {expected}; pass "
            "DataLoader(data, batch_size=...), or wrap it in a torch.utils.data.Dataset "
            "subclass"
        )
    return f"{what} ({kind}) is neither a data set nor a loader: {expected}"


def _is_tensor(value: object) -> bool:
    return type(value).__module__.startswith(("torch", "numpy"))
