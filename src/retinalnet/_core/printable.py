"""File names as text that can be shown: in an HTML page, a figure's title, a CSV.

Python gives a file name that is not valid UTF-8 (a Latin-1 ``café.jpeg`` from an old zip)
as a string with lone surrogates (``'caf\\udce9.jpeg'``). Such a string cannot be encoded
as UTF-8 nor drawn by matplotlib, so a report, a CSV or an overlay that names the file
failed after all the work. :func:`printable` shows the name with U+FFFD for the bytes that
are not text; :func:`save_figure` makes every text of a figure printable before it is
drawn, and keeps glyphs the font lacks (Chinese file names) from warning once per
character.

A name is shown as it is in a figure too: a pair of ``$`` in it (``d$x^2$``) is not
matplotlib's mathtext, and a title too wide for its figure (a long file name, a volume's
path) is broken into lines (:func:`fit_title`) rather than cut off at both edges. A figure
saved to a file is drawn in memory and written whole, or not at all (:func:`save_figure`).

A name that would not print as itself on one line (a newline, U+2028 LINE SEPARATOR, a
right-to-left override that mirrors the rest of the line, an escape sequence) is quoted
in a listing (:func:`one_line`); :func:`shown_as_is` is that rule, which class names
follow too.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import textwrap
import unicodedata
from pathlib import Path
from typing import IO, Any, BinaryIO

from retinalnet._core.files import atomic_write
from retinalnet._core.output_kinds import check_output_file
from retinalnet._core.warning_filters import filter_in_this_thread

__all__ = [
    "check_dpi",
    "fit_title",
    "hidden_character",
    "one_line",
    "printable",
    "save_figure",
    "shown_as_is",
]

# formats drawn as pixels by Agg, which refuses an image of 2**16 pixels or more on a side
_RASTER_FORMATS = frozenset({"png", "jpg", "jpeg", "tif", "tiff", "webp", "raw", "rgba", "gif"})
_MAX_PIXELS = 2**16


def printable(text: str) -> str:
    """``text`` with each byte of a file name that is not UTF-8 shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_JOINERS = frozenset("\u200c\u200d")
"""ZERO WIDTH NON-JOINER and JOINER: part of how Persian, the scripts of India and emoji
sequences are written, not printable for Python but neither breaking nor turning a line."""

_KINDS = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Co": "a private-use character",
    "Cn": "a code point with no character",
}


def hidden_character(text: str) -> str | None:
    """The first character of ``text`` that does not print as itself, described
    (``"U+202E RIGHT-TO-LEFT OVERRIDE (an invisible format character)"``); ``None`` when
    every one does (see :func:`shown_as_is`)."""
    for character in text:
        if character.isprintable() or character in _JOINERS:
            continue
        category = unicodedata.category(character)
        if category == "Zs" or category == "Cs":  # a space; a byte of a name not UTF-8
            continue
        name = unicodedata.name(character, "")
        return f"U+{ord(character):04X}{' ' + name if name else ''} ({_KINDS[category]})"
    return None


def shown_as_is(text: str) -> bool:
    """Whether ``text`` prints as itself on one line: no control character (a newline, a
    tab, an escape; U+0085 NEXT LINE), line or paragraph separator (U+2028, U+2029),
    invisible format character (U+202E RIGHT-TO-LEFT OVERRIDE, which mirrors what follows
    it on the line; U+200B ZERO WIDTH SPACE), private-use or unassigned code point.

    Letters of every script and their accents (``Ödem``, ``中文``, an NFD ``é``) are shown
    as they are, as are spaces (U+00A0, U+3000), the zero-width joiners that Persian and
    emoji are written with, and the lone surrogates Python gives for the bytes of a file
    name that is not UTF-8 (printed as those bytes, as ``ls`` prints them).

    Examples
    --------
    >>> shown_as_is("Ödem 中文.jpeg")
    True
    >>> shown_as_is("CNV-3-3\u202egepj.jpeg")
    False
    """
    return hidden_character(text) is None


def one_line(name: str) -> str:
    """``name`` as it is, or quoted as Python quotes a string (``'new\\nline.jpeg'``) when it
    does not print as itself on one line (:func:`shown_as_is`): a control character (a
    newline, a tab, a carriage return), a Unicode line separator (U+2028) or a
    right-to-left override (U+202E) would break or reverse a listing of one line per file;
    ``ls`` quotes such names too.

    Examples
    --------
    >>> one_line("scans/CNV-1-1.jpeg")
    'scans/CNV-1-1.jpeg'
    >>> print(one_line("scans/new\\nline.jpeg"))
    'scans/new\\nline.jpeg'
    >>> print(one_line("scans/CNV-3-3\u202egepj.jpeg"))
    'scans/CNV-3-3\\u202egepj.jpeg'
    """
    if not shown_as_is(name):
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
    """``figure.savefig(target, **options)``, its texts shown as they are and the file
    written whole or not at all.

    Before the figure is drawn, each of its texts is made printable, and read as plain text:
    a pair of ``$`` in a file, folder or class name is not mathtext (the numbers matplotlib
    writes on an axis keep theirs, ``10^{-3}`` of a log scale); a title wider than the figure
    is broken into lines (:func:`fit_title`). Glyphs missing from the font are drawn as boxes
    without a warning each. A path ``target`` gets the figure drawn in memory first, then
    written with :func:`~retinalnet._core.files.atomic_write`: a failed write (a full disk)
    leaves the file there before as it was.

    Raises
    ------
    ValueError
        If ``dpi`` is not a finite number > 0 or makes a raster image of 2**16 pixels or
        more on a side, or the path ``target`` is empty, an existing folder (matplotlib
        would write ``folder.png`` beside it), or has no suffix of a format matplotlib
        writes (and no ``format`` is given), or one that names another kind of file
        (``best.pt`` with ``format="png"``).
    FileExistsError
        If the path ``target`` (or the file it links to) is a scan, a checkpoint or another
        PyTorch file: an image there is replaced only when it is a figure (a PNG matplotlib
        wrote, or a colour image of another format).
    FileWriteError
        If the disk or the system refuses the file (a full disk, no permission): the message
        names the file, the cause and the fix; the file there before is untouched.
    """
    file_format = options.get("format")
    if isinstance(target, (str, os.PathLike)):
        file_format = _check_target(figure, os.fspath(target), file_format)
        # a figure replaces an older figure, never a scan (through a link), nor a checkpoint
        check_output_file(os.fsdecode(target), "figure", writer="saving the figure")
    if options.get("dpi") is not None:
        _check_pixels(figure, check_dpi(options["dpi"]), file_format)
    _texts_as_given(figure)
    if not isinstance(target, (str, os.PathLike)):  # a stream: the caller's to keep whole
        _draw(figure, target, options)
        return
    buffer = io.BytesIO()  # drawn first: a figure that fails to draw leaves no file either
    _draw(figure, buffer, {**options, "format": file_format})
    data = buffer.getvalue()

    def write(stream: BinaryIO) -> None:
        stream.write(data)

    atomic_write(target, write)


def _draw(figure: Any, target: IO[bytes], options: dict[str, Any]) -> None:
    with filter_in_this_thread("ignore", message=r"Glyph \d+ .*missing from font"):
        figure.savefig(target, **options)


def _texts_as_given(figure: Any) -> None:
    """Every text of ``figure`` printable and not mathtext, except the numbers matplotlib
    writes on its axes; its titles fitted to its width."""
    from matplotlib.text import Text

    numbers_drawn = _axis_numbers(figure)
    for text in figure.findobj(Text):
        shown = text.get_text()
        if isinstance(shown, str) and printable(shown) != shown:
            text.set_text(printable(shown))
        if id(text) not in numbers_drawn:
            text.set_parse_math(False)
    candidates = [getattr(figure, "_suptitle", None)]
    for axes in figure.get_axes():
        candidates += [
            axes.title,
            getattr(axes, "_left_title", None),
            getattr(axes, "_right_title", None),
        ]
    titles = [title for title in candidates if isinstance(title, Text) and title.get_text()]
    # the layout moves the axes, and their titles with them: it is run (a draw without
    # pixels) only for a figure with a title near its room, and until the titles fit
    if all(_share_of_room(title) < _CROWDED for title in titles):
        return
    given = [title.get_text() for title in titles]
    for _ in range(_LAYOUT_ROUNDS):
        figure.draw_without_rendering()
        fitted = []
        for title, text in zip(titles, given, strict=True):
            before = title.get_text()
            title.set_text(text)  # fitted anew where the layout put it: not broken twice
            fit_title(title)
            fitted.append(title.get_text() == before)
        if all(fitted):  # the layout of these lines is the one just run
            return


def _axis_numbers(figure: Any) -> set[int]:
    """The ids of the tick labels and offsets that matplotlib writes from numbers, mathtext
    on purpose (a log scale's ``$\\mathdefault{10^{-3}}$``): those of its number formatters.
    Labels given as text (class names, ``set_xticks(ticks, labels)``) are not among them."""
    from matplotlib import ticker

    # EngFormatter is a ScalarFormatter only from matplotlib 3.10 on
    numbers = (
        ticker.ScalarFormatter,
        ticker.LogFormatter,
        ticker.LogitFormatter,
        ticker.EngFormatter,
    )
    ids: set[int] = set()
    for axes in figure.get_axes():
        for axis in (axes.xaxis, axes.yaxis):
            ids.add(id(axis.offsetText))
            for ticks, formatter in (
                (axis.get_major_ticks(), axis.get_major_formatter()),
                (axis.get_minor_ticks(), axis.get_minor_formatter()),
            ):
                if isinstance(formatter, numbers):
                    ids.update(id(label) for tick in ticks for label in (tick.label1, tick.label2))
    return ids


_TITLE_MARGIN = 0.98
"""The share of the room beside a title's anchor that its widest line may take."""

_CROWDED = 0.8
"""A title taking this share of its room before the layout is fitted again after it."""

_LAYOUT_ROUNDS = 3


def fit_title(title: Any) -> bool:
    """Break the lines of ``title`` (a matplotlib Text: a figure's or an axes' title) that
    are wider than the figure lets them be, so none is cut off at the figure's edges;
    whether it was changed.

    Words go to the next line as :func:`textwrap.wrap` puts them; a word longer than a
    line (a file name, a path) is broken inside. The room is the figure's width for a
    centred figure title, and from the anchor to the edge(s) for another: measured with
    the figure's renderer, at its own font size, where the title is now (an axes' title
    moves with the layout: :func:`save_figure` fits it again after the layout). A file
    name that is not UTF-8 in it is made :func:`printable` first: it could not be measured.
    """
    if printable(title.get_text()) != title.get_text():
        title.set_text(printable(title.get_text()))
    share = _share_of_room(title)
    if share <= 1.0:
        return False
    room = title.get_window_extent().width / share
    before = title.get_text()
    lines = before.split("\n")
    columns = max(1, int(max(len(line) for line in lines) / share))
    while True:
        title.set_text("\n".join(_wrapped(lines, columns)))
        if columns == 1 or title.get_window_extent().width <= room:
            return bool(title.get_text() != before)
        columns = max(1, columns - max(1, columns // 20))


def _share_of_room(title: Any) -> float:
    """How much of its room (:data:`_TITLE_MARGIN` of it) a title's widest line takes: over
    1 for a title cut off; 0 for a title not in a figure."""
    parent = title.get_figure()  # the figure, or the subfigure it is in
    if parent is None:
        return 0.0
    room = _room(title, parent.canvas.figure.bbox.width) * _TITLE_MARGIN  # the whole picture
    width = float(title.get_window_extent().width)
    if room <= 0:
        return 1.0 if width <= 0 else math.inf
    return width / room


def _wrapped(lines: list[str], columns: int) -> list[str]:
    return [
        part
        for line in lines
        for part in (textwrap.wrap(line, columns, break_on_hyphens=False) or [""])
    ]


def _room(title: Any, figure_width: float) -> float:
    """How wide a title may be in pixels: twice the room to the nearer edge for a centred
    one, to the edge on its side for one aligned left or right."""
    anchor = title.get_transform().transform(title.get_position())[0]
    alignment = title.get_horizontalalignment()
    if alignment == "left":
        return float(figure_width - anchor)
    if alignment == "right":
        return float(anchor)
    return float(2 * min(anchor, figure_width - anchor))


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
