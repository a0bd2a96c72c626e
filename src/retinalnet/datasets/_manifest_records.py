"""The records of a manifest file's text: CSV rows or JSON objects, by column name.

Both kinds are read alike: column names (JSON keys) without case or surrounding spaces,
two read as one refused, ``patient`` optional; a JSON ``null`` or ``NaN`` is an empty cell.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["cell", "manifest_records", "manifest_text"]

_COLUMNS = ("path", "label", "patient", "split")
_NEEDED = ("path", "label", "split")
_WRITE_AGAIN = "or write the file with write_manifest() or `retinalnet split`"


def manifest_text(source: Path, name: str) -> str:
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


def manifest_records(text: str, name: str, kind: str) -> list[dict[str, Any]]:
    """The rows of a ``"csv"`` or ``"json"`` manifest's text as dicts by column name
    (``path``, ``label``, ``split``, and ``patient`` when the file has it)."""
    return _json_records(text, name) if kind == "json" else _csv_records(text, name)


def cell(value: object) -> str:
    """A value as text: a JSON ``null`` or ``NaN`` (pandas' empty cell) is empty, and a
    whole number written as a float (pandas' ``42.0``) is the number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _columns(names: Sequence[str], where: str, kind: str) -> list[str]:
    """``names`` as they are read (without case or surrounding spaces: ``Path``, `` label``);
    refuses two read as one manifest column (the last would be read, the other not) and a
    missing one (naming the separator when the header shows another than ``,``)."""
    read = [name.strip().lower() for name in names]
    what = "keys" if kind == "json" else "columns"
    for column in _COLUMNS:
        places = [index for index, name in enumerate(read) if name == column]
        if len(places) > 1:
            first, second = places[:2]
            raise ValueError(
                f"{where}: {what} {first + 1} ({names[first]!r}) and {second + 1} "
                f"({names[second]!r}) are both read as {column}; delete one"
            )
    missing = ", ".join(column for column in _NEEDED if column not in read)
    if not missing:
        return read
    found = ", ".join(repr(name) for name in names) or "none"
    if kind == "json":
        raise ValueError(
            f"{where}: missing key(s) {missing} (found: {found}); a JSON manifest is a list "
            "of objects with the keys path, label, split and, optionally, patient"
        )
    columns = "a manifest has the columns path, label, split and, optionally, patient"
    separator = _separator(names)
    if separator is None:
        raise ValueError(
            f"{where}: missing column(s) {missing} (found: {found}); {columns}, comma-separated"
        )
    raise ValueError(
        f"{where}: missing column(s) {missing} (found: {found}): it was saved with "
        f"{separator}; save it as 'CSV UTF-8 (Comma delimited)' ({columns}, comma-separated)"
    )


def _separator(names: Sequence[str]) -> str | None:
    """The separator a one-column header shows (``'path;label;split'``), in words."""
    if len(names) != 1:
        return None
    words = {
        ";": "';' as separator, as Excel does in some locales",
        "\t": "tabs as separator (as tab-separated text)",
        "|": "'|' as separator",
    }
    return next((word for mark, word in words.items() if mark in names[0]), None)


def _csv_records(text: str, name: str) -> list[dict[str, Any]]:
    """Rows of empty cells only (which a spreadsheet writes for cleared rows) are skipped."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    records: list[dict[str, Any]] = []
    try:
        reader.fieldnames = _columns(list(reader.fieldnames or ()), name, "csv")
        for record in reader:
            if None not in record and all(not (value or "").strip() for value in record.values()):
                continue  # a cleared row: ",,,"
            # DictReader fills a short row with None and files a long row's extras under None
            if None in record or None in record.values():
                header = reader.fieldnames
                values = (
                    len(record) - 1 + len(record[None])
                    if None in record
                    else sum(value is not None for value in record.values())
                )
                raise ValueError(
                    f"{name}, row {len(records) + 1} (line {reader.line_num}) has {values} "
                    f"value(s) for the {len(header)} column(s) {', '.join(header)}; fix that "
                    f"line, {_WRITE_AGAIN}"
                )
            records.append(record)
    except csv.Error as error:
        # a field over the limit is refused before the reader counts the line it is on
        line = reader.line_num + ("field limit" in str(error))
        raise ValueError(
            f"{name} is not valid CSV ({error} on line {line}); fix that line, {_WRITE_AGAIN}"
        ) from None
    return records


class _JsonObject(list[tuple[str, Any]]):
    """A JSON object's keys and values as written (:func:`json.loads` keeps the last of two
    keys of one name, without a word)."""


def _json_records(text: str, name: str) -> list[dict[str, Any]]:
    try:
        records = json.loads(text, object_pairs_hook=_JsonObject)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{name} is not valid JSON ({error.msg} on line {error.lineno}, column "
            f"{error.colno}); fix that line, {_WRITE_AGAIN}"
        ) from None
    except RecursionError:  # lists or objects nested thousands deep: no manifest is
        raise ValueError(
            f"{name} is not valid JSON (nested too deeply); a manifest is a list of objects "
            f"with the keys path, label, split and, optionally, patient: {_WRITE_AGAIN[3:]}"
        ) from None
    if isinstance(records, _JsonObject):
        pandas = (
            " of columns, as pandas' DataFrame.to_json() writes by default: write it with "
            "to_json(orient='records')"
            if "path" in {str(key).strip().lower() for key, _ in records}
            else ""
        )
        raise ValueError(f"{name} must hold a JSON list of rows, got an object{pandas}")
    if not isinstance(records, list):
        raise ValueError(f"{name} must hold a JSON list of rows, got {type(records).__name__}")
    rows: list[dict[str, Any]] = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, _JsonObject):
            raise ValueError(f"{name}, row {number}: expected an object, got {record!r}")
        keys = _columns([str(key) for key, _ in record], f"{name}, row {number}", "json")
        rows.append(dict(zip(keys, (value for _, value in record), strict=True)))
    return rows
