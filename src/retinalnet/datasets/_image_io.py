"""Reading image files with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

__all__ = ["UnreadableImageError", "load_image"]


class UnreadableImageError(OSError):
    """An image file could not be opened or decoded.

    Parameters
    ----------
    path
        The file that failed.
    reason
        What went wrong, in a few words.

    Attributes
    ----------
    path : pathlib.Path
        The file that failed, so callers can skip or report it.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {str(self.path)!r}: {reason}")

    def __reduce__(self) -> tuple[type[UnreadableImageError], tuple[str, str]]:
        # Keeps the path when the error crosses a DataLoader worker boundary.
        return (type(self), (str(self.path), self.reason))


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode an image file.

    The pixels are read immediately (not lazily), so a truncated or corrupt file fails here,
    with its path, rather than later inside a transform.

    Parameters
    ----------
    path
        An image file PIL can read (JPEG and PNG for OCT scans).

    Returns
    -------
    PIL.Image.Image
        The decoded image in its own mode (``"L"`` for Kermany scans).

    Raises
    ------
    UnreadableImageError
        If the file is missing, is not an image, or is truncated or corrupt.

    Examples
    --------
    >>> from retinalnet.datasets import load_image
    >>> image = load_image("CNV-1016042-1.jpeg")  # doctest: +SKIP
    """
    file = Path(path)
    try:
        with Image.open(file) as opened:
            opened.load()
            image: Image.Image = opened.copy()
            return image
    except FileNotFoundError:
        raise UnreadableImageError(file, "no such file") from None
    except IsADirectoryError:
        raise UnreadableImageError(file, "it is a directory, not an image file") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(file, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(file, f"corrupt or truncated ({error})") from None
