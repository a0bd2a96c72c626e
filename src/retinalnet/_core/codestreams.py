"""What a JPEG or JPEG 2000 codestream's header claims (its size, its coding, where its
coded data start), read from its bytes without decoding a pixel.

The image gate (:mod:`retinalnet._core.jpeg_damage`) reads it to check a JPEG's data
against its size, and the DICOM reader (:mod:`retinalnet._core.dicom`) to check each
compressed frame against the file's Rows and Columns before a decoder allocates the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

__all__ = ["HUFFMAN_DCT", "SEQUENTIAL_HUFFMAN", "JpegFrame", "claimed_size", "jpeg_frame"]

SEQUENTIAL_HUFFMAN: Final = frozenset({0xC0, 0xC1})
"""The SOF markers of JPEG's one-scan Huffman DCT coding: baseline and extended."""

HUFFMAN_DCT: Final = frozenset({0xC0, 0xC1, 0xC2})
"""The SOF markers of Huffman DCT coding, baseline, extended and progressive: every
8 x 8 block of a component costs at least one bit of coded data (its DC symbol)."""

_FRAME_MARKERS: Final = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
)
"""SOF0 to SOF15 less DHT (C4), JPG (C8) and DAC (CC); F7 is JPEG-LS's SOF55."""

_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_J2K_START: Final = b"\xff\x4f\xff\x51"  # SOC, then SIZ: a JPEG 2000 codestream
_JP2_SIGNATURE: Final = b"\x00\x00\x00\x0cjP  \r\n\x87\n"  # a JP2 file's first box


@dataclass(frozen=True)
class JpegFrame:
    """A JPEG's frame header (SOF), and where its first scan's coded data start."""

    coding: int
    """The SOF marker's second byte: ``0xC0`` baseline, ``0xC2`` progressive, ..."""
    width: int
    height: int
    """0 when the height is given later (a DNL marker)."""
    blocks: int
    """The 8 x 8 blocks of its largest component."""
    scan_start: int | None
    """The offset of the first scan's coded data (``None``: no scan header was found)."""
    components: int = 0
    """The components (colour channels) of the frame."""
    all_in_first_scan: bool = False
    """The first scan codes every component: in sequential coding, libjpeg's test of a
    file of one scan, decoded row by row as its data are read (a file of several scans,
    one per component, is read to its end first)."""


def jpeg_frame(data: bytes) -> JpegFrame | None:
    """The frame header of the JPEG ``data``, ``None`` when it is not a JPEG or its markers
    up to the frame header cannot be walked (the decoder then says what is wrong).

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> stream = io.BytesIO()
    >>> Image.new("L", (64, 40)).save(stream, "JPEG")
    >>> frame = jpeg_frame(stream.getvalue())
    >>> frame.coding == 0xC0, frame.width, frame.height, frame.blocks
    (True, 64, 40, 40)
    """
    if data[:2] != b"\xff\xd8":
        return None
    frame: JpegFrame | None = None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker in (_SOI, _EOI):
            return frame
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if length < 2:
            return None
        if marker in _FRAME_MARKERS and frame is None:
            frame = _frame(marker, data[position + 4 : position + 2 + length])
        elif marker == _SOS:
            if frame is None:
                return None
            scan_components = data[position + 4] if length > 2 else 0
            return replace(
                frame,
                scan_start=position + 2 + length,
                all_in_first_scan=scan_components == frame.components > 0,
            )
        position += 2 + length
    return frame


def _frame(marker: int, segment: bytes) -> JpegFrame | None:
    """The frame header in an SOF segment: precision (1 byte), height, width (2 bytes
    each), then per component its id, sampling factors (4 bits each) and table."""
    if len(segment) < 6:
        return None
    height = int.from_bytes(segment[1:3], "big")
    width = int.from_bytes(segment[3:5], "big")
    sampling = [
        (segment[index] >> 4, segment[index] & 0x0F)
        for index in range(7, min(len(segment), 6 + 3 * segment[5]), 3)
    ]
    if not sampling or min(min(pair) for pair in sampling) < 1:
        return JpegFrame(marker, width, height, 0, None, len(sampling))
    widest = max(horizontal for horizontal, _ in sampling)
    tallest = max(vertical for _, vertical in sampling)
    blocks = max(
        _ceil(_ceil(width * horizontal, widest), 8) * _ceil(_ceil(height * vertical, tallest), 8)
        for horizontal, vertical in sampling
    )
    return JpegFrame(marker, width, height, blocks, None, len(sampling))


def _jp2_codestream(data: bytes) -> int | None:
    """Where the codestream of a JP2 file (boxes around a JPEG 2000 codestream) starts:
    the content of its ``jp2c`` box; ``None`` if its boxes cannot be walked to one."""
    position = 0
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        header = 8
        if length == 1:  # the length follows, in 8 bytes
            length = int.from_bytes(data[position + 8 : position + 16], "big")
            header = 16
        if kind == b"jp2c":
            return position + header
        if length == 0 or length < header:  # the last box, or a broken length
            return None
        position += length
    return None


def _ceil(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def claimed_size(data: bytes) -> tuple[int, int] | None:
    """The ``(width, height)`` a JPEG (any coding, JPEG-LS too) or a JPEG 2000 codestream
    (bare, or in a JP2 file's boxes) claims in its header; ``None`` for other data, or a
    header that cannot be read.

    Examples
    --------
    >>> claimed_size(b"\\xff\\x4f\\xff\\x51" + bytes(4) + (700).to_bytes(4, "big")
    ...              + (500).to_bytes(4, "big") + bytes(8))
    (700, 500)
    >>> claimed_size(b"not an image") is None
    True
    """
    start = _jp2_codestream(data) if data.startswith(_JP2_SIGNATURE) else 0
    if start is not None and data.startswith(_J2K_START, start):
        # SIZ: its length and capabilities (2 bytes each), then the reference grid's
        # width and height and the image's offsets on it (4 bytes each)
        fields = [
            int.from_bytes(data[start + at : start + at + 4], "big") for at in (8, 12, 16, 20)
        ]
        if len(data) < start + 24 or fields[0] <= fields[2] or fields[1] <= fields[3]:
            return None
        return fields[0] - fields[2], fields[1] - fields[3]
    frame = jpeg_frame(data)
    if frame is None or frame.height == 0:
        return None
    return frame.width, frame.height
