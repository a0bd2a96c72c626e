"""Numbers given as arguments: one rule for what is an integer (Python's or NumPy's, never a
bool) and what is a real number (Python's, NumPy's ``np.float32``, an integer; never a bool),
and the check of a count (a batch size, epochs, a number of classes)."""

from __future__ import annotations

import numbers

__all__ = ["as_integer", "as_number", "check_count"]


def as_integer(value: object) -> int | None:
    """``value`` as an int if it is an integer (Python's or NumPy's ``np.int64``), not a
    bool (``True`` is 1 to Python, never a count here); else ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> as_integer(np.int64(3)), as_integer(True), as_integer(2.0)
    (3, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def as_number(value: object) -> float | None:
    """``value`` as a float if it is a real number (Python's, NumPy's ``np.float32``, an
    integer), not a bool; else ``None``. NaN and infinities pass: the caller bounds them.

    Examples
    --------
    >>> import numpy as np
    >>> as_number(np.float32(0.5)), as_number(2), as_number(True), as_number("0.5")
    (0.5, 2.0, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def check_count(value: object, name: str, low: int = 1, note: str = "") -> int:
    """``value`` as an int if it is an integer (see :func:`as_integer`) >= ``low``.

    Raises
    ------
    ValueError
        ``{name} must be an int >= {low}{note}, got {value!r}``.
    """
    number = as_integer(value)
    if number is None or number < low:
        raise ValueError(f"{name} must be an int >= {low}{note}, got {value!r}")
    return number
