"""``--images-from FOLDER`` of the benchmark scripts: the image files under a folder, or one
line that says why there are none.

A missing folder, a file given for a folder and a folder without images all end the script
with one line (``sys.exit``) naming the value and the fix, before it times anything: a rate of
zero images divides by zero, and a traceback says less than the line.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from pathlib import Path

from retinalnet.datasets import find_images

__all__ = ["JPEG_SUFFIXES", "images_in_folder"]

JPEG_SUFFIXES = frozenset({".jpeg", ".jpg"})
"""The suffixes of JPEG files, lower case: what the decoding benchmarks time."""

EXAMPLE = "../shared/data/kermany-sample"


def images_in_folder(
    folder: str | Path,
    *,
    option: str = "--images-from",
    suffixes: Collection[str] | None = None,
    what: str = "image files",
) -> list[Path]:
    """The image files under ``folder`` (recursively, sorted), as ``find_images`` finds them.

    Parameters
    ----------
    folder
        The folder the command line gave.
    option
        The option that gave it, for the message.
    suffixes
        Keep only files with these suffixes (lower case; a file's suffix is compared in lower
        case). ``None``: every image file.
    what
        What the files are, for the message (``"JPEG files (.jpeg, .jpg)"``).

    Returns
    -------
    list of Path
        At least one file.

    Raises
    ------
    SystemExit
        With one line when ``folder`` is not a folder or holds no such file.
    """
    root = Path(folder)
    if not root.is_dir():
        state = "does not exist" if not root.exists() else "is a file, not a folder"
        sys.exit(f"{option} {str(folder)!r} {state}; pass a folder of {what} (e.g. {EXAMPLE})")
    paths = find_images(root)
    if suffixes is not None:
        paths = [path for path in paths if path.suffix.lower() in suffixes]
    if not paths:
        sys.exit(
            f"no {what} under {str(folder)!r} ({option}): there is nothing to time; pass a "
            f"folder that holds some (e.g. {EXAMPLE})"
        )
    return paths
