"""The image files a command line names: files as given, folders searched for images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["image_paths", "image_suffixes"]


def image_suffixes() -> str:
    """The suffixes folders are searched for, for help texts and errors (``.bmp, .dcm, ...``)."""
    from retinalnet._core.classes import IMAGE_EXTENSIONS

    return ", ".join(sorted(IMAGE_EXTENSIONS))


def image_paths(paths: Sequence[Path]) -> list[Path]:
    """Every image the paths name: a file as it is, a folder's image files (recursively).

    A file named that is plainly not an image (a ``README.md``, notes, a table or a PDF a
    shell glob such as ``scans/*`` picked up beside the scans) is left out with one warning
    naming it; a file that may hold a scan (an image suffix, another raster or OCT format,
    DICOM without a suffix) is kept, and read or refused by name.

    Warns
    -----
    UserWarning
        Naming the files left out.

    Raises
    ------
    ValueError
        If no image is found, naming the paths and the suffixes searched for.
    """
    from retinalnet._core.caller_warnings import warn_caller
    from retinalnet.datasets import find_images, is_image_file
    from retinalnet.datasets._files import looks_like_a_scan

    images: list[Path] = []
    not_images: list[Path] = []
    for path in paths:
        if path.is_dir():
            images.extend(find_images(path))
        elif path.is_file() and not is_image_file(path.name) and not looks_like_a_scan(str(path)):
            not_images.append(path)
        else:
            images.append(path)
    if not_images:
        named = ", ".join(repr(str(path)) for path in not_images[:3])
        more = f" and {len(not_images) - 3} more" if len(not_images) > 3 else ""
        warn_caller(
            f"left out {len(not_images)} file(s) that are not images: {named}{more} "
            f"(images: {image_suffixes()})",
            UserWarning,
        )
    if not images:
        searched = ", ".join(map(str, paths))
        raise ValueError(f"no images ({image_suffixes()}) found in {searched}")
    return images
