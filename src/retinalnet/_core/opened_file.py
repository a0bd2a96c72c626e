"""A file opened once: loaded and hashed through one descriptor, and told apart from the file
a path leads to later.

Another process may replace a file while it is used: a training run writes ``best.pt``
again each time validation improves (a new file renamed over the old one). What is loaded
from a file, the digest that names it, and the check that the file is still the one loaded
must then all be of the same bytes, not of three openings of the path, each of which may
find another file. Here the file is opened once: it is loaded and hashed through that one
descriptor, which keeps the file it was opened on whatever is renamed over the path. Its
status tells whether that file was written in place meanwhile (:func:`unchanged_since`), and
its identity (device, inode, size, modification and change times) later whether the path
still leads to it, without reading it again.

.. versionadded:: 0.2
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import BinaryIO

from retinalnet._core.files import atomic_write, file_digest
from retinalnet._core.regular_files import open_regular

__all__ = [
    "Identity",
    "copy_if_unchanged",
    "file_identity",
    "still_holds",
    "stream_digest",
    "unchanged_since",
]

Identity = tuple[int, int, int, int, int]

_CHUNK = 1 << 20


def file_identity(status: os.stat_result) -> Identity:
    """Which file, and which version of it, ``status`` describes: its device and inode (a
    file renamed over a path is another inode), its size, and its modification and change
    times in nanoseconds (every write changes them, and the change time cannot be set back).
    """
    return (
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
    )


def unchanged_since(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether the bytes of one open file are as they were: the ``fstat`` of its descriptor
    ``before`` and ``after`` give the same size and modification time, and the same change
    time unless only its links changed (a new file renamed over its path, as a training run
    writes ``best.pt``, changes that but not its bytes). A write changes the modification
    time, to the resolution of the file system's clock (a few milliseconds at most on
    Linux): a write in place of as many bytes within that time of the one before, or by a
    program that sets the time back, is not told apart, nor can it be without reading the
    file again. A training run never writes in place: it renames a new file over the path.
    """
    if (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns) != (
        after.st_dev,
        after.st_ino,
        after.st_size,
        after.st_mtime_ns,
    ):
        return False
    return before.st_ctime_ns == after.st_ctime_ns or before.st_nlink != after.st_nlink


def stream_digest(stream: BinaryIO) -> str:
    """The SHA-256 (64 lower-case hex digits) of the whole file open as ``stream``, read from
    its start in 1 MiB chunks; the stream is left at its end."""
    stream.seek(0)
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def still_holds(path: str | os.PathLike[str], identity: Identity, sha256: str) -> bool:
    """Whether ``path`` (a link followed) still holds the bytes of the file read as
    ``identity`` with the SHA-256 ``sha256``: that file, unchanged since (nothing read
    again), or another file with the same bytes. ``False`` when there is no file there now.
    """
    try:
        if file_identity(Path(path).stat()) == identity:
            return True
        return file_digest(path).hex() == sha256
    except FileNotFoundError:
        return False


class _ChangedWhileCopiedError(Exception):
    """The source changed while it was copied: the copy is not written."""


def copy_if_unchanged(
    source: str | os.PathLike[str], target: str | os.PathLike[str], sha256: str
) -> bool:
    """Write the bytes of ``source`` to ``target`` atomically if they still have the SHA-256
    ``sha256`` (the file a program loaded); ``False``, and nothing written, if they do not:
    ``source`` was replaced or written since, and its content is not what the program used.

    Raises
    ------
    ~retinalnet._core.files.FileWriteError
        If ``target`` cannot be written; it is then as it was.
    """
    with open_regular(source) as stream:
        opened = os.fstat(stream.fileno())
        if stream_digest(stream) != sha256:
            return False

        def write(out: BinaryIO) -> None:
            stream.seek(0)
            shutil.copyfileobj(stream, out, _CHUNK)
            if not unchanged_since(opened, os.fstat(stream.fileno())):  # written in place
                raise _ChangedWhileCopiedError

        try:
            atomic_write(target, write)
        except _ChangedWhileCopiedError:
            return False
    return True
