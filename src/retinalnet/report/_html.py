"""The page: inline CSS, escaping, tables and sections, as plain strings.

Nothing here loads anything: no script, no font, no stylesheet from elsewhere; a Content
Security Policy in the page says so to the browser too (images only from ``data:`` URIs).

Every text goes into the page through :func:`esc`, which also keeps a name's writing
direction to itself: a file name holding U+202E (RIGHT-TO-LEFT OVERRIDE), or Arabic or
Hebrew letters, is a bidirectional isolate, as ``<bdi>`` makes one, so it cannot mirror
the reason or the numbers that follow it on the line.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from retinalnet._core.proportion_text import fraction, percent

__all__ = ["Section", "esc", "isolated", "num", "page", "pct", "side_by_side", "table"]

_CSS = """
:root { --ink: #1b1f24; --muted: #59636e; --line: #d0d7de; --band: #f6f8fa;
        --accent: #0b5cad; --warn: #9a3412; --warn-bg: #fff4e5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
       sans-serif; }
main, header, footer { max-width: 1120px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 32px 0 8px; padding-bottom: 4px;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05em; margin: 18px 0 6px; }
p { margin: 6px 0; max-width: 78ch; }
.subtitle { color: var(--muted); margin: 0 0 10px; }
.notice { background: var(--warn-bg); border-left: 4px solid var(--warn); padding: 8px 12px;
          margin: 10px 0; max-width: none; }
nav ol { display: flex; flex-wrap: wrap; gap: 4px 18px; list-style: none; padding: 0;
         margin: 8px 0 0; }
nav a { color: var(--accent); text-decoration: none; }
.scroll { overflow-x: auto; max-width: 100%; }
.row { display: flex; flex-wrap: wrap; gap: 0 32px; align-items: flex-start; }
.row > div { min-width: 0; }
.row p { max-width: 46ch; }
.keys { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0 4px; }
.key { border: 1px solid var(--line); border-radius: 6px; padding: 6px 14px; min-width: 150px; }
.key b { display: block; font-size: 1.5em; font-variant-numeric: tabular-nums; }
.key span { color: var(--muted); font-size: 0.85em; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 10px; vertical-align: top; }
th { background: var(--band); text-align: left; font-weight: 600; }
td.n, th.n { text-align: right; white-space: nowrap; }
tr.avg td { background: var(--band); }
.diag { font-weight: 700; color: var(--accent); }
table.kv td:first-child { color: var(--muted); white-space: nowrap; }
.ci { display: block; color: var(--muted); font-size: 0.82em; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
        font-size: 0.88em; overflow-wrap: anywhere; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr));
           gap: 12px 20px; align-items: start; }
figure { margin: 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.88em; margin-top: 4px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr));
           gap: 14px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.card img { display: block; max-width: 100%; height: auto; margin-bottom: 6px; }
.card .file { font-weight: 600; }
.bad { color: var(--warn); font-weight: 600; }
details summary { cursor: pointer; color: var(--accent); }
footer { color: var(--muted); font-size: 0.85em; margin-top: 36px; padding-bottom: 24px;
         border-top: 1px solid var(--line); padding-top: 8px; }
@media print { nav { display: none; } h2 { break-after: avoid; }
               .card, figure, table { break-inside: avoid; } }
"""

# Nothing may be fetched: images only from data: URIs, styles only inline, no script at all.
_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass(frozen=True)
class Section:
    """One part of the report: an anchor, a heading and its HTML body (already escaped)."""

    anchor: str
    title: str
    body: str


def esc(value: object) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes, its writing
    direction kept to itself (:func:`isolated`)."""
    return html.escape(isolated(str(value)), quote=True)


_FIRST_STRONG_ISOLATE, _POP_ISOLATE = "\u2068", "\u2069"
_OPENS = frozenset({"LRI", "RLI", "FSI"})
_TURNS = frozenset({"R", "AL", "AN", "LRE", "RLE", "LRO", "RLO", "PDF", *_OPENS, "PDI"})
"""The bidirectional classes of right-to-left letters and digits and of the direction
controls: a text without them reads left to right and turns nothing around it."""


def isolated(text: str) -> str:
    """``text`` as a bidirectional isolate, as ``<bdi>`` shows an element, when it holds a
    right-to-left letter or a direction control; as it is otherwise (nearly every text).

    Inside U+2068 FIRST STRONG ISOLATE ... U+2069 POP DIRECTIONAL ISOLATE, an override
    (U+202E) or an Arabic name turns only itself, not the reason or the numbers after it on
    the line. The isolate is made whole whatever the name holds: a stray U+2069 in it is
    matched by an isolate opened before it, an isolate it opens is closed after it, and
    each paragraph of it (after a line or paragraph separator, where the direction starts
    anew) is isolated on its own. Works in an element and in an attribute (a tooltip).

    Examples
    --------
    >>> isolated("CNV-1-1.jpeg")
    'CNV-1-1.jpeg'
    >>> isolated("CNV-3-3\u202egepj.jpeg")
    '\u2068CNV-3-3\u202egepj.jpeg\u2069'
    """
    kinds = [unicodedata.bidirectional(character) for character in text]
    if not _TURNS.intersection(kinds):
        return text
    parts: list[str] = []
    start = opened = strays = 0
    for index, kind in enumerate([*kinds, "B"]):  # a last paragraph separator ends the text
        if kind == "B":
            if index > start:
                parts.append(
                    _FIRST_STRONG_ISOLATE * (1 + strays)
                    + text[start:index]
                    + _POP_ISOLATE * (1 + opened)
                )
            parts.append(text[index : index + 1])
            start, opened, strays = index + 1, 0, 0
        elif kind in _OPENS:
            opened += 1
        elif kind == "PDI":
            if opened:
                opened -= 1
            else:
                strays += 1
    return "".join(parts)


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal, ``-`` when undefined; one strictly
    between 0 and 1 never as 0.0% or 100.0% (0.9995 is ">99.9%", see
    ``retinalnet._core.proportion_text``)."""
    return "-" if value is None else percent(value)


def num(value: float | None) -> str:
    """A number such as an AUC with three decimals, ``-`` when undefined; one strictly
    between 0 and 1 never as 0.000 or 1.000 (0.9996 is ">0.999")."""
    return "-" if value is None else fraction(value)


def table(
    header: Sequence[str] | None,
    rows: Sequence[Sequence[str]],
    *,
    numeric_from: int = 1,
    row_classes: Sequence[str] | None = None,
    css_class: str = "",
    caption: str = "",
) -> str:
    """An HTML table of cells that are already HTML (escape data before passing it).

    Columns from ``numeric_from`` on are right-aligned numbers; ``header=None`` leaves out
    the header row.
    """
    head = "".join(
        f'<th class="n" scope="col">{cell}</th>'
        if i >= numeric_from
        else f'<th scope="col">{cell}</th>'
        for i, cell in enumerate(header or ())
    )
    body = []
    for index, row in enumerate(rows):
        extra = row_classes[index] if row_classes else ""
        cells = "".join(
            f'<td class="n">{cell}</td>' if i >= numeric_from else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f'<tr class="{extra}">{cells}</tr>' if extra else f"<tr>{cells}</tr>")
    attributes = f' class="{css_class}"' if css_class else ""
    caption_html = f"<caption>{caption}</caption>" if caption else ""
    return (
        f'<div class="scroll"><table{attributes}>{caption_html}'
        + (f"<thead><tr>{head}</tr></thead>" if header is not None else "")
        + f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def side_by_side(*blocks: str) -> str:
    """Blocks next to each other where the page is wide enough, one under the other if not."""
    return '<div class="row">' + "".join(f"<div>{block}</div>" for block in blocks) + "</div>"


def page(
    title: str,
    subtitle: str,
    notice: str,
    sections: Sequence[Section],
    footer: str,
    keys: Sequence[tuple[str, str]] = (),
) -> str:
    """The whole document: head with the inline style, the key numbers (``(value, what)``,
    already HTML), a table of contents, the sections."""
    boxes = "".join(
        f'<div class="key"><b>{value}</b><span>{what}</span></div>' for value, what in keys
    )
    contents = "".join(f'<li><a href="#{s.anchor}">{esc(s.title)}</a></li>' for s in sections)
    parts = "\n".join(
        f'<section id="{s.anchor}">\n<h2>{esc(s.title)}</h2>\n{s.body}\n</section>'
        for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<header>\n<h1>{esc(title)}</h1>\n<p class="subtitle">{subtitle}</p>\n'
        + (f'<div class="keys">{boxes}</div>\n' if keys else "")
        + f'<p class="notice">{notice}</p>\n<nav><ol>{contents}</ol></nav>\n</header>\n'
        f"<main>\n{parts}\n</main>\n<footer>{footer}</footer>\n</body>\n</html>\n"
    )
