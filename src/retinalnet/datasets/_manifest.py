"""Manifest files: which image belongs to which split, in CSV or JSON."""

from __future__ import annotations

import csv
import difflib
import io
import json
import os
import posixpath
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from retinalnet._core.classes import KERMANY_CLASSES, KERMANY_SPLITS
from retinalnet._core.files import atomic_write_text
from retinalnet._core.output_kinds import output_path
from retinalnet._core.printable import printable
from retinalnet._core.utf_8_names import utf_8_text
from retinalnet.datasets._files import patient_id_from_name, patient_key
from retinalnet.datasets._manifest_records import cell, manifest_records, manifest_text

__all__ = [
    "MANIFEST_COLUMNS",
    "ManifestRow",
    "check_no_file_twice",
    "read_manifest",
    "write_manifest",
]

MANIFEST_COLUMNS: tuple[str, ...] = ("path", "label", "patient", "split")
"""The columns of a manifest file, in order (``patient`` may be left out when read)."""


@dataclass(frozen=True)
class ManifestRow:
    """One image of a manifest: where it is, its class, its patient and its split.

    Attributes
    ----------
    path : str
        The image file, relative to the data root (``/``-separated), or absolute. A ``\\``
        (a manifest edited on Windows) separates folders unless the name with it is a file
        (a Windows zip unpacked elsewhere names a file ``a\\b.jpeg``).
    label : str
        One of ``CNV``, ``DME``, ``DRUSEN``, ``NORMAL``.
    patient : str or None
        The patient id. :func:`read_manifest` takes an empty one from the file name, as the
        folders do (``CNV-42-1.jpeg`` is patient ``42``); ``None`` when that has none.
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
                f"{', '.join(KERMANY_CLASSES)}{_name_hint(row.label, KERMANY_CLASSES, 'class')}"
            )
        if row.split not in KERMANY_SPLITS:
            raise ValueError(
                f"{source}, row {number}: split {row.split!r} is not one of "
                f"{', '.join(KERMANY_SPLITS)}{_name_hint(row.split, KERMANY_SPLITS, 'split')}"
            )
        if not row.path:
            raise ValueError(
                f"{source}, row {number}: the path is empty; each row names one image file"
            )
        checked.append(row)
    check_no_file_twice(checked, source)
    _check_no_patient_in_train_and_val(checked, source)
    return checked


def _name_hint(value: str, allowed: Sequence[str], what: str) -> str:
    """How to write a label or split that is not one of ``allowed``, when that is clear:
    ``": class names are upper case, write 'CNV'"`` (as the folders' error says it)."""
    for name in allowed:
        if value.casefold() == name.casefold():
            case = "upper" if name.isupper() else "lower"
            return f": {what} names are {case} case, write {name!r}"
    upper = [name.upper() for name in allowed]
    close = difflib.get_close_matches(value.upper(), upper, n=1)
    if close:
        name = allowed[upper.index(close[0])]
        return f": write {name!r} if you mean {name}"
    return ""


def check_no_file_twice(
    rows: Sequence[ManifestRow], source: str, key: Callable[[str], str] = posixpath.normpath
) -> None:
    """Refuse a file listed twice, in one split or in two: each image belongs to one split.

    ``key`` is what two paths of one file have in common: by default the path with ``.``
    and doubled ``/`` taken out (``train/./CNV/x.jpeg`` is ``train/CNV/x.jpeg``);
    ``KermanyOCT.from_manifest``, which knows the root, also finds one file listed
    relative to it and absolutely.
    """
    first: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        seen = first.setdefault(key(row.path), number)
        if seen != number:
            earlier = rows[seen - 1]
            where = (
                f"twice in split {row.split!r}"
                if earlier.split == row.split
                else f"in split {earlier.split!r} and in split {row.split!r}"
            )
            spelled = f", row {seen} as {earlier.path!r}" if earlier.path != row.path else ""
            raise ValueError(
                f"{source}: {row.path!r} is listed {where} (rows {seen} and {number}{spelled}); "
                "each image belongs to one split, or it is scored on what it was trained on: "
                "delete one of the two rows, or write the manifest again with `retinalnet split`"
            )


def _check_no_patient_in_train_and_val(rows: Sequence[ManifestRow], source: str) -> None:
    """Refuse a patient with images in both ``train`` and ``val``.

    A manifest's validation split is patient-aware (:func:`patient_split` puts all images of a
    patient in one split): a patient's scans look alike, so one seen in training flatters
    validation and early stopping. Patients are compared as the audit's leakage check and
    the split compare them, by :func:`patient_key` (``0042`` is ``42``). ``test`` is not
    checked: Kermany's own test folder shares patients with its training folder
    (``drop_test_patients`` leaves them out). A row without a patient id has the one in its
    file name (``CNV-42-1.jpeg``), as in the folders; rows without either cannot be checked.
    """
    first_in: dict[tuple[str, str], int] = {}
    for number, row in enumerate(rows, start=1):
        patient = row.patient or patient_id_from_name(row.path)
        if patient is None or row.split == "test":
            continue
        key = patient_key(patient)
        first_in.setdefault((key, row.split), number)
        other = "val" if row.split == "train" else "train"
        seen = first_in.get((key, other))
        if seen is not None:
            earlier = rows[seen - 1]
            raise ValueError(
                f"{source}: patient {patient!r} is in split {earlier.split!r} (row {seen}, "
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

    CSV has the header ``path,label,patient,split`` (a ``patient`` of ``None`` is empty, and
    read back as the file name's patient); JSON is a list of objects with those keys.

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
    TypeError
        If ``path`` is not a file path (``write_manifest(path, rows)``: the rows come first).
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
    # write_manifest(path, rows) swapped: said with the order, not pathlib's TypeError
    target = output_path(path, writer="write_manifest", call="write_manifest(rows, path)")
    target = target.expanduser()
    kind = _format(target)
    checked = _as_utf_8(_check_rows(rows, f"manifest {str(target)!r}"), target)
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


def _as_utf_8(rows: Sequence[ManifestRow], target: Path) -> list[ManifestRow]:
    """``rows`` with each path as the text its file name's bytes are in UTF-8: a manifest is
    UTF-8 text, as :func:`read_manifest` reads it, whatever the file-system encoding here
    (under ``LANG=C`` Python reads the UTF-8 name ``café.jpeg`` as ``caf\\udcc3\\udca9.jpeg``).
    A name whose bytes are not UTF-8 (a Latin-1 ``café.jpeg``) would make a manifest that
    :func:`read_manifest` refuses, and is refused here."""
    written: list[ManifestRow] = []
    for row in rows:
        text = _utf_8_text(row.path)
        if text is None:
            raise ValueError(
                f"cannot write manifest {str(target)!r}: the file name {printable(row.path)!r} "
                "is not UTF-8, and a manifest is UTF-8 text; rename the file to UTF-8 (e.g. "
                "`convmv -f latin1 -t utf8 -r --notest FOLDER`)"
            )
        written.append(row if text == row.path else replace(row, path=text))
    return written


def _utf_8_text(path: str) -> str | None:
    """``path`` as UTF-8 text, by its bytes in the file-system encoding
    (:func:`~retinalnet._core.utf_8_names.utf_8_text`); ``None`` when they are not UTF-8.
    Text this file system cannot name (``café`` under ``LANG=C``, typed by hand) is taken as
    it is."""
    text = utf_8_text(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8, or a lone surrogate typed by hand
        return None
    return text


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRow]:
    """Read a manifest written by :func:`write_manifest` (CSV or JSON, by suffix).

    The file is read as UTF-8, with or without the byte-order mark Excel writes ("CSV UTF-8").
    Column names (JSON keys) are read without case or surrounding spaces (``Path``); other
    columns are ignored. The ``patient`` column may be left out or left empty (a JSON
    ``null`` or ``NaN`` is empty): the patient is then the one in the file name, as for the
    folders (``CNV-42-1.jpeg`` is patient ``42``), and the leakage check below uses it.
    Paths are read as written: :meth:`KermanyOCT.from_manifest
    <retinalnet.datasets.KermanyOCT.from_manifest>` finds their files under a data root (a
    ``\\`` of a manifest edited on Windows read as ``/`` when the name with it is no file, and
    a UTF-8 name found under any file-system encoding).

    Parameters
    ----------
    path
        A ``.csv`` or ``.json`` manifest (columns ``path``, ``label``, ``split`` and,
        optionally, ``patient``).

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
        is missing (naming a ``;`` or tab separator, as Excel writes in some locales), two
        columns are read as one (``label`` and ``Label``), a row has no path or an unknown
        label or split (``cnv`` with the fix: ``CNV``), a file is listed twice (in one split
        or in two), or a patient has rows in both ``train`` and ``val``: a manifest's
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
    rows: list[ManifestRow] = []
    for record in manifest_records(manifest_text(source, name), name, kind):
        path = cell(record["path"])
        rows.append(
            ManifestRow(
                path,
                cell(record["label"]).strip(),
                cell(record.get("patient")).strip() or patient_id_from_name(_posix(path)),
                cell(record["split"]).strip(),
            )
        )
    return _check_rows(rows, name)


def _posix(path: str) -> str:
    """A manifest path with ``/`` between its parts (one edited on Windows has ``\\``), for
    its file name's patient: its file is found as written first (see ``_manifest_files``)."""
    return path.replace("\\", "/") if os.sep == "/" else path
