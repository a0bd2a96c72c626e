"""Names for the files one command writes into its output folders, each name used once."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

__all__ = ["OutputNames", "same_file_key", "shown_names"]


def same_file_key(name: str) -> str:
    """What two names that one disk may take for one file share: the name in Unicode's
    composed form (NFC) and case-folded. macOS (APFS, HFS+) and Windows (NTFS) disks ignore
    case by default, and macOS also how an accented letter is encoded (``café`` as one
    character or as ``e`` and a combining accent): ``IMG_0001`` and ``img_0001`` are one
    file there.

    Examples
    --------
    >>> same_file_key("IMG_0001.jpeg") == same_file_key("img_0001.jpeg")
    True
    >>> same_file_key("caf\\u00e9") == same_file_key("cafe\\u0301")
    True
    """
    return unicodedata.normalize("NFC", name).casefold()


class OutputNames:
    """Hands out ``FOLDER/STEM_SUFFIX``, numbering a stem that comes again (``STEM_2_SUFFIX``).

    Two inputs of the same name (``a/scan.jpeg``, ``b/scan.jpeg``), an input whose name is
    another's numbered one (``scan_2.png``), or a volume beside an image of its stem: each
    gets its own file, and none overwrites another's output of the same command. Names
    are compared as a macOS or Windows disk compares them (:func:`same_file_key`): names
    that differ only in case or in how an accent is encoded come again too, so the files
    stay apart on those disks.

    Examples
    --------
    >>> names = OutputNames()
    >>> [names.take(Path("cams"), stem, "cam.png").name for stem in ("scan", "scan_2", "scan")]
    ['scan_cam.png', 'scan_2_cam.png', 'scan_3_cam.png']
    >>> [names.take(Path("cams"), stem, "cam.png").name for stem in ("IMG_1", "img_1")]
    ['IMG_1_cam.png', 'img_1_2_cam.png']
    """

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._next: dict[str, int] = {}  # the number to try next for a stem that came again

    def take(self, folder: Path, stem: str, suffix: str) -> Path:
        """A path in ``folder`` that no earlier call returned, nor a path one disk may take
        for the same file; a stem too long for a file name with the suffix (255 bytes) is
        cut and given a short hash of itself, so two long names that share their start stay
        two files."""
        stem = _fitting(stem, suffix)
        target = folder / f"{stem}_{suffix}"
        if same_file_key(str(target)) in self._taken:
            # numbered on from the last number this name took: 20,000 inputs named scan.jpeg
            # (a folder per exam) each try once, not once per earlier one
            key = same_file_key(str(target))
            number = self._next.get(key, 2)
            target = folder / f"{stem}_{number}_{suffix}"
            while same_file_key(str(target)) in self._taken:
                number += 1
                target = folder / f"{stem}_{number}_{suffix}"
            self._next[key] = number + 1
        self._taken.add(same_file_key(str(target)))
        return target


def shown_names(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """How an output (an overlay, a plot) is titled for each input: its file name, or its
    path as given when another input's name is the same (:func:`same_file_key`), so each
    title says which input it shows.

    Examples
    --------
    >>> shown_names(["a/scan.jpeg", "b/SCAN.jpeg", "c/other.png"])
    ['a/scan.jpeg', 'b/SCAN.jpeg', 'other.png']
    """
    keys = [same_file_key(Path(path).name) for path in paths]
    repeated = Counter(keys)
    return [
        Path(path).name if repeated[key] == 1 else os.fspath(path)
        for path, key in zip(paths, keys, strict=True)
    ]


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
