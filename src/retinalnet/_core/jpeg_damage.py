"""The damage a JPEG decoder reads past: a JPEG file cut short, or with part of its data
overwritten, that still ends with an end marker.

libjpeg reads such a file to its end, reports ``Corrupt JPEG data: premature end of data
segment`` as a warning, and fills the rest of the image with grey; PIL drops the warning,
so the file decodes without a word. Two checks find it, read from the file's bytes:

- :func:`short_data_reason`: the coded data are too short for the size the header claims
  (at least one bit per 8 x 8 block): a 378-byte file claiming 9000 x 9000 pixels, refused
  before any pixel is decoded;
- :func:`with_end_withheld`: the file with its end marker replaced by padding. Decoded so,
  a file whose data end before its last block asks for more data, which PIL reports as
  truncated; a whole file needs none (measured: the 80 scans of the developer sample and
  4,278 JPEGs of every PIL setting decode the same both ways).

The second applies to one-scan Huffman files (baseline and extended, what scanners and PIL
write) ending with their end marker: a progressive or arithmetic-coded file is read to its
end marker before its first row, and data after the end marker hide it. A changed byte
inside the data is not found: the data still decode, to wrong pixels.
"""

from __future__ import annotations

from typing import Final

from retinalnet._core.codestreams import HUFFMAN_DCT, SEQUENTIAL_HUFFMAN, JpegFrame

__all__ = ["DATA_ENDS_EARLY", "short_data_reason", "with_end_withheld"]

_END: Final = b"\xff\xd9"
_PADDING: Final = bytes(8)
"""What replaces the end marker: the decoder looks up to 25 bits ahead past a whole file's
last block, and zero bits decode to far less than one block of a file cut short."""

DATA_ENDS_EARLY: Final = (
    "corrupt or truncated: its compressed data end before its last rows, although the file "
    "ends with a JPEG end marker (it was cut short, or part of it was overwritten, e.g. by a "
    "bad copy); copy it again from its source"
)
"""Why a JPEG file whose decode ran out of data (:func:`with_end_withheld`) is refused."""


def short_data_reason(data: bytes, frame: JpegFrame) -> str | None:
    """Why the Huffman-coded JPEG ``data`` (``frame``: its header) cannot hold the pixels
    its header claims: fewer bits after its first scan header than it has 8 x 8 blocks in
    its largest component (each costs at least one); ``None`` when it can.

    Examples
    --------
    >>> from retinalnet._core.codestreams import JpegFrame
    >>> frame = JpegFrame(0xC0, 9000, 9000, 1_265_625, scan_start=300)
    >>> print(short_data_reason(bytes(378), frame))  # doctest: +NORMALIZE_WHITESPACE
    corrupt or truncated: its header claims 9,000 x 9,000 pixels, which need at least
    158,204 bytes of compressed data, and it holds 78: it was cut short, or its header is
    damaged; copy it again from its source
    """
    if frame.coding not in HUFFMAN_DCT or frame.scan_start is None:
        return None
    coded = len(data) - frame.scan_start
    if coded * 8 >= frame.blocks:
        return None
    return (
        f"corrupt or truncated: its header claims {frame.width:,} x {frame.height:,} pixels, "
        f"which need at least {-(-frame.blocks // 8):,} bytes of compressed data, and it "
        f"holds {coded:,}: it was cut short, or its header is damaged; copy it again from "
        "its source"
    )


def with_end_withheld(data: bytes, frame: JpegFrame) -> bytes | None:
    """``data`` with its end marker replaced by padding, for a one-scan Huffman JPEG that
    ends with one (see the module); ``None`` for any other file, decoded as it is.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> from retinalnet._core.codestreams import jpeg_frame
    >>> stream = io.BytesIO()
    >>> Image.new("L", (64, 40)).save(stream, "JPEG")
    >>> data = stream.getvalue()
    >>> withheld = with_end_withheld(data, jpeg_frame(data))
    >>> withheld[:-8] == data[:-2], withheld.endswith(bytes(8))
    (True, True)
    """
    if (
        frame.coding not in SEQUENTIAL_HUFFMAN
        or not frame.all_in_first_scan  # several scans: read to the end first
        or not data.endswith(_END)
    ):
        return None
    return data[: -len(_END)] + _PADDING
