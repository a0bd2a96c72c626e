"""Proportions and AUCs as text, never rounded to an end they did not reach.

A sensitivity of 1,999 of 2,000 (0.9995) is "100.0%" to ``f"{value:.1%}"``, and an AUC of
0.9996 is "1.000" to ``f"{value:.3f}"``: the same text as a model that missed no one. Every
place that prints a proportion (accuracy, sensitivity, specificity, precision, a
probability, a calibration error) or an AUC goes through here, so a value strictly between
0 and 1 that would round to an end says so instead: ">99.9%" and "<0.1%", ">0.999" and
"<0.001". Exactly 0 and 1 print as "0.0%" and "100.0%", "0.000" and "1.000"; an undefined
value (NaN) as "-". The JSON outputs keep the exact floats; this is only what a person reads.
"""

from __future__ import annotations

import math

__all__ = ["fraction", "percent", "span"]

_MARKS = ("<", ">")


def percent(value: float, decimals: int = 1) -> str:
    """``value`` (a proportion) as a percentage with ``decimals`` decimals; "-" when NaN.

    A value strictly between 0 and 1 that would round to 0% or 100% is shown as below the
    smallest step or above the largest one short of 100%.

    Examples
    --------
    >>> percent(0.9995), percent(0.0004), percent(1.0), percent(0.0), percent(0.12345)
    ('>99.9%', '<0.1%', '100.0%', '0.0%', '12.3%')
    >>> percent(0.99996, 2), percent(0.996, 0), percent(float("nan"))
    ('>99.99%', '>99%', '-')
    """
    return _short_of_the_ends(value, decimals, scale=100, unit="%")


def fraction(value: float, decimals: int = 3) -> str:
    """``value`` (an AUC, an average precision) with ``decimals`` decimals; "-" when NaN.

    A value strictly between 0 and 1 that would round to 0 or 1 is shown as below the
    smallest step or above the largest one short of 1.

    Examples
    --------
    >>> fraction(0.9996), fraction(0.0004), fraction(1.0), fraction(0.0), fraction(0.87654)
    ('>0.999', '<0.001', '1.000', '0.000', '0.877')
    """
    return _short_of_the_ends(value, decimals, scale=1, unit="")


def _short_of_the_ends(value: float, decimals: int, scale: int, unit: str) -> str:
    """``value * scale`` with ``decimals`` decimals and ``unit``; marked "<" or ">" when
    strictly between 0 and 1 yet shown as 0 or ``scale`` (Python's ``%`` format is the same
    multiplication by 100)."""
    if math.isnan(value):
        return "-"
    text = f"{value * scale:.{decimals}f}{unit}"
    if 0 < value < 1:
        step = 10.0**-decimals
        if text == f"{scale:.{decimals}f}{unit}":
            return f">{scale - step:.{decimals}f}{unit}"
        if text == f"{0:.{decimals}f}{unit}":
            return f"<{step:.{decimals}f}{unit}"
    return text


def span(low: str, high: str) -> str:
    """An interval from its two ends as text: ``low-high``, or ``low to high`` when an end
    is marked "<" or ">" (``99.8%->99.9%`` would read as an arrow).

    Examples
    --------
    >>> span("95.1%", "99.0%"), span("99.8%", ">99.9%")
    ('95.1%-99.0%', '99.8% to >99.9%')
    """
    if low.startswith(_MARKS) or high.startswith(_MARKS):
        return f"{low} to {high}"
    return f"{low}-{high}"
