"""The image files a command line names: files as given, folders searched for images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["image_paths", "image_suffixes"]


def image_suffixes() -> str:
    """The suffixes folders are searched for, for help texts and errors (``.bmp, .dcm, ...``)."""
    from retinalnet._core.classes import IMAGE_EXTENSIONS

    return ", ".join(sorted(IMAGE_EXTENSIONS))


_METADATA_FOLDERS = ("@eadir", "__macosx", ".@__thumb", ".appledouble")
"""System folders that hold no file of the user's (a NAS's thumbnails, a zip's metadata),
unlike recycle bins and snapshots, whose files a user may name to score."""


def _system_folder_of(path: Path) -> str | None:
    """What ``path`` is when it is a system folder (a shell glob ``scans/*`` picks up a NAS's
    ``@eaDir``), or a file in a metadata folder (``find`` lists ``@eaDir/x.jpeg/
    SYNOFILE_THUMB_M.jpg``); ``None`` otherwise. The folders above a file named are not
    looked at (a scan restored from ``#snapshot/...`` is the user's)."""
    from retinalnet.datasets._system_folders import system_folder

    if system_folder(path.name) is not None and path.is_dir():
        return system_folder(path.name)
    for folder in (path.parent.name, path.parent.parent.name):
        if folder.lower() in _METADATA_FOLDERS:
            return system_folder(folder)
    return None


def _warn_left_out(paths: Sequence[Path], what: str, note: str) -> None:
    """One warning that the ``paths`` (``what`` they are) were left out, naming three, with
    ``note`` in parentheses; nothing when there are none."""
    if not paths:
        return
    from retinalnet._core.caller_warnings import warn_caller

    named = ", ".join(repr(str(path)) for path in paths[:3])
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    warn_caller(f"left out {len(paths)} {what}: {named}{more} ({note})", UserWarning)


def image_paths(paths: Sequence[Path]) -> list[Path]:
    """Every image the paths name: a file as it is, a folder's image files (recursively).

    A file named that is plainly not an image (a ``README.md``, notes, a table or a PDF a
    shell glob such as ``scans/*`` picked up beside the scans, a macOS ``._`` AppleDouble
    file that ``find ... | xargs`` picked up) is left out with one warning naming it; a file
    that may hold a scan (an image suffix, another raster or OCT format, or whatever its name
    the first bytes of an image: DICOM named by its UID or ``.bin``, see
    :func:`~retinalnet.datasets._files_not_read.looks_like_a_scan`) is kept, and read or
    refused by name. A system folder named (a NAS's ``@eaDir``
    thumbnails, ``__MACOSX``, a recycle bin: see
    :data:`~retinalnet.datasets._system_folders.SYSTEM_FOLDERS`), or a file in a NAS's thumbnail
    folder or a zip's ``__MACOSX``, is left out with one warning too, as a folder search
    leaves them out.

    Warns
    -----
    UserWarning
        Naming the files (and system folders) left out.

    Raises
    ------
    ValueError
        If no image is found, naming the paths and the suffixes searched for.
    """
    from retinalnet.datasets import find_images, is_image_file
    from retinalnet.datasets._files_not_read import looks_like_a_scan

    images: list[Path] = []
    not_images: list[Path] = []
    in_system_folders: list[tuple[Path, str]] = []
    for path in paths:
        system = _system_folder_of(path)
        if system is not None:
            in_system_folders.append((path, system))
        elif path.is_dir():
            images.extend(find_images(path))
        elif path.is_file() and not is_image_file(path.name) and not looks_like_a_scan(str(path)):
            not_images.append(path)
        else:
            images.append(path)
    _warn_left_out(not_images, "file(s) that are not images", f"images: {image_suffixes()}")
    if in_system_folders:
        _warn_left_out(
            [path for path, _ in in_system_folders],
            "path(s) in system folders, which hold no scans",
            in_system_folders[0][1],
        )
    if not images:
        searched = ", ".join(map(str, paths))
        raise ValueError(f"no images ({image_suffixes()}) found in {searched}")
    return images
