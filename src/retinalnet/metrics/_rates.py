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


def are_probabilities(scores: FloatArray) -> bool:
    """Whether every row of ``scores`` is non-negative and sums to 1 (to 1e-3)."""
    if not scores.size:
        return True
    return bool(scores.min() >= 0 and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3))


def probabilities_of(scores: FloatArray) -> FloatArray:
    """``scores`` as probabilities: as they are when they are probabilities, else through a
    softmax of each row (exact for log-probabilities and logits), for the rules that add or
    average probabilities."""
    if are_probabilities(scores):
        return scores
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
