"""File names as UTF-8 text, whatever the file-system encoding, and back.

Python decodes a file name by the file-system encoding. Under a UTF-8 locale the name whose
bytes are ``d\\xc3\\xa9`` is ``'dé'``; under ``LANG=C`` (cron, ``env -i``, CI images, an ssh
session that forces C) the encoding is ASCII and the same name is ``'d\\udcc3\\udca9'``: the
bytes it cannot decode kept as lone surrogates (``surrogateescape``). Written as such, a
name is not valid Unicode (JSON holds ``"d\\udcc3\\udca9"``, which a UTF-8 reader refuses or
shows as ``d��``) and differs from the same name written under UTF-8. And a name recorded as
``'dé'`` under UTF-8 names no file under ``LANG=C``, where it cannot be encoded.

So a name is recorded as :func:`utf_8_text` (the text its bytes are in UTF-8, the same under
every locale) and looked up again as :func:`named_here` (that text as this process names the
file). A name whose bytes are not UTF-8 (a Latin-1 ``café``) keeps those bytes escaped, as a
UTF-8 locale gives it, and comes back to the same bytes. On Windows names are Unicode already:
both are the name itself.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["named_here", "utf_8_data", "utf_8_text"]


def _escapes_bytes() -> bool:
    """Whether this process decodes file names with ``surrogateescape`` (POSIX: the bytes
    that the encoding cannot decode become lone surrogates)."""
    return sys.getfilesystemencodeerrors() == "surrogateescape"


def utf_8_text(name: str) -> str:
    """``name``, as this process's file-system encoding decoded it, as the text its bytes are
    in UTF-8: the same text under every locale.

    Under ``LANG=C`` the UTF-8 name ``dé`` reads as ``'d\\udcc3\\udca9'``, which this gives as
    ``'dé'``. Bytes that are not UTF-8 (a Latin-1 ``café``) stay escaped, as a UTF-8 locale
    gives them (``'caf\\udce9'``). Text this file system cannot name (``'dé'`` under
    ``LANG=C``: recorded under UTF-8, or typed in Python) is text already, and kept.

    Examples
    --------
    >>> utf_8_text("d\\udcc3\\udca9")  # doctest: +SKIP
    'dé'
    >>> utf_8_text("dé")
    'dé'
    """
    if name.isascii() or not _escapes_bytes():
        return name
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:  # not a name of this file system: text already
        return name
    return raw.decode("utf-8", "surrogateescape")


def named_here(text: str) -> str:
    """The name the UTF-8 ``text`` (as :func:`utf_8_text` gives it) has in this process:
    ``'d\\udcc3\\udca9'`` for ``'dé'`` under ``LANG=C``, ``text`` itself under a UTF-8 locale.

    ``named_here(utf_8_text(name)) == name`` for every name this process reads from the file
    system, so a name recorded under one locale names the same file under another.
    """
    if text.isascii() or not _escapes_bytes():
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte: as it is
        return text
    return os.fsdecode(raw)


def utf_8_data(value: Any) -> Any:
    """``value`` with every string in it that is not valid Unicode (a file name with escaped
    bytes, see :func:`utf_8_text`) as UTF-8 text: in dicts (keys too), lists and tuples, at
    any depth. Valid text is kept as it is, so a message or a class name is never changed;
    what JSON is written from, so that it holds no lone surrogate a UTF-8 reader refuses.

    Examples
    --------
    >>> utf_8_data({"source": "scan.jpeg", "scores": [0.5]})
    {'source': 'scan.jpeg', 'scores': [0.5]}
    """
    if isinstance(value, str):
        return value if _is_text(value) else utf_8_text(value)
    if isinstance(value, dict):
        return {utf_8_data(key): utf_8_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [utf_8_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(utf_8_data(item) for item in value)
    return value


def _is_text(value: str) -> bool:
    """Whether ``value`` is valid Unicode (no lone surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
