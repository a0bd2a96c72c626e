"""The files a manifest's rows name under a data root: one image listed by two paths (also
through a link), rows that name no file, or a file the folder walks never read (in a system
folder, or hidden), and rows labelled another class than their folder or file name.

:func:`~retinalnet.datasets.read_manifest` checks what a manifest says on its own;
these checks need the root its relative paths start from, which
:meth:`~retinalnet.datasets.KermanyOCT.from_manifest` knows.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.classes import KERMANY_CLASSES
from retinalnet._core.utf_8_names import named_here
from retinalnet.datasets._files import class_named_in, hidden_file
from retinalnet.datasets._linked_files import real_path
from retinalnet.datasets._manifest import ManifestRow, check_no_file_twice
from retinalnet.datasets._misnamed import warn_misnamed
from retinalnet.datasets._system_folders import system_folder, system_folder_among

logger = logging.getLogger(__name__)

# the folders of the data root whose files a split must not read: a test image trained on
# (or a training image scored) makes the test score say nothing of new patients
__all__ = [
    "check_no_file_twice_under",
    "leave_out_rows_never_read",
    "log_rows_outside_root",
    "parts_under",
    "refuse_rows_all_left_out",
    "rows_with_files",
    "same_file",
    "warn_of_mislabelled_rows",
]


def same_file(base: Path) -> Callable[[str], str]:
    """What the paths of one file under ``base`` have in common, each path resolved by
    :func:`_existing`, as :func:`rows_with_files` reads it (``\\`` read as ``/``, spaces
    around, the other Unicode normal form, a ``LANG=C`` name).

    A path that names a file gives the file's identity on its file system (device and
    inode, links followed): a link, a path through a linked folder, an absolute path and
    any spelling the file system takes for the file's name (macOS ignores the normal form,
    macOS and Windows the case) are one file, while two files whose names differ only in
    normal form (both possible on Linux) are two. A file with hard links adds its real
    path (in NFC), as the folder walks list each of its names as an image of its own. A
    path that names no file (or a broken link) gives the absolute path as written (the
    link's target), in NFC. Two ``lstat`` and one ``stat`` a row found (more for one not
    found), and one :func:`os.path.realpath` a folder.
    """
    root = os.path.abspath(base)  # noqa: PTH100 - no system call, unlike Path.resolve
    real_folders: dict[str, str] = {}

    def key(path: str) -> str:
        found = _existing(base, path)
        if found is None:
            written = unicodedata.normalize("NFC", path.strip())
            joined = os.path.normpath(os.path.join(root, written))  # noqa: PTH118
        else:
            joined = real_path(os.path.join(root, found), real_folders)  # noqa: PTH118
            try:
                status = os.stat(joined)  # noqa: PTH116 - no Path a row
            except OSError:  # a broken link: its target as written
                status = None
            if status is not None and status.st_ino:  # 0: a file system without inodes
                identity = f"\0{status.st_dev}:{status.st_ino}"  # no path holds a NUL
                if status.st_nlink <= 1:
                    return identity
                return f"{identity}\0{unicodedata.normalize('NFC', os.path.normcase(joined))}"
        return unicodedata.normalize("NFC", os.path.normcase(joined))

    return key


def check_no_file_twice_under(rows: Sequence[ManifestRow], base: Path, source: str) -> None:
    """Refuse one file listed twice under ``base``, also by a relative and an absolute path
    (``train/CNV/x.jpeg`` and ``/data/OCT2017/train/CNV/x.jpeg``) or through a linked folder
    (``link_to_train/CNV/x.jpeg``), in the words of
    :func:`~retinalnet.datasets._manifest.check_no_file_twice`."""
    check_no_file_twice(rows, source, key=same_file(base))


def _never_read(row: ManifestRow, base: Path) -> tuple[str, str | None] | None:
    """Why the folder walks never read the file of ``row`` as a scan, and the system
    folder it lies in: ``("@eaDir: a Synology NAS's ...", "@eaDir")`` for a file in a
    system folder between ``base`` and the file (any of its folders, for an absolute path
    elsewhere), ``("a macOS AppleDouble file, ...", None)`` for a hidden file (as
    :func:`~retinalnet.datasets.is_image_file` names them); else ``None``."""
    parts = parts_under(base, row.path)
    folder = system_folder_among(parts[:-1])
    if folder is not None:
        return f"{folder}: {system_folder(folder)}", folder
    hidden = hidden_file(parts[-1].strip()) if parts else None
    return None if hidden is None else (hidden, None)


def _files_named(in_folders: bool, hidden: bool) -> str:
    """The files some rows name, in words: ``"files in system folders"``, ``"hidden
    files"``, or both."""
    if in_folders and hidden:
        return "hidden files or files in system folders"
    return "files in system folders" if in_folders else "hidden files"


def refuse_rows_all_left_out(rows: Sequence[ManifestRow], base: Path, source: str) -> None:
    """Refuse ``rows`` (a manifest's, or a split's) when every one names a file the folder
    walks never read: one in a system folder between ``base`` and the file (any of its
    folders, for an absolute path elsewhere) or a hidden file (a macOS ``._`` AppleDouble
    file). Each would be left out (:func:`leave_out_rows_never_read`), and nothing read.

    Raises
    ------
    ValueError
        Counting the rows, naming one and why it is left out, with the fix: the data's
        folder inside the system folder as root (data restored into a ``.snapshot`` and
        listed by absolute paths), or the manifest written again.
    """
    first: tuple[ManifestRow, str, str | None] | None = None
    kinds: set[bool] = set()
    for row in rows:
        never = _never_read(row, base)
        if never is None:
            return
        first = first or (row, *never)
        kinds.add(never[1] is not None)
    if first is None:
        return
    row, why, folder = first
    inside = _data_folder_inside(row, folder) if folder is not None else None
    fix = (
        f"if the data was restored there, pass its folder as root (CLI: --data {inside!r}), "
        "as only the folders below the root count; else write the manifest again with "
        "`retinalnet split`"
        if inside is not None
        else "write the manifest again with `retinalnet split`, which leaves them out"
    )
    raise ValueError(
        f"{source}: its {len(rows)} row(s) all name {_files_named(True in kinds, False in kinds)}"
        f", e.g. {row.path!r} ({why}), which hold no scans and are left out, so no image would "
        f"be read; {fix}"
    )


def leave_out_rows_never_read(
    rows: Sequence[ManifestRow], base: Path, source: str
) -> list[ManifestRow]:
    """``rows`` without those whose file the folder walks never read as a scan, with one
    warning counting them and naming one: a file in a system folder (``@eaDir``,
    ``#recycle``, ...; a manifest written before
    :func:`~retinalnet.datasets.patient_split` left them out lists a NAS's thumbnails as
    scans), or a hidden file (a macOS ``._`` AppleDouble file, which ``find -name
    '*.jpeg'`` and ``Path.rglob`` list beside each scan copied from a Mac to an exFAT or
    network disk). Only the folders between ``base`` and the file count: a root restored
    into ``#snapshot/`` is read."""
    kept: list[ManifestRow] = []
    left_out: list[tuple[ManifestRow, str, str | None]] = []
    for row in rows:
        never = _never_read(row, base)
        if never is None:
            kept.append(row)
        else:
            left_out.append((row, *never))
    if left_out:
        row, why, _ = left_out[0]
        in_folders = any(folder is not None for _, _, folder in left_out)
        hidden = any(folder is None for _, _, folder in left_out)
        whose = {
            (True, False): "whose file lies in a system folder",
            (False, True): "that name a hidden file",
            (True, True): "whose file lies in a system folder or is hidden",
        }[in_folders, hidden]
        held = {
            (True, False): "such folders hold thumbnails, metadata, deleted files or snapshots, "
            "never scans",
            (False, True): "hidden files are never scans",
            (True, True): "such folders and hidden files never hold scans",
        }[in_folders, hidden]
        warn_caller(
            f"left out {len(left_out)} row(s) of {source} {whose}, e.g. {row.path!r} ({why}): "
            f"{held}, and the folder walks leave them out; run `retinalnet split` "
            "again to write the manifest without them",
            UserWarning,
        )
    return kept


def _data_folder_inside(row: ManifestRow, folder: str) -> str | None:
    """The data root inside the system folder ``folder`` an absolute row's file lies in: the
    folder above the last one named like the row's split (``/mnt/.snapshot/daily/OCT2017``
    for ``/mnt/.snapshot/daily/OCT2017/train/CNV/x.jpeg``); else ``None``."""
    path = Path(row.path)
    if not path.is_absolute():
        return None
    parts = path.parts
    after = len(parts) - 1 - parts[::-1].index(folder)
    named = [index for index in range(after + 1, len(parts) - 1) if parts[index] == row.split]
    return str(Path(*parts[: named[-1]])) if named else None


def _existing(base: Path, path: str) -> str | None:
    """``path`` when it names a file (or a link, broken or not) under ``base``; else the
    same path without surrounding spaces, in the other Unicode normal form (a name copied
    from macOS is NFD, one typed elsewhere NFC), as its UTF-8 bytes are named under this
    file-system encoding (:func:`~retinalnet._core.utf_8_names.named_here`), or with each
    ``\\`` read as ``/`` (a manifest edited on Windows), that does; else ``None``. A name
    with a ``\\`` in it (from a Windows zip unpacked here) is found as it is written."""
    if os.path.lexists(os.path.join(base, path)):  # noqa: PTH118 - the common case, no Path
        return path
    stripped = path.strip()
    spellings = [path, stripped]
    spellings += [
        unicodedata.normalize(form, p) for p in (path, stripped) for form in ("NFC", "NFD")
    ]
    spellings += [named_here(spelling) for spelling in spellings]
    if os.sep == "/":
        spellings += [spelling.replace("\\", "/") for spelling in spellings if "\\" in spelling]
    for spelling in dict.fromkeys(spellings):
        if os.path.lexists(base / spelling):
            return spelling
    return None


def rows_with_files(
    rows: Sequence[ManifestRow], base: Path, source: str, *, skip: bool
) -> list[ManifestRow]:
    """``rows`` with the file each names under ``base`` (one ``lstat`` each).

    A path with spaces around it, or in the other Unicode normal form than the file's
    name, names the file (as labels are read without spaces, and as macOS finds it). A
    broken symbolic link is kept, as the folders keep it: reading it fails, naming the
    link. Rows that name no file are refused, counted in one line, unless ``skip``
    (``on_error="skip"``): then they are left out with one warning counting them, and
    refused only when they are more than half of ``rows`` (a wrong root, most likely).

    Raises
    ------
    FileNotFoundError
        If a row names no file (without ``skip``), or more than half do.
    """
    kept: list[ManifestRow] = []
    missing: list[ManifestRow] = []
    for row in rows:
        found = _existing(base, row.path)
        if found is None:
            missing.append(row)
        else:
            kept.append(row if found == row.path else replace(row, path=found))
    if not missing:
        return kept
    example = missing[0].path
    spaces = " (the path begins or ends in a space)" if example != example.strip() else ""
    said = (
        f"{len(missing)} of {len(rows)} row(s) of {source} name no file under {str(base)!r} "
        f"(e.g. {example!r}{spaces}); relative paths start at {str(base)!r}, absolute ones "
        "are used as they are"
    )
    if 2 * len(missing) > len(rows):
        raise FileNotFoundError(
            f"{said}: pass the folder the manifest's paths start from as root (CLI: --data), "
            "or write the manifest again with `retinalnet split`"
        )
    if not skip:  # a report on fewer images than asked for is the user's choice to make
        raise FileNotFoundError(
            f"{said}: restore the files, write the manifest again with `retinalnet split`, "
            "or pass on_error='skip' to leave them out"
        )
    warn_caller(
        f"{said}: they are left out; restore the files, or write the manifest again with "
        "`retinalnet split`",
        UserWarning,
    )
    return kept


def parts_under(base: Path, path: str) -> tuple[str, ...]:
    """The folders and name of a manifest row's ``path`` below ``base`` (all of them for an
    absolute path elsewhere): the folders that say what its file is."""
    if os.sep == "/" and "\\" in path:  # a `\` separates folders unless the name has it
        path = _existing(base, path) or path.replace("\\", "/")
    try:
        return (base / path).relative_to(base).parts
    except ValueError:  # an absolute path elsewhere: all its folders
        return Path(path).parts


def _named_otherwise(row: ManifestRow, base: Path) -> str | None:
    """The class the row's folder (the nearest named like a class, in any case: ``dme`` is
    DME, as the folder walks read a folder inside a class folder) or file name gives, when
    it is not the row's label: ``"CNV by its folder"``."""
    parts = parts_under(base, row.path)
    folder = next(
        (part.upper() for part in reversed(parts[:-1]) if part.upper() in KERMANY_CLASSES), None
    )
    named = class_named_in(parts[-1]) if parts else None
    by = [
        (name, where)
        for name, where in ((folder, "folder"), (named, "file name"))
        if name not in (None, row.label)
    ]
    if not by:
        return None
    if len(by) == 2 and by[0][0] == by[1][0]:
        return f"{by[0][0]} by its folder and file name"
    return f"{by[0][0]} by its {by[0][1]}"


def warn_of_mislabelled_rows(rows: Sequence[ManifestRow], base: Path, source: str) -> None:
    """Warn once, counting them and naming one, of the rows labelled another class than
    their folder or file name gives (a column sorted or shifted on its own in a
    spreadsheet): the words the folders warn of a misnamed file in."""
    mislabelled = [
        (row, named) for row in rows if (named := _named_otherwise(row, base)) is not None
    ]
    if mislabelled:
        row, named = mislabelled[0]
        counted = f"{len(mislabelled)} row(s) of {source}"
        warn_misnamed(counted, row.path, named, row.label, door="manifest")


def log_rows_outside_root(rows: Sequence[ManifestRow], base: Path, source: str) -> None:
    """Log once, counted with one example, the rows whose files (links followed) lie outside
    ``base`` (absolute paths, ``../``): they are read as listed, as absolute paths are.

    A row may name a file in another split's folder (``test`` rows from ``train/`` in a
    pooled, patient-aware re-split of all the images): the manifest is the split. What a
    model trained on a manifest must not be scored on, the images of its ``train`` rows, is
    checked where a checkpoint meets its evaluation data
    (:mod:`retinalnet.cli._trained_on`).
    """
    real_base = os.path.realpath(base)
    real_folders: dict[str, str] = {}  # one realpath a folder, one lstat a row
    outside: list[ManifestRow] = []
    for row in rows:
        real = real_path(os.path.join(base, row.path), real_folders)  # noqa: PTH118
        if not (real == real_base or real.startswith(real_base.rstrip(os.sep) + os.sep)):
            outside.append(row)
    if outside:
        logger.info(
            "%s: %d row(s) name files outside the data root %r (e.g. %r): read as listed",
            source,
            len(outside),
            str(base),
            outside[0].path,
        )
