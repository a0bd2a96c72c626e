"""Files of a Kermany-layout folder: which are images, their patients, the class folders."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from retinalnet._core.classes import IMAGE_EXTENSIONS, KERMANY_CLASSES

__all__ = [
    "LAYOUT_HINT",
    "check_root",
    "find_images",
    "is_image_file",
    "iter_image_files",
    "list_class_folders",
    "patient_id_from_name",
]

_KERMANY_NAME = re.compile(r"^[A-Za-z]+-(\d+)-\d+$")
LAYOUT_HINT = "expected ROOT/{train,val,test}/{" + ",".join(KERMANY_CLASSES) + "}/*.jpeg"


def patient_id_from_name(name: str) -> str | None:
    """Return the patient id in a Kermany file name, or ``None``.

    Kermany et al. name each scan ``CLASS-PATIENTID-IMAGENUMBER.jpeg``.

    Parameters
    ----------
    name
        A file name or path; only the final component counts.

    Returns
    -------
    str or None
        The patient id as written (leading zeros kept), or ``None`` when the name does not
        follow the scheme.

    Examples
    --------
    >>> patient_id_from_name("CNV-1016042-1.jpeg")
    '1016042'
    >>> patient_id_from_name("scan_01.png") is None
    True
    """
    stem = Path(name).name.rsplit(".", 1)[0]
    match = _KERMANY_NAME.match(stem)
    return match.group(1) if match else None


def is_image_file(name: str) -> bool:
    """Whether a file name is read as an image (``.jpeg``, ``.jpg``, ``.png``, any case).

    Hidden files (``.DS_Store``, macOS ``._`` resource forks) are never images.
    """
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def iter_image_files(folder: str) -> Iterator[str]:
    """Yield image file paths under ``folder`` (recursively, hidden folders skipped)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                yield from iter_image_files(entry.path)
            elif is_image_file(entry.name):
                yield entry.path


def find_images(folder: str | os.PathLike[str]) -> list[Path]:
    """All image files under ``folder`` (recursively), sorted; hidden files are skipped.

    Examples
    --------
    >>> from retinalnet.datasets import find_images
    >>> paths = find_images("scans/")  # doctest: +SKIP
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is not a folder")
    return sorted(Path(path) for path in iter_image_files(str(root)))


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
        Class name to folder path, for the classes that have a folder.

    Raises
    ------
    ValueError
        If a folder is not a known class, if there are no class folders at all, or if images
        lie directly in ``split_dir`` instead of in class folders.
    """
    split_path = Path(split_dir)
    folders: dict[str, str] = {}
    loose_images: list[str] = []
    with os.scandir(split_path) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if entry.name not in KERMANY_CLASSES:
                    hint = (
                        f" (class names are upper case: rename it to {entry.name.upper()!r})"
                        if entry.name.upper() in KERMANY_CLASSES
                        else ""
                    )
                    raise ValueError(
                        f"class folder {entry.name!r} is not one of {', '.join(KERMANY_CLASSES)} "
                        f"under {str(split_path)!r}{hint}"
                    )
                folders[entry.name] = entry.path
            elif is_image_file(entry.name):
                loose_images.append(entry.name)
    if loose_images:
        raise ValueError(
            f"{len(loose_images)} image(s) lie directly in {str(split_path)!r} "
            f"(e.g. {loose_images[0]!r}); move each into its class folder "
            f"({', '.join(KERMANY_CLASSES)})"
        )
    if not folders:
        raise ValueError(f"no class folders under {str(split_path)!r}; {LAYOUT_HINT}")
    return folders
