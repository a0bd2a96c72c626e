"""Rates from a confusion matrix: per-class precision, recall, specificity and F1, their
macro and weighted averages, and the urgent-referral view."""

from __future__ import annotations

import math

import numpy as np

from retinalnet.metrics._confusion import FloatArray, IntArray, confusion_matrix
from retinalnet.metrics._roc import roc_auc


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def _per_class(
    matrix: IntArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, IntArray]:
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    total = matrix.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        precision = np.where(predicted > 0, tp / predicted, np.where(support > 0, 0.0, np.nan))
        negatives = total - support
        specificity = np.where(negatives > 0, (negatives - (predicted - tp)) / negatives, np.nan)
        denominator = precision + recall
        f1 = np.where(denominator > 0, 2 * precision * recall / denominator, 0.0)
        f1 = np.where(np.isnan(denominator), np.nan, f1)
    return precision, recall, specificity, f1, support.astype(np.int64)


def _averages(values: FloatArray, support: IntArray) -> tuple[float, float]:
    present = support > 0
    if not present.any():
        return math.nan, math.nan
    macro = float(np.mean(values[present]))
    weighted = float(np.sum(values[present] * support[present]) / support[present].sum())
    return macro, weighted


ROUNDING = 1e-6
"""How far outside [0, 1] a probability may lie by float32 rounding (a row renormalised in
float32 gives 1.0000001; a subtraction -1e-9). A log-probability row cannot lie within it:
a class at 1 - 1e-6 leaves the others about 1e-6, a log-probability of -13.8."""


def are_probabilities(scores: FloatArray) -> bool:
    """Whether ``scores`` are probabilities: every value in [0, 1], give or take
    :data:`ROUNDING`. Rows that miss a sum of 1 a little (probabilities rounded to two
    decimals, a bf16 softmax) are still probabilities; log-probabilities and logits have
    values outside [0, 1] (a model sure of one class gives log-probabilities of 0 and
    below)."""
    if not scores.size:
        return True
    return bool(scores.min() >= -ROUNDING and scores.max() <= 1 + ROUNDING)


SUM_TOLERANCE = 0.02
"""How far a row of probabilities may miss a sum of 1 and still be one image's
distribution: four probabilities rounded to two decimals miss by at most 0.02. A fixed
bound, not one per class: 100 classes' rows scaled by 0.8 miss by 0.2, and are refused."""

_LOG_SUM_TOLERANCE = 1e-3  # log-probabilities: each row's logsumexp is 0 (float32: ~1e-7)


def distributions(scores: FloatArray) -> FloatArray | None:
    """The class distributions that ``scores`` stand for, as the calibration error judges
    them; ``None`` when they stand for none.

    - Probabilities (see :func:`are_probabilities`) whose rows sum to 1, give or take
      :data:`SUM_TOLERANCE` (rounded ones): clipped to [0, 1], and the rows that miss 1 by
      more than :data:`ROUNDING` scaled to sum to 1.
    - Log-probabilities (what the models output; each row's logsumexp is 0): through exp.
    - Anything else is ``None``: logits (their softmax is one temperature among many, not
      what the model was said to give), or rows that do not sum to 1 (one-vs-rest scores,
      scaled probabilities).
    """
    if not scores.size:
        return scores
    if are_probabilities(scores):
        clipped = np.clip(scores, 0.0, 1.0)
        misses = np.abs(clipped.sum(axis=1) - 1.0)
        if misses.max() > SUM_TOLERANCE:
            return None
        # rows that sum to 1 stay as given (a division would move 0.4 off a bin's edge)
        rounded = misses > ROUNDING
        clipped[rounded] /= clipped[rounded].sum(axis=1, keepdims=True)
        return clipped
    top = scores.max(axis=1, keepdims=True)
    log_sums = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
    if np.abs(log_sums).max() > _LOG_SUM_TOLERANCE:
        return None
    rows: FloatArray = np.exp(scores - log_sums[:, None])
    return rows


def probabilities_of(scores: FloatArray) -> FloatArray:
    """``scores`` as probabilities, for the rules that add or average them: probabilities
    (see :func:`are_probabilities`; clipped to [0, 1]) with each row scaled to sum to 1,
    other scores through a softmax of each row (exact for log-probabilities and logits)."""
    if are_probabilities(scores):
        scores = np.clip(scores, 0.0, 1.0)
        sums = scores.sum(axis=1, keepdims=True)
        scaled: FloatArray = np.divide(scores, sums, out=scores.copy(), where=sums > 0)
        return scaled
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    rows: FloatArray = shifted / shifted.sum(axis=1, keepdims=True)
    return rows


def _referral(
    true: IntArray, scores: FloatArray, urgent_index: IntArray
) -> tuple[float, float, float, IntArray]:
    """Referral sensitivity, specificity and AUC. The AUC ranks images by the probability of
    an urgent class, the sum of those classes' probabilities: scores that are not
    probabilities (log-probabilities, logits) become probabilities by a softmax first, as
    summing them would rank by something else."""
    is_urgent = np.isin(true, urgent_index)
    referred = np.isin(scores.argmax(axis=1), urgent_index)
    matrix = confusion_matrix(is_urgent.astype(np.int64), referred.astype(np.int64), 2)
    sensitivity = _ratio(float(matrix[1, 1]), float(matrix[1].sum()))
    specificity = _ratio(float(matrix[0, 0]), float(matrix[0].sum()))
    auc = roc_auc(probabilities_of(scores)[:, urgent_index].sum(axis=1), is_urgent)
    return sensitivity, specificity, auc, matrix
