"""The four Kermany OCT classes, in the fixed order every retinalnet model uses, and the
check that a model and a data set agree on their classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

KERMANY_CLASSES: Final[tuple[str, ...]] = ("CNV", "DME", "DRUSEN", "NORMAL")
"""Class names in output order: CNV=0, DME=1, DRUSEN=2, NORMAL=3."""

KERMANY_SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")
"""Split folder names of the Kermany OCT2017 download."""

IMAGE_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".dcm"}
)
"""File suffixes (compared lower-case) that are read as images (``.dcm``: DICOM, with the
``dicom`` extra; a multi-frame DICOM file, multi-page TIFF or animated PNG, GIF or WebP is a
volume, refused as one image). Other files in a searched folder are left out, with a warning
for those that may be scans in another format (:func:`~retinalnet.datasets.find_images`,
:class:`~retinalnet.datasets.KermanyOCT`)."""


def check_same_classes(model_classes: Sequence[str], data: object, *, where: str) -> None:
    """Refuse data whose classes differ from the model's, by name and order.

    A model's output ``i`` means ``model_classes[i]``; a data set's target ``i`` means its
    ``classes[i]``. When the two lists differ, every number computed would silently compare
    different classes (a 3-class checkpoint on 4-class data, or class folders in another
    order), so nothing is computed. Data without a ``classes`` attribute (tensors, cached
    features) cannot be checked and pass.

    Raises
    ------
    ValueError
        Listing both class lists and how to fix it.
    """
    dataset = getattr(data, "dataset", data)  # a DataLoader's data set
    data_classes = getattr(dataset, "classes", None)
    if data_classes is None:
        return
    expected, found = tuple(model_classes), tuple(str(name) for name in data_classes)
    if expected != found:
        raise ValueError(
            f"{where}: the model's classes are {list(expected)} (output order) but the data's "
            f"are {list(found)}; every result would compare different classes. Use data with "
            "the model's classes in its order (KermanyOCT always gives CNV, DME, DRUSEN, "
            "NORMAL), or a model trained for the data's classes"
        )
