"""Patient-aware, class-stratified validation splits, kept in shareable manifest files."""

from __future__ import annotations

import os
import random
from collections import Counter, defaultdict
from pathlib import Path

from retinalnet._core.classes import KERMANY_CLASSES
from retinalnet._core.files import file_digest
from retinalnet.datasets._kermany import KermanyOCT
from retinalnet.datasets._manifest import ManifestRow

__all__ = ["patient_split"]


def _relative(path: str, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _rows(data: KermanyOCT, split: str) -> list[ManifestRow]:
    return [
        ManifestRow(_relative(path, data.root), data.classes[target], patient, split)
        for (path, target), patient in zip(data.samples, data.patient_ids, strict=True)
    ]


def _patient_key(row: ManifestRow) -> str:
    """Group key: the patient id, or the file itself when the name carries none."""
    return row.patient if row.patient is not None else f"file:{row.path}"


def _drop_duplicates(rows: list[ManifestRow], root: Path) -> list[ManifestRow]:
    """Keep the first copy of each file content, preferring test, then val, then train."""
    priority = {"test": 0, "val": 1, "train": 2}
    order = sorted(range(len(rows)), key=lambda i: (priority[rows[i].split], rows[i].path))
    seen: set[bytes] = set()
    keep: set[int] = set()
    for i in order:
        digest = file_digest(root / rows[i].path)
        if digest not in seen:
            seen.add(digest)
            keep.add(i)
    return [row for i, row in enumerate(rows) if i in keep]


def patient_split(
    root: str | os.PathLike[str],
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    drop_duplicates: bool = False,
    drop_test_patients: bool = False,
) -> list[ManifestRow]:
    """Carve a patient-aware, class-stratified validation split from the training images.

    All images of a patient go to the same split. Each patient counts for the class most of
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

    Returns
    -------
    list of ManifestRow
        ``train`` and ``val`` rows, then the ``test`` rows, each in class, then path order;
        write them with :func:`write_manifest`.

    Raises
    ------
    ValueError
        If ``val_fraction`` is not in (0, 1), or ``root`` is not a Kermany layout.

    Examples
    --------
    >>> from retinalnet.datasets import patient_split, write_manifest
    >>> rows = patient_split("OCT2017", val_fraction=0.1, seed=0)  # doctest: +SKIP
    >>> write_manifest(rows, "split.csv")  # doctest: +SKIP

    .. versionadded:: 0.2
    """
    if isinstance(val_fraction, bool) or not 0 < val_fraction < 1:
        raise ValueError(
            f"val_fraction must be a fraction in (0, 1), e.g. 0.1, got {val_fraction!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    base = Path(root).expanduser()
    pool = _rows(KermanyOCT(base, "train"), "train")
    if (base / "val").is_dir():
        pool += _rows(KermanyOCT(base, "val"), "train")
    test = _rows(KermanyOCT(base, "test"), "test") if (base / "test").is_dir() else []
    if drop_test_patients:
        test_patients = {_patient_key(row) for row in test}
        pool = [row for row in pool if _patient_key(row) not in test_patients]
    if drop_duplicates:
        kept = _drop_duplicates(pool + test, base)
        pool = [row for row in kept if row.split != "test"]
    by_patient: dict[str, Counter[str]] = defaultdict(Counter)
    for row in pool:
        by_patient[_patient_key(row)][row.label] += 1
    patients_of: dict[str, list[str]] = defaultdict(list)
    for patient, labels in sorted(by_patient.items()):
        most = max(labels.values())
        main = next(name for name in KERMANY_CLASSES if labels[name] == most)
        patients_of[main].append(patient)
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
    return split_rows + test
