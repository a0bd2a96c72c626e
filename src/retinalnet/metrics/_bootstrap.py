"""Seeded bootstrap confidence intervals of a report's numbers that are not one proportion:
F1 and AUC, per class and averaged, and the referral AUC (the proportions get Wilson score
intervals, see :mod:`retinalnet.metrics._intervals`)."""

from __future__ import annotations

import re

import numpy as np

from retinalnet.metrics._confusion import FloatArray, IntArray, confusion_matrix
from retinalnet.metrics._intervals import confidence_label
from retinalnet.metrics._rates import (
    BoolArray,
    _averages,
    _class_aucs,
    _per_class,
    _referral,
    are_class_scores,
    covered_classes,
)

_CLASS_INDEX = re.compile(r"\[(\d+)\]")
"""A class index in a summary key (``auc[2]``), named once by the class's name."""

EVERY_RESAMPLE_THE_SAME = (
    "every resample scored the same, e.g. an AUC of 1 on perfectly separated classes, or an F1 of 0"
)
"""Why a bootstrapped number has no interval when it did not vary at all."""


def _middle_the_same(confidence: float) -> str:
    """Why a bootstrapped number has no interval when it varied outside its middle only."""
    return f"the middle {confidence_label(confidence)} of the resamples scored the same"


def _summary(
    true: IntArray, scores: FloatArray, urgent_index: IntArray | None, covered: BoolArray
) -> dict[str, float]:
    """The numbers that bootstrap intervals are given for, by the report's rules, with the
    macro averages over the classes ``covered`` in the full data (:func:`covered_classes`)."""
    num_classes = scores.shape[1]
    matrix = confusion_matrix(true, scores.argmax(axis=1), num_classes)
    # a class covered in the full data only by its predictions (no images) may have none in
    # a resample: its F1 is 0 there, as scikit-learn's with labels= and zero_division=0,
    # so every resample averages the point estimate's classes
    f1 = _per_class(matrix)[3]
    f1 = np.where(covered & np.isnan(f1), 0.0, f1)
    aucs = _class_aucs(true, scores)
    values: dict[str, float] = {
        "macro_f1": _averages(f1, matrix, covered)[0],
        "macro_auc": _averages(aucs, matrix, covered)[0],
    }
    for c in range(num_classes):
        values[f"f1[{c}]"] = float(f1[c])
        values[f"auc[{c}]"] = float(aucs[c])
    if urgent_index is not None:
        values["referral_auc"] = _referral(true, scores, urgent_index)[2]
    return values


def _stratified_resample(members: list[IntArray], rng: np.random.Generator) -> IntArray:
    """One bootstrap resample: from each class's images (``members``, their indices), as
    many drawn with replacement as the class has.

    Stratified, as pROC's intervals of an AUC are by default: every class with images is in
    every resample, so a class's F1 and AUC are taken in each (a plain resample of 1,000
    images misses a class of 3 in 5% of the draws, whose AUC is then dropped). The intervals
    are those of a test set of the same class mix. (A class predicted but without images can
    be missing from a resample: the macro averages keep the full data's classes in every
    resample, see :func:`_summary`.)
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
) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """Percentile intervals of the :func:`_summary` numbers over ``bootstrap`` stratified
    resamples (:func:`_stratified_resample`) drawn from ``numpy.random.default_rng(seed)``,
    each macro average over the classes the full data's covers; class indices in the keys
    become class names (``auc[CNV]``).

    Returns the intervals, and apart from them the numbers whose interval would have no
    width (an AUC of 1 on perfectly separated classes: every resample scores 1), each with
    the reason it has none: a zero-width range is no interval.
    """
    intervals: dict[str, tuple[float, float]] = {}
    no_interval: dict[str, str] = {}
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(true == c) for c in np.unique(true)]
    # decided once, from the full data: the classes the macro averages cover, and whether
    # the scores have a referral AUC (one-vs-rest scores have none, in no resample either)
    covered = covered_classes(confusion_matrix(true, scores.argmax(axis=1), scores.shape[1]))
    if are_class_scores(scores):
        urgent_index = None
    samples: dict[str, list[float]] = {}
    for _ in range(bootstrap):
        pick = _stratified_resample(members, rng)
        for key, value in _summary(true[pick], scores[pick], urgent_index, covered).items():
            samples.setdefault(key, []).append(value)
    tail = (1 - confidence) / 2 * 100
    for key, sampled in samples.items():
        array = np.asarray(sampled)
        array = array[~np.isnan(array)]
        if not array.size:
            continue
        name = _CLASS_INDEX.sub(lambda found: f"[{names[int(found.group(1))]}]", key)
        low, high = np.percentile(array, [tail, 100 - tail])
        if array.min() == array.max():
            no_interval[name] = EVERY_RESAMPLE_THE_SAME
        elif low == high:
            no_interval[name] = _middle_the_same(confidence)
        else:
            intervals[name] = (float(low), float(high))
    return intervals, no_interval
