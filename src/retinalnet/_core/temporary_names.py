"""The names of the temporary files that files are written through, and the pattern that
finds those a killed run left behind.

The writer (:func:`~retinalnet._core.files.atomic_write`) and the cleanup of a stale run
lock (:mod:`retinalnet.training._lock`) take both from here: a change of the naming reaches
both.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable

__all__ = ["TEMPORARY_SUFFIX", "temporary_file_pattern", "temporary_prefix"]

TEMPORARY_SUFFIX = ".tmp"
"""How the name of every temporary file ends."""
_KEPT_NAME_BYTES = 100
"""The longest name (in bytes) kept whole in its temporary file's name: 114 bytes at most
in all, within the limit of every common file system (255; 143 on eCryptfs)."""


def temporary_prefix(name: str) -> str:
    """The start of the name of the temporary file
    :func:`~retinalnet._core.files.atomic_write` writes the file ``name`` through:
    ``.NAME.``, followed by 8 random characters and ``.tmp`` (``.last.pt.k3j9x2a1.tmp``).
    A name of over 100 bytes is cut, with 8 hex digits of its SHA-1, so that the temporary
    name never grows past the file system's limit when the file's own name is near it
    (255 bytes).

    Examples
    --------
    >>> temporary_prefix("last.pt")
    '.last.pt.'
    >>> prefix = temporary_prefix("predictions-" + "x" * 238 + ".csv")
    >>> prefix[:14], len(prefix)
    ('.predictions-x', 102)
    """
    encoded = os.fsencode(name)
    if len(encoded) <= _KEPT_NAME_BYTES:
        return f".{name}."
    tag = hashlib.sha1(encoded).hexdigest()[:8]
    start = name
    while len(os.fsencode(start)) > _KEPT_NAME_BYTES - len(tag) - 1:  # whole characters
        start = start[:-1]
    return f".{start}-{tag}."


def temporary_file_pattern(names: Iterable[str]) -> re.Pattern[str]:
    """A pattern matching (whole, with ``fullmatch``) the names of the temporary files
    :func:`~retinalnet._core.files.atomic_write` writes the files ``names`` through, as
    one left behind by a run killed while writing (``kill -9``, a power cut) is named.

    Examples
    --------
    >>> pattern = temporary_file_pattern(["best.pt", "last.pt"])
    >>> [bool(pattern.fullmatch(name)) for name in (".last.pt.k3j9x2a1.tmp", ".a.k3j9x2a1.tmp")]
    [True, False]
    """
    either = "|".join(re.escape(temporary_prefix(name)) for name in names)
    # tempfile.mkstemp puts 8 random characters of [a-z0-9_] between prefix and suffix
    return re.compile(rf"(?:{either})[a-z0-9_]{{8}}{re.escape(TEMPORARY_SUFFIX)}")
