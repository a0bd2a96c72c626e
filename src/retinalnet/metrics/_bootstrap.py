"""Seeded bootstrap confidence intervals of a report's headline numbers."""

from __future__ import annotations

import math
import re

import numpy as np

from retinalnet.metrics._confusion import FloatArray, IntArray, confusion_matrix
from retinalnet.metrics._rates import _averages, _per_class, _ratio, _referral
from retinalnet.metrics._roc import roc_auc

_CLASS_INDEX = re.compile(r"\[(\d+)\]")
"""A class index in a summary key (``sensitivity[2]``), named once by the class's name."""


def _summary(true: IntArray, scores: FloatArray, urgent_index: IntArray | None) -> dict[str, float]:
    """The headline numbers that bootstrap intervals are given for."""
    num_classes = scores.shape[1]
    matrix = confusion_matrix(true, scores.argmax(axis=1), num_classes)
    _, recall, specificity, f1, support = _per_class(matrix)
    aucs = np.array([roc_auc(scores[:, c], true == c) for c in range(num_classes)])
    values: dict[str, float] = {
        "accuracy": _ratio(float(np.trace(matrix)), float(matrix.sum())),
        "macro_f1": _averages(f1, support)[0],
        "macro_auc": float(np.nanmean(aucs)) if not np.isnan(aucs).all() else math.nan,
    }
    for c in range(num_classes):
        values[f"sensitivity[{c}]"] = float(recall[c])
        values[f"specificity[{c}]"] = float(specificity[c])
        values[f"auc[{c}]"] = float(aucs[c])
    if urgent_index is not None:
        sens, spec, auc, _ = _referral(true, scores, urgent_index)
        values.update(
            {"referral_sensitivity": sens, "referral_specificity": spec, "referral_auc": auc}
        )
    return values


def _stratified_resample(members: list[IntArray], rng: np.random.Generator) -> IntArray:
    """One bootstrap resample: from each class's images (``members``, their indices), as
    many drawn with replacement as the class has.

    Stratified, as pROC's intervals of an AUC are by default: every class of the data is in
    every resample, so a class's sensitivity and AUC, and the macro averages, are taken over
    the same classes in each (a plain resample of 1,000 images misses a class of 3 in 5% of
    the draws, whose macro F1 then averages the other classes, and whose sensitivity is
    dropped). The intervals are those of a test set of the same class mix.
    """
    return np.concatenate([group[rng.integers(0, len(group), len(group))] for group in members])


def _bootstrap_intervals(
    true: IntArray,
    scores: FloatArray,
    urgent_index: IntArray | None,
    names: tuple[str, ...],
    *,
    bootstrap: int,
    confidence: float,
    seed: int,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the :func:`_summary` numbers over ``bootstrap`` stratified
    resamples (:func:`_stratified_resample`) drawn from ``numpy.random.default_rng(seed)``;
    class indices in the keys become class names (``sensitivity[CNV]``)."""
    intervals: dict[str, tuple[float, float]] = {}
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(true == c) for c in np.unique(true)]
    samples: dict[str, list[float]] = {}
    for _ in range(bootstrap):
        pick = _stratified_resample(members, rng)
        for key, value in _summary(true[pick], scores[pick], urgent_index).items():
            samples.setdefault(key, []).append(value)
    tail = (1 - confidence) / 2 * 100
    for key, sampled in samples.items():
        array = np.asarray(sampled)
        array = array[~np.isnan(array)]
        if array.size:
            low, high = np.percentile(array, [tail, 100 - tail])
            name = _CLASS_INDEX.sub(lambda found: f"[{names[int(found.group(1))]}]", key)
            intervals[name] = (float(low), float(high))
    return intervals
