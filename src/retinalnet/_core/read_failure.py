"""Why a file could not be read, in words: the operating system's reason (a missing file,
permissions, a symbolic link loop) told apart from a decoding one (a corrupt file)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from retinalnet._core.files import os_error_in_words

__all__ = ["read_failure"]


def read_failure(file: str | os.PathLike[str], error: Exception) -> str:
    """Why ``file`` could not be read, in words, from the error opening or decoding it: the
    reason of an :class:`~retinalnet._core.images.UnreadableImageError`.

    An :class:`OSError` with an ``errno`` is the operating system's (``"permission denied
    [EACCES]: check its permissions"``, ``"a symbolic link loop (too many levels of symbolic
    links [ELOOP])"``, ``"cannot be read (input/output error [EIO])"``); any other error is a
    decoding one, ``"corrupt or truncated (...)"``.

    Examples
    --------
    >>> import errno
    >>> read_failure("scan.png", PermissionError(errno.EACCES, "Permission denied"))
    'permission denied [EACCES]: check its permissions'
    >>> read_failure("scan.png", OSError("image file is truncated"))
    'corrupt or truncated (image file is truncated)'
    """
    if isinstance(error, FileNotFoundError):
        broken = Path(file).is_symlink()
        return "no such file (a broken symbolic link)" if broken else "no such file"
    if isinstance(error, IsADirectoryError):
        return "it is a directory, not an image file"
    if isinstance(error, OSError) and error.errno is not None:
        words = os_error_in_words(error)
        if isinstance(error, PermissionError):
            return f"{words}: check its permissions"
        if error.errno == errno.ELOOP:
            return f"a symbolic link loop ({words})"
        return f"cannot be read ({words})"
    return f"corrupt or truncated ({error})"
