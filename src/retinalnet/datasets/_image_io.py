"""Reading image files with errors that name the file."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

__all__ = ["UnreadableImageError", "load_image"]

_MESSAGE = re.compile(r"cannot read image ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"): ([^\n]*)")


class UnreadableImageError(OSError):
    """An image file could not be opened or decoded.

    Parameters
    ----------
    path
        The file that failed.
    reason
        What went wrong, in a few words. When it is omitted, ``path`` is taken as a whole
        message: torch's DataLoader re-raises a worker's error as ``type(error)(text)``, and
        the path is read back from that text.

    Attributes
    ----------
    path : pathlib.Path or None
        The file that failed, so callers can skip or report it (``None`` only if it could
        not be read back from a worker's message).
    reason : str
        What went wrong.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str | None = None) -> None:
        self.path: Path | None
        if reason is None:
            message = str(path)
            match = _MESSAGE.search(message)
            self.path = Path(ast.literal_eval(match.group(1))) if match else None
            self.reason = match.group(2) if match else message
            super().__init__(message)
            return
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {str(self.path)!r}: {reason}")

    def __reduce__(self) -> tuple[type[UnreadableImageError], tuple[str, str | None]]:
        if self.path is None:
            return (type(self), (str(self), None))
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
