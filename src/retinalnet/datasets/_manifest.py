"""Manifest files: which image belongs to which split, in CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from retinalnet._core.classes import KERMANY_CLASSES, KERMANY_SPLITS
from retinalnet._core.files import atomic_write_text
from retinalnet._core.printable import printable
from retinalnet.datasets._files import patient_key

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
    _check_no_file_twice(checked, source)
    _check_no_patient_in_train_and_val(checked, source)
    return checked


def _check_no_file_twice(rows: Sequence[ManifestRow], source: str) -> None:
    """Refuse a file listed twice, in one split or in two: each image belongs to one split."""
    first: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        key = posixpath.normpath(row.path)  # "train/./CNV/x.jpeg" is "train/CNV/x.jpeg"
        seen = first.setdefault(key, number)
        if seen != number:
            earlier = rows[seen - 1]
            where = (
                f"twice in split {row.split!r}"
                if earlier.split == row.split
                else f"in split {earlier.split!r} and in split {row.split!r}"
            )
            raise ValueError(
                f"{source}: {row.path!r} is listed {where} (rows {seen} and {number}); each "
                "image belongs to one split, or it is scored on what it was trained on: delete "
                "one of the two rows, or write the manifest again with `retinalnet split`"
            )


def _check_no_patient_in_train_and_val(rows: Sequence[ManifestRow], source: str) -> None:
    """Refuse a patient with images in both ``train`` and ``val``.

    A manifest's validation split is patient-aware (:func:`patient_split` puts all images of a
    patient in one split): a patient's scans look alike, so one seen in training flatters
    validation and early stopping. Patients are compared as the audit's leakage check and
    the split compare them, by :func:`patient_key` (``0042`` is ``42``). ``test`` is not
    checked: Kermany's own test folder shares patients with its training folder
    (``drop_test_patients`` leaves them out), and rows without a patient id cannot be.
    """
    first_in: dict[tuple[str, str], int] = {}
    for number, row in enumerate(rows, start=1):
        if row.patient is None or row.split == "test":
            continue
        key = patient_key(row.patient)
        first_in.setdefault((key, row.split), number)
        other = "val" if row.split == "train" else "train"
        seen = first_in.get((key, other))
        if seen is not None:
            earlier = rows[seen - 1]
            raise ValueError(
                f"{source}: patient {row.patient!r} is in split {earlier.split!r} (row {seen}, "
                f"{earlier.path!r}) and in split {row.split!r} (row {number}, {row.path!r}); a "
                "patient's images must all be in one split, or validation scores scans "
                "that look like training scans: move the patient's rows to one split, or "
                "write the manifest again with `retinalnet split` (it splits by patient)"
            )


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
        If the suffix is neither ``.csv`` nor ``.json``, a row has an unknown label or split,
        a file is listed twice, a patient has rows in both ``train`` and ``val``, or a file
        name is not UTF-8 (a manifest is UTF-8 text: :func:`read_manifest` would refuse it).

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
    _refuse_names_that_are_not_utf_8(checked, target)
    # written whole or not at all: an interrupted split never leaves half a manifest that a
    # training run would read as the whole split
    if kind == "json":
        text = json.dumps([asdict(row) for row in checked], indent=1)
        atomic_write_text(target, text + "\n")
        return target
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(MANIFEST_COLUMNS)
    for row in checked:
        writer.writerow([row.path, row.label, row.patient or "", row.split])
    atomic_write_text(target, table.getvalue())
    return target


def _refuse_names_that_are_not_utf_8(rows: Sequence[ManifestRow], target: Path) -> None:
    """A manifest is UTF-8 text, as :func:`read_manifest` reads it: a file name that is not
    UTF-8 (a Latin-1 ``café.jpeg``) would make one it then refuses."""
    for row in rows:
        try:
            row.path.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"cannot write manifest {str(target)!r}: the file name {printable(row.path)!r} "
                "is not UTF-8, and a manifest is UTF-8 text; rename the file to UTF-8 (e.g. "
                "`convmv -f latin1 -t utf8 -r --notest FOLDER`)"
            ) from None


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRow]:
    """Read a manifest written by :func:`write_manifest` (CSV or JSON, by suffix).

    The file is read as UTF-8, with or without the byte-order mark Excel writes ("CSV UTF-8").

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
        If the file is not UTF-8 text or not valid CSV or JSON (naming the line), a column
        is missing, a row has an unknown label or split, a file is listed twice (in one
        split or in two), or a patient has rows in both ``train`` and ``val``: a manifest's
        validation split is patient-aware, as :func:`patient_split` writes it (``test`` may
        share patients with ``train``, as Kermany's own folders do).

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
    text = _read_text(source, name)
    records = _json_records(text, name) if kind == "json" else _csv_records(text, name)
    rows: list[ManifestRow] = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ValueError(f"{name}, row {number}: expected an object, got {record!r}")
        missing = [column for column in MANIFEST_COLUMNS if column not in record]
        if missing:
            found = ", ".join(repr(str(column)) for column in record) or "none"
            raise ValueError(
                f"{name}, row {number}: missing column(s) {', '.join(missing)} (found: "
                f"{found}); a manifest has the columns {', '.join(MANIFEST_COLUMNS)}, "
                "comma-separated"
            )
        patient = record["patient"]
        rows.append(
            ManifestRow(
                _posix(str(record["path"])),
                str(record["label"]).strip(),
                str(patient).strip() if patient not in (None, "") else None,
                str(record["split"]).strip(),
            )
        )
    return _check_rows(rows, name)


def _posix(path: str) -> str:
    """A manifest path with ``/`` between its parts: one edited on Windows has ``\\``."""
    return path.replace("\\", "/") if os.sep == "/" else path


def _read_text(source: Path, name: str) -> str:
    """The file's text, decoded as UTF-8 (a leading byte-order mark dropped)."""
    data = source.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        byte = error.object[error.start : error.start + 1].hex()
        raise ValueError(
            f"{name} is not UTF-8 text (byte 0x{byte} on line {line}, {error.reason}); save "
            "it as UTF-8 (in Excel: 'CSV UTF-8'), or write it with write_manifest() or "
            "`retinalnet split`"
        ) from None


def _json_records(text: str, name: str) -> list[Any]:
    try:
        records = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{name} is not valid JSON ({error.msg} on line {error.lineno}, column "
            f"{error.colno}); fix that line, or write the file with write_manifest() or "
            "`retinalnet split`"
        ) from None
    if not isinstance(records, list):
        raise ValueError(f"{name} must hold a JSON list of rows, got {type(records).__name__}")
    return records


def _csv_records(text: str, name: str) -> list[dict[str, Any]]:
    """The rows of a CSV manifest as dicts by column name; column names are read without
    case or surrounding spaces (``Path``, `` label``), and rows of empty cells only (which a
    spreadsheet writes for cleared rows) are skipped."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is not None:
        reader.fieldnames = [field.strip().lower() for field in reader.fieldnames]
    records: list[dict[str, Any]] = []
    try:
        for record in reader:
            if None not in record and all(not (value or "").strip() for value in record.values()):
                continue  # a cleared row: ",,,"
            # DictReader fills a short row with None and files a long row's extras under None
            if None in record or None in record.values():
                header = reader.fieldnames or []
                values = (
                    len(record) - 1 + len(record[None])
                    if None in record
                    else sum(value is not None for value in record.values())
                )
                raise ValueError(
                    f"{name}, row {len(records) + 1} (line {reader.line_num}) has {values} "
                    f"value(s) for the {len(header)} column(s) {', '.join(header)}; fix that "
                    "line, or write the file with write_manifest() or `retinalnet split`"
                )
            records.append(record)
    except csv.Error as error:
        raise ValueError(
            f"{name} is not valid CSV ({error} on line {reader.line_num}); fix that line, "
            "or write the file with write_manifest() or `retinalnet split`"
        ) from None
    return records
