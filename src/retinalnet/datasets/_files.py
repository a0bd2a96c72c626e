"""Files of a Kermany-layout folder: which are images, their patients, the class folders."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from operator import attrgetter
from pathlib import Path

from retinalnet._core.classes import IMAGE_EXTENSIONS, KERMANY_CLASSES
from retinalnet._core.folders import nonempty_path
from retinalnet._core.patient_ids import digits_key
from retinalnet.datasets._files_not_read import warn_of_files_not_read
from retinalnet.datasets._folder_names import class_folder_hint
from retinalnet.datasets._linked_files import LinkedFiles
from retinalnet.datasets._system_folders import said, scan_folder, system_folder

__all__ = [
    "LAYOUT_HINT",
    "NAMING_HINT",
    "check_root",
    "class_named_in",
    "find_images",
    "foreign_class_folder",
    "hidden_file",
    "is_image_file",
    "iter_image_files",
    "list_class_folders",
    "patient_id_from_name",
    "patient_key",
    "walk_files",
]

logger = logging.getLogger(__name__)

# CLASS, PATIENT and IMAGE NUMBER separated by "-" or "_"; then nothing, or text that does
# not start with a digit group (" (1)", "-copy", " - Copy"). ASCII digits only: full-width
# digits (U+FF10 to U+FF19) would otherwise make a different patient id from the same number.
_KERMANY_NAME = re.compile(
    r"^(?P<prefix>[A-Za-z]+)[-_](?P<patient>[0-9]+)[-_](?P<number>[0-9]+)"
    r"(?:(?![-_][0-9])[^0-9].*)?$",
    re.ASCII | re.DOTALL,
)
_LEADING_WORD = re.compile(r"^([A-Za-z]+)(?![A-Za-z])", re.ASCII)
LAYOUT_FOLDER = "the folder with train/ val/ test/"
"""What a data root is, for errors (:func:`~retinalnet._core.folders.nonempty_path`)."""
LAYOUT_HINT = "expected ROOT/{train,val,test}/{" + ",".join(KERMANY_CLASSES) + "}/*.jpeg"
NAMING_HINT = (
    "name each file CLASS-PATIENT-N.jpeg (e.g. CNV-4370501-1.jpeg), as in the Kermany download"
)


def _file_name(name: object, function: str) -> str:
    """``name`` as text (a path's final component), or a TypeError naming ``function``."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
        if isinstance(name, str):
            return Path(name).name
    if not isinstance(name, str):
        raise TypeError(
            f"{function} takes a file name (a str or a path), got {type(name).__name__}; "
            "pass e.g. 'CNV-4370501-1.jpeg'"
        )
    return name


def patient_id_from_name(name: str | os.PathLike[str]) -> str | None:
    """Return the patient id in a Kermany file name, or ``None``.

    Kermany et al. name each scan ``CLASS-PATIENTID-IMAGENUMBER.jpeg``. Copies and renamed
    files often drift from that, so the rule is:

    - the class prefix is any word of ASCII letters, in any case (``cnv-...``);
    - the three parts are separated by ``-`` or ``_`` (``CNV_4370501_96.jpeg``);
    - after the image number may come a copy marker that does not start with a digit group
      (``CNV-4370501-7-copy.jpeg``, ``CNV-4370501-7 (1).jpeg``);
    - the patient id is the first group of ASCII digits, kept as written.

    A name with a third group of digits (``CNV-1-2-3.jpeg``) is ambiguous and has no id.

    Parameters
    ----------
    name
        A file name or path; only the final component counts.

    Returns
    -------
    str or None
        The patient id as written (leading zeros kept), or ``None`` when the name does not
        follow the scheme.

    Raises
    ------
    TypeError
        If ``name`` is not a str or a path (``None``, bytes).

    Examples
    --------
    >>> patient_id_from_name("CNV-1016042-1.jpeg")
    '1016042'
    >>> patient_id_from_name("cnv_4370501_96 (1).JPEG")
    '4370501'
    >>> patient_id_from_name("scan_01.png") is None
    True

    .. versionchanged:: 0.2
       Any case, ``_`` separators and trailing copy markers are accepted.
    """
    stem = Path(_file_name(name, "patient_id_from_name")).name.rsplit(".", 1)[0]
    match = _KERMANY_NAME.match(stem)
    return match.group("patient") if match else None


def patient_key(patient: str) -> str:
    """The key under which images count as one patient: an id of ASCII digits without its
    leading zeros, any other id as given.

    ``"0042"`` and ``"42"`` are one patient for :func:`patient_split`, the manifest's and the
    audit's leakage checks, and :func:`~retinalnet.metrics.patient_level` (one rule, in
    ``retinalnet._core.patient_ids``), while ``"0042A"`` is not ``"42A"``.

    Examples
    --------
    >>> patient_key("0042"), patient_key("000"), patient_key("0042A")
    ('42', '0', '0042A')
    """
    return digits_key(patient)


def class_named_in(name: str) -> str | None:
    """The Kermany class a file name starts with (``"DME-123-1.jpeg"`` -> ``"DME"``), if any.

    The leading word of letters is compared in any case and must end at a non-letter:
    ``"normal_2.png"`` names ``NORMAL``, ``"DMEscan.png"`` names no class.

    Parameters
    ----------
    name
        A file name, not a path.

    Examples
    --------
    >>> class_named_in("dme_123_1.jpeg"), class_named_in("scan-1-1.png")
    ('DME', None)
    """
    match = _LEADING_WORD.match(name)
    word = match.group(1).upper() if match else None
    return word if word in KERMANY_CLASSES else None


def foreign_class_folder(subfolders: Iterable[str], class_name: str) -> str | None:
    """The first of ``subfolders`` (inside the ``class_name`` folder) named like another class.

    Compared in any case: ``CNV/dme/`` is a DME folder inside ``CNV``.

    Examples
    --------
    >>> foreign_class_folder(["batch2", "dme"], "CNV"), foreign_class_folder(["CNV"], "CNV")
    ('dme', None)
    """
    for folder in subfolders:
        upper = folder.upper()
        if upper in KERMANY_CLASSES and upper != class_name:
            return folder
    return None


def is_image_file(name: str | os.PathLike[str]) -> bool:
    """Whether a file name is read as an image (``.jpeg``, ``.jpg``, ``.png``, ``.dcm``, any case).

    Hidden files (``.DS_Store``, macOS ``._`` resource forks) are never images. Of a path,
    the final component counts.

    Raises
    ------
    TypeError
        If ``name`` is not a str or a path (``None``, bytes).
    """
    name = _file_name(name, "is_image_file")
    return hidden_file(name) is None and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def hidden_file(name: str) -> str | None:
    """Why a file ``name`` (not a path) is hidden, in words, or ``None`` when it is not:
    a hidden file is never an image (:func:`is_image_file`), so every folder walk leaves it
    out, and so does a manifest's row naming one.

    Examples
    --------
    >>> hidden_file("._CNV-1-1.jpeg")  # doctest: +ELLIPSIS
    "a macOS AppleDouble file: the metadata a Mac writes beside 'CNV-1-1.jpeg' on a disk..."
    >>> hidden_file(".DS_Store"), hidden_file("CNV-1-1.jpeg")
    ('a hidden file', None)

    .. versionadded:: 0.2
    """
    if not name.startswith("."):
        return None
    if name.startswith("._") and len(name) > 2:
        return (
            f"a macOS AppleDouble file: the metadata a Mac writes beside {name[2:]!r} on a "
            "disk that cannot keep it"
        )
    return "a hidden file"


def walk_files(
    folder: str,
    loops: list[str] | None = None,
    skipped: list[str] | None = None,
    *,
    once: LinkedFiles | None = None,
) -> Iterator[os.DirEntry[str]]:
    """Yield the entry of every file under ``folder``, recursively, hidden folders and the
    folders of the system folders (``@eaDir``, ``__MACOSX``, ``#recycle``, ...) skipped.

    Symbolic links (to folders and to images) are decided by the real path they lead to
    (see :mod:`retinalnet.datasets._linked_files`): one that leads back to a folder the
    walk is already inside (a loop), to a folder under ``folder``, or to an image read
    there anyway is skipped, so each image is listed once (one image read twice would
    weigh double in training and could land in two splits); its path is appended to
    ``loops`` (or, when ``loops`` is ``None``, named in a ``RuntimeWarning``). ``once``, the
    links of a whole split (:meth:`LinkedFiles.of_split`), also refuses a link into another
    split's folder and is said by its caller; by default, that of ``folder`` alone. Links
    elsewhere (data on another disk) are followed. The system folders skipped are appended
    to ``skipped`` (or, when it is ``None``, counted in one log line, at INFO level, once
    the walk ends, or once the ``system_folders_said_once`` it runs in ends). Only links
    cost a system call; plain folders and files cost none.

    Raises
    ------
    PermissionError
        If a folder under ``folder`` (or ``folder`` itself) cannot be read, naming it.
    ValueError
        If a link leads into another split's folder (with ``once`` of a split).

    .. versionadded:: 0.2
    """
    found: list[str] = [] if skipped is None else skipped
    links = once if once is not None else LinkedFiles.of_folder(folder, loops)
    started = links.start(folder)
    if started is not None:
        real, linked = started
        yield from _walk(folder, (real,), linked, links, found)
    if once is None:
        links.said()
    if skipped is None:
        said(found, folder)


def _walk(
    folder: str, chain: tuple[str, ...], linked: bool, once: LinkedFiles, skipped: list[str]
) -> Iterator[os.DirEntry[str]]:
    """``chain``: the real paths of ``folder`` and the folders it was reached through;
    ``linked``: whether through a link. Entries are taken in name order, not the file
    system's listing order: of two links to one image, the one kept (and the one said
    skipped) is the same on every disk, and so are the samples and splits built on it."""
    with scan_folder(folder) as listed:
        entries = sorted(listed, key=attrgetter("name"))
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:  # a link to itself (ELOOP): a file that is not an image
            is_dir = False
        if not is_dir:
            if once.lists(entry, chain[-1], linked):
                yield entry
            continue
        if entry.name.startswith("."):
            continue
        if system_folder(entry.name) is not None:
            skipped.append(entry.path)
            continue
        if entry.is_symlink():
            real = os.path.realpath(entry.path)
            if once.follows(entry.path, real, chain):
                yield from _walk(entry.path, (*chain, real), True, once, skipped)
        else:
            real = os.path.join(chain[-1], entry.name)  # noqa: PTH118 - no Path per folder
            yield from _walk(entry.path, (*chain, real), linked, once, skipped)


_SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "icon\r"})
"""Files an operating system leaves in folders (Windows' thumbnail cache and folder settings,
macOS' folder icon), in lower case: never scans."""


def iter_image_files(
    folder: str,
    others: list[str] | None = None,
    skipped: list[str] | None = None,
    *,
    once: LinkedFiles | None = None,
) -> Iterator[str]:
    """Yield image file paths under ``folder`` (recursively, hidden files and folders and
    the system folders skipped; a link to a file or folder read anyway, or that loops
    back, is skipped with a warning: see :func:`walk_files`, which ``once`` is passed to).

    ``others``, when given, gets the path of every other file found (not hidden, not an
    operating system's ``Thumbs.db`` or ``desktop.ini``): files that are left out.
    ``skipped``, when given, gets the system folders left out; when ``None``, they are
    counted in a log line (see :func:`walk_files`)."""
    for entry in walk_files(folder, skipped=skipped, once=once):
        if is_image_file(entry.name):
            yield entry.path
        elif others is not None and not (
            entry.name.startswith(".") or entry.name.lower() in _SYSTEM_FILES
        ):
            others.append(entry.path)


def find_images(folder: str | os.PathLike[str]) -> list[Path]:
    """All image files under ``folder`` (recursively), sorted; hidden files are skipped.

    Other files are left out; those that may be scans in another format (``.jfif``,
    ``.jp2``, DICOM without the ``.dcm`` suffix, an OCT device's ``.e2e``) with one warning
    that counts them by suffix and names one.

    Examples
    --------
    >>> from retinalnet.datasets import find_images
    >>> paths = find_images("scans/")  # doctest: +SKIP
    """
    root = nonempty_path(folder, name="folder", what="the folder to search")
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is not a folder")
    others: list[str] = []
    images = sorted(Path(path) for path in iter_image_files(str(root), others))
    warn_of_files_not_read(others, str(root))
    return images


def check_root(root: Path) -> None:
    if not root.exists():
        raise FileNotFoundError(
            f"data root {str(root)!r} does not exist; {LAYOUT_HINT} "
            "(download OCT2017 or write a synthetic set with make_synthetic_kermany)"
        )
    if not root.is_dir():
        raise NotADirectoryError(f"data root {str(root)!r} is a file, not a folder; {LAYOUT_HINT}")


def list_class_folders(split_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Map each class name to its folder inside one split folder.

    Parameters
    ----------
    split_dir
        A folder such as ``OCT2017/train``.

    Returns
    -------
    dict of str to str
        Class name to folder path, for the classes that have a folder. Hidden folders and
        those of the system folders (``__MACOSX``, ``@eaDir``, ...) are left out, the
        latter said in a log line.

    Raises
    ------
    ValueError
        If a folder is not a known class, if there are no class folders at all, or if images
        lie directly in ``split_dir`` instead of in class folders.
    PermissionError
        If ``split_dir`` cannot be read, naming it.
    """
    split_path = Path(split_dir)
    folders: dict[str, str] = {}
    unknown: list[str] = []
    loose_images: list[str] = []
    skipped: list[str] = []
    with scan_folder(split_path) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if system_folder(entry.name) is not None:
                    skipped.append(entry.path)
                elif entry.name not in KERMANY_CLASSES:
                    unknown.append(entry.name)
                else:
                    folders[entry.name] = entry.path
            elif is_image_file(entry.name):
                loose_images.append(entry.name)
    if unknown:  # named once all are known: 'NORMAL copy' beside 'NORMAL' is not renamed
        raise ValueError(
            f"class folder {unknown[0]!r} is not one of {', '.join(KERMANY_CLASSES)} "
            f"under {str(split_path)!r}: {class_folder_hint(unknown[0], folders)}"
        )
    if loose_images:
        raise ValueError(
            f"{len(loose_images)} image(s) lie directly in {str(split_path)!r} "
            f"(e.g. {loose_images[0]!r}); move each into its class folder "
            f"({', '.join(KERMANY_CLASSES)})"
        )
    said(skipped, str(split_path))
    if not folders:
        raise ValueError(f"no class folders under {str(split_path)!r}; {LAYOUT_HINT}")
    return folders
