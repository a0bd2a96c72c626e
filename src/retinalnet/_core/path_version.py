"""Which file a path leads to, and which version of it: to tell, after some work, whether
the file was replaced or written meanwhile."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FileVersion", "file_version"]

FileVersion = tuple[int, int, int, int, int]
"""Device, inode, size, modification and change times in nanoseconds."""


def file_version(path: str | os.PathLike[str]) -> FileVersion | None:
    """Which file ``path`` leads to and which version of it (a file renamed over the path is
    another inode, a write in place changes the size or the times); ``None`` when there is
    no file to stat.

    Examples
    --------
    >>> file_version("/no/such/file") is None
    True
    """
    try:
        status = Path(path).stat()
    except OSError:
        return None
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
