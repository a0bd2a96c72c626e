"""Writing a NumPy array as a ``.npy`` file through a stream, keeping the disk's errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

__all__ = ["npy_writer"]


class _StreamWrites:
    """Only a stream's ``write``: given this, ``np.save`` writes 16 MiB chunks through it.

    Given the file itself, NumPy writes with C's ``fwrite`` (``ndarray.tofile``) and reports
    a full disk as ``"614400 requested and 524256 written"``, an ``OSError`` without an
    ``errno``; the stream's own ``write`` raises the operating system's error (``ENOSPC``).
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        return self._stream.write(data)


def npy_writer(array: np.ndarray[Any, Any]) -> Callable[[BinaryIO], None]:
    """``write(stream)`` for :func:`~retinalnet._core.files.atomic_write`: ``array`` as a
    ``.npy`` file, whose failures keep their ``errno`` (see :class:`_StreamWrites`).

    The bytes go out in chunks of 16 MiB whatever the array's layout: an array broadcast
    from one zero (no memory of its own) writes a file of zeros in constant memory.
    """

    def write(stream: BinaryIO) -> None:
        np.save(_StreamWrites(stream), array, allow_pickle=False)

    return write
