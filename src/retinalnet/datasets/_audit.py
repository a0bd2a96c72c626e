"""Auditing a Kermany-layout download before training on it: counts, layout mistakes (unknown,
empty or nested class folders), file names (class prefixes, patient ids), image sizes and bit
depths, unreadable files, duplicates and leakage across splits.

The report itself is in ``_audit_report``; this module is the one walk that fills it.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from retinalnet._core.classes import KERMANY_CLASSES, KERMANY_SPLITS, kermany_subset
from retinalnet._core.progress import progress_bar
from retinalnet.datasets._audit_checks import check_bounds, check_root_and_progress
from retinalnet.datasets._audit_file import inspect_file
from retinalnet.datasets._audit_report import (
    MAX_ASPECT,
    MAX_SIDE,
    MIN_SIDE,
    PLAUSIBLE_BIT_DEPTHS,
    AuditReport,
    DuplicateGroup,
    ProblemFiles,
    bit_depth,
    split_named,
)
from retinalnet.datasets._files import (
    check_root,
    class_named_in,
    foreign_class_folder,
    is_image_file,
    patient_id_from_name,
    patient_key,
    walk_files,
)
from retinalnet.datasets._linked_files import LinkedFiles
from retinalnet.datasets._root_layout import describe_root
from retinalnet.datasets._system_folders import scan_folder, system_folder

__all__ = ["audit"]


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link to itself (ELOOP)
        return False


def _implausible(size: tuple[int, int], bounds: tuple[int, int, float]) -> bool:
    min_side, max_side, max_aspect = bounds
    short, long = sorted(size)
    return short < min_side or long > max_side or long > max_aspect * short


def _find_splits(base: Path) -> list[str]:
    splits = [split for split in KERMANY_SPLITS if (base / split).is_dir()]
    if not splits:
        layout = describe_root(base)
        advice = layout.advice() or "pass the folder holding them"
        raise FileNotFoundError(
            f"no split folder ({', '.join(KERMANY_SPLITS)}) under {str(base)!r} "
            f"(found: {layout.found()}); {advice}"
        )
    return splits


def _entries(folder: str | os.PathLike[str]) -> list[os.DirEntry[str]]:
    """The entries of ``folder`` by name; one that cannot be read is named in one line."""
    with scan_folder(folder) as entries:
        return sorted(entries, key=lambda entry: entry.name)


class _Layout:
    """The files of a Kermany-layout folder, sorted into what the audit does with them."""

    def __init__(self, base: Path, splits: list[str], report: AuditReport, *, chosen: bool) -> None:
        """``chosen``: whether the classes of ``report`` were given (a study's), or are the
        four by default, of which a study's data set has some folders only."""
        self.base = base
        self.report = report
        self.images: list[str] = []
        self.stray: list[str] = []
        self.loops: list[str] = []
        self.system: list[str] = []  # system folders (@eaDir, __MACOSX, ...), left out
        for entry in _entries(base):
            if _is_dir(entry) and entry.name in splits:
                continue
            if not _is_dir(entry):
                self.stray.append(entry.path)
            elif system_folder(entry.name) is not None:
                self.system.append(entry.path)
            elif split_named(entry.name):
                report.unknown_split_folders[entry.name] = self._count_images(entry.path)
            elif not entry.name.startswith("."):
                self.stray.extend(found.path for found in self._walk(entry.path))
        for split in splits:
            self._read_split(split)
        if not chosen:
            self._absent_classes(splits)
        report.stray_files = sorted(self.relative(path) for path in self.stray)
        report.symlink_loops = sorted(self.relative(path) for path in self.loops)
        report.system_folders = sorted(self.relative(path) for path in self.system)
        self.images.sort()

    def relative(self, path: str) -> str:
        return Path(os.path.relpath(path, self.base)).as_posix()

    def _walk(self, folder: str, once: LinkedFiles | None = None) -> Iterator[os.DirEntry[str]]:
        return walk_files(folder, self.loops, self.system, once=once)

    def _count_images(self, folder: str) -> int:
        return sum(is_image_file(entry.name) for entry in self._walk(folder))

    def _absent_classes(self, splits: list[str]) -> None:
        """Classes with no folder in any split, when at least two classes have one: a study
        of some of the classes, noted, not a problem (a class missing from some splits only
        stays one)."""
        report = self.report
        absent = [
            name
            for name in report.classes
            if all(report.empty_classes.get(f"{split}/{name}") == "no folder" for split in splits)
        ]
        if len(report.classes) - len(absent) < 2:
            return  # one class, or none: no study to train
        for name in absent:
            for split in splits:
                del report.empty_classes[f"{split}/{name}"]
        report.absent_classes = absent

    def _read_split(self, split: str) -> None:
        report = self.report
        report.counts[split] = dict.fromkeys(report.classes, 0)
        why_empty = dict.fromkeys(report.classes, "no folder")
        # each image once, as KermanyOCT reads it; links into another split are followed,
        # and reported as leakage
        once = LinkedFiles.of_split(self.base, split, loops=self.loops, refuse_others=False)
        for entry in _entries(self.base / split):
            where = f"{split}/{entry.name}"
            if not _is_dir(entry):
                if is_image_file(entry.name):
                    report.loose_images.append(where)
                else:
                    self.stray.append(entry.path)
            elif entry.name in report.classes:
                images, stray = len(self.images), len(self.stray)
                for found in self._walk(entry.path, once):
                    is_image = is_image_file(found.name)
                    (self.images if is_image else self.stray).append(found.path)
                if len(self.images) > images:
                    del why_empty[entry.name]
                else:
                    why_empty[entry.name] = (
                        "only non-image files" if len(self.stray) > stray else "empty folder"
                    )
            elif entry.name in KERMANY_CLASSES:  # a class the study leaves out: not read
                report.other_class_folders[where] = self._count_images(entry.path)
            elif system_folder(entry.name) is not None:
                self.system.append(entry.path)
            elif not entry.name.startswith("."):
                report.unknown_class_folders[where] = self._count_images(entry.path)
        once.said()
        for name, why in why_empty.items():
            report.empty_classes[f"{split}/{name}"] = why


def audit(
    root: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
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
    - unreadable images: empty (0 bytes), not an image, truncated, corrupt, a broken link,
      or a decompression bomb (more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS``; not
      decoded). Each file's failure is recorded and the audit goes on;
    - layout: a folder in ``root`` named like a split in another case or spelling
      (``Train``, ``validation``); a folder in a split that is not a class (``train/CNVV``,
      ``train/cnv``); images directly in a split folder; a class without images in a split
      (no folder, an empty one, or one with only non-image files), except a class with no
      folder in any split when ``classes`` is not given and two or more classes have
      folders: a study of some of the classes, noted in :attr:`AuditReport.absent_classes`;
    - labels: an image under a subfolder named like another class (``train/CNV/DME/x.jpeg``,
      any depth, any case), which would be labelled with the outer class; an image whose
      file name starts with another class than its folder's (``train/CNV/DME-123-1.jpeg``:
      mislabelled or misfiled, so flagged either way);
    - patients: an image name without a patient id under the rule of
      :func:`~retinalnet.datasets.patient_id_from_name` (counted, with examples);
    - pixels: a side under ``min_side`` or over ``max_side`` pixels, or the longer side
      over ``max_aspect`` times the shorter (Kermany scans are 384 to 1536 wide and 496 to
      512 high); a bit depth other than 8 or 16 (mode ``1``, 32-bit ``I`` or ``F``).
      16-bit scans (``I;16``) are counted in :attr:`AuditReport.bit_depths`, not flagged;
      a flat image, every pixel one value within 2 grey levels (an all-black or all-white
      export, not a scan).

    Not problems, but listed: stray non-image files (``.DS_Store``, hidden ``._`` files),
    duplicates within one split, symlinked folders that loop back (skipped), classes with no
    folder in any split (see above), the folders of classes a study leaves out, and images
    whose EXIF Orientation tag is not 1 (:attr:`AuditReport.exif_rotated`: Windows Photos
    and macOS Preview "rotate" a JPEG by setting that tag alone, but every data set and
    the Predictor use the pixels as stored, not as a photo viewer shows them; rotate the
    pixels, e.g. with ``PIL.ImageOps.exif_transpose``, if the rotation is meant). Hidden
    folders are skipped, as :class:`~retinalnet.datasets.KermanyOCT` skips them.

    Parameters
    ----------
    root
        The folder with ``train/``, ``val/``, ``test/`` (whichever exist).
    classes
        The classes of a study of some of the Kermany classes, e.g. ``["CNV", "NORMAL"]``
        (``retinalnet audit --classes CNV NORMAL``): only their folders are checked, and one
        without images in a split is a problem; the other class folders are listed in
        :attr:`AuditReport.other_class_folders`, not read, as ``KermanyOCT(...,
        classes=...)`` leaves them out. Default: the four, a class with no folder in any
        split being a note (see above).

        .. versionadded:: 0.2
    progress
        ``True`` shows a progress bar on a terminal (with tqdm); elsewhere (a log file, a
        pipe), an audit that runs over 10 seconds logs a line at INFO each time it passes
        another tenth of the files, and one at the end. A function is called as
        ``progress(done, total)`` after each file.
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
        If ``root`` is empty (it would mean the current folder), ``classes`` names a class
        that is not a Kermany class, one twice, or fewer than two, a side bound is not a
        positive int, ``min_side > max_side``, or ``max_aspect`` is not a finite number >= 1
        (NaN or infinity would switch the check off).
    TypeError
        If ``root`` is not a str or a path, ``classes`` is one string, or ``progress`` is
        neither a bool nor callable.

    Examples
    --------
    >>> from retinalnet.datasets import audit
    >>> report = audit("OCT2017", progress=True)  # doctest: +SKIP
    >>> report.ok  # doctest: +SKIP
    False
    >>> sorted(report.cross_split_patients)[:2]  # doctest: +SKIP

    .. versionadded:: 0.2
    """
    bounds = check_bounds(min_side, max_side, max_aspect)
    base = check_root_and_progress(root, progress).expanduser()
    checked = kermany_subset(classes)
    check_root(base)
    splits = _find_splits(base)
    report = AuditReport(root=str(base), size_bounds=bounds, classes=checked)
    layout = _Layout(base, splits, report, chosen=classes is not None)
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
        digest, reason, mode, size, image_format, flat, orientation = inspect_file(path)
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
            if flat:
                report.flat_images.add(relative)
            if orientation != 1:
                report.exif_rotated.add(relative)
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
    del first_copy, files
    report.duplicates = sorted(
        (DuplicateGroup(digest.hex(), tuple(sorted(paths))) for digest, paths in copies.items()),
        key=lambda group: group.paths,
    )
    report.cross_split_patients = _cross_split_patients(
        base, splits, report.classes, patient_splits
    )
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
    base: Path, splits: list[str], classes: Sequence[str], patient_splits: dict[str, int]
) -> dict[str, dict[str, int]]:
    """``{patient: {split: images}}`` for patients whose split mask has several bits."""
    leaking = {p for p, mask in patient_splits.items() if mask & (mask - 1)}
    if not leaking:
        return {}
    per_split: dict[str, dict[str, int]] = defaultdict(dict)
    for split in splits:
        once = LinkedFiles.of_split(base, split, loops=[], refuse_others=False)
        for name in classes:
            if not (base / split / name).is_dir():
                continue
            for entry in walk_files(str(base / split / name), once=once):
                patient = patient_id_from_name(entry.name)
                if not is_image_file(entry.name) or patient is None:
                    continue
                key = patient_key(patient)
                if key in leaking:
                    counts = per_split[key]
                    counts[split] = counts.get(split, 0) + 1
    return {patient: per_split[patient] for patient in sorted(leaking)}
