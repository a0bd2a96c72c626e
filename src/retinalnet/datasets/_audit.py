"""Auditing a Kermany-layout download before training on it: counts, layout mistakes (unknown,
empty or nested class folders), file names (class prefixes, patient ids), image sizes and bit
depths, unreadable files, duplicates and leakage across splits.

Why this module is long: the report and the one walk that fills it change together; each
problem the walk looks for is a field of the report, a section of its table and a reason the
verdict fails, and keeping them side by side is what keeps them in step.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

from retinalnet._core.classes import KERMANY_CLASSES, KERMANY_SPLITS
from retinalnet._core.progress import progress_bar
from retinalnet.datasets._files import (
    NAMING_HINT,
    check_root,
    class_folder_hint,
    class_named_in,
    foreign_class_folder,
    is_image_file,
    patient_id_from_name,
    patient_key,
    walk_files,
)

__all__ = [
    "MAX_ASPECT",
    "MAX_SIDE",
    "MIN_SIDE",
    "AuditReport",
    "DuplicateGroup",
    "ProblemFiles",
    "audit",
    "bit_depth",
]

logger = logging.getLogger(__name__)

MIN_SIDE = 64
"""Default smallest plausible image side in pixels (Kermany scans: 384 to 1536 x 496 to 512)."""
MAX_SIDE = 4096
"""Default largest plausible image side in pixels."""
MAX_ASPECT = 8.0
"""Default largest plausible ratio of the longer to the shorter side (Kermany: at most 3.1)."""
PLAUSIBLE_BIT_DEPTHS = (8, 16)
"""Bits per sample an OCT scan may have; 1-bit (bilevel) and 32-bit (int, float) may not."""

_GRAYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_BITS = {"1": 1, "I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16, "I": 32, "F": 32}
_LOG_EVERY = 10_000
_EXAMPLES = 5
_SHOWN = 10
_READ_WHOLE = 64 * 2**20
_SPLIT_ALIASES = {"training": "train", "validation": "val", "valid": "val", "testing": "test"}


def bit_depth(mode: str, image_format: str = "") -> int:
    """Bits per sample of a PIL ``mode``: 1, 8, 16 or 32.

    ``"I"`` is 32-bit, except from a PNG, whose samples have 16 bits at most.

    Examples
    --------
    >>> bit_depth("L"), bit_depth("RGB"), bit_depth("I;16"), bit_depth("I", "PNG"), bit_depth("F")
    (8, 8, 16, 16, 32)

    .. versionadded:: 0.2
    """
    if mode == "I" and image_format == "PNG":
        return 16
    return _BITS.get(mode, 8)


@dataclass
class ProblemFiles:
    """How many files share one problem, and the first few of them.

    Attributes
    ----------
    count : int
        The files with the problem.
    examples : list of str
        Up to 5 of them, relative to the audited root, in walk (path) order.

    .. versionadded:: 0.2
    """

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, path: str) -> None:
        """Count one more file, keeping it as an example while there are fewer than 5."""
        self.count += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append(path)

    def to_dict(self) -> dict[str, Any]:
        """``{"count": ..., "examples": [...]}``."""
        return {"count": self.count, "examples": list(self.examples)}

    def __str__(self) -> str:
        more = ", ..." if self.count > len(self.examples) else ""
        return f"{self.count} (e.g. {', '.join(self.examples)}{more})"


@dataclass(frozen=True)
class DuplicateGroup:
    """Files with the same content (sha256).

    Attributes
    ----------
    sha256 : str
        The hex digest they share.
    paths : tuple of str
        The files, relative to the audited root, sorted.

    Examples
    --------
    >>> group = DuplicateGroup("ab12", ("test/CNV/CNV-1-1.jpeg", "train/CNV/CNV-1-1.jpeg"))
    >>> group.splits, group.across_splits
    (('test', 'train'), True)

    .. versionadded:: 0.2
    """

    sha256: str
    paths: tuple[str, ...]

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits the copies are in, sorted."""
        return tuple(sorted({path.split("/", 1)[0] for path in self.paths}))

    @property
    def across_splits(self) -> bool:
        """Whether the copies lie in more than one split (leakage)."""
        return len(self.splits) > 1


@dataclass
class AuditReport:
    """What :func:`audit` found in a Kermany-layout folder.

    Paths are relative to ``root`` and ``/``-separated. :attr:`ok` is ``False`` when any of
    the problems below is found; stray files, duplicates within one split and symlink loops
    are listed but do not fail it.

    Attributes
    ----------
    root : str
        The audited folder.
    counts : dict of str to dict of str to int
        ``counts[split][class_name]``: image files (by suffix) in each split and class,
        unreadable ones included; every Kermany class is listed for each split found.
    unreadable : dict of str to str
        Image files that cannot be read or decoded (truncated or corrupt JPEGs, text renamed
        ``.jpeg``, broken links, decompression bombs), with the reason. A problem.
    stray_files : list of str
        Files that are not images by name (``.DS_Store``, ``notes.txt``, ``._CNV-1-1.jpeg``)
        or that lie outside the ``SPLIT/CLASS/`` folders.
    duplicates : list of DuplicateGroup
        Groups of two or more files with identical bytes, within or across splits.
    cross_split_patients : dict of str to dict of str to int
        Patients with images in more than one split: ``{patient: {split: images}}``; ids
        compare without leading zeros (``0042`` is patient ``42``). A problem.
    modes : dict of str to int
        Images per PIL mode (``"L"`` is grayscale, ``"RGB"`` colour, ``"I;16"`` 16-bit).
    sizes : dict of str to int
        Images per size, ``"WIDTHxHEIGHT"``, most frequent first.
    unknown_split_folders : dict of str to int
        Folders in ``root`` named like a split in another case or spelling (``Train``,
        ``validation``), with the images they hold, which are not audited. A problem.
    unknown_class_folders : dict of str to int
        Folders in a split that are not a Kermany class (``train/CNVV``, ``train/cnv``), with
        the images they hold, which are not counted (training refuses such folders). A
        problem.
    loose_images : list of str
        Images lying directly in a split folder, outside any class folder. A problem.
    empty_classes : dict of str to str
        ``"SPLIT/CLASS"`` without images, with why: ``"no folder"``, ``"empty folder"`` or
        ``"only non-image files"``. A problem: the split never shows that class.
    nested_images : list of str
        Images under a subfolder named like another class (``train/CNV/DME/x.jpeg``): they
        would be labelled with the outer folder (training refuses them). A problem.
    mismatched_prefix : list of str
        Images whose file name starts with another class than their folder's
        (``train/CNV/DME-123-1.jpeg``): mislabelled or misfiled. A problem.
    unparsed_patient_ids : ProblemFiles
        Images whose name carries no patient id
        (:func:`~retinalnet.datasets.patient_id_from_name`): the leakage check cannot see
        their patients and :func:`~retinalnet.datasets.patient_split` refuses them. A
        problem.
    implausible_sizes : dict of str to ProblemFiles
        Readable images per ``"WIDTHxHEIGHT"`` outside the size bounds. A problem.
    bit_depths : dict of str to int
        Readable images per bits per sample (``{"8": 83000, "16": 12}``), see
        :func:`bit_depth`.
    implausible_bit_depths : dict of str to ProblemFiles
        Readable images per PIL mode whose bit depth is not 8 or 16 (``"1"``, ``"I"``,
        ``"F"``). A problem.
    symlink_loops : list of str
        Symbolic links to a folder that contains them, skipped by the audit and by
        :class:`~retinalnet.datasets.KermanyOCT`.
    size_bounds : tuple of (int, int, float)
        The ``(min_side, max_side, max_aspect)`` the sizes were checked against.

    Examples
    --------
    >>> from retinalnet.datasets import audit
    >>> report = audit("OCT2017")  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    >>> report.has_leakage, report.ok, report.problems  # doctest: +SKIP
    (True, False, ['leakage across splits'])

    .. versionadded:: 0.2
    """

    root: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    stray_files: list[str] = field(default_factory=list)
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    cross_split_patients: dict[str, dict[str, int]] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    unknown_split_folders: dict[str, int] = field(default_factory=dict)
    unknown_class_folders: dict[str, int] = field(default_factory=dict)
    loose_images: list[str] = field(default_factory=list)
    empty_classes: dict[str, str] = field(default_factory=dict)
    nested_images: list[str] = field(default_factory=list)
    mismatched_prefix: list[str] = field(default_factory=list)
    unparsed_patient_ids: ProblemFiles = field(default_factory=ProblemFiles)
    implausible_sizes: dict[str, ProblemFiles] = field(default_factory=dict)
    bit_depths: dict[str, int] = field(default_factory=dict)
    implausible_bit_depths: dict[str, ProblemFiles] = field(default_factory=dict)
    symlink_loops: list[str] = field(default_factory=list)
    size_bounds: tuple[int, int, float] = (MIN_SIDE, MAX_SIDE, MAX_ASPECT)

    @property
    def total(self) -> int:
        """Image files in all splits (by suffix)."""
        return sum(sum(per_class.values()) for per_class in self.counts.values())

    @property
    def grayscale(self) -> int:
        """Readable images with one channel (modes ``1``, ``L``, ``LA``, ``I``, ...)."""
        return sum(n for mode, n in self.modes.items() if mode in _GRAYSCALE_MODES)

    @property
    def colour(self) -> int:
        """Readable images with colour channels (``RGB``, ``RGBA``, ``P``, ...)."""
        return sum(n for mode, n in self.modes.items() if mode not in _GRAYSCALE_MODES)

    @property
    def cross_split_duplicates(self) -> list[DuplicateGroup]:
        """Duplicate groups whose copies lie in more than one split."""
        return [group for group in self.duplicates if group.across_splits]

    @property
    def has_leakage(self) -> bool:
        """Whether a patient or an identical file appears in more than one split."""
        return bool(self.cross_split_patients or self.cross_split_duplicates)

    @property
    def problems(self) -> list[str]:
        """The kinds of problem found, in the order the verdict names them (empty if none).

        .. versionadded:: 0.2
        """
        found = (
            ("leakage across splits", self.has_leakage),
            ("unreadable images", self.unreadable),
            ("unknown split folders", self.unknown_split_folders),
            ("unknown class folders", self.unknown_class_folders),
            ("images outside class folders", self.loose_images),
            ("empty classes", self.empty_classes),
            ("images nested under another class", self.nested_images),
            ("file names naming another class", self.mismatched_prefix),
            ("unparsed patient ids", self.unparsed_patient_ids.count),
            ("implausible sizes", self.implausible_sizes),
            ("implausible bit depths", self.implausible_bit_depths),
        )
        return [name for name, present in found if present]

    @property
    def ok(self) -> bool:
        """No problem found (:attr:`problems` is empty): what ``retinalnet audit`` exits 0 on."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: every attribute, plus ``total``, ``grayscale``, ``colour``,
        ``has_leakage``, ``problems`` and ``ok``."""
        min_side, max_side, max_aspect = self.size_bounds
        return {
            "root": self.root,
            "total": self.total,
            "counts": self.counts,
            "unreadable": self.unreadable,
            "stray_files": self.stray_files,
            "duplicates": [
                {"sha256": g.sha256, "paths": list(g.paths), "across_splits": g.across_splits}
                for g in self.duplicates
            ],
            "cross_split_patients": self.cross_split_patients,
            "grayscale": self.grayscale,
            "colour": self.colour,
            "modes": self.modes,
            "sizes": self.sizes,
            "bit_depths": self.bit_depths,
            "unknown_split_folders": self.unknown_split_folders,
            "unknown_class_folders": self.unknown_class_folders,
            "loose_images": self.loose_images,
            "empty_classes": self.empty_classes,
            "nested_images": self.nested_images,
            "mismatched_prefix": self.mismatched_prefix,
            "unparsed_patient_ids": self.unparsed_patient_ids.to_dict(),
            "implausible_sizes": {k: v.to_dict() for k, v in self.implausible_sizes.items()},
            "implausible_bit_depths": {
                k: v.to_dict() for k, v in self.implausible_bit_depths.items()
            },
            "symlink_loops": self.symlink_loops,
            "size_bounds": {"min_side": min_side, "max_side": max_side, "max_aspect": max_aspect},
            "has_leakage": self.has_leakage,
            "problems": self.problems,
            "ok": self.ok,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        lines = [f"audit of {self.root}: {self.total} images", "", *self._table(), ""]
        lines.append(f"grayscale {self.grayscale}, colour {self.colour}")
        depths = ", ".join(f"{bits}-bit {n}" for bits, n in self.bit_depths.items())
        lines.append(f"bit depths: {depths or 'none'}")
        common = ", ".join(f"{size} ({n})" for size, n in list(self.sizes.items())[:5])
        more = f", ... ({len(self.sizes)} sizes)" if len(self.sizes) > 5 else ""
        lines.append(f"sizes: {common or 'none'}{more}")
        lines.append(f"unreadable images: {len(self.unreadable)}")
        lines += _shown(f"{path}: {reason}" for path, reason in self.unreadable.items())
        lines.append(f"stray files (not images, or outside SPLIT/CLASS/): {len(self.stray_files)}")
        lines += _shown(self.stray_files)
        within = len(self.duplicates) - len(self.cross_split_duplicates)
        lines.append(
            f"duplicate groups (identical bytes): {len(self.duplicates)} "
            f"({len(self.cross_split_duplicates)} across splits, {within} within a split)"
        )
        lines += _shown(", ".join(group.paths) for group in self.duplicates)
        lines.append(f"patients in more than one split: {len(self.cross_split_patients)}")
        lines += _shown(
            f"{patient}: " + ", ".join(f"{split} {n}" for split, n in per_split.items())
            for patient, per_split in self.cross_split_patients.items()
        )
        lines += self._layout_sections() + self._file_sections()
        if self.symlink_loops:
            lines.append(
                f"symlinked folders that loop back, skipped: {len(self.symlink_loops)} "
                "(remove the links)"
            )
            lines += _shown(self.symlink_loops)
        min_side, max_side, max_aspect = self.size_bounds
        lines += [
            "",
            "checked: class folders, empty classes, nesting, class names in file names, "
            f"patient ids, sizes (sides {min_side}-{max_side} px, aspect <= {max_aspect:g}), "
            "bit depths (8 or 16), decoding, duplicates and leakage",
            "OK" if self.ok else "PROBLEMS: " + ", ".join(self.problems),
        ]
        return "\n".join(lines)

    def _table(self) -> list[str]:
        splits = list(self.counts)
        width = max([len(name) for name in KERMANY_CLASSES] + [5])
        lines = [f"{'':<{width}}" + "".join(f"{split:>8}" for split in splits)]
        for name in KERMANY_CLASSES:
            row = "".join(f"{self.counts[split].get(name, 0):>8}" for split in splits)
            lines.append(f"{name:<{width}}{row}")
        totals = "".join(f"{sum(self.counts[split].values()):>8}" for split in splits)
        lines.append(f"{'total':<{width}}{totals}")
        return lines

    def _layout_sections(self) -> list[str]:
        lines: list[str] = []
        if self.unknown_split_folders:
            lines.append(
                f"unknown split folders: {len(self.unknown_split_folders)} (not audited, "
                "not read by training)"
            )
            lines += _shown(
                f"{folder} ({_images(n)}): rename it to {_split_named(folder)!r}"
                for folder, n in self.unknown_split_folders.items()
            )
        if self.unknown_class_folders:
            lines.append(
                f"unknown class folders: {len(self.unknown_class_folders)} (their images are "
                "not counted; training refuses them)"
            )
            lines += _shown(
                f"{folder} ({_images(n)}): {class_folder_hint(folder.rsplit('/', 1)[-1])}"
                for folder, n in self.unknown_class_folders.items()
            )
        if self.loose_images:
            lines.append(
                f"images lying directly in a split folder: {len(self.loose_images)} (not "
                "counted; training refuses them): move each into its class folder"
            )
            lines += _shown(self.loose_images)
        if self.empty_classes:
            lines.append(
                f"empty classes: {len(self.empty_classes)} (the split never shows that class: "
                "a model trained on it cannot learn it, metrics on it are undefined): put the "
                "class's scans in its folder, or check the download"
            )
            lines += _shown(f"{where}: {why}" for where, why in self.empty_classes.items())
        if self.nested_images:
            lines.append(
                f"images nested under another class's folder: {len(self.nested_images)} (they "
                "would be labelled with the outer folder; training refuses them): move each "
                "into the folder of the class it is filed under"
            )
            lines += _shown(f"{path} -> {_nested_target(path)}" for path in self.nested_images)
        return lines

    def _file_sections(self) -> list[str]:
        lines: list[str] = []
        if self.mismatched_prefix:
            lines.append(
                f"images named for another class than their folder: "
                f"{len(self.mismatched_prefix)} (each is mislabelled or misfiled; training "
                "reads it with its folder's label): check each scan and move it to the folder "
                "of its true class"
            )
            lines += _shown(
                f"{path} (named {class_named_in(path.rsplit('/', 1)[-1])}, labelled "
                f"{path.split('/')[1]})"
                for path in self.mismatched_prefix
            )
        unparsed = self.unparsed_patient_ids
        if unparsed.count:
            lines.append(
                f"images without a patient id in their name: {unparsed.count} (the leakage "
                f"check cannot see their patients; patient_split refuses them): {NAMING_HINT}"
            )
            lines += [f"  {path}" for path in unparsed.examples]
            if unparsed.count > len(unparsed.examples):
                lines.append(f"  ... and {unparsed.count - len(unparsed.examples)} more")
        if self.implausible_sizes:
            min_side, max_side, max_aspect = self.size_bounds
            count = sum(files.count for files in self.implausible_sizes.values())
            lines.append(
                f"images of implausible size: {count} (each side must be {min_side}-{max_side} "
                f"px and the aspect ratio at most {max_aspect:g}:1; Kermany scans are 384-1536 "
                "x 496-512): check they are whole OCT B-scans, not thumbnails, crops or mosaics"
            )
            lines += _shown(f"{size}: {files}" for size, files in self.implausible_sizes.items())
        if self.implausible_bit_depths:
            count = sum(files.count for files in self.implausible_bit_depths.values())
            lines.append(
                f"images of implausible bit depth: {count} (OCT scans are 8- or 16-bit): "
                "re-export them as 8-bit grayscale"
            )
            lines += _shown(
                f"mode {mode} ({bit_depth(mode)}-bit): {files}"
                for mode, files in self.implausible_bit_depths.items()
            )
        return lines


def _shown(items: Any) -> list[str]:
    """Indented lines for the first 10 items, then how many more there are."""
    lines = [f"  {item}" for item in items]
    if len(lines) <= _SHOWN:
        return lines
    return [*lines[:_SHOWN], f"  ... and {len(lines) - _SHOWN} more (see --json)"]


def _images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def _split_named(folder: str) -> str | None:
    """The split a folder name means in another case or spelling (``Train``, ``valid``)."""
    lower = folder.lower()
    return lower if lower in KERMANY_SPLITS else _SPLIT_ALIASES.get(lower)


def _nested_target(path: str) -> str:
    """Where an image nested under another class's folder belongs: ``SPLIT/OTHER/``."""
    parts = path.split("/")
    foreign = foreign_class_folder(parts[2:-1], parts[1])
    return f"{parts[0]}/{(foreign or parts[1]).upper()}/"


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link to itself (ELOOP)
        return False


def _decode(source: IO[bytes]) -> tuple[str | None, str, tuple[int, int], str]:
    """Failure reason (or ``None``), mode, size and format of one image, fully decoded.

    Every failure is this file's problem, recorded as a reason: the audit goes on.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                image.load()
                return None, image.mode, image.size, image.format or ""
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return f"decompression bomb, not decoded ({error})", "", (0, 0), ""
    except UnidentifiedImageError:
        return "not a recognised image format", "", (0, 0), ""
    except (OSError, SyntaxError, ValueError) as error:
        return f"corrupt or truncated ({error})", "", (0, 0), ""
    except Exception as error:  # a decoder bug on a crafted file must not stop the audit
        return f"cannot be decoded ({type(error).__name__}: {error})", "", (0, 0), ""


def _inspect(path: str) -> tuple[bytes | None, str | None, str, tuple[int, int], str]:
    """Digest (``None`` if unreadable), failure reason, mode, size and format of one file.

    A file up to 64 MiB is read once into memory, hashed and decoded from there; a larger
    one is hashed in chunks and decoded from disk.
    """
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size <= _READ_WHOLE:
                data = file.read()
                return (hashlib.sha256(data).digest(), *_decode(io.BytesIO(data)))
            hasher = hashlib.sha256()
            for chunk in iter(lambda: file.read(2**20), b""):
                hasher.update(chunk)
            file.seek(0)
            return (hasher.digest(), *_decode(file))
    except OSError as error:
        why = error.strerror or type(error).__name__
        if isinstance(error, FileNotFoundError) and Path(path).is_symlink():
            why += "; a broken link"
        return None, f"cannot be read ({why})", "", (0, 0), ""


def _implausible(size: tuple[int, int], bounds: tuple[int, int, float]) -> bool:
    min_side, max_side, max_aspect = bounds
    short, long = sorted(size)
    return short < min_side or long > max_side or long > max_aspect * short


def _check_bounds(min_side: int, max_side: int, max_aspect: float) -> tuple[int, int, float]:
    for name, value in (("min_side", min_side), ("max_side", max_side)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int (pixels), got {value!r}")
    if min_side > max_side:
        raise ValueError(
            f"min_side must be at most max_side, got min_side={min_side!r} > max_side={max_side!r}"
        )
    if isinstance(max_aspect, bool) or not isinstance(max_aspect, (int, float)) or max_aspect < 1:
        raise ValueError(
            f"max_aspect must be a number >= 1 (longer side / shorter side), got {max_aspect!r}"
        )
    return min_side, max_side, float(max_aspect)


def _find_splits(base: Path) -> list[str]:
    splits = [split for split in KERMANY_SPLITS if (base / split).is_dir()]
    if not splits:
        found = sorted(p.name for p in base.iterdir() if p.is_dir())
        misnamed = [f"{name} to {_split_named(name)}" for name in found if _split_named(name)]
        hint = f" (rename {', '.join(misnamed)})" if misnamed else ""
        raise FileNotFoundError(
            f"no split folder ({', '.join(KERMANY_SPLITS)}) under {str(base)!r} "
            f"(found: {', '.join(found) or 'nothing'}){hint}; pass the folder holding them"
        )
    return splits


class _Layout:
    """The files of a Kermany-layout folder, sorted into what the audit does with them."""

    def __init__(self, base: Path, splits: list[str], report: AuditReport) -> None:
        self.base = base
        self.report = report
        self.images: list[str] = []
        self.stray: list[str] = []
        self.loops: list[str] = []
        for entry in sorted(os.scandir(base), key=lambda e: e.name):
            if _is_dir(entry) and entry.name in splits:
                continue
            if not _is_dir(entry):
                self.stray.append(entry.path)
            elif _split_named(entry.name):
                report.unknown_split_folders[entry.name] = self._count_images(entry.path)
            elif not entry.name.startswith("."):
                self.stray.extend(found.path for found in walk_files(entry.path, self.loops))
        for split in splits:
            self._read_split(split)
        report.stray_files = sorted(self.relative(path) for path in self.stray)
        report.symlink_loops = sorted(self.relative(path) for path in self.loops)
        self.images.sort()

    def relative(self, path: str) -> str:
        return Path(os.path.relpath(path, self.base)).as_posix()

    def _count_images(self, folder: str) -> int:
        return sum(is_image_file(entry.name) for entry in walk_files(folder, self.loops))

    def _read_split(self, split: str) -> None:
        report = self.report
        report.counts[split] = dict.fromkeys(KERMANY_CLASSES, 0)
        why_empty = dict.fromkeys(KERMANY_CLASSES, "no folder")
        for entry in sorted(os.scandir(self.base / split), key=lambda e: e.name):
            where = f"{split}/{entry.name}"
            if not _is_dir(entry):
                if is_image_file(entry.name):
                    report.loose_images.append(where)
                else:
                    self.stray.append(entry.path)
            elif entry.name in KERMANY_CLASSES:
                images, stray = len(self.images), len(self.stray)
                for found in walk_files(entry.path, self.loops):
                    is_image = is_image_file(found.name)
                    (self.images if is_image else self.stray).append(found.path)
                if len(self.images) > images:
                    del why_empty[entry.name]
                else:
                    why_empty[entry.name] = (
                        "only non-image files" if len(self.stray) > stray else "empty folder"
                    )
            elif not entry.name.startswith("."):
                report.unknown_class_folders[where] = self._count_images(entry.path)
        for name, why in why_empty.items():
            report.empty_classes[f"{split}/{name}"] = why


def audit(
    root: str | os.PathLike[str],
    *,
    progress: bool | Callable[[int, int], None] = False,
    min_side: int = MIN_SIDE,
    max_side: int = MAX_SIDE,
    max_aspect: float = MAX_ASPECT,
) -> AuditReport:
    """Check a Kermany-layout folder before training on it.

    Reads every file once: counts images per split and class, decodes each image fully (so
    truncated JPEGs are found), hashes its bytes (sha256) to find exact duplicates within
    and across splits, and lists patients whose images are in more than one split. Memory
    stays small: about 200 bytes per file (a 32-byte digest and the relative path), under
    20 MB for the 84,484-file Kaggle download (see ``benchmarks/bench_audit.py``).

    These are problems (:attr:`AuditReport.ok` is ``False``, ``retinalnet audit`` exits 1,
    and the table says how to fix each):

    - leakage: a patient, or a file's exact bytes, in more than one split;
    - unreadable images: not an image, truncated, corrupt, a broken link, or a decompression
      bomb (more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS``; not decoded). Each file's
      failure is recorded and the audit goes on;
    - layout: a folder in ``root`` named like a split in another case or spelling
      (``Train``, ``validation``); a folder in a split that is not a class (``train/CNVV``,
      ``train/cnv``); images directly in a split folder; a class without images in a split
      (no folder, an empty one, or one with only non-image files);
    - labels: an image under a subfolder named like another class (``train/CNV/DME/x.jpeg``,
      any depth, any case), which would be labelled with the outer class; an image whose
      file name starts with another class than its folder's (``train/CNV/DME-123-1.jpeg``:
      mislabelled or misfiled, so flagged either way);
    - patients: an image name without a patient id under the rule of
      :func:`~retinalnet.datasets.patient_id_from_name` (counted, with examples);
    - pixels: a side under ``min_side`` or over ``max_side`` pixels, or the longer side
      over ``max_aspect`` times the shorter (Kermany scans are 384 to 1536 wide and 496 to
      512 high); a bit depth other than 8 or 16 (mode ``1``, 32-bit ``I`` or ``F``).
      16-bit scans (``I;16``) are counted in :attr:`AuditReport.bit_depths`, not flagged.

    Not problems, but listed: stray non-image files (``.DS_Store``, hidden ``._`` files),
    duplicates within one split, and symlinked folders that loop back (skipped). Hidden
    folders are skipped, as :class:`~retinalnet.datasets.KermanyOCT` skips them.

    Parameters
    ----------
    root
        The folder with ``train/``, ``val/``, ``test/`` (whichever exist).
    progress
        ``True`` shows a progress bar on a terminal (with tqdm) and logs every 10,000
        files at INFO; a function is called as ``progress(done, total)`` after each file.
    min_side, max_side
        The plausible range of each image side, in pixels (default 64 and 4096).

        .. versionadded:: 0.2
    max_aspect
        The largest plausible ratio of the longer side to the shorter (default 8).

        .. versionadded:: 0.2

    Returns
    -------
    AuditReport
        Print it for a table, or use :meth:`AuditReport.to_dict`.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist or has no split folder.
    ValueError
        If a size bound is not a positive number or ``min_side > max_side``.

    Examples
    --------
    >>> from retinalnet.datasets import audit
    >>> report = audit("OCT2017", progress=True)  # doctest: +SKIP
    >>> report.ok  # doctest: +SKIP
    False
    >>> sorted(report.cross_split_patients)[:2]  # doctest: +SKIP

    .. versionadded:: 0.2
    """
    bounds = _check_bounds(min_side, max_side, max_aspect)
    base = Path(root).expanduser()
    check_root(base)
    splits = _find_splits(base)
    report = AuditReport(root=str(base), size_bounds=bounds)
    layout = _Layout(base, splits, report)
    files = layout.images

    first_copy: dict[bytes, str] = {}
    copies: dict[bytes, list[str]] = {}
    patient_splits: dict[str, int] = {}
    modes: Counter[str] = Counter()
    sizes: Counter[tuple[int, int]] = Counter()
    depths: Counter[int] = Counter()
    implausible_sizes: defaultdict[tuple[int, int], ProblemFiles] = defaultdict(ProblemFiles)
    implausible_bits: defaultdict[str, ProblemFiles] = defaultdict(ProblemFiles)
    callback = progress if callable(progress) else None
    total = len(files)
    iterator = progress_bar(
        range(total), total=total, description="audit", enabled=progress is True
    )
    for done in iterator:
        path = files[done]
        files[done] = ""  # free the absolute path as we go
        relative = layout.relative(path)
        parts = relative.split("/")
        split, name, file_name = parts[0], parts[1], parts[-1]
        report.counts[split][name] += 1
        digest, reason, mode, size, image_format = _inspect(path)
        if digest is None:
            pass
        elif digest in first_copy:
            copies.setdefault(digest, [first_copy[digest]]).append(relative)
        else:
            first_copy[digest] = relative
        if reason is not None:
            report.unreadable[relative] = reason
        else:
            modes[mode] += 1
            sizes[size] += 1
            bits = bit_depth(mode, image_format)
            depths[bits] += 1
            if bits not in PLAUSIBLE_BIT_DEPTHS:
                implausible_bits[mode].add(relative)
            if _implausible(size, bounds):
                implausible_sizes[size].add(relative)
        if foreign_class_folder(parts[2:-1], name) is not None:
            report.nested_images.append(relative)
        elif class_named_in(file_name) not in (None, name):
            report.mismatched_prefix.append(relative)
        patient = patient_id_from_name(file_name)
        if patient is None:
            report.unparsed_patient_ids.add(relative)
        else:
            key = patient_key(patient)
            patient_splits[key] = patient_splits.get(key, 0) | (1 << KERMANY_SPLITS.index(split))
        if callback is not None:
            callback(done + 1, total)
        if progress is True and (done + 1) % _LOG_EVERY == 0:
            logger.info("audit: %d of %d files", done + 1, total)
    del first_copy, files
    report.duplicates = sorted(
        (DuplicateGroup(digest.hex(), tuple(sorted(paths))) for digest, paths in copies.items()),
        key=lambda group: group.paths,
    )
    report.cross_split_patients = _cross_split_patients(base, splits, patient_splits)
    report.modes = dict(sorted(modes.items()))
    report.sizes = {f"{w}x{h}": n for (w, h), n in sizes.most_common()}
    report.bit_depths = {str(bits): n for bits, n in sorted(depths.items())}
    report.implausible_sizes = {
        f"{w}x{h}": files
        for (w, h), files in sorted(implausible_sizes.items(), key=lambda item: -item[1].count)
    }
    report.implausible_bit_depths = dict(sorted(implausible_bits.items()))
    return report


def _cross_split_patients(
    base: Path, splits: list[str], patient_splits: dict[str, int]
) -> dict[str, dict[str, int]]:
    """``{patient: {split: images}}`` for patients whose split mask has several bits."""
    leaking = {p for p, mask in patient_splits.items() if mask & (mask - 1)}
    if not leaking:
        return {}
    per_split: dict[str, dict[str, int]] = defaultdict(dict)
    for split in splits:
        for name in KERMANY_CLASSES:
            if not (base / split / name).is_dir():
                continue
            for entry in walk_files(str(base / split / name), []):
                patient = patient_id_from_name(entry.name)
                if not is_image_file(entry.name) or patient is None:
                    continue
                key = patient_key(patient)
                if key in leaking:
                    counts = per_split[key]
                    counts[split] = counts.get(split, 0) + 1
    return {patient: per_split[patient] for patient in sorted(leaking)}
