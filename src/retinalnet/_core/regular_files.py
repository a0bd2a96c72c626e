"""The one rule for reading a path: a device, a named pipe or a socket where a file should
be is refused before it is opened, in words naming what it is and the fix.

``/dev/zero`` is read for ever (an audit filled the memory, a digest never ended), and a
named pipe is waited on for ever; tar restores both named pipes and links to devices, so an
archive of scans can hold them. Every reader of scans, checkpoints and weights files goes
through :func:`check_regular_file` (before a library opens the path) or
:func:`open_regular` (which opens it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

__all__ = ["SPECIAL_FILE_FIX", "SpecialFileError", "check_regular_file", "open_regular"]

SPECIAL_FILE_FIX = "remove it, or put the real file in its place"
"""What to do about a device or a named pipe found where a file should be."""


class SpecialFileError(OSError):
    """A path that leads, once its symbolic links are followed, to something other than a
    regular file or a folder: a device (``/dev/zero``), a named pipe (FIFO) or a socket.

    Reading one never ends (a device gives bytes for ever, a pipe waits for a writer), so it
    is refused before it is opened. tar restores named pipes and links to devices, so an
    archive of scans can hold them.

    Parameters
    ----------
    path
        The path given.
    kind
        What it is, in words: ``"a named pipe (FIFO)"``.
    target
        Where the symbolic link ``path`` leads, when it is one.

    Attributes
    ----------
    reason : str
        Why it cannot be read and the fix, without the path: ``"it is not a regular file but
        a named pipe (FIFO): remove it, or put the real file in its place"``.

    .. versionadded:: 0.2
    """

    def __init__(self, path: str | os.PathLike[str], kind: str, target: str | None = None) -> None:
        self.path = Path(path)
        self.kind = kind
        self.target = target
        via = "" if target is None else f" (a symbolic link to {target!r})"
        self.reason = f"it is not a regular file but {kind}{via}: {SPECIAL_FILE_FIX}"
        super().__init__(f"cannot read {str(self.path)!r}: {self.reason}")

    def __reduce__(self) -> tuple[type[SpecialFileError], tuple[str, str, str | None]]:
        return (type(self), (str(self.path), self.kind, self.target))


_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def _refuse_special(path: str | os.PathLike[str], mode: int) -> None:
    """Raise :class:`SpecialFileError` for a ``stat`` mode that is neither a regular file
    nor a folder (a folder is left to ``open``, which says it is one)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = next((words for test, words in _KINDS if test(mode)), "a special file")
    target = None
    with contextlib.suppress(OSError, ValueError):
        if os.path.islink(path):  # noqa: PTH114 - a str or a path alike
            target = os.readlink(path)  # noqa: PTH115
    raise SpecialFileError(path, kind, target)


def check_regular_file(path: str | os.PathLike[str]) -> None:
    """Refuse a path that leads (links followed) to a device, a named pipe or a socket,
    before anything opens it: the one rule of every reader of scans, checkpoints and
    weights files (a library such as PIL or pydicom then opens the path).

    A missing file, a folder, a link loop or one not ours to look at pass: opening them
    fails next, with the operating system's own error.

    Raises
    ------
    SpecialFileError
        For a device, a named pipe or a socket: the message names the path, what it is
        (and where its link leads) and the fix.

    Examples
    --------
    >>> check_regular_file("no-such-file.png")  # passes: opening it says it is missing

    ``check_regular_file("/dev/zero")`` raises ``SpecialFileError: cannot read '/dev/zero':
    it is not a regular file but a character device: remove it, or put the real file in
    its place``.

    .. versionadded:: 0.2
    """
    try:
        mode = os.stat(path).st_mode  # noqa: PTH116 - a str or a path alike
    except (OSError, ValueError):  # opening it says why
        return
    _refuse_special(path, mode)


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``open(path, "rb")``, refusing a device, a named pipe or a socket first
    (:func:`check_regular_file`).

    Opened without blocking, and checked again once open, so a named pipe put in the
    file's place meanwhile is refused too, never waited on.

    Raises
    ------
    SpecialFileError
        As :func:`check_regular_file`.
    OSError
        As ``open``: a missing file, a folder, permissions.

    .. versionadded:: 0.2
    """
    check_regular_file(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        _refuse_special(path, mode)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
