"""Patient-aware, class-stratified validation splits, kept in shareable manifest files."""

from __future__ import annotations

import csv
import json
import os
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from retinalnet.datasets._audit import file_digest
from retinalnet.datasets._classes import KERMANY_CLASSES, KERMANY_SPLITS
from retinalnet.datasets._kermany import KermanyOCT

__all__ = ["MANIFEST_COLUMNS", "ManifestRow", "patient_split", "read_manifest", "write_manifest"]

MANIFEST_COLUMNS: tuple[str, ...] = ("path", "label", "patient", "split")
"""The columns of a manifest file, in order."""


@dataclass(frozen=True)
class ManifestRow:
    """One image of a manifest: where it is, its class, its patient and its split.

    Attributes
    ----------
    path : str
        The image file, relative to the data root (``/``-separated), or absolute.
    label : str
        One of ``CNV``, ``DME``, ``DRUSEN``, ``NORMAL``.
    patient : str or None
        The patient id (``None`` when the file name has none).
    split : str
        ``"train"``, ``"val"`` or ``"test"``.

    Examples
    --------
    >>> ManifestRow("train/CNV/CNV-1-1.jpeg", "CNV", "1", "val").split
    'val'

    .. versionadded:: 0.2
    """

    path: str
    label: str
    patient: str | None
    split: str


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


def _check_rows(rows: Iterable[ManifestRow], source: str) -> list[ManifestRow]:
    checked: list[ManifestRow] = []
    for number, row in enumerate(rows, start=1):
        if row.label not in KERMANY_CLASSES:
            raise ValueError(
                f"{source}, row {number}: label {row.label!r} is not one of "
                f"{', '.join(KERMANY_CLASSES)}"
            )
        if row.split not in KERMANY_SPLITS:
            raise ValueError(
                f"{source}, row {number}: split {row.split!r} is not one of "
                f"{', '.join(KERMANY_SPLITS)}"
            )
        if not row.path:
            raise ValueError(f"{source}, row {number}: the path is empty")
        checked.append(row)
    return checked


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(
            f"manifest {str(path)!r} must end in .csv or .json (got {suffix or 'no suffix'!r})"
        )
    return suffix[1:]


def write_manifest(rows: Sequence[ManifestRow], path: str | os.PathLike[str]) -> Path:
    """Write manifest rows to a CSV or JSON file (chosen by the suffix).

    CSV has the header ``path,label,patient,split`` (an empty ``patient`` is ``None``); JSON is
    a list of objects with those keys.

    Parameters
    ----------
    rows
        From :func:`patient_split` or built by hand.
    path
        A ``.csv`` or ``.json`` file; its folder is created.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If the suffix is neither ``.csv`` nor ``.json``, or a row has an unknown label or
        split.

    Examples
    --------
    >>> from retinalnet.datasets import ManifestRow, write_manifest
    >>> rows = [ManifestRow("train/CNV/CNV-1-1.jpeg", "CNV", "1", "train")]
    >>> write_manifest(rows, "split.json")  # doctest: +SKIP

    .. versionadded:: 0.2
    """
    target = Path(path).expanduser()
    kind = _format(target)
    checked = _check_rows(rows, f"manifest {str(target)!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind == "json":
        target.write_text(json.dumps([asdict(row) for row in checked], indent=1) + "\n")
        return target
    with target.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(MANIFEST_COLUMNS)
        for row in checked:
            writer.writerow([row.path, row.label, row.patient or "", row.split])
    return target


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRow]:
    """Read a manifest written by :func:`write_manifest` (CSV or JSON, by suffix).

    Parameters
    ----------
    path
        A ``.csv`` or ``.json`` manifest.

    Returns
    -------
    list of ManifestRow
        In file order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If a column is missing, or a row has an unknown label or split.

    Examples
    --------
    >>> from retinalnet.datasets import read_manifest
    >>> rows = read_manifest("split.csv")  # doctest: +SKIP
    >>> val = [row.path for row in rows if row.split == "val"]  # doctest: +SKIP

    .. versionadded:: 0.2
    """
    source = Path(path).expanduser()
    kind = _format(source)
    if not source.is_file():
        raise FileNotFoundError(
            f"no manifest file {str(source)!r}; write one with `retinalnet split ROOT --out "
            f"{source.name}` or write_manifest()"
        )
    name = f"manifest {str(source)!r}"
    if kind == "json":
        records = json.loads(source.read_text())
        if not isinstance(records, list):
            raise ValueError(f"{name} must hold a JSON list of rows, got {type(records).__name__}")
    else:
        with source.open(newline="") as file:
            records = list(csv.DictReader(file))
    rows: list[ManifestRow] = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ValueError(f"{name}, row {number}: expected an object, got {record!r}")
        missing = [column for column in MANIFEST_COLUMNS if column not in record]
        if missing:
            raise ValueError(
                f"{name}, row {number}: missing column(s) {', '.join(missing)}; a manifest has "
                f"the columns {', '.join(MANIFEST_COLUMNS)}"
            )
        patient = record["patient"]
        rows.append(
            ManifestRow(
                str(record["path"]),
                str(record["label"]),
                str(patient) if patient not in (None, "") else None,
                str(record["split"]),
            )
        )
    return _check_rows(rows, name)
