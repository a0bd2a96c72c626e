"""Why a file could not be read, in words: the operating system's reason (a missing file,
permissions, a symbolic link loop, a device or a named pipe where a file should be) told
apart from a decoding one (a corrupt file)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from retinalnet._core.files import os_error_in_words
from retinalnet._core.regular_files import SpecialFileError

__all__ = [
    "BROKEN_LINK_FIX",
    "EMPTY_FILE",
    "broken_link_on_the_way",
    "broken_link_target",
    "is_empty",
    "read_failure",
]

EMPTY_FILE = "the file is empty, 0 bytes: was it cut short while written or copied?"
"""Why a file of 0 bytes cannot be read, in the words of every reader (images, DICOM,
checkpoints, weights files): a decoder's own error ("not a recognised image format") would
send its owner looking for the wrong fault."""


def is_empty(file: str | os.PathLike[str]) -> bool:
    """Whether ``file`` is a regular file of 0 bytes; ``False`` when its size cannot be
    read (the read's own error then says why), and for a device or a named pipe, whose
    size of 0 says nothing of what reading it gives (``/dev/zero`` never ends).

    Examples
    --------
    >>> is_empty("no-such-file.png")
    False
    """
    try:
        found = os.stat(file)  # noqa: PTH116 - a str or a path alike
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(found.st_mode) and found.st_size == 0


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

    A device or a named pipe where a file should be
    (:class:`~retinalnet._core.regular_files.SpecialFileError`) is said to be one, with the fix:
    ``"it is not a regular file but a named pipe (FIFO): remove it, or put the real file in
    its place"``.

    A broken symbolic link names where it points and the fix: ``"no such file (a broken
    symbolic link to '/mnt/nas/CNV-1-1.jpeg', which does not exist): remove the link, or
    restore the file it leads to"``.
    """
    if isinstance(error, SpecialFileError):
        return error.reason
    if isinstance(error, FileNotFoundError):
        return _no_such_file(Path(file))
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


BROKEN_LINK_FIX = "remove the link, or restore the file it leads to"
"""What to do about a symbolic link to nothing."""


def broken_link_target(path: str | os.PathLike[str]) -> str | None:
    """Where ``path`` leads when it is a symbolic link to nothing, else ``None`` (never
    raises: a link removed meanwhile is ``None`` too).

    Examples
    --------
    >>> broken_link_target("no-such-file.png") is None
    True
    """
    if os.path.exists(path) or not os.path.islink(path):  # noqa: PTH110, PTH114 - never raise
        return None
    try:
        return str(Path(path).readlink())
    except OSError:  # removed since
        return None


def broken_link_on_the_way(path: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """The symbolic link to nothing that keeps ``path`` from existing, itself or a folder
    above it (an unmounted share linked as ``train/CNV``), with where it leads; ``None``
    if there is none (the walk stops at the first part that exists).

    Examples
    --------
    >>> broken_link_on_the_way("no-such-folder/scan.png") is None
    True
    """
    for candidate in (Path(path), *Path(path).parents):
        if os.path.exists(candidate):  # noqa: PTH110 - never raises
            return None
        target = broken_link_target(candidate)
        if target is not None:
            return candidate, target
    return None


def _no_such_file(file: Path) -> str:
    """ "no such file"; for a broken symbolic link (a NAS share not mounted, a moved folder)
    where it points, which its own name does not say, and the fix."""
    found = broken_link_on_the_way(file)
    if found is not None:
        link, target = found
        whose = "a" if link == file else f"its folder {str(link)!r} is a"
        return (
            f"no such file ({whose} broken symbolic link to {target!r}, which does not exist): "
            f"{BROKEN_LINK_FIX}"
        )
    if file.is_symlink():  # pointing at a file again, or replaced, since the error
        return "no such file (a broken symbolic link)"
    return "no such file"
