"""What tells one set of training images from another without reading them: a digest of
their names and classes.

A resumed run must train on the images it was started on. Counting them per class tells
another folder of another size; the names tell another folder of the same size (other
scans, or the same scans sorted into other classes). The names are taken relative to the
data set's ``root``, so the run's folder moved or copied elsewhere is the same images.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

__all__ = ["sample_names_digest"]


def sample_names_digest(data: Any) -> str | None:
    """A SHA-256 of ``data``'s images: each sample's path relative to the data set's
    ``root`` (as written, links not followed) and its class name, sorted; ``None`` for a
    data set that does not list its files (``samples``, ``classes``), a ``TensorDataset``
    say. A ``DataLoader`` is read through its data set.

    Examples
    --------
    >>> from retinalnet.datasets import KermanyOCT
    >>> sample_names_digest(KermanyOCT("OCT2017", "train"))  # doctest: +SKIP
    '3f5a...'
    """
    data = getattr(data, "dataset", data)  # a DataLoader's
    samples, classes = getattr(data, "samples", None), getattr(data, "classes", None)
    if not isinstance(samples, list) or classes is None:
        return None
    root = str(getattr(data, "root", ""))
    names = [str(name) for name in classes]
    try:
        lines = sorted(
            f"{os.path.relpath(path, root) if root else path}\t{names[target]}"
            for path, target in samples
        )
    except (TypeError, ValueError, IndexError):  # samples of another shape: not told apart
        return None
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()
