"""Whether a TIFF file is whole: a TIFF volume cut short, found from its directories.

A TIFF file is a chain of directories (IFDs), one a page, each ending with the offset of
the next (0 after the last); a directory's entries point at its values and at its image
data (strips or tiles). PIL counts pages by walking that chain, and when a directory runs
past the end of the file it only warns (``Corrupt EXIF data``, naming no file) and stops
there: a volume cut inside a page's directory is read as a shorter, whole-looking volume,
and one cut inside a page's data is counted as if whole. :func:`cut_short_reason` walks the
chain as PIL does (little- or big-endian, classic or BigTIFF, a directory met again ends
it) and says where the file ends too early: a directory, a value it points at, or a page's
strips or tiles past the end of the file.

Measured: the TIFF files Pillow writes (1, 2 and 5 pages; raw, LZW, deflate, PackBits and
JPEG compression; modes ``"L"``, ``"I;16"``, ``"RGB"``) are whole by this walk, and every
cut of them is not. A whole file is never judged by its contents beyond this: values of a
type PIL does not know are skipped as PIL skips them.
"""

from __future__ import annotations

import io
import struct
from typing import IO, Final

__all__ = ["cut_short_reason", "is_tiff_header"]

_TYPE_SIZES: Final = {
    1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
    16: 8, 17: 8, 18: 8,
}  # fmt: skip
"""Bytes per value of each TIFF field type PIL reads (the others it skips)."""

_INTEGERS: Final = {3: "H", 4: "L", 16: "Q"}  # SHORT, LONG, LONG8: offsets and byte counts
_DATA: Final = ((273, 279), (324, 325))  # StripOffsets/StripByteCounts, TileOffsets/...


class _Layout:
    """How a TIFF file's numbers are written: byte order, and classic or BigTIFF."""

    def __init__(self, order: str, big: bool) -> None:
        self.order = order
        self.big = big
        self.count = "Q" if big else "H"  # a directory's number of entries
        self.entry = 20 if big else 12
        self.offset = "Q" if big else "L"
        self.inline = 8 if big else 4  # values up to this size sit in the entry itself

    def number(self, kind: str, data: bytes) -> int:
        value: int = struct.unpack(self.order + kind, data)[0]
        return value


def cut_short_reason(stream: IO[bytes]) -> str | None:
    """Where a TIFF file ends too early, in words, or ``None`` when it is whole.

    ``None`` too for data that are not a TIFF (another reader judges them). The stream is
    left where it was.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("L", (8, 8)).save(buffer, "TIFF")
    >>> whole = buffer.getvalue()
    >>> cut_short_reason(io.BytesIO(whole)) is None
    True
    >>> cut_short_reason(io.BytesIO(whole[:-3]))
    'the image data of its page 0 (numbered from 0) runs past the end of the file (183 bytes)'
    """
    place = stream.tell()
    try:
        stream.seek(0, io.SEEK_END)
        size = stream.tell()
        return _walk(stream, size)
    finally:
        stream.seek(place)


def is_tiff_header(data: bytes) -> bool:
    r"""Whether ``data`` (a file's first 4 bytes or more) begin as a TIFF file does.

    Examples
    --------
    >>> is_tiff_header(b"II*\x00"), is_tiff_header(b"MM\x00+"), is_tiff_header(b"GIF8")
    (True, True, False)
    """
    return data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _walk(stream: IO[bytes], size: int) -> str | None:
    """:func:`cut_short_reason` for a stream of ``size`` bytes."""
    layout = _layout(_read(stream, 0, 16))
    if layout is None:
        return None
    first = _read(stream, 8 if layout.big else 4, 8 if layout.big else 4)
    ending = f"runs past the end of the file ({size} bytes)"
    budget = [4 * size]  # bytes of offset tables read at most: a crafted file cannot loop
    at, seen, page = layout.number(layout.offset, first), set(), 0
    while at and at not in seen:
        seen.add(at)
        where = f"the directory of its page {page} (numbered from 0)"
        head = _read(stream, at, 8 if layout.big else 2)
        if len(head) < (8 if layout.big else 2):
            return f"{where} {ending}"
        entries = layout.number(layout.count, head)
        body = at + len(head) + entries * layout.entry
        link = _read(stream, body, 8 if layout.big else 4)
        if body + len(link) > size or len(link) < (8 if layout.big else 4):
            return f"{where} {ending}"
        table = _read(stream, at + len(head), entries * layout.entry)
        reason = _values_reason(stream, layout, table, size, budget)
        if reason is not None:
            return f"{reason} of its page {page} (numbered from 0) {ending}"
        at, page = layout.number(layout.offset, link), page + 1
    return None


def _layout(header: bytes) -> _Layout | None:
    """The layout a TIFF header announces, or ``None`` for data that are no TIFF."""
    if len(header) < 8 or header[:2] not in (b"II", b"MM"):
        return None
    order = "<" if header[:2] == b"II" else ">"
    version = struct.unpack(order + "H", header[2:4])[0]
    if version == 42:
        return _Layout(order, big=False)
    if version == 43 and len(header) == 16:
        return _Layout(order, big=True)
    return None


def _values_reason(
    stream: IO[bytes], layout: _Layout, table: bytes, size: int, budget: list[int]
) -> str | None:
    """What of a directory's entries (``table``) lies past the end of the file: a value
    (``"a value"``), or its strips or tiles (``"the image data"``); ``None`` when all fit."""
    tables: dict[int, tuple[int, ...]] = {}
    for start in range(0, len(table), layout.entry):
        entry = table[start : start + layout.entry]
        tag, kind = struct.unpack(layout.order + "HH", entry[:4])
        count_kind = "Q" if layout.big else "L"
        count = layout.number(count_kind, entry[4 : 12 if layout.big else 8])
        value = entry[12:] if layout.big else entry[8:]
        unit = _TYPE_SIZES.get(kind)
        if unit is None:
            continue  # a type PIL skips
        length = count * unit
        if length <= layout.inline:
            data = value[:length]
        else:
            offset = layout.number(layout.offset, value)
            if offset + length > size:
                return "a value in the directory"
            wanted = any(tag in pair for pair in _DATA) and kind in _INTEGERS
            if not wanted or budget[0] < length:
                continue
            budget[0] -= length
            data = _read(stream, offset, length)
        if any(tag in pair for pair in _DATA) and kind in _INTEGERS:
            tables[tag] = struct.unpack(f"{layout.order}{count}{_INTEGERS[kind]}", data)
    for offsets, counts in _DATA:
        starts, lengths = tables.get(offsets, ()), tables.get(counts, ())
        pairs = zip(starts, lengths, strict=False)  # a malformed file's may differ in length
        if any(at + length > size for at, length in pairs):
            return "the image data"
    return None


def _read(stream: IO[bytes], at: int, length: int) -> bytes:
    """Up to ``length`` bytes of ``stream`` from ``at`` (fewer at the end of the data)."""
    stream.seek(at)
    return stream.read(length)
