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

    Raises
    ------
    ValueError
        If no image is found, naming the paths and the suffixes searched for.
    """
    from retinalnet.datasets import find_images

    images: list[Path] = []
    for path in paths:
        images.extend(find_images(path) if path.is_dir() else [path])
    if not images:
        searched = ", ".join(map(str, paths))
        raise ValueError(f"no images ({image_suffixes()}) found in {searched}")
    return images
