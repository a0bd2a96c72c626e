"""What tells one set of training images from another without reading them: a digest of
their names and classes.

A resumed run must train on the images it was started on. Counting them per class tells
another folder of another size; the names tell another folder of the same size (other
scans, or the same scans sorted into other classes). The names are taken relative to the
data set's ``root``, so the run's folder moved or copied elsewhere is the same images.
"""

from __future__ import annotations

import hashlib
from typing import Any

from retinalnet._core.listed_samples import listed_names

__all__ = ["sample_names_digest"]


def sample_names_digest(data: Any) -> str | None:
    """A SHA-256 of ``data``'s images: each sample's path relative to the data set's
    ``root`` (as written, links not followed) and its class name, sorted; ``None`` for a
    data set that does not list its files (``samples``, ``classes``), a ``TensorDataset``
    say. A ``DataLoader``, a ``Subset`` (its own images) and a ``ConcatDataset`` are read
    through (:func:`~retinalnet._core.listed_samples.listed_names`).

    Examples
    --------
    >>> from retinalnet.datasets import KermanyOCT
    >>> sample_names_digest(KermanyOCT("OCT2017", "train"))  # doctest: +SKIP
    '3f5a...'
    """
    names = listed_names(data)
    if names is None:
        return None
    text = "\n".join(sorted(names))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
