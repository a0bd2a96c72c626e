r"""A file name's bytes in a message, as the terminal shows them, not as ``\udcXX`` escapes.

A file name whose bytes the file-system encoding cannot decode (a Latin-1 ``café.jpeg``; any
non-ASCII name under ``LANG=C``, where the encoding is ASCII) reaches Python with those bytes
as lone surrogates, and a message that quotes the name with ``repr()`` spells each as the six
characters ``\udce9``: ``cannot read image 'donn\udcc3\udca9es.png'``, where the user's
``ls`` shows ``données.png``. :func:`names_as_bytes` turns those escapes back into the
surrogates, which the command's output writes as the name's own bytes
(:func:`retinalnet.cli._file_names_printed_as_they_are`), as ``ls`` does. Every line a
command writes to stderr goes through it: its error, its log lines and its warnings.
Python code in backticks is kept as it is: pasted, it names the file.

The text is read as ``repr()`` writes it: a name printed with ``str()`` that holds a
backslash followed by ``udc`` and two hex digits (which no name from a real disk does) is
shown with that byte.
"""

from __future__ import annotations

import re

__all__ = ["CODE_IN_BACKTICKS", "names_as_bytes"]

CODE_IN_BACKTICKS = re.compile(r"(`[^`]*`)")
"""Python code in a message (split on it, the odd parts are the code)."""

# a run of `\udcXX` escapes (XX from 80 to ff: the bytes surrogateescape keeps) after an even
# number of backslashes: after an odd number the backslash is the name's own, doubled by repr()
_ESCAPED_BYTES = re.compile(r"(?<!\\)((?:\\\\)*)((?:\\udc[89a-f][0-9a-f])+)")


def names_as_bytes(text: str) -> str:
    r"""``text`` with each ``\udcXX`` escape that ``repr()`` wrote for a byte of a file name
    turned back into that byte's surrogate (``'\udce9'``); Python code in backticks is kept
    as it is (``load_checkpoint('caf\udce9.pt')`` pasted names the file).

    Examples
    --------
    >>> names_as_bytes(r"'donn\udcc3\udca9es.png'") == "'donn\udcc3\udca9es.png'"
    True
    >>> names_as_bytes(r"`load_checkpoint('caf\udce9.pt')`")
    "`load_checkpoint('caf\\udce9.pt')`"
    >>> names_as_bytes(r"a backslash of the name's own: 'x\\udce9.png'")
    "a backslash of the name's own: 'x\\\\udce9.png'"
    """
    parts = CODE_IN_BACKTICKS.split(text)  # the odd parts: code in backticks, kept as it is
    for index in range(0, len(parts), 2):
        parts[index] = _ESCAPED_BYTES.sub(_surrogates, parts[index])
    return "".join(parts)


def _surrogates(found: re.Match[str]) -> str:
    """The backslashes before the escapes, then the surrogate each escape spells."""
    escapes = found[2]
    codes = (int(escapes[start + 2 : start + 6], 16) for start in range(0, len(escapes), 6))
    return found[1] + "".join(map(chr, codes))
