"""Summaries of a Kermany-layout data set: images per class and image sizes."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.classes import KERMANY_CLASSES, KERMANY_SPLITS
from retinalnet._core.folders import nonempty_path
from retinalnet._core.images import image_size
from retinalnet.datasets._files import LAYOUT_FOLDER
from retinalnet.datasets._kermany import KermanyOCT
from retinalnet.datasets._root_layout import describe_root
from retinalnet.datasets._system_folders import system_folders_said_once

__all__ = ["ImageCounts", "SizeStats", "count_images", "image_size_stats"]


def _is_data_set(value: object) -> bool:
    """Whether ``value`` is a data set of files as :class:`KermanyOCT` is (``samples``,
    ``classes``): a torchvision ``ImageFolder`` is one too."""
    return hasattr(value, "samples") and hasattr(value, "classes")


def _to_dataframe(records: list[dict[str, Any]]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "to_dataframe() needs pandas, which is not installed: pip install pandas "
            "(or use to_records(), which needs nothing)"
        ) from None
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class ImageCounts:
    """Number of images per class in each split.

    Attributes
    ----------
    counts : dict of str to dict of str to int
        ``counts[split][class_name]``; every Kermany class is present (0 when it has no
        folder or no images).
    """

    counts: dict[str, dict[str, int]]

    @property
    def total(self) -> int:
        """All images in all splits."""
        return sum(sum(per_class.values()) for per_class in self.counts.values())

    def to_records(self) -> list[dict[str, Any]]:
        """One ``{"split", "class", "count"}`` dict per split and class."""
        return [
            {"split": split, "class": name, "count": count}
            for split, per_class in self.counts.items()
            for name, count in per_class.items()
        ]

    def to_dataframe(self) -> Any:
        """The records as a :class:`pandas.DataFrame` (needs pandas)."""
        return _to_dataframe(self.to_records())

    def __str__(self) -> str:
        header = f"{'split':<6}" + "".join(f"{name:>8}" for name in KERMANY_CLASSES) + "   total"
        lines = [header]
        for split, per_class in self.counts.items():
            cells = "".join(f"{per_class[name]:>8}" for name in KERMANY_CLASSES)
            lines.append(f"{split:<6}{cells}{sum(per_class.values()):>8}")
        return "\n".join(lines)


def count_images(root: str | os.PathLike[str], splits: Sequence[str] | None = None) -> ImageCounts:
    """Count the images per class in each split of a Kermany-layout folder.

    Parameters
    ----------
    root
        Folder holding ``train/``, ``val/``, ``test/``.
    splits
        Splits to count (a single split may be given as a str, ``"train"``); by default those
        of ``train``, ``val``, ``test`` that exist.

    Returns
    -------
    ImageCounts
        Plain counts; ``to_dataframe()`` turns them into a pandas DataFrame.

    Raises
    ------
    TypeError
        If ``root`` is not a str or a path (a data set: pass its ``root``).
    FileNotFoundError
        If ``root`` holds none of the requested splits; the message names a split folder
        under another name (``valid/``) or the folder below ``root`` that holds the splits
        (Kaggle's ``'OCT2017 '``).

    Warns
    -----
    UserWarning
        When counting the splits that exist, if ``root`` also holds a folder named like a
        split in another case or spelling (``valid/``, ``Train/``): its images are not
        counted, as training does not read them; the warning counts them and says to
        rename the folder (``val``).

    Examples
    --------
    >>> from retinalnet.datasets import count_images
    >>> print(count_images("OCT2017"))  # doctest: +SKIP
    split      CNV     DME  DRUSEN  NORMAL   total
    train    37205   11348    8616   26315   83484
    """
    if not isinstance(root, str | os.PathLike):
        of = "; pass its root: count_images(dataset.root)" if _is_data_set(root) else ""
        raise TypeError(
            f"count_images takes the data root (a str or a path, e.g. 'OCT2017'), got "
            f"{type(root).__name__}{of}"
        )
    root_path = nonempty_path(root, name="root", what=LAYOUT_FOLDER)
    if isinstance(splits, str):  # "train", not the splits 't', 'r', 'a', ...
        splits = [splits]
    wanted = (
        list(splits)
        if splits is not None
        else [split for split in KERMANY_SPLITS if (root_path / split).is_dir()]
    )
    if not wanted:
        advice = describe_root(root_path).advice() if root_path.is_dir() else None
        raise FileNotFoundError(
            f"no split folder (train, val, test) under {str(root_path)!r}; "
            + (advice or "expected ROOT/{train,val,test}/{CNV,DME,DRUSEN,NORMAL}/")
        )
    if splits is None:
        misnamed = describe_root(root_path).misnamed_advice()
        if misnamed is not None:
            warn_caller(f"not counted under {str(root_path)!r}: {misnamed}", UserWarning)
    counts: dict[str, dict[str, int]] = {}
    with system_folders_said_once(root_path):  # one line, not one per class folder
        for split in wanted:
            dataset = KermanyOCT(root_path, split)
            per_class = dict.fromkeys(KERMANY_CLASSES, 0)
            for target in dataset.targets:
                per_class[dataset.classes[target]] += 1
            counts[split] = per_class
    return ImageCounts(counts)


@dataclass(frozen=True)
class SizeStats:
    """Height and width statistics of the images of one class, in pixels."""

    class_name: str
    count: int
    height_min: int
    height_median: float
    height_max: int
    width_min: int
    width_median: float
    width_max: int
    mean_height: float
    mean_width: float

    def to_dict(self) -> dict[str, Any]:
        """The statistics as a plain dict."""
        return asdict(self)


def image_size_stats(dataset: KermanyOCT) -> dict[str, SizeStats]:
    """Height and width statistics per class, read from the image headers.

    Only each file's header is read, not its pixels, so this is fast.

    Parameters
    ----------
    dataset
        A split, e.g. ``KermanyOCT(root, "train")``.

    Returns
    -------
    dict of str to SizeStats
        One entry per class that has images. ``pandas.DataFrame([s.to_dict() for s in
        stats.values()])`` gives a table.

    Raises
    ------
    TypeError
        If ``dataset`` is not a data set of files (a folder: pass ``KermanyOCT(root, split)``).
    retinalnet.datasets.UnreadableImageError
        If a header cannot be read.
    """
    if not _is_data_set(dataset):
        if isinstance(dataset, str | os.PathLike):
            fix = (
                f"pass a split of it: image_size_stats(KermanyOCT({os.fspath(dataset)!r}, 'train'))"
            )
        else:
            fix = "pass e.g. KermanyOCT(root, 'train')"
        raise TypeError(
            "image_size_stats takes a data set with samples and classes (a KermanyOCT), got "
            f"{type(dataset).__name__}; {fix}"
        )
    sizes: dict[str, list[tuple[int, int]]] = {}
    for path, target in dataset.samples:
        width, height = image_size(path)
        sizes.setdefault(dataset.classes[target], []).append((height, width))
    stats: dict[str, SizeStats] = {}
    for name, pairs in sizes.items():
        heights = [h for h, _ in pairs]
        widths = [w for _, w in pairs]
        stats[name] = SizeStats(
            class_name=name,
            count=len(pairs),
            height_min=min(heights),
            height_median=statistics.median(heights),
            height_max=max(heights),
            width_min=min(widths),
            width_median=statistics.median(widths),
            width_max=max(widths),
            mean_height=statistics.fmean(heights),
            mean_width=statistics.fmean(widths),
        )
    return stats
