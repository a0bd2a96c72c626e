"""Patient ids compared by one rule: which values are no id, and which ids name one patient.

The rule, applied by :func:`retinalnet.metrics.patient_level` (so by
:meth:`EvaluationResult.patient_report <retinalnet.training.EvaluationResult.patient_report>`
and ``retinalnet evaluate`` too) and, for the ids in file names and manifests, by
:func:`retinalnet.datasets.patient_split`, the manifest's leakage check and the audit:

- ``None``, a blank string, and what pandas reads from an empty cell (a float NaN,
  ``pandas.NA``, ``NaT``) are no id: each such scan is a patient of its own;
- a string of ASCII digits counts without its leading zeros (``"0042"`` is ``"42"``), and a
  whole number that is not negative (an ``int``, a NumPy integer, or a float such as
  ``42.0``, as pandas reads a numeric column with empty cells) is the string of its digits,
  so ``42``, ``42.0``, ``"42"`` and ``"0042"`` are one patient;
- any other id (``"P-0042"``, ``"0042A"``, ``-3``, ``1.5``, a tuple) is compared as given.

.. versionadded:: 0.2
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable

__all__ = ["digits_key", "is_missing_id", "patient_group_key"]


def is_missing_id(patient: object) -> bool:
    """Whether ``patient`` is no id: ``None``, a blank string, or what pandas reads from an
    empty cell (a float NaN, ``pandas.NA``, ``NaT``), told without importing pandas: NaN
    differs from itself, and ``pandas.NA``'s comparisons have no truth value."""
    if patient is None or (isinstance(patient, str) and not patient.strip()):
        return True
    try:
        return bool(patient != patient)
    except (TypeError, ValueError):
        return True  # pandas.NA: "boolean value of NA is ambiguous"


def digits_key(patient: str) -> str:
    """``patient`` without leading zeros if it is a string of ASCII digits (``"000"`` is
    ``"0"``), else ``patient`` as given (``"0042A"`` stays ``"0042A"``)."""
    if patient.isascii() and patient.isdigit():
        return patient.lstrip("0") or "0"
    return patient


def patient_group_key(patient: object, *, row: int | None = None) -> Hashable:
    """The key under which the scans of an id (that is not :func:`is_missing_id`) count as
    one patient, by the rule in this module's docstring.

    Raises
    ------
    TypeError
        If ``patient`` cannot be a key (a list, a dict), naming it and its ``row``.
    """
    if isinstance(patient, str):
        return digits_key(str(patient))  # a NumPy string too
    if isinstance(patient, numbers.Integral) and not isinstance(patient, bool):
        if int(patient) >= 0:
            return str(int(patient))
    elif isinstance(patient, numbers.Real) and not isinstance(patient, bool):
        value = float(patient)
        if math.isfinite(value) and value.is_integer() and value >= 0:
            return str(int(value))
    try:
        hash(patient)
    except TypeError:
        where = "" if row is None else f" (scan {row})"
        raise TypeError(
            f"patient id {patient!r}{where} is a {type(patient).__name__}, which cannot name a "
            "patient: give each scan's patient as a str or an int (None, '' or NaN for no id)"
        ) from None
    return patient
