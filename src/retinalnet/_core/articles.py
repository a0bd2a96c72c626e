"""The indefinite article of a word in a message: ``an int``, ``a uint8``, ``an ONNX``.

Messages name what they were given by its type (``image 0 is an int``) or a kind of file
(``an HTML file``); one rule gives them their article.
"""

from __future__ import annotations

__all__ = ["type_with_article", "with_article"]

# initials read with a vowel sound: "an F", "an HTML", "an ONNX", "an SVG", "an X-ray"
_VOWEL_SOUNDING_LETTERS = "AEFHILMNORSX"


def with_article(text: str) -> str:
    """``text`` after ``a`` or ``an``.

    An initialism (its first two letters capitals: ``ONNX``, ``HTML``, ``JSON``) takes the
    article of its first letter's name; a word takes ``an`` before a, e, i, o (``an int``,
    ``an OrderedDict``) and ``a`` otherwise (``a uint8``, ``a tensor``).

    Examples
    --------
    >>> [with_article(w) for w in ("int", "uint8", "HTML", "JSON", "image", "OrderedDict")]
    ['an int', 'a uint8', 'an HTML', 'a JSON', 'an image', 'an OrderedDict']
    """
    if not text:
        return text
    if text[:2].isupper() and text[:2].isalpha():
        return f"an {text}" if text[0] in _VOWEL_SOUNDING_LETTERS else f"a {text}"
    return f"an {text}" if text[0].lower() in "aeio" else f"a {text}"


def type_with_article(value: object) -> str:
    """The name of ``value``'s type with its article: ``an int``, ``a list``."""
    return with_article(type(value).__name__)
