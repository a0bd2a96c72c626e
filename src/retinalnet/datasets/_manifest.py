"""Manifest files: which image belongs to which split, in CSV or JSON."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from retinalnet._core.classes import KERMANY_CLASSES, KERMANY_SPLITS

__all__ = ["MANIFEST_COLUMNS", "ManifestRow", "read_manifest", "write_manifest"]

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
