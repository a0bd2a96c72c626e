"""File names as text that can be shown: in an HTML page, a figure's title, a CSV.

Python gives a file name that is not valid UTF-8 (a Latin-1 ``café.jpeg`` from an old zip)
as a string with lone surrogates (``'caf\\udce9.jpeg'``). Such a string cannot be encoded
as UTF-8 nor drawn by matplotlib, so a report, a CSV or an overlay that names the file
failed after all the work. :func:`printable` shows the name with U+FFFD for the bytes that
are not text; :func:`save_figure` makes every text of a figure printable before it is
drawn, and keeps glyphs the font lacks (Chinese file names) from warning once per
character.
"""

from __future__ import annotations

import math
import numbers
import os
import unicodedata
import warnings
from pathlib import Path
from typing import IO, Any

from retinalnet._core.warning_filters import catch_warnings_locked

__all__ = ["check_dpi", "one_line", "printable", "save_figure"]

# formats drawn as pixels by Agg, which refuses an image of 2**16 pixels or more on a side
_RASTER_FORMATS = frozenset({"png", "jpg", "jpeg", "tif", "tiff", "webp", "raw", "rgba", "gif"})
_MAX_PIXELS = 2**16


def printable(text: str) -> str:
    """``text`` with each byte of a file name that is not UTF-8 shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def one_line(name: str) -> str:
    """``name`` as it is, or quoted as Python quotes a string (``'new\\nline.jpeg'``) when it
    holds a control character (a newline, a tab, a carriage return) that would break a
    listing of one line per file, as ``ls`` quotes such names.

    Examples
    --------
    >>> one_line("scans/CNV-1-1.jpeg")
    'scans/CNV-1-1.jpeg'
    >>> print(one_line("scans/new\\nline.jpeg"))
    'scans/new\\nline.jpeg'
    """
    if any(unicodedata.category(character) == "Cc" for character in name):
        return repr(name)
    return name


def check_dpi(dpi: object) -> float:
    """``dpi`` as a float, or a one-line ValueError: it must be a finite number > 0."""
    if (
        isinstance(dpi, bool)
        or not isinstance(dpi, numbers.Real)
        or not math.isfinite(dpi)
        or dpi <= 0
    ):
        raise ValueError(
            f"dpi must be a finite number > 0 (dots per inch), got {dpi!r}; e.g. dpi=100"
        )
    return float(dpi)


def save_figure(figure: Any, target: str | os.PathLike[str] | IO[bytes], **options: Any) -> None:
    """``figure.savefig(target, **options)``, its texts made printable first and glyphs
    missing from the font drawn as boxes without a warning each.

    Raises
    ------
    ValueError
        If ``dpi`` is not a finite number > 0 or makes a raster image of 2**16 pixels or
        more on a side, or the path ``target`` is empty, an existing folder (matplotlib
        would write ``folder.png`` beside it), or has no suffix of a format matplotlib
        writes (and no ``format`` is given).
    """
    from matplotlib.text import Text

    file_format = options.get("format")
    if isinstance(target, (str, os.PathLike)):
        file_format = _check_target(figure, os.fspath(target), file_format)
    if options.get("dpi") is not None:
        _check_pixels(figure, check_dpi(options["dpi"]), file_format)

    for text in figure.findobj(Text):
        shown = text.get_text()
        if isinstance(shown, str) and printable(shown) != shown:
            text.set_text(printable(shown))
    with catch_warnings_locked():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        figure.savefig(target, **options)


def _check_target(figure: Any, target: str | bytes, file_format: object) -> object:
    """The format a figure is saved to ``target`` in, or a one-line error for the path."""
    if not os.fsdecode(target):  # Path("") is the current folder
        raise ValueError("the save path is empty; pass a file path such as 'figure.png'")
    path = Path(os.fsdecode(target))
    if path.is_dir():
        raise ValueError(
            f"the save path {str(path)!r} is a folder; pass a file path such as "
            f"{str(path / 'figure.png')!r}"
        )
    if file_format is not None:
        return file_format
    suffix = path.suffix[1:].lower()
    supported = figure.canvas.get_supported_filetypes()
    if suffix not in supported:
        found = f"suffix {path.suffix!r}" if suffix else "no suffix"
        raise ValueError(
            f"the save path {str(path)!r} has {found}; end it in the format to write, e.g. "
            f".png, .pdf or .svg (supported: {', '.join(sorted(supported))})"
        )
    return suffix


def _check_pixels(figure: Any, dpi: float, file_format: object) -> None:
    if str(file_format).lower() not in _RASTER_FORMATS:
        return
    width, height = (float(side) * dpi for side in figure.get_size_inches())
    if max(width, height) >= _MAX_PIXELS:
        raise ValueError(
            f"dpi={dpi:g} makes a {width:.0f} x {height:.0f} pixel image, over the "
            f"{_MAX_PIXELS - 1} pixels a side matplotlib draws; pass a smaller dpi, e.g. 100, "
            "or save as .pdf or .svg"
        )
