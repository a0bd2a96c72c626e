"""Patient-aware, class-stratified validation splits, kept in shareable manifest files."""

from __future__ import annotations

import math
import os
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from retinalnet._core.bool_options import check_bool
from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.classes import KERMANY_CLASSES
from retinalnet._core.counts import as_number
from retinalnet._core.files import file_digest
from retinalnet._core.folders import nonempty_path
from retinalnet._core.images import UnreadableImageError
from retinalnet._core.read_failure import BROKEN_LINK_FIX, broken_link_target, read_failure
from retinalnet._core.seeds import check_seed
from retinalnet.datasets._files import (
    LAYOUT_FOLDER,
    NAMING_HINT,
    patient_key,
)
from retinalnet.datasets._kermany import KermanyOCT
from retinalnet.datasets._manifest import ManifestRow
from retinalnet.datasets._root_layout import describe_root
from retinalnet.datasets._system_folders import system_folders_said_once

__all__ = ["UNPARSED_POLICIES", "patient_split"]

UNPARSED_POLICIES: tuple[str, ...] = ("refuse", "own-group")
"""What :func:`patient_split` does with file names that carry no patient id."""

_EXAMPLES = 5


def _relative(path: str, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _rows(data: KermanyOCT, split: str) -> list[ManifestRow]:
    return [
        ManifestRow(_relative(path, data.root), data.classes[target], patient, split)
        for (path, target), patient in zip(data.samples, data.patient_ids, strict=True)
    ]


def _patient_key(row: ManifestRow) -> str:
    """Group key: the patient id without leading zeros, or the file itself when the name
    carries none (``unparsed="own-group"``)."""
    return patient_key(row.patient) if row.patient is not None else f"file:{row.path}"


def _check_unparsed(rows: list[ManifestRow], unparsed: str, root: Path) -> None:
    """Refuse, or warn about, rows whose file name carries no patient id."""
    missing = [row.path for row in rows if row.patient is None]
    if not missing:
        return
    examples = ", ".join(repr(path) for path in missing[:_EXAMPLES])
    more = f" and {len(missing) - _EXAMPLES} more" if len(missing) > _EXAMPLES else ""
    if unparsed == "refuse":
        raise ValueError(
            f"{len(missing)} image(s) under {str(root)!r} have no patient id in their file "
            f"name ({examples}{more}), so their patients could land in both train and val; "
            f"{NAMING_HINT}, or pass unparsed='own-group' (CLI: --unparsed own-group) if each "
            "such file is a different patient"
        )
    warn_caller(
        f"{len(missing)} image(s) under {str(root)!r} have no patient id in their file name "
        f"({examples}{more}); each is split as a patient of its own (unparsed='own-group'): "
        "if two of them are the same patient, that patient can be in both train and val",
        UserWarning,
    )


def _digest(path: Path) -> bytes:
    """:func:`file_digest` of an image, or an :class:`UnreadableImageError` naming it, why
    (in :func:`read_failure`'s words, as every reader of an image says it) and the fix."""
    try:
        return file_digest(path)
    except OSError as error:
        reason = read_failure(path, error)
        raise UnreadableImageError(
            path, f"{reason} (finding duplicates reads every file)"
        ) from None


def _warn_of_broken_links(rows: list[ManifestRow], root: Path) -> None:
    """Warn once of the rows whose file is a symbolic link to nothing: they are kept, as
    :class:`KermanyOCT` keeps them, and fail (or are skipped) when read."""
    broken = [row.path for row in rows if broken_link_target(root / row.path) is not None]
    if not broken:
        return
    examples = ", ".join(repr(path) for path in broken[:_EXAMPLES])
    more = f" and {len(broken) - _EXAMPLES} more" if len(broken) > _EXAMPLES else ""
    warn_caller(
        f"{len(broken)} image(s) under {str(root)!r} are broken symbolic links ({examples}"
        f"{more}): they are kept in the split, as KermanyOCT keeps them, and reading one "
        f"fails (on_error='skip' skips it); {BROKEN_LINK_FIX.replace('the link', 'each link', 1)}, "
        "then split again",
        UserWarning,
    )


def _drop_duplicates(rows: list[ManifestRow], root: Path) -> list[ManifestRow]:
    """Keep the first copy of each file content, preferring test, then val, then train."""
    priority = {"test": 0, "val": 1, "train": 2}
    order = sorted(range(len(rows)), key=lambda i: (priority[rows[i].split], rows[i].path))
    seen: set[bytes] = set()
    keep: set[int] = set()
    for i in order:
        digest = _digest(root / rows[i].path)
        if digest not in seen:
            seen.add(digest)
            keep.add(i)
    return [row for i, row in enumerate(rows) if i in keep]


def _round_up(value: float, patients: int, *, drawn: int) -> float:
    """``value`` rounded up to two significant digits, then up until ``round(result *
    patients)`` is ``drawn`` (a fraction the user can type that gives that many patients)."""
    digits = 1 - math.floor(math.log10(value))
    step = 10.0**-digits
    fraction = math.ceil(value / step) * step
    while round(fraction * patients) < drawn:
        fraction += step
    return float(round(fraction, digits))


def _check_fraction_gives_patients(
    val_fraction: float, patients_of: Mapping[str, Sequence[str]]
) -> None:
    """Refuse a ``val_fraction`` that gives the validation or the training split no patient
    (each class draws ``round(val_fraction * patients)``). Which classes each split ends up
    without is told after the draw, from its images (:func:`_warn_of_missing_classes`)."""
    sizes = {name: len(patients_of[name]) for name in KERMANY_CLASSES if patients_of[name]}
    if not sizes:
        return
    drawn = {name: round(val_fraction * count) for name, count in sizes.items()}
    largest = max(sizes, key=lambda name: sizes[name])
    total = sum(sizes.values())
    if sizes[largest] < 2:
        raise ValueError(
            f"cannot split {total} patient(s) into train and val with val_fraction="
            f"{val_fraction!r}: no class has more than one patient, so each class's patients "
            "all go to one split; add patients (at least 2 in some class)"
        )
    if not any(drawn.values()):
        smallest = _round_up(0.5 / sizes[largest], sizes[largest], drawn=1)
        raise ValueError(
            f"val_fraction={val_fraction!r} gives the validation split no patient: each class "
            f"sends round({val_fraction!r} * its patients) there, 0 in every class ({total} "
            f"patients, at most {sizes[largest]} in {largest}); the smallest fraction that "
            f"gives one is {smallest:g}: pass val_fraction={smallest:g} or more (CLI: "
            f"--val-fraction {smallest:g})"
        )
    if all(drawn[name] == count for name, count in sizes.items()):
        largest_left = 1 - _round_up(0.5 / sizes[largest], sizes[largest], drawn=1)
        raise ValueError(
            f"val_fraction={val_fraction!r} gives the training split no patient: each class "
            f"sends round({val_fraction!r} * its patients) to validation, all of them in every "
            f"class ({total} patients, at most {sizes[largest]} in {largest}); the largest "
            f"fraction that leaves one for training is {largest_left:g}: pass "
            f"val_fraction={largest_left:g} or less (CLI: --val-fraction {largest_left:g})"
        )


def _warn_of_missing_classes(rows: Sequence[ManifestRow], val_fraction: float, seed: int) -> None:
    """Warn, for each of validation and training, of the classes it has no image of while
    the pool has some, judged from the labels of the rows the draw put in it: a patient is
    drawn for the class most of their images have, so a class can land in validation
    through another class's patient, or miss it although it has patients of its own."""
    images: dict[str, Counter[str]] = {"train": Counter(), "val": Counter()}
    patients: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        images[row.split][row.label] += 1
        patients[row.label].add(_patient_key(row))
    present = [name for name in KERMANY_CLASSES if patients[name]]
    for split, other, words, other_words, consequence in (
        ("val", "train", "validation", "training", "validation cannot score {}"),
        ("train", "val", "training", "validation", "the model never learns {}"),
    ):
        names = [name for name in present if not images[split][name]]
        if not names:
            continue
        these = "that class" if len(names) == 1 else "those classes"
        counts = "; ".join(
            f"{name}: {images[other][name]} image(s) of {len(patients[name])} patient(s)"
            for name in names
        )
        warn_caller(
            f"val_fraction={val_fraction!r} with seed={seed!r} gives the {words} split no "
            f"image of {', '.join(names)}: all are in {other_words} ({counts}), so "
            f"{consequence.format(these)}; pass another val_fraction or seed (each class "
            "draws round(val_fraction * patients) of the patients most of whose images it "
            f"has), or add patients of {these}",
            UserWarning,
        )


def patient_split(
    root: str | os.PathLike[str],
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    drop_duplicates: bool = False,
    drop_test_patients: bool = False,
    unparsed: str = "refuse",
) -> list[ManifestRow]:
    """Carve a patient-aware, class-stratified validation split from the training images.

    All images of a patient go to the same split. The patient of an image is read from its
    file name by :func:`~retinalnet.datasets.patient_id_from_name`: ``CLASS-PATIENT-N`` with
    the class in any case, ``-`` or ``_`` between the parts and an optional copy marker at
    the end, so ``CNV-4370501-1.jpeg``, ``CNV_4370501_96.jpeg``, ``CNV-4370501-7-copy.jpeg``
    and ``cnv-4370501-55.JPEG`` are all patient ``4370501``. Ids compare without leading
    zeros (``0042`` is patient ``42``), and the class prefix does not count: Kermany's
    patients have images in several classes. A file name without a patient id is refused
    by default (see ``unparsed``). Each patient counts for the class most of
    their images have (ties: the first in ``CNV, DME, DRUSEN, NORMAL``), and in each class
    ``round(val_fraction * patients)`` patients are drawn for validation, so every class has
    its share of validation patients (within one patient). The official ``val`` folder, if
    there is one (32 images in the Kaggle download), joins the pool that is split. Kermany's
    ``test`` folder is copied to the manifest untouched.

    Parameters
    ----------
    root
        A Kermany-layout folder with ``train/`` (and usually ``test/``; ``val/`` optional).
    val_fraction
        Fraction of each class's patients moved to validation, in (0, 1).
    seed
        The same seed gives the same split.
    drop_duplicates
        Drop exact duplicate files (same sha256): the copy in ``test`` is kept over one in
        ``val`` or ``train``, and within a split the first by path. Reads every file once.
    drop_test_patients
        Drop the training images of patients who also have images in ``test``, before the
        split, so no test patient is seen in training or validation.
    unparsed
        What to do with images whose file name has no patient id (``scan_01.png``,
        ``CNV-1-2-3.jpeg``): ``"refuse"`` (the default) raises a ``ValueError`` listing
        examples, so the files can be renamed to ``CLASS-PATIENT-N.jpeg``; ``"own-group"``
        splits each such file as a patient of its own, with a warning (two files of one
        patient can then land in train and val). Test images are checked too when
        ``drop_test_patients`` is set, since their patients must be known to be dropped.

        .. versionadded:: 0.2

    Returns
    -------
    list of ManifestRow
        ``train`` and ``val`` rows, then the ``test`` rows, each in class, then path order;
        write them with :func:`write_manifest`.

    Raises
    ------
    ValueError
        If ``val_fraction`` is not in (0, 1), ``unparsed`` is not ``"refuse"`` or
        ``"own-group"``, ``root`` is not a Kermany layout, a symbolic link leads into
        another split's folder (as :class:`KermanyOCT` refuses it), (with ``unparsed="refuse"``)
        a file name carries no patient id, or ``val_fraction`` gives no patient to the
        validation split (``round(val_fraction * patients)`` is 0 in every class) or none to
        the training split; the message gives the smallest (largest) fraction that does.
    retinalnet.datasets.UnreadableImageError
        With ``drop_duplicates``, if a file cannot be read (a broken symbolic link, no
        permission), naming it and the fix.
    PermissionError
        If a folder under ``root`` cannot be read, naming it.

    Warns
    -----
    UserWarning
        With ``unparsed="own-group"``, when some file names carry no patient id; when the
        split leaves validation (or training) without an image of a class the training
        images have, judged from the images each split ends up with (a patient's scans of
        other classes go with the patient); and (without ``drop_duplicates``) when
        some images are broken symbolic links, which are kept, as :class:`KermanyOCT` keeps
        them.
    RuntimeWarning
        When a symbolic link leads to an image or folder of its split read anyway: it is
        skipped, as :class:`KermanyOCT` skips it, so the manifest lists each image once and
        :meth:`KermanyOCT.from_manifest` reads it.

    Examples
    --------
    >>> from retinalnet.datasets import patient_split, write_manifest
    >>> rows = patient_split("OCT2017", val_fraction=0.1, seed=0)  # doctest: +SKIP
    >>> write_manifest(rows, "split.csv")  # doctest: +SKIP

    .. versionadded:: 0.2
    """
    fraction = as_number(val_fraction)  # never a bool or a string such as "0.1"
    if fraction is None or not 0 < fraction < 1:
        raise ValueError(
            f"val_fraction must be a fraction in (0, 1), e.g. 0.1, got {val_fraction!r}"
        )
    seed = check_seed(seed, allow_none=False)  # -1 would give seed 1's split
    drop_duplicates = check_bool(drop_duplicates, "drop_duplicates")
    drop_test_patients = check_bool(drop_test_patients, "drop_test_patients")
    if unparsed not in UNPARSED_POLICIES:
        raise ValueError(
            f"unparsed must be one of {', '.join(map(repr, UNPARSED_POLICIES))}, got {unparsed!r}"
        )
    base = nonempty_path(root, name="root", what=LAYOUT_FOLDER).expanduser()
    misnamed = describe_root(base).misnamed_advice() if base.is_dir() else None
    if misnamed is not None:  # its images would be left out of the split without a word
        warn_caller(f"not in the split of {str(base)!r}: {misnamed}", UserWarning)
    with system_folders_said_once(base):  # one line, not one per class folder
        pool = _rows(KermanyOCT(base, "train"), "train")
        if (base / "val").is_dir():
            pool += _rows(KermanyOCT(base, "val"), "train")
        test = _rows(KermanyOCT(base, "test"), "test") if (base / "test").is_dir() else []
    _check_unparsed(pool + test if drop_test_patients else pool, unparsed, base)
    if drop_test_patients:
        test_patients = {_patient_key(row) for row in test}
        pool = [row for row in pool if _patient_key(row) not in test_patients]
    if drop_duplicates:
        kept = _drop_duplicates(pool + test, base)
        pool = [row for row in kept if row.split != "test"]
    else:
        _warn_of_broken_links(pool + test, base)
    by_patient: dict[str, Counter[str]] = defaultdict(Counter)
    for row in pool:
        by_patient[_patient_key(row)][row.label] += 1
    patients_of: dict[str, list[str]] = defaultdict(list)
    for patient, labels in sorted(by_patient.items()):
        most = max(labels.values())
        main = next(name for name in KERMANY_CLASSES if labels[name] == most)
        patients_of[main].append(patient)
    _check_fraction_gives_patients(val_fraction, patients_of)
    rng = random.Random(seed)
    val_patients: set[str] = set()
    for name in KERMANY_CLASSES:
        patients = patients_of[name]
        rng.shuffle(patients)
        val_patients.update(patients[: round(val_fraction * len(patients))])
    order = {name: i for i, name in enumerate(KERMANY_CLASSES)}
    split_rows = [
        ManifestRow(row.path, row.label, row.patient, "val")
        if _patient_key(row) in val_patients
        else row
        for row in pool
    ]
    split_rows.sort(key=lambda row: (row.split != "train", order[row.label], row.path))
    _warn_of_missing_classes(split_rows, val_fraction, seed)
    return split_rows + test
