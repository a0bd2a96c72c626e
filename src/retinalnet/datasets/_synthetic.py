"""Seeded, procedurally generated OCT-like B-scans for demos, docs and tests.

The scans imitate the look of the Spectralis images in the Kermany et al. (2018) OCT2017 data
set (dark speckled vitreous, a curved layered retina, a bright RPE line and a fading choroid)
and add one class-specific lesion: drusen, diabetic macular oedema cysts or a choroidal
neovascular membrane with subretinal fluid. They are not clinical data; use them to exercise
code paths, never to judge a model.
"""

from __future__ import annotations

import io
import operator
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
import numpy.typing as npt
import torch.utils.data
from PIL import Image

from retinalnet._core.classes import KERMANY_CLASSES, KERMANY_SPLITS
from retinalnet._core.deprecation import renamed_argument, warn_deprecated
from retinalnet._core.files import atomic_write
from retinalnet._core.transform_args import check_transforms
from retinalnet.datasets._render import _DEFAULT_SIZE, _is_int, _render
from retinalnet.datasets._synthetic_checks import check_counts, check_root, check_seed, check_shape

__all__ = ["SyntheticOCT", "make_synthetic_kermany"]

# Synthetic patient ids: a stride per seed, then an affine permutation of 1,000,000..9,999,999.
_ID_BASE: Final = 1_000_000
_ID_RANGE: Final = 9_000_000
_ID_SEED_STRIDE: Final = 100_003
_ID_MULTIPLIER: Final = 5_237_137  # coprime with _ID_RANGE, so the map is a permutation
_ID_OFFSET: Final = 3_918_274


def _write_jpeg(image: Image.Image, path: Path, quality: int) -> None:
    """Write ``image`` as a JPEG whole or not at all: a full disk cut PIL's own writes
    short without an error, leaving scans that fail only when read."""
    encoded = io.BytesIO()
    image.save(encoded, format="JPEG", quality=quality)

    def write(stream: BinaryIO) -> None:
        stream.write(encoded.getvalue())

    atomic_write(path, write, sync=False)


class SyntheticOCT(torch.utils.data.Dataset[tuple[Any, int]]):
    """Procedurally generated OCT B-scans of the four Kermany classes.

    A stand-in for the Kermany et al. (2018) OCT2017 data set that needs no download: every
    image is rendered on demand by :func:`render_bscan` from ``numpy.random.default_rng([seed,
    index])``, so image ``index`` is the same in every process and DataLoader worker and the
    data set holds no pixels in memory. The attributes follow ``torchvision`` ``ImageFolder``.

    Parameters
    ----------
    num_per_class
        Images per class: an int for every class, or a mapping from class name to count
        (classes left out get 0).
    shape
        ``(height, width)`` of every image, each side from 32 to 4096 (an array's shape;
        PIL's ``image.size`` is ``(width, height)``); the default is the Kermany size.

        .. versionchanged:: 0.2
           Renamed from ``size``, which still works with a ``DeprecationWarning``: in
           retinalnet ``size`` is the side of the square the model sees.
    seed
        Non-negative int that fixes the images and the synthetic patient ids.
    transform
        Called on each PIL image (mode ``"L"``), e.g. a ``torchvision`` transform.
    target_transform
        Called on each class index.

    Attributes
    ----------
    classes : list of str
        ``list(KERMANY_CLASSES)``.
    class_to_idx : dict of str to int
        Class name to index.
    samples : list of (str, int)
        File name each image gets from :meth:`write` (``"CNV-1000003-1.jpeg"``) and its
        target, ordered by class then index.
    targets : list of int
        Class index of each image.
    patient_ids : list of str
        Synthetic 7-digit patient id of each image, one patient per image.
    shape : tuple of (int, int)
        ``(height, width)``.
    seed : int
        The seed.

    Raises
    ------
    ValueError
        If ``shape`` is not two ints from 32 to 4096, ``seed`` or a count is negative, or a
        mapping key is not a class name.
    TypeError
        If ``seed`` or a count is not an int.

    Notes
    -----
    Patient ids of two data sets whose seeds differ by 1 or 2 (as in
    :func:`make_synthetic_kermany`) never collide while each holds fewer than 100,003 images;
    other seeds collide rarely.

    Examples
    --------
    >>> data = SyntheticOCT(num_per_class=2, shape=(128, 128), seed=0)
    >>> len(data), data.classes
    (8, ['CNV', 'DME', 'DRUSEN', 'NORMAL'])
    >>> image, target = data[0]
    >>> image.mode, image.size, target
    ('L', (128, 128), 0)
    >>> data.samples[0]
    ('CNV-4918274-1.jpeg', 0)
    """

    def __init__(
        self,
        num_per_class: int | Mapping[str, int] = 25,
        *,
        shape: tuple[int, int] = _DEFAULT_SIZE,
        seed: int = 0,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        counts = check_counts(num_per_class, "num_per_class")
        shape = renamed_argument("SyntheticOCT", "size", "shape", size, shape, _DEFAULT_SIZE)
        self.shape: tuple[int, int] = check_shape(shape)
        self.seed: int = check_seed(seed)
        check_transforms(transform, target_transform, owner="SyntheticOCT")
        self.transform = transform
        self.target_transform = target_transform
        self.classes: list[str] = list(KERMANY_CLASSES)
        self.class_to_idx: dict[str, int] = {name: i for i, name in enumerate(self.classes)}
        self.targets: list[int] = [
            self.class_to_idx[name] for name in self.classes for _ in range(counts[name])
        ]
        first = (self.seed % _ID_RANGE) * _ID_SEED_STRIDE
        self.patient_ids: list[str] = [
            str(_ID_BASE + (_ID_MULTIPLIER * (first + i) + _ID_OFFSET) % _ID_RANGE)
            for i in range(len(self.targets))
        ]
        self.samples: list[tuple[str, int]] = [
            (f"{self.classes[target]}-{patient}-1.jpeg", target)
            for target, patient in zip(self.targets, self.patient_ids, strict=True)
        ]

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``: the 0.1 name of :attr:`shape`, deprecated."""
        warn_deprecated("SyntheticOCT.size", "use SyntheticOCT.shape", stacklevel=3)
        return self.shape

    def __len__(self) -> int:
        """Number of images."""
        return len(self.targets)

    def _check_index(self, index: int) -> int:
        index = operator.index(index)
        if not 0 <= index < len(self):
            raise IndexError(
                f"index {index} is out of range for a SyntheticOCT of length {len(self)}; "
                f"use 0 <= index < {len(self)}"
            )
        return index

    def _render_index(self, index: int) -> tuple[Image.Image, npt.NDArray[np.bool_]]:
        index = self._check_index(index)
        label = self.classes[self.targets[index]]
        rng = np.random.default_rng([self.seed, index])
        return _render(label, rng, *self.shape)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        """Return ``(image, target)`` of image ``index`` after the transforms.

        Parameters
        ----------
        index
            ``0 <= index < len(self)``.

        Returns
        -------
        tuple
            The PIL image (mode ``"L"``) or ``transform(image)``, and the class index or
            ``target_transform(target)``.

        Raises
        ------
        IndexError
            If ``index`` is negative or not below ``len(self)``.
        """
        image: Any = self.image(index)
        target: Any = self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def image(self, index: int) -> Image.Image:
        """Return image ``index`` untransformed, as a PIL image of mode ``"L"``.

        Raises
        ------
        IndexError
            If ``index`` is negative or not below ``len(self)``.
        """
        return self._render_index(index)[0]

    def mask(self, index: int) -> npt.NDArray[np.bool_]:
        """Return the lesion mask of image ``index``: bool, shape ``(height, width)``.

        The mask marks the drusen material, the DME cysts or the CNV elevation with its
        subretinal fluid; it is all ``False`` for ``"NORMAL"`` images.

        Raises
        ------
        IndexError
            If ``index`` is negative or not below ``len(self)``.
        """
        return self._render_index(index)[1]

    def write(
        self, root: str | os.PathLike[str], split: str = "train", *, quality: int = 95
    ) -> Path:
        """Write every image as a JPEG in the Kermany folder layout.

        Files go to ``root/split/CLASS/CLASS-PATIENTID-1.jpeg``; folders are created as
        needed and existing files of the same name are overwritten.

        Parameters
        ----------
        root
            Folder that holds the split folders.
        split
            One of ``KERMANY_SPLITS`` (``"train"``, ``"val"``, ``"test"``).
        quality
            JPEG quality, 1 to 100.

        Returns
        -------
        pathlib.Path
            ``root/split``, ready for an ``ImageFolder``-style reader.

        Raises
        ------
        ValueError
            If ``split`` is not a Kermany split name, ``quality`` is out of range, or
            ``root`` is empty or is (or lies inside) a file.
        OSError
            If the disk refuses an image (full, read-only): one line naming the file and the
            cause; each image is written whole or not at all.
        TypeError
            If ``root`` is not a str or a path.
        """
        if split not in KERMANY_SPLITS:
            raise ValueError(f"split must be one of {list(KERMANY_SPLITS)}, got {split!r}")
        if not _is_int(quality) or not 1 <= quality <= 100:
            raise ValueError(f"quality must be an int from 1 to 100, got {quality!r}; try 95")
        directory = check_root(root, "SyntheticOCT.write") / split
        for name in self.classes:
            (directory / name).mkdir(parents=True, exist_ok=True)
        for index, (file_name, target) in enumerate(self.samples):
            path = directory / self.classes[target] / file_name
            _write_jpeg(self.image(index), path, int(quality))
        return directory

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_images={len(self)}, shape={self.shape}, seed={self.seed})"
        )


def make_synthetic_kermany(
    root: str | os.PathLike[str],
    *,
    train: int | Mapping[str, int] = 40,
    val: int | Mapping[str, int] = 10,
    test: int | Mapping[str, int] = 10,
    shape: tuple[int, int] = _DEFAULT_SIZE,
    seed: int = 0,
    size: tuple[int, int] | None = None,
) -> Path:
    """Write a small synthetic data set in the Kermany OCT2017 folder layout.

    Creates ``root/{train,val,test}/{CNV,DME,DRUSEN,NORMAL}/CLASS-PATIENTID-1.jpeg`` from
    :class:`SyntheticOCT` data sets seeded ``3 * seed``, ``3 * seed + 1`` and ``3 * seed + 2``,
    so no image and no patient id is shared between splits.

    Parameters
    ----------
    root
        Output folder, created if missing.
    train, val, test
        Images per class in each split: an int, or a mapping from class name to count.
    shape
        ``(height, width)`` of the images, each side from 32 to 4096 (``size`` before 0.2).
    seed
        Non-negative int that fixes the whole data set.

    Returns
    -------
    pathlib.Path
        ``root``.

    Raises
    ------
    ValueError
        If ``shape`` is not two ints from 32 to 4096, ``seed`` or a count is negative, a
        mapping key is not a class name, or ``root`` is empty or is (or lies inside) a
        file. All arguments are checked before anything is written.
    TypeError
        If ``seed`` or a count is not an int, or ``root`` is not a str or a path.

    Examples
    --------
    >>> root = make_synthetic_kermany("oct-demo", train=8, val=2, test=2)  # doctest: +SKIP
    >>> sorted(path.name for path in root.iterdir())  # doctest: +SKIP
    ['test', 'train', 'val']
    """
    shape = renamed_argument("make_synthetic_kermany", "size", "shape", size, shape, _DEFAULT_SIZE)
    checked_size = check_shape(shape)
    directory = check_root(root, "make_synthetic_kermany")
    checked_seed = check_seed(seed)
    requested = {"train": train, "val": val, "test": test}
    datasets = {
        split: SyntheticOCT(
            check_counts(requested[split], split),
            shape=checked_size,
            seed=3 * checked_seed + offset,
        )
        for offset, split in enumerate(KERMANY_SPLITS)
    }
    for split, dataset in datasets.items():
        dataset.write(directory, split)
    return directory
