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

__all__ = ["fixed_or_exact", "fraction", "percent", "percent_as_given", "percent_beside", "span"]

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


def fixed_or_exact(value: float, decimals: int = 6) -> str:
    """``value`` (a probability in a data file, such as a CSV cell) with ``decimals``
    decimals, or in full (Python's shortest exact text) when those decimals would read as 0
    or 1 though it lies strictly between: a program reading the file gets a number either
    way, never a probability of exactly 1 (or 0) that the model did not give.

    Examples
    --------
    >>> fixed_or_exact(0.97310423), fixed_or_exact(0.99999964), fixed_or_exact(4e-07)
    ('0.973104', '0.99999964', '4e-07')
    >>> fixed_or_exact(1.0), fixed_or_exact(0.0)
    ('1.000000', '0.000000')
    """
    value = float(value)
    text = f"{value:.{decimals}f}"
    if 0 < value < 1 and float(text) in (0.0, 1.0):
        return repr(value)
    return text


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


def percent_as_given(value: float) -> str:
    """A setting (a threshold, a confidence level) as the percentage it is, to 4 decimals,
    never rounded to another: a threshold of 0.525 is "52.5%" (``:.0%`` gave "52%", and
    "no class reached 52%" beside a class at 52.4%), 0.999 "99.9%" (not "100%").

    Examples
    --------
    >>> percent_as_given(0.95), percent_as_given(0.975), percent_as_given(0.525)
    ('95%', '97.5%', '52.5%')
    """
    return f"{round(value * 100, 4):g}%"


def percent_beside(value: float, setting: float) -> str:
    """``value`` as :func:`percent` shows it, with as many more decimals (up to 4) as it
    takes not to read as ``setting`` (:func:`percent_as_given`) unless it is: a highest
    probability of 0.9985 below a threshold of 0.999 is "99.85%", not the threshold's
    "99.9%".

    Examples
    --------
    >>> percent_beside(0.9985, 0.999), percent_beside(0.524, 0.525), percent_beside(0.999, 0.999)
    ('99.85%', '52.4%', '99.9%')
    >>> percent_beside(0.4996, 0.5), percent_beside(0.52496, 0.525)
    ('49.96%', '52.496%')
    """
    decimals, given = 1, round(setting * 100, 4)
    while decimals < 4 and value != setting and round(value * 100, decimals) == given:
        decimals += 1
    return percent(value, decimals)


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
