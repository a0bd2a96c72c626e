"""The audit's report: what was found in a Kermany-layout folder, as a table, JSON and a
verdict, and the bounds that make an image implausible.

Why this module is long: each problem the audit looks for is a field of the report, a
section of its table, a JSON key and a reason the verdict fails; keeping them side by side is
what keeps them in step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from retinalnet._core.classes import KERMANY_CLASSES, KERMANY_SPLITS
from retinalnet._core.printable import one_line
from retinalnet._core.utf_8_names import utf_8_data
from retinalnet.datasets._files import NAMING_HINT, class_named_in, foreign_class_folder
from retinalnet.datasets._folder_names import class_folder_hint, copied_name, shown_name

__all__ = [
    "MAX_ASPECT",
    "MAX_SIDE",
    "MIN_SIDE",
    "AuditReport",
    "DuplicateGroup",
    "ProblemFiles",
    "bit_depth",
    "split_named",
]

MIN_SIDE = 64
"""Default smallest plausible image side in pixels (Kermany scans: 384 to 1536 x 496 to 512)."""
MAX_SIDE = 4096
"""Default largest plausible image side in pixels."""
MAX_ASPECT = 8.0
"""Default largest plausible ratio of the longer to the shorter side (Kermany: at most 3.1)."""
PLAUSIBLE_BIT_DEPTHS = (8, 16)
"""Bits per sample an OCT scan may have; 1-bit (bilevel) and 32-bit (int, float) may not."""

_GRAYSCALE_MODES = frozenset({"1", "L", "LA", "LA;16", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
# "RGB;16" and the like: 16-bit colour samples, which PIL reads into an 8-bit mode
_BITS = {
    **dict.fromkeys(("I;16", "I;16L", "I;16B", "I;16N", "RGB;16", "RGBA;16", "LA;16"), 16),
    **{"1": 1, "I": 32, "F": 32},
}
_EXAMPLES = 5
_SHOWN = 10
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
        shown = ", ".join(one_line(path) for path in self.examples)
        return f"{self.count} (e.g. {shown}{more})"


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
    the problems below is found; stray files, duplicates within one split, symlink loops,
    images with an EXIF orientation tag, classes absent from every split and the class
    folders a study leaves out are listed but do not fail it.

    Attributes
    ----------
    root : str
        The audited folder.
    counts : dict of str to dict of str to int
        ``counts[split][class_name]``: image files (by suffix) in each split and class,
        unreadable ones included; every class checked (:attr:`classes`) is listed for each
        split found.
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
        ``"only non-image files"``. A problem: the split never shows that class. A class in
        :attr:`absent_classes` is not listed.
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
    flat_images : ProblemFiles
        Readable images whose pixels all have one value, within 2 grey levels (an
        all-black or all-white export): they carry no scan, yet training learns their label
        and prediction gives them a class. A problem.

        .. versionadded:: 0.2
    symlink_loops : list of str
        Symbolic links to a folder that contains them, or to another folder of the same
        class folder (whose files are read there, each once), skipped by the audit and by
        :class:`~retinalnet.datasets.KermanyOCT`.
    system_folders : list of str
        Folders that operating systems, NAS boxes and zip tools leave among files
        (``@eaDir`` thumbnails, ``__MACOSX``, ``#recycle``, ...), left out by the audit and
        by every data set, not read.

        .. versionadded:: 0.2
    size_bounds : tuple of (int, int, float)
        The ``(min_side, max_side, max_aspect)`` the sizes were checked against.
    exif_rotated : ProblemFiles
        Readable images whose EXIF Orientation tag is other than 1 (2 to 8): a photo viewer
        shows them rotated or mirrored (Windows Photos and macOS Preview "rotate" a JPEG by
        setting this tag alone), but every data set, the Predictor and ``retinalnet
        predict`` use the pixels as stored, as torchvision does. Listed, not a problem: the
        tag may be stale. If the rotation is meant, rotate the pixels
        (``PIL.ImageOps.exif_transpose``) and save them.

        .. versionadded:: 0.2
    classes : tuple of str
        The classes checked: the four Kermany classes, or those of a study given to
        :func:`audit` (``classes=``, ``--classes``).

        .. versionadded:: 0.2
    absent_classes : list of str
        Classes with no folder in any split, when :func:`audit` was not given ``classes``
        and two or more classes have folders: a study of some of the classes (pass
        ``classes`` to check those only). Listed, not a problem.

        .. versionadded:: 0.2
    other_class_folders : dict of str to int
        ``"SPLIT/CLASS"`` folders of the Kermany classes left out of :attr:`classes`, with
        the images they hold: not read, as the study's data sets leave them out. Listed,
        not a problem.

        .. versionadded:: 0.2

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
    flat_images: ProblemFiles = field(default_factory=ProblemFiles)
    symlink_loops: list[str] = field(default_factory=list)
    system_folders: list[str] = field(default_factory=list)
    size_bounds: tuple[int, int, float] = (MIN_SIDE, MAX_SIDE, MAX_ASPECT)
    exif_rotated: ProblemFiles = field(default_factory=ProblemFiles)
    classes: tuple[str, ...] = KERMANY_CLASSES
    absent_classes: list[str] = field(default_factory=list)
    other_class_folders: dict[str, int] = field(default_factory=dict)

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
            ("flat images", self.flat_images.count),
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
            "classes": list(self.classes),
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
            "absent_classes": self.absent_classes,
            "other_class_folders": self.other_class_folders,
            "nested_images": self.nested_images,
            "mismatched_prefix": self.mismatched_prefix,
            "unparsed_patient_ids": self.unparsed_patient_ids.to_dict(),
            "implausible_sizes": {k: v.to_dict() for k, v in self.implausible_sizes.items()},
            "implausible_bit_depths": {
                k: v.to_dict() for k, v in self.implausible_bit_depths.items()
            },
            "flat_images": self.flat_images.to_dict(),
            "exif_rotated": self.exif_rotated.to_dict(),
            "symlink_loops": self.symlink_loops,
            "system_folders": self.system_folders,
            "size_bounds": {"min_side": min_side, "max_side": max_side, "max_aspect": max_aspect},
            "has_leakage": self.has_leakage,
            "problems": self.problems,
            "ok": self.ok,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(utf_8_data(self.to_dict()), indent=indent)

    def __str__(self) -> str:
        lines = [f"audit of {one_line(self.root)}: {self.total} images", "", *self._table(), ""]
        lines.append(f"grayscale {self.grayscale}, colour {self.colour}")
        depths = ", ".join(f"{bits}-bit {n}" for bits, n in self.bit_depths.items())
        lines.append(f"bit depths: {depths or 'none'}")
        common = ", ".join(f"{size} ({n})" for size, n in list(self.sizes.items())[:5])
        more = f", ... ({len(self.sizes)} sizes)" if len(self.sizes) > 5 else ""
        lines.append(f"sizes: {common or 'none'}{more}")
        lines.append(f"unreadable images: {len(self.unreadable)}")
        lines += _shown(
            f"{one_line(path)}: {one_line(reason)}" for path, reason in self.unreadable.items()
        )
        lines.append(f"stray files (not images, or outside SPLIT/CLASS/): {len(self.stray_files)}")
        lines += _shown(map(one_line, self.stray_files))
        within = len(self.duplicates) - len(self.cross_split_duplicates)
        lines.append(
            f"duplicate groups (identical bytes): {len(self.duplicates)} "
            f"({len(self.cross_split_duplicates)} across splits, {within} within a split)"
        )
        lines += _shown(map(_group_line, self.duplicates))
        lines.append(f"patients in more than one split: {len(self.cross_split_patients)}")
        lines += _shown(
            f"{one_line(patient)}: " + ", ".join(f"{split} {n}" for split, n in per_split.items())
            for patient, per_split in self.cross_split_patients.items()
        )
        lines += self._layout_sections() + self._file_sections()
        if self.symlink_loops:
            lines.append(
                "symbolic links that loop back or lead to a folder or image read anyway, skipped: "
                f"{len(self.symlink_loops)} "
                "(remove the links)"
            )
            lines += _shown(map(one_line, self.symlink_loops))
        if self.system_folders:
            lines.append(
                f"system folders left out, not read: {len(self.system_folders)} (thumbnails, "
                "metadata, recycle bins or snapshots that other systems leave among files)"
            )
            lines += _shown(map(one_line, self.system_folders))
        rotated = self.exif_rotated
        if rotated.count:
            lines.append(
                f"images with an EXIF orientation tag (not a problem, but check): "
                f"{rotated.count} (a photo viewer shows them rotated or mirrored; their pixels "
                "are used as stored, not as a photo viewer shows them: rotate the pixels (e.g. "
                "PIL.ImageOps.exif_transpose) if the rotation is meant)"
            )
            lines += _examples(rotated)
        lines += self._class_notes()
        min_side, max_side, max_aspect = self.size_bounds
        of = "" if self.classes == KERMANY_CLASSES else f" (classes {_names(self.classes)})"
        lines += [
            "",
            f"checked{of}: class folders, empty classes, nesting, class names in file names, "
            f"patient ids, sizes (sides {min_side}-{max_side} px, aspect <= {max_aspect:g}), "
            "bit depths (8 or 16), flat images, EXIF orientation, decoding, duplicates and "
            "leakage",
            "OK" if self.ok else "PROBLEMS: " + ", ".join(self.problems),
        ]
        return "\n".join(lines)

    def _class_notes(self) -> list[str]:
        """The classes not checked: absent from every split, or left out by ``classes``."""
        lines: list[str] = []
        if self.absent_classes:
            present = [name for name in self.classes if name not in self.absent_classes]
            lines.append(
                f"classes with no folder in any split: {_names(self.absent_classes)} (not a "
                "problem: a study of some of the classes; pass --classes "
                f"{' '.join(present)}, classes= in Python, to check only those)"
            )
        if self.other_class_folders:
            lines.append(
                f"class folders left out, not read: {len(self.other_class_folders)} (classes "
                f"not among {_names(self.classes)}, the classes checked)"
            )
            lines += _shown(
                f"{one_line(folder)} ({_images(n)})"
                for folder, n in self.other_class_folders.items()
            )
        return lines

    def _table(self) -> list[str]:
        splits = list(self.counts)
        width = max([len(name) for name in self.classes] + [5])
        lines = [f"{'':<{width}}" + "".join(f"{split:>8}" for split in splits)]
        for name in self.classes:
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
                f"{shown_name(folder)} ({_images(n)}): {self._split_folder_hint(folder)}"
                for folder, n in self.unknown_split_folders.items()
            )
        if self.unknown_class_folders:
            lines.append(
                f"unknown class folders: {len(self.unknown_class_folders)} (their images are "
                "not counted; training refuses them)"
            )
            lines += _shown(
                f"{shown_name(folder)} ({_images(n)}): "
                + class_folder_hint(folder.split("/", 1)[1], self._class_folders(folder))
                for folder, n in self.unknown_class_folders.items()
            )
        if self.loose_images:
            lines.append(
                f"images lying directly in a split folder: {len(self.loose_images)} (not "
                "counted; training refuses them): move each into its class folder"
            )
            lines += _shown(map(one_line, self.loose_images))
        if self.empty_classes:
            lines.append(
                f"empty classes: {len(self.empty_classes)} (the split never shows that class: "
                "a model trained on it cannot learn it, metrics on it are undefined): put the "
                "class's scans in its folder, or check the download"
            )
            lines += _shown(
                f"{one_line(where)}: {why}" for where, why in self.empty_classes.items()
            )
        if self.nested_images:
            lines.append(
                f"images nested under another class's folder: {len(self.nested_images)} (they "
                "would be labelled with the outer folder; training refuses them): move each "
                "into the folder of the class it is filed under"
            )
            lines += _shown(
                f"{one_line(path)} -> {one_line(_nested_target(path))}"
                for path in self.nested_images
            )
        return lines

    def _split_folder_hint(self, folder: str) -> str:
        """What to do with a folder named like a split: rename it, or, beside that split's
        folder, move its images there (a rename would put it inside)."""
        split = split_named(folder)
        if split in self.counts:
            return f"it is not read, {split!r} is: move its images into {split!r} or remove it"
        return f"rename it to {split!r}"

    def _class_folders(self, where: str) -> set[str]:
        """The class folders of the split of ``where`` (``"train/NORMAL copy"``): those of
        the classes checked that have one, and those of the classes left out."""
        split = where.split("/", 1)[0]
        folders = {
            name
            for name in self.classes
            if name not in self.absent_classes
            and self.empty_classes.get(f"{split}/{name}") != "no folder"
        }
        return folders | {
            other.split("/", 1)[1]
            for other in self.other_class_folders
            if other.startswith(f"{split}/")
        }

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
                f"{one_line(path)} (named {class_named_in(path.rsplit('/', 1)[-1])}, labelled "
                f"{path.split('/')[1]})"
                for path in self.mismatched_prefix
            )
        unparsed = self.unparsed_patient_ids
        if unparsed.count:
            lines.append(
                f"images without a patient id in their name: {unparsed.count} (the leakage "
                f"check cannot see their patients; patient_split refuses them): {NAMING_HINT}"
            )
            lines += _examples(unparsed)
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
        flat = self.flat_images
        if flat.count:
            lines.append(
                f"flat images: {flat.count} (every pixel one value: an all-black or all-white "
                "export, not a scan; training would learn its label): remove or re-export them"
            )
            lines += _examples(flat)
        return lines


def _nested_target(path: str) -> str:
    """Where an image nested under another class's folder belongs: ``SPLIT/OTHER/``."""
    parts = path.split("/")
    foreign = foreign_class_folder(parts[2:-1], parts[1])
    return f"{parts[0]}/{(foreign or parts[1]).upper()}/"


def _examples(files: ProblemFiles) -> list[str]:
    """Indented lines for the examples kept, then how many more files there are."""
    lines = [f"  {one_line(path)}" for path in files.examples]
    if files.count > len(files.examples):
        lines.append(f"  ... and {files.count - len(files.examples)} more")
    return lines


def _group_line(group: DuplicateGroup) -> str:
    """A duplicate group's paths: up to 5, one of each split among them (the leakage stays
    visible), then how many more (a blank export copied 300 times would fill a line)."""
    if len(group.paths) <= _EXAMPLES:
        return ", ".join(map(one_line, group.paths))
    firsts = {path.split("/", 1)[0]: path for path in reversed(group.paths)}  # of each split
    picked = set(firsts.values())
    for path in group.paths:
        if len(picked) >= _EXAMPLES:
            break
        picked.add(path)
    shown = [path for path in group.paths if path in picked]
    more = len(group.paths) - len(shown)
    return f"{', '.join(map(one_line, shown))}, ... and {more} more (see --json)"


def _shown(items: Any) -> list[str]:
    """Indented lines for the first 10 items, then how many more there are."""
    lines = [f"  {item}" for item in items]
    if len(lines) <= _SHOWN:
        return lines
    return [*lines[:_SHOWN], f"  ... and {len(lines) - _SHOWN} more (see --json)"]


def _names(classes: Sequence[str]) -> str:
    """Class names for a line of the table: ``CNV, NORMAL`` (Kermany names hold no comma)."""
    return ", ".join(classes)


def _images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def split_named(folder: str) -> str | None:
    """The split a folder name means in another case or spelling (``Train``, ``valid``), or
    as a copy's name (``'val '`` from a zip, ``val (1)``, ``val - Copy``)."""
    lower = copied_name(folder)[0].lower()
    return lower if lower in KERMANY_SPLITS else _SPLIT_ALIASES.get(lower)
