"""File helpers shared by the data and checkpoint code: content digests, atomic writes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "file_digest"]

_CHUNK = 1 << 16


def file_digest(path: str | os.PathLike[str]) -> bytes:
    """The sha256 digest (32 bytes) of a file's content, read in 64 KiB chunks.

    Examples
    --------
    >>> from retinalnet.datasets import file_digest
    >>> file_digest("CNV-1016042-1.jpeg").hex()  # doctest: +SKIP
    'c3c6e35f...'

    .. versionadded:: 0.2
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.digest()


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Write a file through ``write(stream)`` so that it is never seen half-written.

    The bytes go to a temporary file beside ``path``, are flushed to disk, and the file is
    renamed over ``path``; on any error the temporary file is removed and ``path`` is left as
    it was.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return out
