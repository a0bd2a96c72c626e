"""ROC and precision-recall curves of a binary problem (one class against the rest)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from retinalnet.metrics._confusion import _as_binary

__all__ = ["average_precision", "precision_recall_curve", "roc_curve"]

Curve = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]


def _counts(
    scores: npt.ArrayLike, positive: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], int, int]:
    """True and false positives at each distinct score taken as the threshold, highest first."""
    values, labels = _as_binary(scores, positive)
    if values.size == 0:
        raise ValueError("got no scores: a curve needs the scores of at least one image")
    order = np.argsort(-values, kind="stable")
    ranked, hits = values[order], labels[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]  # ties go together
    true_positives = np.cumsum(hits)[last_of_each].astype(np.float64)
    false_positives = (last_of_each + 1 - true_positives).astype(np.float64)
    n_pos = int(labels.sum())
    return ranked[last_of_each], true_positives, false_positives, n_pos, labels.size - n_pos


def roc_curve(scores: npt.ArrayLike, positive: npt.ArrayLike) -> Curve:
    """The ROC curve: false- and true-positive rates as the threshold falls.

    An image is called positive when its score is at least the threshold. The curve starts
    at ``(0, 0)`` (threshold ``+inf``) and has a point for every distinct score, so its
    trapezoidal area is :func:`roc_auc`.

    .. versionadded:: 0.2

    Parameters
    ----------
    scores
        A score per image; higher means more likely positive.
    positive
        Whether each image is positive (bool or 0/1).

    Returns
    -------
    fpr, tpr, thresholds : numpy.ndarray
        Rates in [0, 1] (NaN where there are no negative, or no positive, images) and the
        threshold of each point, decreasing.

    Raises
    ------
    ValueError
        If the shapes differ, a score is NaN or infinite (the message counts the
        images and names the first), or a label of ``positive`` is not 0/1 or bool (class
        indices 2, 3 ...: pass ``targets == c``).

    Examples
    --------
    >>> from retinalnet.metrics import roc_curve
    >>> fpr, tpr, thresholds = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    thresholds, true_positives, false_positives, n_pos, n_neg = _counts(scores, positive)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.r_[0.0, true_positives] / n_pos
        fpr = np.r_[0.0, false_positives] / n_neg
    return fpr, tpr, np.r_[np.inf, thresholds]


def precision_recall_curve(scores: npt.ArrayLike, positive: npt.ArrayLike) -> Curve:
    """The precision-recall curve: precision and recall as the threshold falls.

    An image is called positive when its score is at least the threshold. The curve starts
    at recall 0 with precision 1 (threshold ``+inf``, as in scikit-learn) and has a point
    for every distinct score.

    .. versionadded:: 0.2

    Parameters
    ----------
    scores, positive
        As for :func:`roc_curve`.

    Returns
    -------
    precision, recall, thresholds : numpy.ndarray
        Recall rises from 0 to 1; the thresholds decrease. Without a positive image, as in
        scikit-learn, recall is 1 at every threshold (none of no positives is missed) after
        the starting 0, and precision is 0 there.

        .. versionchanged:: 0.2
           Without a positive image recall is 1 at every threshold (it was NaN after a
           starting 0), as in scikit-learn.

    Raises
    ------
    ValueError
        If the shapes differ, a score is NaN or infinite (the message counts the
        images and names the first), or a label of ``positive`` is not 0/1 or bool (class
        indices 2, 3 ...: pass ``targets == c``).

    Examples
    --------
    >>> from retinalnet.metrics import precision_recall_curve
    >>> precision, recall, _ = precision_recall_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> precision.round(3).tolist(), recall.tolist()
    ([1.0, 1.0, 0.5, 0.667, 0.5], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    thresholds, true_positives, false_positives, n_pos, _ = _counts(scores, positive)
    # no positive image: every threshold finds all 0 of them (scikit-learn's convention)
    recall = np.r_[0.0, true_positives / n_pos if n_pos else np.ones_like(true_positives)]
    precision = np.r_[1.0, true_positives / (true_positives + false_positives)]
    return precision, recall, np.r_[np.inf, thresholds]


def average_precision(scores: npt.ArrayLike, positive: npt.ArrayLike) -> float:
    """Average precision: the precision at each threshold, weighted by the recall it adds.

    ``sum((recall[n] - recall[n - 1]) * precision[n])`` over :func:`precision_recall_curve`,
    scikit-learn's definition (no interpolation). It summarises the curve as AUC does the ROC
    curve, but chance is the share of positive images, not 0.5.

    .. versionadded:: 0.2

    Returns
    -------
    float
        In [0, 1]; NaN when there is no positive image.

    Raises
    ------
    ValueError
        As :func:`precision_recall_curve`.

    Examples
    --------
    >>> from retinalnet.metrics import average_precision
    >>> round(average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 4)
    0.8333
    """
    precision, recall, _ = precision_recall_curve(scores, positive)
    if not np.asarray(positive).astype(bool).any():
        return float("nan")  # no positive image: undefined (scikit-learn gives 0)
    return float(np.sum(np.diff(recall) * precision[1:]))
