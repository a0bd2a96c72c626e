"""The warning for a feature cache that the disk would not take."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from retinalnet._core.caller_warnings import warn_caller

__all__ = ["warn_unsaved"]


def warn_unsaved(folder: Path, error: OSError) -> None:
    """Warn, pointing at the caller's code, that the cache could not be saved in
    ``folder`` (its files removed; the run goes on in memory): the cause and the fix."""
    warn_caller(_unsaved_message(folder, error), UserWarning)


_SAVE_FIXES = {
    errno.ENOSPC: "free some disk space there",
    errno.EDQUOT: "free some of your disk quota",
    errno.EACCES: "make the folder writable",
    errno.EPERM: "make the folder writable",
    errno.EROFS: "make its file system writable",
}


def _unsaved_message(folder: Path, error: OSError) -> str:
    """The warning for a cache that could not be saved: the folder, the cause, the fix."""
    code = error.errno
    if error.strerror:
        cause = error.strerror
    elif code:  # a FileWriteError: its message is all of it, its errno the cause
        cause = os.strerror(code)
    else:
        cause = str(error)
    if code is not None and code in errno.errorcode:
        cause = f"{cause} [{errno.errorcode[code]}]"
    fix = _SAVE_FIXES.get(code or 0, "check the folder and the disk")
    return (
        f"the feature cache could not be saved in {str(folder)!r}: {cause}. Its partial "
        "files were removed and this run goes on with the features in memory; the next run "
        f"builds them again. To keep them on disk, {fix} or choose another cache folder "
        "(--feature-cache DIR, or cache_dir=)"
    )
