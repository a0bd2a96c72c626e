"""File helpers shared by the data and checkpoint code: content digests, atomic writes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from retinalnet._core.folder_spelling import names_a_folder
from retinalnet._core.regular_files import open_regular
from retinalnet._core.stream_flush import flush_if_open
from retinalnet._core.temporary_names import TEMPORARY_SUFFIX, temporary_prefix

__all__ = [
    "FileWriteError",
    "atomic_copy",
    "atomic_write",
    "atomic_write_text",
    "file_digest",
    "os_error_in_words",
    "write_error_hint",
]

_CHUNK = 1 << 16


def file_digest(path: str | os.PathLike[str]) -> bytes:
    """The sha256 digest (32 bytes) of a file's content, read in 64 KiB chunks.

    Raises
    ------
    ~retinalnet._core.regular_files.SpecialFileError
        If ``path`` leads to a device or a named pipe
        (:func:`~retinalnet._core.regular_files.open_regular`), whose reading would never
        end.
    OSError
        If the file cannot be read.

    Examples
    --------
    >>> from retinalnet._core.files import file_digest
    >>> file_digest("CNV-1016042-1.jpeg").hex()  # doctest: +SKIP
    'c3c6e35f...'

    .. versionadded:: 0.2

    .. versionchanged:: 0.2
       Refuses a device or a named pipe (it read ``/dev/zero`` for ever).
    """
    digest = hashlib.sha256()
    with open_regular(path) as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.digest()


class FileWriteError(OSError):
    """A file could not be written; whatever was at its path before is left as it was.

    Parameters
    ----------
    path
        The file that was being written.
    reason
        The cause in words, ``"no space left on device [ENOSPC]"``.
    code
        The ``errno`` of the failure (``errno.ENOSPC``), ``None`` if unknown.
    previous
        Whether a file was at ``path`` before (it is untouched).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        reason: str,
        code: int | None = None,
        previous: bool = False,
    ) -> None:
        self.path = Path(path)
        self.reason = reason
        self.previous = previous
        kept = "the file there before is untouched" if previous else "nothing was written"
        super().__init__(
            f"cannot write {str(self.path)!r}: {reason}; {kept}. {write_error_hint(code)}"
        )
        self.errno = code  # str(self) stays the message: no strerror is set

    def __reduce__(self) -> tuple[type[FileWriteError], tuple[str, str, int | None, bool]]:
        return (type(self), (str(self.path), self.reason, self.errno, self.previous))


_HINTS = {
    errno.ENOSPC: "Free some disk space or write elsewhere",
    errno.EDQUOT: "Free some of your disk quota or write elsewhere",
    errno.EACCES: "Check the folder's permissions or write elsewhere",
    errno.EPERM: "Check the folder's permissions or write elsewhere",
    errno.EROFS: "Write to a writable file system",
    errno.ELOOP: "Fix the symbolic link, or write elsewhere",
}


def os_error_in_words(error: OSError) -> str:
    """``"no space left on device [ENOSPC]"``: an OSError's cause, in words and by name."""
    code = error.errno
    if code is None:
        return str(error)
    words = os.strerror(code)
    return f"{words[:1].lower()}{words[1:]} [{errno.errorcode.get(code, code)}]"


def write_error_hint(code: int | None) -> str:
    """How to fix a failed write, as a sentence, for the errors people meet (a full disk,
    permissions)."""
    return _HINTS.get(code or 0, "Check the path and the disk")


def _os_error_of(error: BaseException) -> OSError | None:
    """The OSError behind ``error``: itself, or its cause or context (torch.save reports a
    failed write as a RuntimeError raised while handling the stream's OSError)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _mode_for(out: Path, previous: bool) -> int:
    """The permission bits ``open(out, "wb")`` would leave: the replaced file's, else
    ``0o666`` less the umask."""
    if previous:
        with contextlib.suppress(OSError):
            return stat.S_IMODE(out.stat().st_mode)
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux's
    ``/proc/self/status``): setting it to 0 for a moment, the only other way, lets a file
    that another thread of the program creates meanwhile be writable by everyone."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii", errors="replace") as status,
    ):
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:  # elsewhere: set and put back at once, one thread of ours at a time
        umask = os.umask(0o077)  # meanwhile files are created private, never open to all
        os.umask(umask)
    return umask


_UMASK_LOCK = threading.Lock()


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM wait until the block ends, then act as they would have.

    An interrupt inside ``torch.save`` surfaced as torch's ``RuntimeError: [enforce fail at
    inline_container.cc] unexpected pos``: an error, not an interrupt, and the checkpoint
    was lost. Held, it arrives once the file is whole. Only in the main thread (where
    Python runs signal handlers), and only for signals whose handler Python set.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: types.FrameType | None) -> None:
        caught.append(signum)

    held: dict[int, Any] = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        before = signal.getsignal(number)
        if before is not None:  # None: set outside Python, which could not restore it
            held[number] = signal.signal(number, hold)
    try:
        yield
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):  # each once, in the order they came
            signal.raise_signal(signum)


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], None], *, sync: bool = True
) -> Path:
    """Write a file through ``write(stream)`` so that it is never seen half-written.

    The bytes go to a temporary file beside ``path``, are flushed to disk, and the file is
    renamed over ``path``; on any error the temporary file is removed and ``path`` is left as
    it was; Ctrl-C or SIGTERM during the write takes effect once the file is whole. The
    file gets the permissions a plain ``open(path, "wb")`` would give it: those of
    the file it replaces, else ``0o666`` less the process's umask (not the owner-only
    ``0o600`` of a temporary file), so a shared checkpoint or report stays readable.
    ``sync=False`` leaves out the flush to disk (``fsync``): the file is still whole or
    absent after an error or a kill, but may be lost in a power cut; for files that are
    cheap to make again and written by the hundred (synthetic scans).

    Where ``path`` is a symbolic link (``best.pt -> models/v3.pt``), the file it points to
    is written, as ``open(path, "wb")`` would: the temporary file goes beside that file and
    is renamed over it, and the link stays a link (renaming over the link would replace it
    with a file, and leave the file it pointed to as it was).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    FileWriteError
        If the disk or the operating system refuses the write (a full disk, no permission, a
        read-only file system, a loop of symbolic links): the message names the path (the
        file a link points to, for a link) and the cause in words, says that the file there
        before is untouched, and how to fix it.

    .. versionchanged:: 0.2
       Raises :class:`FileWriteError` naming the path and the cause, and writes through a
       symbolic link to the file it points to.
    """
    if names_a_folder(path):  # Path would drop the "/" and write a file of the folder's name
        raise ValueError(f"{os.fspath(path)!r} names a folder, where a file is expected")
    given = Path(path)
    descriptor = _descriptor(path)
    if descriptor is not None or _is_stream(given):  # no file to replace: the bytes go through
        try:
            if descriptor is not None:  # the shell's own open file: its offset, its appending
                flush_if_open(sys.stdout, sys.stderr)
                with os.fdopen(os.dup(descriptor), "wb") as stream:
                    write(stream)
            else:  # a pipe or a terminal by another name
                with open(given, "wb") as stream:
                    write(stream)
        except BrokenPipeError:  # the reader is done (`| head`): not the writer's error
            raise
        except OSError as error:
            raise FileWriteError(given, os_error_in_words(error), error.errno, False) from error
        return given
    out = _link_target(given)
    try:
        previous = out.is_file()
    except OSError:  # a folder we may not look into: nothing of ours will be there either
        previous = False
    temporary: Path | None = None
    try:
        if out.is_symlink():  # still a link once resolved: a loop of links
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(given))
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            dir=out.parent, prefix=temporary_prefix(out.name), suffix=TEMPORARY_SUFFIX
        )
        temporary = Path(name)
        with _interrupts_held():
            with os.fdopen(handle, "wb") as stream:
                write(stream)
                stream.flush()
                if sync:
                    os.fsync(stream.fileno())
            # closed before it is renamed: Windows refuses to rename a file that is open
            temporary.chmod(_mode_for(out, previous))
            _replace(temporary, out)
    except BaseException as error:
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
        cause = _os_error_of(error)
        if cause is None or not isinstance(error, Exception):
            raise
        raise FileWriteError(out, os_error_in_words(cause), cause.errno, previous) from error
    return given


_STANDARD_STREAMS = {"-": 1, "/dev/stdout": 1, "/dev/stderr": 2}


_ON_WINDOWS = os.name == "nt"

_REPLACE_TRIES = 5
"""How often a rename over a file is tried on Windows, where another program reading the
file (an antivirus scan, a spreadsheet holding a CSV) refuses it for a moment."""


def _replace(temporary: Path, out: Path) -> None:
    """Rename ``temporary`` over ``out``; on Windows, tried again a few times over about a
    second while ``out`` is held open by another program (``PermissionError``)."""
    for attempt in range(_REPLACE_TRIES):
        try:
            temporary.replace(out)
            return
        except PermissionError:
            if not _ON_WINDOWS or attempt == _REPLACE_TRIES - 1:
                raise
            time.sleep(0.1 * 2**attempt)


def atomic_copy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy the file ``source`` to ``target`` with :func:`atomic_write`: ``target`` is the
    whole copy or, on any error, what it was before.

    .. versionadded:: 0.2
    """

    def write(stream: BinaryIO) -> None:
        with open(source, "rb") as copied:
            shutil.copyfileobj(copied, stream)

    return atomic_write(target, write)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, errors: str = "strict") -> Path:
    """:func:`atomic_write` of ``text`` in UTF-8; ``errors="surrogateescape"`` writes a file
    name that is not UTF-8 back as its own bytes (a CSV or manifest of paths).

    .. versionadded:: 0.2
    """
    data = text.encode("utf-8", errors)

    def write(stream: BinaryIO) -> None:
        stream.write(data)

    return atomic_write(path, write)


def _descriptor(path: str | os.PathLike[str]) -> int | None:
    """The open file descriptor a path names: ``-`` and ``/dev/stdout`` (1), ``/dev/stderr``
    (2), ``/dev/fd/N`` and ``/proc/self/fd/N`` (N); ``None`` for any other path.

    Written through that descriptor, as the shell set it up: opening the file it leads to
    again would truncate a ``>> job.log`` redirect, and renaming a file over it would
    replace the log, its earlier lines lost."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        return None
    if text in _STANDARD_STREAMS:
        return _STANDARD_STREAMS[text]
    for prefix in ("/dev/fd/", "/proc/self/fd/"):
        number = text.removeprefix(prefix)
        if number != text and number.isdigit():
            return int(number)
    return None


def _is_stream(path: Path) -> bool:
    """Whether ``path`` names something that exists and is neither a file nor a folder: a
    terminal, a pipe (links followed)."""
    try:
        mode = path.stat().st_mode
    except OSError:  # missing, or not ours to look at: written (or refused) as a file
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _link_target(path: Path) -> Path:
    """The file ``path`` names once its symbolic links are followed (``path`` itself for
    no link), also when that file does not exist yet; a loop of links stays a link."""
    try:
        if not path.is_symlink():
            return path
    except OSError:  # a folder we may not look into: writing there fails and says why
        return path
    return Path(os.path.realpath(path))
