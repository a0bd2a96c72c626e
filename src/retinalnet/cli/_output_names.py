"""Names for the files one command writes into its output folders, each name used once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["OutputNames"]


class OutputNames:
    """Hands out ``FOLDER/STEM_SUFFIX``, numbering a stem that comes again (``STEM_2_SUFFIX``).

    Two inputs of the same name (``a/scan.jpeg``, ``b/scan.jpeg``), an input whose name is
    another's numbered one (``scan_2.png``), or a volume beside an image of its stem: each
    gets its own file, and none overwrites another's output of the same command.

    Examples
    --------
    >>> names = OutputNames()
    >>> [names.take(Path("cams"), stem, "cam.png").name for stem in ("scan", "scan_2", "scan")]
    ['scan_cam.png', 'scan_2_cam.png', 'scan_3_cam.png']
    """

    def __init__(self) -> None:
        self._taken: set[Path] = set()

    def take(self, folder: Path, stem: str, suffix: str) -> Path:
        """A path in ``folder`` no earlier call returned; a stem too long for a file name
        with the suffix (255 bytes) is cut and given a short hash of itself, so two long
        names that share their start stay two files."""
        stem = _fitting(stem, suffix)
        target, number = folder / f"{stem}_{suffix}", 2
        while target in self._taken:
            target, number = folder / f"{stem}_{number}_{suffix}", number + 1
        self._taken.add(target)
        return target


_NAME_BYTES = 255  # the longest file name of common file systems (ext4, APFS, NTFS in UTF-16)
_ROOM = 16  # for "_N_" numbering of a stem that comes again


def _fitting(stem: str, suffix: str) -> str:
    """``stem``, or its start and 8 hex digits of its SHA-1 when ``STEM_SUFFIX`` (with room
    for numbering) would be longer than a file name may be."""
    limit = _NAME_BYTES - len(os.fsencode(suffix)) - _ROOM
    encoded = os.fsencode(stem)
    if len(encoded) <= limit:
        return stem
    tag = hashlib.sha1(encoded).hexdigest()[:8]
    start = stem
    while len(os.fsencode(start)) > limit - len(tag) - 1:  # whole characters only
        start = start[:-1]
    return f"{start.rstrip()}-{tag}"
