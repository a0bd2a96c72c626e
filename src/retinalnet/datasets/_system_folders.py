"""Folders that operating systems, NAS boxes and zip tools leave among scans (``@eaDir``,
``__MACOSX``, ``#recycle``, ...): what each is, the one log line that says the walks left
them out, and reading a folder with a one-line error when it cannot be read."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType

from retinalnet._core.files import os_error_in_words

__all__ = [
    "SYSTEM_FOLDERS",
    "said",
    "scan_folder",
    "system_folder",
    "system_folder_among",
    "system_folders_said_once",
]

logger = logging.getLogger("retinalnet.datasets._files")  # the walks' logger, as before

SYSTEM_FOLDERS: Mapping[str, str] = MappingProxyType(
    {
        "@eadir": "a Synology NAS's thumbnails and metadata",
        "#recycle": "a Synology NAS's recycle bin",
        "#snapshot": "a Synology NAS's snapshots",
        "@recycle": "a QNAP NAS's recycle bin",
        "@recently-snapshot": "a QNAP NAS's snapshots",
        "~snapshot": "a file server's snapshots",
        "__macosx": "macOS's metadata from a zip file",
        "$recycle.bin": "the Windows recycle bin",
        "recycler": "the Windows recycle bin",
        "system volume information": "Windows' own data about the drive",
        "lost+found": "a Linux file system's recovered fragments",
        # hidden ones: the folder walks leave out every hidden folder; these are named so
        # that a manifest's rows or a path given to `predict` in them are left out too
        ".@__thumb": "a QNAP NAS's thumbnails",
        ".appledouble": "a Mac file server's resource forks (named like the images)",
        ".trashes": "macOS's trash on a removable drive",
        ".spotlight-v100": "macOS's search index",
        ".fseventsd": "macOS's file-system event log",
        ".temporaryitems": "macOS's temporary files",
        ".snapshot": "a file server's snapshots",
        ".snapshots": "a Linux file system's snapshots",
    }
)
"""Folders that operating systems, NAS boxes and zip tools leave among files, in lower case,
with what they are: they hold thumbnails, metadata, deleted files or snapshots (copies), never
scans of the class folder they are in. Every folder walk leaves them out, as it leaves out
every hidden folder; a manifest's rows in them are left out with one warning.

.. versionadded:: 0.2
"""


def system_folder(name: str) -> str | None:
    """What a folder named ``name`` is when an operating system, a NAS or a zip tool left it
    (see :data:`SYSTEM_FOLDERS`; any case), else ``None``.

    Examples
    --------
    >>> system_folder("@eaDir"), system_folder("CNV")
    ("a Synology NAS's thumbnails and metadata", None)
    """
    return SYSTEM_FOLDERS.get(name.lower())


def system_folder_among(folders: Iterable[str]) -> str | None:
    """The first of ``folders`` (the folders a file lies in, outermost first) that is a
    system folder (see :func:`system_folder`), else ``None``.

    Examples
    --------
    >>> system_folder_among(["train", "CNV", "@eaDir", "CNV-1-1.jpeg"])
    '@eaDir'
    """
    return next((name for name in folders if system_folder(name) is not None), None)


def _log_system_folders(skipped: list[str], where: str) -> None:
    """Say, in one log line, that the system folders ``skipped`` under ``where`` were left
    out."""
    if not skipped:
        return
    first = min(skipped)
    what = system_folder(Path(first).name) or "a system folder"
    if len(skipped) == 1:
        logger.info("left out %r (%s): its files are not read", first, what)
    else:
        logger.info(
            "left out %d system folders under %r (e.g. %r, %s): their files are not read",
            len(skipped),
            where,
            first,
            what,
        )


_SAID_ONCE: ContextVar[list[str] | None] = ContextVar("retinalnet_system_folders", default=None)
"""The system folders left out inside :func:`system_folders_said_once`, else ``None``."""


@contextmanager
def system_folders_said_once(where: str | os.PathLike[str]) -> Iterator[None]:
    """Within it, the system folders the walks leave out (:func:`walk_files`,
    :func:`list_class_folders`) are said in one log line when it ends, as under ``where``,
    rather than one line per walk (a line per class folder). Nested, the outermost says
    them.

    .. versionadded:: 0.2
    """
    if _SAID_ONCE.get() is not None:
        yield
        return
    found: list[str] = []
    token = _SAID_ONCE.set(found)
    try:
        yield
    finally:
        _SAID_ONCE.reset(token)
    _log_system_folders(found, os.fspath(where))


def said(skipped: list[str], where: str) -> None:
    """Say the system folders ``skipped`` under ``where`` now, or at the end of the
    :func:`system_folders_said_once` this runs in."""
    collecting = _SAID_ONCE.get()
    if collecting is None:
        _log_system_folders(skipped, where)
    else:
        collecting.extend(skipped)


@contextmanager
def scan_folder(folder: str | os.PathLike[str]) -> Iterator[Iterator[os.DirEntry[str]]]:
    """:func:`os.scandir` of ``folder``, with a folder that cannot be read refused in one line
    naming it.

    Raises
    ------
    PermissionError
        ``cannot read the folder '...': permission denied [EACCES]; check its permissions``.
    OSError
        Of the same type, for any other cause (a disk error), naming the folder and cause.

    .. versionadded:: 0.2
    """
    try:
        entries = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        raise  # the callers check the folder is there first: a race, said by the system
    except OSError as error:
        fix = (
            "check its permissions: the user running this must be able to read and enter it"
            if isinstance(error, PermissionError)
            else "check the folder and the disk"
        )
        raise type(error)(
            f"cannot read the folder {os.fspath(folder)!r}: {os_error_in_words(error)}; {fix}"
        ) from None
    with entries:
        yield entries
