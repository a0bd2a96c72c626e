"""The negative log-likelihood of ``softmax(scores / T)`` and its slope, free of overflow.

:func:`~retinalnet.metrics.fit_temperature` bisects the slope; a calibration reports the
likelihood before and after. Both shift each row by its maximum *before* scaling it by
``1 / T``, so the scaled values are at most 0 and no score, however large (a finite 1e306),
overflows to ``inf - inf = NaN``: the softmax, and so the temperature, is the same for any
constant added to a row.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from retinalnet.metrics._confusion import FloatArray, IntArray, _readable

__all__ = ["nll_slope", "shifted_by_row_max", "temperature_nll", "tempered_softmax"]


def shifted_by_row_max(scores: FloatArray) -> FloatArray:
    """Each row of ``scores`` minus its maximum: every value at most 0, the maximum at 0.

    A row spanning more than float64 holds (from -1e308 to 1e308) gives ``-inf``, whose
    weight in a softmax is exactly 0 at any temperature, as its own would round to."""
    with np.errstate(over="ignore"):
        shifted: FloatArray = scores - scores.max(axis=1, keepdims=True)
    return shifted


def _softmax_of_shifted(shifted: FloatArray, beta: float) -> FloatArray:
    """``softmax(beta * shifted)`` of rows at most 0 with a 0 in each (so each row's sum of
    weights is at least 1). A product below float64's range is ``-inf``, weight 0."""
    with np.errstate(over="ignore"):
        weights = np.exp(beta * shifted)
    probabilities: FloatArray = weights / weights.sum(axis=1, keepdims=True)
    return probabilities


def tempered_softmax(scores: FloatArray, temperature: float) -> FloatArray:
    """``softmax(scores / temperature)`` of each row, shifted by its maximum before the
    division, so huge finite scores (1e308 at ``T < 1``) give probabilities, never NaN."""
    return _softmax_of_shifted(shifted_by_row_max(scores), 1.0 / temperature)


def nll_slope(shifted: FloatArray, true: IntArray, beta: float) -> float:
    """d/d(beta) of the mean negative log-likelihood of ``softmax(beta * scores)``.

    ``shifted`` are the scores shifted by their row maximum (:func:`shifted_by_row_max`);
    the slope is the same as the scores' own, since each row's probabilities sum to 1.

    Raises
    ------
    ValueError
        If the slope is NaN, which finite scores give only when their rows span more than
        float64 holds.
    """
    probabilities = _softmax_of_shifted(shifted, beta)
    # sum of p * z over the classes of weight > 0 only: a -inf of weight 0 adds nothing
    # (0 * -inf would be NaN); each term is in [min z, 0], so the sum does not overflow
    weighted = np.multiply(
        probabilities, shifted, out=np.zeros_like(shifted), where=probabilities > 0
    )
    per_image = weighted.sum(axis=1) - shifted[np.arange(len(true)), true]  # +inf at most
    slope = float(np.sum(per_image / len(true)))  # each term at most float64's max / images
    if math.isnan(slope):
        raise ValueError(
            f"fit_temperature: the likelihood's slope at T = {1 / beta:g} is NaN; expected "
            "scores whose rows span less than float64's range (1.8e308); divide the scores "
            "by a constant (the temperature scales with them)"
        )
    return slope


def temperature_nll(scores: npt.ArrayLike, targets: npt.ArrayLike, temperature: float) -> float:
    """Mean negative log-likelihood of ``softmax(scores / temperature)`` (natural log).

    Each row is shifted by its maximum before the division, so huge finite scores give the
    likelihood of their softmax (``inf`` where a true class's probability is below float64's
    range), never NaN."""
    values = np.asarray(_readable(scores), dtype=np.float64)
    true = np.asarray(_readable(targets), dtype=np.int64)
    with np.errstate(over="ignore"):
        scaled = shifted_by_row_max(values) / temperature  # at most 0, the top at 0
    log_norm = np.log(np.exp(scaled).sum(axis=1))  # the top's exp(0) = 1: at least log 1
    return float(np.mean(log_norm - scaled[np.arange(len(true)), true]))
