"""The ONNX export's temporary folder, and its failures said as the disk's.

The graph is exported to a file in a temporary folder (``TMPDIR``) first, then checked and
written into place. A full or read-only temporary folder makes the exporter fail with its
own exceptions, far from the cause: :func:`write_error_of` finds the refused write behind
them, and :func:`temporary_write_error` names the file, the folder and the fix, with no word
about the network, which is not at fault.
"""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

from retinalnet._core.files import os_error_in_words

__all__ = ["temporary_folder", "temporary_write_error", "write_error_of"]

_PREFIX = "retinalnet-onnx-"
"""The name of the export's temporary folder begins with this."""


_WRITE_ERRORS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)
"""The errors of a refused write, recognised behind an exporter's own exception too."""

_TEMPORARY_HINTS = {
    errno.ENOSPC: "free some space there, or set TMPDIR to a folder with room",
    errno.EDQUOT: "free some of your disk quota there, or set TMPDIR to a folder with room",
    errno.EFBIG: (
        "the graph is larger than the file size limit (ulimit -f) or the largest file of that "
        "file system: raise the limit, or set TMPDIR to a folder on another file system"
    ),
    errno.EACCES: "set TMPDIR to a folder you can write, with room for the graph",
    errno.EPERM: "set TMPDIR to a folder you can write, with room for the graph",
    errno.EROFS: "set TMPDIR to a folder on a writable file system",
}

_OTHER_HINT = "check that folder, or set TMPDIR to a folder with room that you can write"


def write_error_of(error: BaseException) -> OSError | None:
    """The OSError behind a failed export: the exception itself (one with an ``errno``), or
    a refused write (:data:`_WRITE_ERRORS`) it was raised from or while handling."""
    if isinstance(error, OSError):
        return error if error.errno is not None else None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno in _WRITE_ERRORS:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def temporary_write_error(path: Path, error: OSError, kind: str = "file") -> OSError:
    """A one-line OSError for a temporary file or folder of the export that could not be
    written (a full temporary folder): the path, the cause, the folder and the fix; no word
    about the network, which is not at fault."""
    folder = path.parent.parent if path.parent.name.startswith(_PREFIX) else path.parent
    hint = _TEMPORARY_HINTS.get(error.errno or 0, _OTHER_HINT)
    failure = OSError(
        f"cannot write {str(path)!r}, a temporary {kind} of the ONNX export, in the temporary "
        f"folder {str(folder)!r}: {os_error_in_words(error)}; {hint}"
    )
    failure.errno = error.errno  # str(failure) stays the message: no strerror is set
    return failure


def temporary_folder() -> tempfile.TemporaryDirectory[str]:
    """The folder the graph is exported to first, in the temporary folder (``TMPDIR``)."""
    try:
        return tempfile.TemporaryDirectory(prefix=_PREFIX, ignore_cleanup_errors=True)
    except OSError as error:
        if error.filename is None:  # no folder found: tempfile names those it tried
            failure = OSError(
                f"cannot export to ONNX: no temporary folder to write the graph in ({error}); "
                "set TMPDIR to a folder with room that you can write"
            )
            failure.errno = error.errno
            raise failure from error
        raise temporary_write_error(Path(error.filename), error, "folder") from error
