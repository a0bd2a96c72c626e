"""Folder names in messages: the name a copy was made from (``NORMAL copy``,
``DME - Copy``), a name with a space at an end shown quoted, and the hint for a folder in a
split that is not a Kermany class, which every door gives (:class:`KermanyOCT` through
:func:`~retinalnet.datasets._files.list_class_folders`, and :func:`audit`'s report)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection

from retinalnet._core.classes import KERMANY_CLASSES
from retinalnet._core.printable import one_line
from retinalnet.datasets._system_folders import system_folder

__all__ = ["class_folder_hint", "copied_name", "shown_name"]

_COPY_OF = re.compile(r"^copy\s+of\s+", re.IGNORECASE)
"""Windows' older name for a copy: ``Copy of NORMAL``."""
_COPY_SUFFIX = re.compile(
    r"(?:(?:\s*[-_]\s*|\s+)copy(?:\s*\(\d+\)|\s+\d+)?|\s*\(\d+\)|\s+\d+)$", re.IGNORECASE
)
"""What a copy's name ends with: macOS Finder's `` copy`` (`` copy 2``), Windows Explorer's
`` - Copy`` (`` - Copy (2)``), a download's or a sync's `` (1)``, and `` 2``."""


def copied_name(name: str) -> tuple[str, bool]:
    """The name a copy's ``name`` was made from, without spaces at its ends, and whether
    ``name`` is a copy's (its copy suffix or prefix taken out).

    Examples
    --------
    >>> copied_name("NORMAL copy"), copied_name("DME - Copy (2)"), copied_name("CNV (1)")
    (('NORMAL', True), ('DME', True), ('CNV', True))
    >>> copied_name("DRUSEN 2"), copied_name("DRUSEN "), copied_name("CNVV")
    (('DRUSEN', True), ('DRUSEN', False), ('CNVV', False))
    """
    base = name.strip()
    while True:
        shorter = _COPY_SUFFIX.sub("", _COPY_OF.sub("", base)).strip()
        if shorter == base or not shorter:
            return base, base != name.strip()
        base = shorter


def shown_name(name: str) -> str:
    """A file or folder name as a message shows it: quoted when spaces at its ends
    (``'OCT2017 '``) or a control character would otherwise be lost, else as it is."""
    return repr(name) if name != name.strip() else one_line(name)


def _spaces(name: str) -> str | None:
    """Which end of ``name`` has a space, in words (``None``: neither)."""
    begins, ends = name != name.lstrip(), name != name.rstrip()
    if begins and ends:
        return "its name begins and ends with a space"
    if begins or ends:
        return f"its name {'begins' if begins else 'ends'} with a space"
    return None


def class_folder_hint(name: str, beside: Collection[str] = ()) -> str:
    """How to fix a folder ``name`` that is not a Kermany class, among the folders
    ``beside`` it (its split's): the class it is likely meant to be, or, for another class
    (``AMD``), where such a data set is read (never the Kermany class folders, where its
    scans would be mislabelled).

    A copy's name (``NORMAL copy``, ``DME - Copy``, ``CNV (1)``, ``DRUSEN 2``), a name with
    a space at an end (``'DRUSEN '`` from a zip) or in another case (``cnv``) means its
    class. When that class's folder is ``beside`` it, the folder is a second one of the
    class (a copy, or two copies merged): the hint says to remove it, or to move in the
    images not already there, never to rename it, as a rename onto the existing folder
    puts it inside that folder, and each image in both would be read twice.

    Every door names an unknown class folder with this hint: :class:`KermanyOCT` (and
    through it :func:`count_images` and the commands) and :func:`audit`'s report.

    Examples
    --------
    >>> class_folder_hint("cnv")
    "rename it to 'CNV' (class names are upper case)"
    >>> class_folder_hint("CNVV")
    "rename it to 'CNV' if it holds CNV scans"
    >>> class_folder_hint("DRUSEN ")
    "rename it to 'DRUSEN' (its name ends with a space)"
    >>> class_folder_hint("NORMAL copy", ["CNV", "NORMAL", "NORMAL copy"])  # doctest: +ELLIPSIS
    "it looks like a copy of the 'NORMAL' folder beside it: remove it, or move into 'NORMAL'..."
    >>> class_folder_hint("__MACOSX")
    "it is macOS's metadata from a zip file, not scans: it is left out (delete it if you like)"
    >>> class_folder_hint("AMD").startswith("KermanyOCT and retinalnet's commands read only")
    True

    .. versionchanged:: 0.2
       ``beside``: a folder like a class whose folder is beside it is never told to be
       renamed onto it; copy names and spaces at the ends are recognised.
    """
    system = system_folder(name)
    if system is not None:
        return f"it is {system}, not scans: it is left out (delete it if you like)"
    base, copy = copied_name(name)
    meant = base.upper() if base.upper() in KERMANY_CLASSES else None
    if meant is None:
        close = difflib.get_close_matches(base.upper(), KERMANY_CLASSES, n=1, cutoff=0.6)
        if not close:
            return (
                "KermanyOCT and retinalnet's commands read only the Kermany classes (some of "
                "them with classes=, --classes on the command line): a data set of other "
                "classes is trained and evaluated in Python (torchvision's ImageFolder, "
                "create_model(arch, classes=...), retinalnet.training.evaluate); otherwise "
                "move the folder out of the data root (scans of Kermany classes: each into "
                "its class's folder)"
            )
        near = close[0]
        if near in beside:
            return (
                f"its name is like that of the {near!r} folder beside it: if it holds {near} "
                f"scans, move into {near!r} those not already there and remove it (not the "
                "folder itself: inside it, each image in both would be read twice)"
            )
        return f"rename it to {near!r} if it holds {near} scans"
    case = None
    if base != meant and not copy:
        case = "its name is in another case" if meant in beside else "class names are upper case"
    notes = [note for note in (_spaces(name), case) if note is not None]
    why = f" ({', and '.join(notes)})" if notes else ""
    if meant in beside:
        return (
            f"it looks like a copy of the {meant!r} folder beside it{why}: remove it, or move "
            f"into {meant!r} the images not already there (not the folder itself: inside it, "
            "each image in both would be read twice)"
        )
    if copy:
        return (
            f"it looks like a copy of a {meant!r} folder{why}, and there is none: rename it "
            f"to {meant!r} if it holds {meant} scans"
        )
    return f"rename it to {meant!r}{why}"
