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

import os
import warnings
from typing import IO, Any

__all__ = ["printable", "save_figure"]


def printable(text: str) -> str:
    """``text`` with each byte of a file name that is not UTF-8 shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def save_figure(figure: Any, target: str | os.PathLike[str] | IO[bytes], **options: Any) -> None:
    """``figure.savefig(target, **options)``, its texts made printable first and glyphs
    missing from the font drawn as boxes without a warning each."""
    from matplotlib.text import Text

    for text in figure.findobj(Text):
        shown = text.get_text()
        if isinstance(shown, str) and printable(shown) != shown:
            text.set_text(printable(shown))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        figure.savefig(target, **options)
