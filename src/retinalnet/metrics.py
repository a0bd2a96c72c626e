"""Clinical metrics from labels and predicted probabilities, with numpy only.

Everything here takes the true class of each image and the model's class probabilities, and
computes what an ophthalmology paper reports: the confusion matrix; per class precision,
recall (sensitivity), specificity, F1 and support; macro and weighted averages; one-vs-rest
ROC AUC; the tutorial's per-class top-k accuracy table; and Kermany et al.'s urgent-referral
view (CNV and DME need an urgent referral, DRUSEN and NORMAL do not). Optional bootstrap
confidence intervals are seeded, so a report is reproducible.

.. versionadded:: 0.2

Examples
--------
>>> import numpy as np
>>> from retinalnet.metrics import classification_report
>>> probabilities = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1],
...                           [0.1, 0.1, 0.2, 0.6], [0.1, 0.1, 0.1, 0.7]])
>>> report = classification_report([0, 1, 2, 3], probabilities)
>>> report.accuracy, report.referral.sensitivity
(0.75, 1.0)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from retinalnet._core.classes import KERMANY_CLASSES

__all__ = [
    "URGENT_CLASSES",
    "ClassMetrics",
    "ClassificationReport",
    "ReferralMetrics",
    "classification_report",
    "confusion_matrix",
    "roc_auc",
    "topk_accuracy",
]

URGENT_CLASSES: tuple[str, ...] = ("CNV", "DME")
"""Classes that need an urgent referral in Kermany et al. (2018); DRUSEN and NORMAL do not."""

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]


def _as_targets(targets: npt.ArrayLike, num_classes: int | None = None) -> IntArray:
    array = np.asarray(targets)
    if array.ndim != 1:
        raise ValueError(f"targets must be one class index per image (1-d), got {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"targets must be integer class indices, got dtype {array.dtype}")
    result = array.astype(np.int64)
    if (
        num_classes is not None
        and result.size
        and (result.min() < 0 or result.max() >= num_classes)
    ):
        raise ValueError(
            f"targets must be class indices from 0 to {num_classes - 1}, got values from "
            f"{int(result.min())} to {int(result.max())}; check the class order"
        )
    return result


def confusion_matrix(
    targets: npt.ArrayLike, predicted: npt.ArrayLike, num_classes: int
) -> IntArray:
    """Count images by true and predicted class.

    Parameters
    ----------
    targets, predicted
        Class indices, one per image.
    num_classes
        Size of the square matrix.

    Returns
    -------
    numpy.ndarray
        ``matrix[true, predicted]`` image counts, int64, shape ``(num_classes, num_classes)``.

    Raises
    ------
    ValueError
        If the lengths differ or an index is outside ``0 .. num_classes - 1``.

    Examples
    --------
    >>> from retinalnet.metrics import confusion_matrix
    >>> confusion_matrix([0, 0, 1], [0, 1, 1], 2).tolist()
    [[1, 1], [0, 1]]
    """
    true = _as_targets(targets, num_classes)
    pred = _as_targets(predicted, num_classes)
    if true.shape != pred.shape:
        raise ValueError(
            f"targets and predicted differ in length ({len(true)} vs {len(pred)}); "
            "pass one of each per image"
        )
    counts = np.bincount(true * num_classes + pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def roc_auc(scores: npt.ArrayLike, positive: npt.ArrayLike) -> float:
    """Area under the ROC curve of a binary problem (the Mann-Whitney U statistic).

    Ties between a positive and a negative score count one half, as in scikit-learn.

    Parameters
    ----------
    scores
        A score per image; higher means more likely positive.
    positive
        Whether each image is positive (bool or 0/1).

    Returns
    -------
    float
        The AUC, or NaN when there are no positive or no negative images.

    Examples
    --------
    >>> from retinalnet.metrics import roc_auc
    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    values = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(positive).astype(bool)
    if values.shape != labels.shape or values.ndim != 1:
        raise ValueError(
            f"scores and positive must be 1-d and of the same length, got shapes "
            f"{values.shape} and {labels.shape}"
        )
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ordered = np.sort(values)
    # average 1-based rank of each score, ties sharing the mean of their ranks
    ranks = (
        np.searchsorted(ordered, values, "left") + np.searchsorted(ordered, values, "right") + 1
    ) / 2
    u = float(ranks[labels].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def _as_probabilities(probabilities: npt.ArrayLike, num_images: int) -> FloatArray:
    array = np.asarray(probabilities, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != num_images or array.shape[1] < 2:
        raise ValueError(
            f"probabilities must have shape (images, classes) = ({num_images}, >= 2), got "
            f"{array.shape}"
        )
    return array


def topk_accuracy(
    targets: npt.ArrayLike, probabilities: npt.ArrayLike, ks: Sequence[int] = (1, 2, 3)
) -> dict[int, FloatArray]:
    """The tutorial's table: per class, how often the true class is among the top ``k``.

    Parameters
    ----------
    targets
        True class indices.
    probabilities
        Class probabilities (or any scores), shape ``(images, classes)``.
    ks
        The values of ``k``, each from 1 to the number of classes (``k`` equal to the
        number of classes is always 100%, one of the tutorial's bugs, so the default stops
        at 3).

    Returns
    -------
    dict
        ``{k: array}`` with one accuracy per class (NaN for a class without images).

    Examples
    --------
    >>> from retinalnet.metrics import topk_accuracy
    >>> table = topk_accuracy([0, 1], [[0.6, 0.4], [0.7, 0.3]], ks=[1, 2])
    >>> table[1].tolist(), table[2].tolist()
    ([1.0, 0.0], [1.0, 1.0])
    """
    true = _as_targets(targets)
    scores = _as_probabilities(probabilities, len(true))
    num_classes = scores.shape[1]
    true = _as_targets(true, num_classes)
    # rank of the true class: how many classes score strictly higher
    true_scores = scores[np.arange(len(true)), true]
    rank = (scores > true_scores[:, None]).sum(axis=1)
    support = np.bincount(true, minlength=num_classes)
    table: dict[int, FloatArray] = {}
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_classes:
            raise ValueError(f"each k must be an int from 1 to {num_classes}, got {k!r}")
        hits = np.bincount(true[rank < k], minlength=num_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            table[int(k)] = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
    return table


@dataclass(frozen=True)
class ClassMetrics:
    """One class against the rest.

    Attributes
    ----------
    name : str
        Class name.
    precision : float
        Of the images predicted as this class, the fraction that are (positive predictive
        value); 0 when the class is never predicted but has images, NaN when it has neither.
    recall : float
        Sensitivity: of this class's images, the fraction predicted as it (NaN without images).
    specificity : float
        Of the other classes' images, the fraction not predicted as this class.
    f1 : float
        Harmonic mean of precision and recall (0 when both are 0).
    support : int
        Images of this class.
    auc : float
        One-vs-rest ROC AUC of this class's probability (NaN without images of both kinds).

    Examples
    --------
    >>> from retinalnet.metrics import classification_report
    >>> report = classification_report([0, 1, 1], [[0.8, 0.2], [0.6, 0.4], [0.1, 0.9]],
    ...                                classes=["a", "b"])
    >>> report["b"].sensitivity, report["b"].specificity
    (0.5, 1.0)
    """

    name: str
    precision: float
    recall: float
    specificity: float
    f1: float
    support: int
    auc: float

    @property
    def sensitivity(self) -> float:
        """Same as :attr:`recall`."""
        return self.recall

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (NaN becomes ``None``)."""
        return {
            "precision": _plain(self.precision),
            "recall": _plain(self.recall),
            "specificity": _plain(self.specificity),
            "f1": _plain(self.f1),
            "support": self.support,
            "auc": _plain(self.auc),
        }


@dataclass(frozen=True)
class ReferralMetrics:
    """Urgent referral (Kermany et al.): urgent classes against all others.

    An image is referred urgently when its most probable class is urgent; the AUC ranks
    images by the summed probability of the urgent classes.

    Attributes
    ----------
    urgent : tuple of str
        The urgent classes (CNV and DME by default).
    sensitivity : float
        Of the urgent images, the fraction referred urgently.
    specificity : float
        Of the other images, the fraction not referred urgently.
    auc : float
        ROC AUC of the urgent probability.
    confusion_matrix : numpy.ndarray
        2x2 counts, rows true (not urgent, urgent), columns referred (no, yes).

    Examples
    --------
    >>> from retinalnet.metrics import classification_report
    >>> report = classification_report([0, 3], [[0.9, 0.0, 0.0, 0.1], [0.6, 0.0, 0.0, 0.4]])
    >>> report.referral.sensitivity, report.referral.specificity
    (1.0, 0.0)
    """

    urgent: tuple[str, ...]
    sensitivity: float
    specificity: float
    auc: float
    confusion_matrix: IntArray

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (NaN becomes ``None``)."""
        return {
            "urgent": list(self.urgent),
            "sensitivity": _plain(self.sensitivity),
            "specificity": _plain(self.specificity),
            "auc": _plain(self.auc),
            "confusion_matrix": self.confusion_matrix.tolist(),
        }


def _plain(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


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


def _referral(
    true: IntArray, scores: FloatArray, urgent_index: IntArray
) -> tuple[float, float, float, IntArray]:
    is_urgent = np.isin(true, urgent_index)
    referred = np.isin(scores.argmax(axis=1), urgent_index)
    matrix = confusion_matrix(is_urgent.astype(np.int64), referred.astype(np.int64), 2)
    sensitivity = _ratio(float(matrix[1, 1]), float(matrix[1].sum()))
    specificity = _ratio(float(matrix[0, 0]), float(matrix[0].sum()))
    auc = roc_auc(scores[:, urgent_index].sum(axis=1), is_urgent)
    return sensitivity, specificity, auc, matrix


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


@dataclass(frozen=True)
class ClassificationReport:
    """The clinical report of a classifier on a labelled data set.

    Build it with :func:`classification_report`, or from an evaluation with
    :meth:`retinalnet.training.EvaluationResult.report`.

    Attributes
    ----------
    classes : tuple of str
        Class names, in output order.
    confusion_matrix : numpy.ndarray
        ``confusion_matrix[true, predicted]`` counts (int64).
    per_class : tuple of ClassMetrics
        One entry per class.
    accuracy : float
        Top-1 accuracy.
    macro, weighted : dict of str to float
        ``precision``, ``recall``, ``specificity``, ``f1`` and ``auc`` averaged over the
        classes that have images: plain mean (macro) and weighted by support (weighted).
    topk : dict of int to tuple of float
        The tutorial's table: ``topk[k][c]`` is the fraction of class ``c``'s images whose
        true class is among the top ``k``.
    referral : ReferralMetrics or None
        The urgent-referral view; ``None`` when the urgent classes are not all among
        :attr:`classes`.
    intervals : dict of str to (float, float)
        Bootstrap confidence intervals, empty unless requested. Keys: ``accuracy``,
        ``macro_f1``, ``macro_auc``, ``sensitivity[CLASS]``, ``specificity[CLASS]``,
        ``auc[CLASS]`` and ``referral_sensitivity``/``_specificity``/``_auc``.
    confidence : float
        Level of the intervals (0.95).
    bootstrap : int
        Number of bootstrap resamples (0: no intervals).

    Examples
    --------
    >>> from retinalnet.metrics import classification_report
    >>> report = classification_report([0, 1], [[0.7, 0.3], [0.2, 0.8]], classes=["a", "b"])
    >>> report.accuracy, report.macro["f1"], report.to_dict()["num_samples"]
    (1.0, 1.0, 2)
    """

    classes: tuple[str, ...]
    confusion_matrix: IntArray
    per_class: tuple[ClassMetrics, ...]
    accuracy: float
    macro: dict[str, float]
    weighted: dict[str, float]
    topk: dict[int, tuple[float, ...]]
    referral: ReferralMetrics | None
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    confidence: float = 0.95
    bootstrap: int = 0

    @property
    def num_samples(self) -> int:
        """Number of images."""
        return int(self.confusion_matrix.sum())

    def __getitem__(self, name: str) -> ClassMetrics:
        """The metrics of the class called ``name``."""
        for metrics in self.per_class:
            if metrics.name == name:
                return metrics
        raise KeyError(f"no class {name!r}; classes: {', '.join(self.classes)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; NaN (undefined) values become ``None``."""
        return {
            "classes": list(self.classes),
            "num_samples": self.num_samples,
            "accuracy": _plain(self.accuracy),
            "confusion_matrix": self.confusion_matrix.tolist(),
            "per_class": {m.name: m.to_dict() for m in self.per_class},
            "macro": {k: _plain(v) for k, v in self.macro.items()},
            "weighted": {k: _plain(v) for k, v in self.weighted.items()},
            "topk": {
                str(k): dict(zip(self.classes, map(_plain, row), strict=True))
                for k, row in self.topk.items()
            },
            "referral": None if self.referral is None else self.referral.to_dict(),
            "bootstrap": self.bootstrap,
            "confidence": self.confidence,
            "intervals": {
                k: [_plain(low), _plain(high)] for k, (low, high) in self.intervals.items()
            },
        }

    def to_json(self, **kwargs: Any) -> str:
        """The report as strict JSON (``indent=2`` unless given)."""
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def _interval(self, key: str) -> str:
        if key not in self.intervals:
            return ""
        low, high = self.intervals[key]
        show = _num if "auc" in key else _pct
        return f" ({show(low)}-{show(high)})"

    def __str__(self) -> str:
        width = max(8, *(len(name) + 1 for name in self.classes))
        lines = [
            f"images {self.num_samples}  accuracy {_pct(self.accuracy)}"
            + self._interval("accuracy")
        ]
        if self.intervals:
            lines.append(
                f"({self.confidence:.0%} bootstrap intervals from {self.bootstrap} resamples)"
            )
        header = ["precision", "recall", "specificity", "f1", "auc", "support"]
        lines += ["", "class".ljust(width) + "".join(h.rjust(12) for h in header)]
        for m in self.per_class:
            cells = [m.precision, m.recall, m.specificity, m.f1]
            lines.append(
                m.name.ljust(width)
                + "".join(_pct(v).rjust(12) for v in cells)
                + _num(m.auc).rjust(12)
                + str(m.support).rjust(12)
            )
        for label, averages in (("macro", self.macro), ("weighted", self.weighted)):
            cells = [averages[k] for k in ("precision", "recall", "specificity", "f1")]
            lines.append(
                label.ljust(width)
                + "".join(_pct(v).rjust(12) for v in cells)
                + _num(averages["auc"]).rjust(12)
                + str(self.num_samples).rjust(12)
            )
        if self.topk:
            lines += ["", "top-k".ljust(width) + "".join(n.rjust(width) for n in self.classes)]
            for k, row in self.topk.items():
                lines.append(f"top-{k}".ljust(width) + "".join(_pct(v).rjust(width) for v in row))
        if self.referral is not None:
            r = self.referral
            lines += [
                "",
                f"urgent referral ({' + '.join(r.urgent)} vs the rest): "
                f"sensitivity {_pct(r.sensitivity)}{self._interval('referral_sensitivity')}  "
                f"specificity {_pct(r.specificity)}{self._interval('referral_specificity')}  "
                f"AUC {_num(r.auc)}{self._interval('referral_auc')}",
            ]
        return "\n".join(lines)


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def classification_report(
    targets: npt.ArrayLike,
    probabilities: npt.ArrayLike,
    *,
    classes: Sequence[str] = KERMANY_CLASSES,
    urgent: Sequence[str] | None = URGENT_CLASSES,
    topk: Sequence[int] | None = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> ClassificationReport:
    """Compute the clinical report from true classes and predicted probabilities.

    The predicted class of an image is its most probable one (first on ties).

    Parameters
    ----------
    targets
        True class index of each image.
    probabilities
        Class probabilities, shape ``(images, classes)``; any scores work for the
        confusion matrix and AUCs (AUCs only depend on the order of scores).
    classes
        Class names in output order (the Kermany classes by default).
    urgent
        Classes that need an urgent referral (CNV and DME); ``None`` leaves out the
        referral view, as does a class list that lacks one of them.
    topk
        The ``k`` of the top-k table; by default 1 to ``min(3, classes - 1)``.
    bootstrap
        Number of bootstrap resamples for confidence intervals (0: none; 1000 is usual).
        Each resample draws the images with replacement; the interval is the percentile
        interval of the metric over the resamples. About 1 ms per resample for 1,000 images.
    confidence
        Level of the intervals, in (0, 1).
    seed
        Seed of the resampling, so a report is reproducible.

    Returns
    -------
    ClassificationReport

    Raises
    ------
    ValueError
        If the shapes disagree, a target is out of range, or an argument is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from retinalnet.metrics import classification_report
    >>> report = classification_report(
    ...     [0, 0, 1, 1], np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]]),
    ...     classes=["a", "b"], urgent=None)
    >>> report["a"].recall, report["b"].precision
    (0.5, 0.6666666666666666)
    """
    true = _as_targets(targets)
    scores = _as_probabilities(probabilities, len(true))
    names = tuple(classes)
    num_classes = scores.shape[1]
    if len(names) != num_classes:
        raise ValueError(
            f"{num_classes} probability columns but {len(names)} class names ({list(names)!r}); "
            "pass classes=[...] in output order"
        )
    true = _as_targets(true, num_classes)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ValueError(f"bootstrap must be an int >= 0 (resamples), got {bootstrap!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence!r}")
    ks = list(topk) if topk is not None else list(range(1, min(3, num_classes - 1) + 1))

    matrix = confusion_matrix(true, scores.argmax(axis=1) if len(true) else true, num_classes)
    precision, recall, specificity, f1, support = _per_class(matrix)
    aucs = np.array([roc_auc(scores[:, c], true == c) for c in range(num_classes)])
    per_class = tuple(
        ClassMetrics(
            name=names[c],
            precision=float(precision[c]),
            recall=float(recall[c]),
            specificity=float(specificity[c]),
            f1=float(f1[c]),
            support=int(support[c]),
            auc=float(aucs[c]),
        )
        for c in range(num_classes)
    )
    macro: dict[str, float] = {}
    weighted: dict[str, float] = {}
    for key, values in (
        ("precision", precision),
        ("recall", recall),
        ("specificity", specificity),
        ("f1", f1),
        ("auc", aucs),
    ):
        usable = support * ~np.isnan(values)
        macro[key], weighted[key] = _averages(np.nan_to_num(values), usable)

    urgent_index: IntArray | None = None
    referral: ReferralMetrics | None = None
    if urgent is not None and all(name in names for name in urgent):
        urgent_index = np.array([names.index(name) for name in urgent], dtype=np.int64)
        sens, spec, auc, referral_matrix = _referral(true, scores, urgent_index)
        referral = ReferralMetrics(tuple(urgent), sens, spec, auc, referral_matrix)

    intervals: dict[str, tuple[float, float]] = {}
    if bootstrap and len(true):
        rng = np.random.default_rng(seed)
        samples: dict[str, list[float]] = {}
        for _ in range(bootstrap):
            pick = rng.integers(0, len(true), len(true))
            for key, value in _summary(true[pick], scores[pick], urgent_index).items():
                samples.setdefault(key, []).append(value)
        tail = (1 - confidence) / 2 * 100
        for key, sampled in samples.items():
            array = np.asarray(sampled)
            array = array[~np.isnan(array)]
            if array.size:
                low, high = np.percentile(array, [tail, 100 - tail])
                name = key
                for c in range(num_classes):
                    name = name.replace(f"[{c}]", f"[{names[c]}]")
                intervals[name] = (float(low), float(high))

    return ClassificationReport(
        classes=names,
        confusion_matrix=matrix,
        per_class=per_class,
        accuracy=_ratio(float(np.trace(matrix)), float(matrix.sum())),
        macro=macro,
        weighted=weighted,
        topk={k: tuple(float(v) for v in row) for k, row in topk_accuracy(true, scores, ks).items()}
        if len(true)
        else {},
        referral=referral,
        intervals=intervals,
        confidence=confidence,
        bootstrap=bootstrap,
    )
