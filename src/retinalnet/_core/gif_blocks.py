"""Whether a GIF file reaches its trailer: a GIF volume cut short, found from its blocks.

A GIF ends with the trailer byte ``0x3B``. PIL stops counting frames at the trailer or at the
end of the data alike, so a volume cut exactly between two frames (an interrupted copy) is
read as a shorter volume without a word, and one cut inside a frame is counted as if whole
until its pixels are decoded. :func:`ends_before_trailer` walks the file's blocks as PIL does
(the header and colour table, then extensions and images, each a chain of sub-blocks, a
stray byte between blocks skipped) and says whether the data end before the trailer. Bytes
after the trailer are not looked at: some writers pad files, and PIL ignores them too.

Measured: every GIF PIL writes (one frame or several, any mode, comments, loops,
interlaced, transparent) reaches its trailer, and so do the GIFs of Python's own
installations but one: an icon of one frame from an old writer (``minusnode.gif`` of
Python 3.8's idlelib and before), whose image is whole. So the images' readers
(:func:`retinalnet._core.images._frame_indices`) refuse only a GIF of several frames that
ends before its trailer: a volume cut short.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ends_before_trailer"]

_TRAILER: Final = 0x3B
_EXTENSION: Final = 0x21
_IMAGE: Final = 0x2C
_SCREEN: Final = 13  # "GIF89a", the logical screen descriptor (7 bytes)
_DESCRIPTOR: Final = 10  # an image's separator and descriptor


def ends_before_trailer(data: bytes) -> bool:
    """Whether a GIF file's data end before its trailer (it was cut short).

    ``False`` for data that are not a GIF (another reader judges them).

    Examples
    --------
    >>> screen = b"GIF89a" + bytes([1, 0, 1, 0, 0, 0, 0])  # 1 x 1, no colour table
    >>> image = b"," + bytes([0, 0, 0, 0, 1, 0, 1, 0, 0]) + bytes([2, 1, 0, 0])
    >>> whole = screen + image + b";"
    >>> ends_before_trailer(whole), ends_before_trailer(whole[:-1])
    (False, True)
    """
    if len(data) < _SCREEN or not data.startswith(b"GIF"):
        return False
    at = _SCREEN + _colour_table(data[10])
    while at < len(data):
        kind = data[at]
        if kind == _TRAILER:
            return False
        if kind == _EXTENSION:  # its label, then its sub-blocks
            at = _past_sub_blocks(data, at + 2)
        elif kind == _IMAGE:  # its descriptor and colour table, the LZW code size, the data
            if at + _DESCRIPTOR > len(data):
                return True
            at += _DESCRIPTOR + _colour_table(data[at + 9])
            at = _past_sub_blocks(data, at + 1)
        else:
            at += 1  # a stray byte, which PIL skips too
    return True


def _colour_table(flags: int) -> int:
    """The size in bytes of the colour table a screen's or an image's ``flags`` announce."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _past_sub_blocks(data: bytes, at: int) -> int:
    """Where the chain of sub-blocks starting at ``at`` ends (past its empty block), or the
    end of the data when they end first."""
    while at < len(data):
        size = data[at]
        at += 1 + size
        if not size:
            return at
    return len(data)
