"""Whether a path is spelled as a folder: a trailing separator (``preds/``) or a last part
``.`` or ``..``. :class:`~pathlib.Path` drops a trailing separator, so a writer given
``preds/`` would write a file named ``preds``; every writer of one file refuses such a path
by this one rule (the command line's file options, :func:`~retinalnet._core.files.atomic_write`
and the Python writers' first check)."""

from __future__ import annotations

import os

__all__ = ["names_a_folder"]

_SEPARATORS = tuple(sep for sep in (os.sep, os.altsep) if sep)


def names_a_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path``, as spelled, names a folder (its last character a separator, or its
    last part ``.`` or ``..``).

    Examples
    --------
    >>> names_a_folder("preds/"), names_a_folder("runs/.."), names_a_folder("preds.csv")
    (True, True, False)
    """
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        return False
    last = text
    for separator in _SEPARATORS:
        last = last.rpartition(separator)[2]
    return text.endswith(_SEPARATORS) or last in (".", "..")
