"""Image files the tests write by hand, where PIL cannot write them."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def png16(path: Path, values: np.ndarray, colour_type: int) -> Path:
    """A 16-bit PNG of ``values`` (grey, grey+alpha, RGB or RGBA by ``colour_type``), written
    by hand: PIL cannot write 16-bit colour PNGs."""
    height, width = values.shape[:2]
    alpha = np.full(values.shape, 65535)
    samples = {
        0: values[..., None],
        2: np.dstack([values] * 3),
        4: np.dstack([values, alpha]),
        6: np.dstack([values] * 3 + [alpha]),
    }[colour_type]
    rows = b"".join(b"\0" + samples[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path
