"""Rates from a confusion matrix: per-class precision, recall, specificity and F1, their
macro and weighted averages (and what they cover, in words), the per-class AUCs, and the
urgent-referral view; and the rules that say what a model's scores stand for (probabilities,
one-vs-rest scores, log-probabilities or logits)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from retinalnet._core.classes import in_words
from retinalnet.metrics._confusion import FloatArray, IntArray, confusion_matrix
from retinalnet.metrics._roc import roc_auc

BoolArray = npt.NDArray[np.bool_]


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
        # 2 TP / (2 TP + FP + FN): the harmonic mean of precision and recall, and 0 (as
        # scikit-learn's) for a class predicted without images, or with images never predicted
        counted = support + predicted
        f1 = np.where(counted > 0, 2 * tp / counted, np.nan)
    return precision, recall, specificity, f1, support.astype(np.int64)


def _averages(
    values: FloatArray, matrix: IntArray, covered: BoolArray | None = None
) -> tuple[float, float]:
    """The macro and weighted averages of one rate of each class (NaN: undefined): precision,
    specificity and F1 by scikit-learn's rule, recall and AUC as the balanced accuracy.

    The macro average is the plain mean over the classes that have images or are predicted
    (scikit-learn's labels: those in the targets or the predictions), of those where the
    rate is defined: recall (and AUC) over the classes with images, as the balanced
    accuracy (scikit-learn's ``recall_score(average="macro")`` counts a predicted class
    without images as recall 0 instead); precision, specificity and F1 also over a class
    predicted but without images (its precision is 0 of its predictions, its F1 0). A class
    neither in the images nor predicted is left out. ``covered`` fixes those classes
    instead (:func:`covered_classes` of the full data, for a bootstrap resample: the same
    classes in each, as scikit-learn's explicit ``labels=``). The weighted average weighs
    each class by its images.
    """
    support = matrix.sum(axis=1)
    defined = ~np.isnan(values)
    counted = defined & (covered_classes(matrix) if covered is None else covered)
    macro = float(np.mean(values[counted])) if counted.any() else math.nan
    weights = np.where(defined, support, 0)
    if not weights.sum():
        return macro, math.nan
    weighted = float(np.sum(np.nan_to_num(values) * weights) / weights.sum())
    return macro, weighted


def covered_classes(matrix: IntArray) -> BoolArray:
    """Which classes a macro average covers (:func:`_averages`): those with images or
    predictions in ``matrix`` (rows true, columns predicted)."""
    covered: BoolArray = (matrix.sum(axis=1) > 0) | (matrix.sum(axis=0) > 0)
    return covered


def average_notes(matrix: IntArray, names: Sequence[str], unit: str = "images") -> list[str]:
    """What a report's macro averages cover and which zeros stand for no prediction, in
    words: a line for the classes predicted but without ``unit`` (images), for those with
    neither (left out of the macro averages), and for those never predicted (precision 0
    of 0 predictions, shown as 0, as scikit-learn's ``zero_division=0``). Empty when every
    class has images and predictions, or when there are none at all."""
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    notes: list[str] = []
    if not support.any():
        return notes  # no images: nothing is averaged
    absent = [c for c in range(len(names)) if not support[c]]
    if absent:
        shown = [
            names[c] + ("" if not predicted[c] else f" (predicted {_times(int(predicted[c]))})")
            for c in absent
        ]
        covered = macro_classes(matrix, names)
        note = (
            f"no {unit} of {in_words(shown)}: the macro averages cover "
            f"{in_words(covered)}, the classes with {unit} or predictions"
        )
        if predicted[absent].any():
            note += f"; recall and AUC only those with {unit}"
        notes.append(note)
    never = [names[c] for c in range(len(names)) if support[c] and not predicted[c]]
    if never:
        notes.append(
            f"{', '.join(never)} {'was' if len(never) == 1 else 'were'} never predicted: "
            f"{'its' if len(never) == 1 else 'their'} precision is 0 of 0 predictions, "
            "shown as 0"
        )
    return notes


def macro_classes(matrix: IntArray, names: Sequence[str]) -> list[str]:
    """The classes a macro average covers (:func:`_averages`): those with images or
    predictions, in class order."""
    counted = covered_classes(matrix)
    return [name for name, kept in zip(names, counted.tolist(), strict=True) if kept]


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _class_aucs(true: IntArray, scores: FloatArray) -> FloatArray:
    """The one-vs-rest ROC AUC of each class's probability (:func:`probabilities_of`:
    probabilities ranked as given, so a class's AUC is :func:`roc_auc` of its column, as
    scikit-learn's ``roc_auc_score``; a softmax of logits first, since a logit's rank across
    images depends on the image's other logits); NaN for a class without images of both
    kinds."""
    probabilities = probabilities_of(scores)
    return np.array([roc_auc(probabilities[:, c], true == c) for c in range(scores.shape[1])])


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

_LOG_SUM_TOLERANCE = math.log1p(SUM_TOLERANCE)
"""How far a row of log-probabilities' logsumexp may miss 0: as far as a row of
probabilities may miss a sum of 1 (a bf16 log-softmax misses by up to 0.008)."""


def distributions(scores: FloatArray) -> FloatArray | None:
    """The class distributions that ``scores`` stand for, as the calibration error judges
    them; ``None`` when they stand for none.

    - Probabilities (see :func:`are_probabilities`) whose rows sum to 1, give or take
      :data:`SUM_TOLERANCE` (rounded ones): clipped to [0, 1], and the rows that miss 1 by
      more than :data:`ROUNDING` scaled to sum to 1.
    - Log-probabilities (what the models output; each row's logsumexp is 0, give or take
      ``log(1 + SUM_TOLERANCE)``, as a bf16 log-softmax misses it): through exp, each row
      scaled to sum to 1.
    - Anything else is ``None``: logits (their softmax is one temperature among many, not
      what the model was said to give), or rows that do not sum to 1 (one-vs-rest scores,
      scaled probabilities: :func:`are_class_scores`).
    """
    if not scores.size:
        return scores
    if are_probabilities(scores):
        if are_class_scores(scores):
            return None
        clipped = np.clip(scores, 0.0, 1.0)
        # rows that sum to 1 stay as given (a division would move 0.4 off a bin's edge)
        rounded = np.abs(clipped.sum(axis=1) - 1.0) > ROUNDING
        clipped[rounded] /= clipped[rounded].sum(axis=1, keepdims=True)
        return clipped
    top = scores.max(axis=1, keepdims=True)
    log_sums = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
    if np.abs(log_sums).max() > _LOG_SUM_TOLERANCE:
        return None
    rows: FloatArray = np.exp(scores - log_sums[:, None])
    return rows


def are_class_scores(scores: FloatArray) -> bool:
    """Whether ``scores`` are probabilities (see :func:`are_probabilities`) of which a row
    misses a sum of 1 by more than :data:`SUM_TOLERANCE`: each class's own score, as
    one-vs-rest (sigmoid) outputs are, not one distribution per image. Each class's AUC
    ranks its score as given; they have no referral AUC (a sum of one-vs-rest scores is no
    probability of an urgent class) and no calibration error (:func:`distributions` is
    ``None``), and :func:`class_scores_note` says so."""
    if not scores.size or not are_probabilities(scores):
        return False
    sums = np.clip(scores, 0.0, 1.0).sum(axis=1)
    return bool(np.abs(sums - 1.0).max() > SUM_TOLERANCE)


def class_scores_note(scores: FloatArray) -> str:
    """What a report does with :func:`are_class_scores` scores, in words (their row sums
    named); empty for other scores."""
    if not are_class_scores(scores):
        return ""
    sums = np.clip(scores, 0.0, 1.0).sum(axis=1)
    return (
        f"the scores are not distributions (rows sum to {sums.min():.2f} to "
        f"{sums.max():.2f}, e.g. one-vs-rest scores): each class's AUC ranks its own score "
        "as given; no referral AUC and no ECE, which need probabilities that sum to 1 in "
        "each row (a softmax's)"
    )


def refuse_percentages(scores: FloatArray, name: str = "probabilities") -> None:
    """Refuse probabilities given in percent: every value in [0, 100] and every row summing
    to 100, give or take 100 times :data:`SUM_TOLERANCE`. They are not probabilities (a
    value above 1), and a softmax of them, as of logits, would be another distribution."""
    if not scores.size or are_probabilities(scores):
        return
    if scores.min() < -ROUNDING or scores.max() > 100 * (1 + ROUNDING):
        return
    sums = scores.sum(axis=1)
    if np.abs(sums - 100).max() <= 100 * SUM_TOLERANCE:
        raise ValueError(
            f"{name} look like percentages (values from {scores.min():g} to "
            f"{scores.max():g}, each row summing to about 100); divide them by 100 to pass "
            "probabilities in [0, 1]"
        )


def probabilities_of(scores: FloatArray) -> FloatArray:
    """``scores`` as probabilities, for the rules that add, average or rank them:
    probabilities (see :func:`are_probabilities`) as given, neither clipped nor rescaled
    (a class's AUC is then :func:`roc_auc` of its column, and scikit-learn's
    ``roc_auc_score`` of it, for rows rounded to a few decimals and for one-vs-rest scores,
    :func:`are_class_scores`, too), other scores through a softmax of each row (exact for
    log-probabilities and logits). Percentages are refused (:func:`refuse_percentages`)."""
    refuse_percentages(scores)
    if are_probabilities(scores):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    softmax: FloatArray = shifted / shifted.sum(axis=1, keepdims=True)
    return softmax


def _referral(
    true: IntArray, scores: FloatArray, urgent_index: IntArray
) -> tuple[float, float, float, IntArray]:
    """Referral sensitivity, specificity and AUC. The AUC ranks images by the probability of
    an urgent class, the sum of those classes' probabilities: scores that are not
    probabilities (log-probabilities, logits) become probabilities by a softmax first, as
    summing them would rank by something else. NaN for one-vs-rest scores
    (:func:`are_class_scores`), whose sum is no probability."""
    is_urgent = np.isin(true, urgent_index)
    referred = np.isin(scores.argmax(axis=1), urgent_index)
    matrix = confusion_matrix(is_urgent.astype(np.int64), referred.astype(np.int64), 2)
    sensitivity = _ratio(float(matrix[1, 1]), float(matrix[1].sum()))
    specificity = _ratio(float(matrix[0, 0]), float(matrix[0].sum()))
    if are_class_scores(scores):
        return sensitivity, specificity, math.nan, matrix
    auc = roc_auc(probabilities_of(scores)[:, urgent_index].sum(axis=1), is_urgent)
    return sensitivity, specificity, auc, matrix
