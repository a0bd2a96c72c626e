"""The Kermany OCT2017 folder layout as a torchvision-style data set."""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch.utils.data
from PIL import Image

from retinalnet.datasets._classes import IMAGE_EXTENSIONS, KERMANY_CLASSES, KERMANY_SPLITS
from retinalnet.datasets._image_io import UnreadableImageError, load_image

__all__ = [
    "KermanyOCT",
    "find_images",
    "is_image_file",
    "list_class_folders",
    "patient_id_from_name",
]

ON_ERROR_POLICIES = ("raise", "skip")

_KERMANY_NAME = re.compile(r"^[A-Za-z]+-(\d+)-\d+$")
_LAYOUT_HINT = "expected ROOT/{train,val,test}/{" + ",".join(KERMANY_CLASSES) + "}/*.jpeg"


def patient_id_from_name(name: str) -> str | None:
    """Return the patient id in a Kermany file name, or ``None``.

    Kermany et al. name each scan ``CLASS-PATIENTID-IMAGENUMBER.jpeg``.

    Parameters
    ----------
    name
        A file name or path; only the final component counts.

    Returns
    -------
    str or None
        The patient id as written (leading zeros kept), or ``None`` when the name does not
        follow the scheme.

    Examples
    --------
    >>> patient_id_from_name("CNV-1016042-1.jpeg")
    '1016042'
    >>> patient_id_from_name("scan_01.png") is None
    True
    """
    stem = Path(name).name.rsplit(".", 1)[0]
    match = _KERMANY_NAME.match(stem)
    return match.group(1) if match else None


def is_image_file(name: str) -> bool:
    """Whether a file name is read as an image (``.jpeg``, ``.jpg``, ``.png``, any case).

    Hidden files (``.DS_Store``, macOS ``._`` resource forks) are never images.
    """
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _iter_image_files(folder: str) -> Iterator[str]:
    """Yield image file paths under ``folder`` (recursively, hidden folders skipped)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                yield from _iter_image_files(entry.path)
            elif is_image_file(entry.name):
                yield entry.path


def find_images(folder: str | os.PathLike[str]) -> list[Path]:
    """All image files under ``folder`` (recursively), sorted; hidden files are skipped.

    Examples
    --------
    >>> from retinalnet.datasets import find_images
    >>> paths = find_images("scans/")  # doctest: +SKIP
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is not a folder")
    return sorted(Path(path) for path in _iter_image_files(str(root)))


def _check_root(root: Path) -> None:
    if not root.exists():
        raise FileNotFoundError(
            f"data root {str(root)!r} does not exist; {_LAYOUT_HINT} "
            "(download OCT2017 or write a synthetic set with make_synthetic_kermany)"
        )
    if not root.is_dir():
        raise NotADirectoryError(f"data root {str(root)!r} is a file, not a folder; {_LAYOUT_HINT}")


def list_class_folders(split_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Map each class name to its folder inside one split folder.

    Parameters
    ----------
    split_dir
        A folder such as ``OCT2017/train``.

    Returns
    -------
    dict of str to str
        Class name to folder path, for the classes that have a folder.

    Raises
    ------
    ValueError
        If a folder is not a known class, if there are no class folders at all, or if images
        lie directly in ``split_dir`` instead of in class folders.
    """
    split_path = Path(split_dir)
    folders: dict[str, str] = {}
    loose_images: list[str] = []
    with os.scandir(split_path) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if entry.name not in KERMANY_CLASSES:
                    hint = (
                        f" (class names are upper case: rename it to {entry.name.upper()!r})"
                        if entry.name.upper() in KERMANY_CLASSES
                        else ""
                    )
                    raise ValueError(
                        f"class folder {entry.name!r} is not one of {', '.join(KERMANY_CLASSES)} "
                        f"under {str(split_path)!r}{hint}"
                    )
                folders[entry.name] = entry.path
            elif is_image_file(entry.name):
                loose_images.append(entry.name)
    if loose_images:
        raise ValueError(
            f"{len(loose_images)} image(s) lie directly in {str(split_path)!r} "
            f"(e.g. {loose_images[0]!r}); move each into its class folder "
            f"({', '.join(KERMANY_CLASSES)})"
        )
    if not folders:
        raise ValueError(f"no class folders under {str(split_path)!r}; {_LAYOUT_HINT}")
    return folders


class KermanyOCT(torch.utils.data.Dataset[tuple[Any, Any]]):
    """One split of the Kermany OCT2017 data set, laid out as on disk.

    Reads ``root/split/{CNV,DME,DRUSEN,NORMAL}/*.jpeg`` like torchvision's
    :class:`~torchvision.datasets.ImageFolder`, with two differences that matter for OCT:
    the class order is fixed
    (``CNV=0, DME=1, DRUSEN=2, NORMAL=3``, whichever class folders exist), and every sample
    knows the patient it came from.

    Parameters
    ----------
    root
        The folder holding ``train/``, ``val/`` and ``test/`` (``OCT2017`` in the Kaggle
        download, ``CellData/OCT`` in the Mendeley one, which has no ``val``).
    split
        ``"train"``, ``"val"`` or ``"test"``.
    transform
        Applied to each PIL image, e.g. ``Preprocessing().eval_transform()``.
    target_transform
        Applied to each class index.
    loader
        Reads one file; the default decodes it fully and names the file if that fails.
    target_size
        The shorter side the images are resized to by ``transform`` (e.g.
        ``Preprocessing().resize``). With the default loader, large JPEGs are then decoded at
        reduced scale (see :func:`~retinalnet.datasets.load_image`), which is much faster.
        ``None`` (the default) decodes at full size.

        .. versionadded:: 0.2
    on_error
        What to do when an image cannot be read: ``"raise"`` (the default) raises
        :class:`~retinalnet.datasets.UnreadableImageError` naming the file, also from a
        DataLoader worker; ``"skip"`` warns (naming the file) and returns the next readable
        sample instead, so a batch keeps its size and an epoch its length.

        .. versionadded:: 0.2

    Attributes
    ----------
    classes : list of str
        ``["CNV", "DME", "DRUSEN", "NORMAL"]``.
    class_to_idx : dict of str to int
        Class name to index.
    samples : list of (str, int)
        Image path and class index, sorted by class, then path.
    targets : list of int
        The class index of each sample.
    patient_ids : list of str or None
        The patient id parsed from each file name (``CNV-1016042-1.jpeg`` -> ``"1016042"``).

    Raises
    ------
    FileNotFoundError
        If ``root`` or the split folder does not exist.
    ValueError
        If ``split`` is unknown, a class folder is not a Kermany class, or the split holds
        no images.

    Notes
    -----
    Indexing is one :func:`os.scandir` walk per class folder: no file is opened or stat-ed
    (84,000 files index in well under a second, see ``benchmarks/``).
    Non-image files (``.DS_Store``, ``Thumbs.db``, hidden files) are ignored. The data set
    is by Kermany, Zhang and Goldbaum (Mendeley Data, doi:10.17632/rscbjbr9sj, CC BY 4.0);
    cite Kermany et al., *Cell* 172(5):1122-1131, 2018.

    Examples
    --------
    >>> from retinalnet.datasets import KermanyOCT
    >>> train = KermanyOCT("OCT2017", "train")  # doctest: +SKIP
    >>> train.classes  # doctest: +SKIP
    ['CNV', 'DME', 'DRUSEN', 'NORMAL']
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        loader: Callable[[str], Any] = load_image,
        target_size: int | None = None,
        on_error: str = "raise",
    ) -> None:
        if split not in KERMANY_SPLITS:
            raise ValueError(f"split {split!r} is not one of {', '.join(KERMANY_SPLITS)}")
        self.root = Path(root).expanduser()
        self.split = split
        self.split_dir = self.root / split
        self._configure(transform, target_transform, loader, target_size, on_error)
        self._set_samples(self._find_samples())

    def _configure(
        self,
        transform: Callable[[Image.Image], Any] | None,
        target_transform: Callable[[int], Any] | None,
        loader: Callable[[str], Any],
        target_size: int | None,
        on_error: str,
    ) -> None:
        if on_error not in ON_ERROR_POLICIES:
            raise ValueError(
                f"on_error must be one of {', '.join(map(repr, ON_ERROR_POLICIES))}, "
                f"got {on_error!r}"
            )
        if target_size is not None and (
            isinstance(target_size, bool) or not isinstance(target_size, int) or target_size < 1
        ):
            raise ValueError(
                f"target_size must be a positive int (e.g. Preprocessing().resize) or None, "
                f"got {target_size!r}"
            )
        self.transform = transform
        self.target_transform = target_transform
        if target_size is not None and loader is load_image:
            loader = functools.partial(load_image, target_size=target_size)
        self.loader = loader
        self.target_size = target_size
        self.on_error = on_error
        self.classes: list[str] = list(KERMANY_CLASSES)
        self.class_to_idx: dict[str, int] = {name: i for i, name in enumerate(self.classes)}

    def _set_samples(
        self, samples: list[tuple[str, int]], patient_ids: Sequence[str | None] | None = None
    ) -> None:
        self.samples: list[tuple[str, int]] = samples
        self.targets: list[int] = [target for _, target in samples]
        self.patient_ids: list[str | None] = (
            list(patient_ids)
            if patient_ids is not None
            else [patient_id_from_name(path) for path, _ in samples]
        )

    @classmethod
    def from_manifest(
        cls,
        manifest: str | os.PathLike[str],
        split: str = "train",
        *,
        root: str | os.PathLike[str] | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        loader: Callable[[str], Any] = load_image,
        target_size: int | None = None,
        on_error: str = "raise",
    ) -> KermanyOCT:
        """One split of a manifest file written by :func:`~retinalnet.datasets.write_manifest`.

        The data set has the same shape as one read from folders (``classes``,
        ``class_to_idx``, ``samples``, ``targets``, ``patient_ids``), in the manifest's
        row order.

        Parameters
        ----------
        manifest
            A ``.csv`` or ``.json`` manifest (columns ``path``, ``label``, ``patient``,
            ``split``).
        split
            Which rows to use: ``"train"``, ``"val"`` or ``"test"``.
        root
            The folder relative paths in the manifest start from (the data root the
            manifest was made from). Default: the manifest's own folder.
        transform, target_transform, loader, target_size, on_error
            As for :class:`KermanyOCT`.

        Raises
        ------
        ValueError
            If the manifest is malformed or has no rows for ``split``.

        Examples
        --------
        >>> from retinalnet.datasets import KermanyOCT
        >>> val = KermanyOCT.from_manifest("split.csv", "val", root="OCT2017")  # doctest: +SKIP

        .. versionadded:: 0.2
        """
        from retinalnet.datasets._splits import read_manifest

        if split not in KERMANY_SPLITS:
            raise ValueError(f"split {split!r} is not one of {', '.join(KERMANY_SPLITS)}")
        manifest_path = Path(manifest).expanduser()
        rows = read_manifest(manifest_path)
        base = Path(root).expanduser() if root is not None else manifest_path.parent
        self = cls.__new__(cls)
        self.root = base
        self.split = split
        self.split_dir = base / split
        self._configure(transform, target_transform, loader, target_size, on_error)
        chosen = [row for row in rows if row.split == split]
        if not chosen:
            found = sorted({row.split for row in rows})
            raise ValueError(
                f"manifest {str(manifest_path)!r} has no rows for split {split!r} "
                f"(it has: {', '.join(found) or 'no rows'})"
            )
        self._set_samples(
            [(str(base / row.path), self.class_to_idx[row.label]) for row in chosen],
            [row.patient for row in chosen],
        )
        return self

    def _find_samples(self) -> list[tuple[str, int]]:
        _check_root(self.root)
        if not self.split_dir.is_dir():
            self._raise_missing_split()
        samples: list[tuple[str, int]] = []
        for name, folder in list_class_folders(self.split_dir).items():
            target = self.class_to_idx[name]
            samples.extend((path, target) for path in sorted(_iter_image_files(folder)))
        if not samples:
            suffixes = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise ValueError(
                f"split {self.split!r} under {str(self.root)!r} holds no images ({suffixes}); "
                f"{_LAYOUT_HINT}"
            )
        samples.sort(key=lambda sample: sample[1])  # stable: keeps path order within a class
        return samples

    def _raise_missing_split(self) -> None:
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if set(found) & set(KERMANY_CLASSES):
            raise FileNotFoundError(
                f"{str(self.root)!r} holds class folders ({', '.join(found)}) but no "
                f"{self.split!r} folder: pass the folder above it as root; {_LAYOUT_HINT}"
            )
        raise FileNotFoundError(
            f"no split folder {self.split!r} under {str(self.root)!r} "
            f"(found: {', '.join(found) or 'nothing'}); {_LAYOUT_HINT}"
        )

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> tuple[Any, int]:
        path, target = self.samples[index]
        if self.on_error == "raise":
            return self.loader(path), target
        for offset in range(len(self.samples)):
            path, target = self.samples[(index + offset) % len(self.samples)]
            try:
                return self.loader(path), target
            except UnreadableImageError as error:
                message = f"skipping unreadable image {path!r} ({error.reason})"
                warnings.warn(message, RuntimeWarning, stacklevel=3)
        raise UnreadableImageError(
            self.samples[index][0],
            f"no readable image in the whole {self.split!r} split (on_error='skip')",
        )

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, target = self._load(index)
        sample: Any = self.transform(image) if self.transform is not None else image
        label: Any = self.target_transform(target) if self.target_transform is not None else target
        return sample, label

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
            f"images={len(self)})"
        )
