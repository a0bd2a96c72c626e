"""The clinical report: :class:`ClassificationReport` and :func:`classification_report`.

Why this module is long: the report's fields, its text and JSON forms and the function that
computes it change together (a field added here is printed and serialised in the same file);
most of the length is their NumPy docstrings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from retinalnet._core.bool_options import check_bool
from retinalnet._core.classes import KERMANY_CLASSES, in_words
from retinalnet._core.counts import as_integer, as_number
from retinalnet._core.proportion_text import fraction, percent, span
from retinalnet._core.seeds import check_seed
from retinalnet._core.utf_8_names import utf_8_data
from retinalnet._core.value_equality import fields_equal
from retinalnet.metrics._bootstrap import _bootstrap_intervals
from retinalnet.metrics._calibration import calibration_error_or_nan
from retinalnet.metrics._class_metrics import ClassMetrics, ReferralMetrics, _plain
from retinalnet.metrics._confusion import (
    IntArray,
    _as_probabilities,
    _as_targets,
    _checked_ks,
    _refuse_swapped,
    confusion_matrix,
    topk_accuracy,
)
from retinalnet.metrics._intervals import (
    BOOTSTRAP,
    WILSON,
    confidence_label,
    interval_table,
    methods_line,
    minimum_resamples,
    proportion_intervals,
)
from retinalnet.metrics._rates import (
    _averages,
    _class_aucs,
    _per_class,
    _ratio,
    _referral,
    average_notes,
    class_scores_note,
    macro_classes,
)

__all__ = ["URGENT_CLASSES", "ClassificationReport", "PatientGroups", "classification_report"]

URGENT_CLASSES: tuple[str, ...] = ("CNV", "DME")
"""Classes that need an urgent referral in Kermany et al. (2018); DRUSEN and NORMAL do not.

The default of ``urgent`` in :func:`classification_report` (recognised by identity: pass this
object, not a copy, to keep the default's leniency towards studies without CNV or DME)."""


@dataclass(frozen=True)
class PatientGroups:
    """How the scans of a patient-level report were grouped, see
    :func:`~retinalnet.metrics.patient_level`.

    .. versionadded:: 0.2

    Attributes
    ----------
    scans : int
        Scans (images) evaluated.
    patients : int
        Distinct patients; a scan without a patient id counts as a patient of its own.
    groups : int
        ``(patient, label)`` groups: the units the report counts.
    mixed : int
        Patients whose scans carry more than one label (each of their labels is a group).
    without_id : int
        Scans without a patient id.
    """

    scans: int
    patients: int
    groups: int
    mixed: int
    without_id: int = 0

    def to_dict(self) -> dict[str, int]:
        """Plain data for JSON."""
        return {
            "scans": self.scans,
            "patients": self.patients,
            "groups": self.groups,
            "mixed": self.mixed,
            "without_id": self.without_id,
        }


@dataclass(frozen=True, eq=False)
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
        classes: plain mean (macro) and weighted by support (weighted). The macro average
        covers the classes with images or predictions, each number where it is defined:
        precision, specificity and F1 also a class predicted without images (its precision
        and F1 are 0), as scikit-learn's; recall and AUC only the classes with images
        (macro recall is the balanced accuracy, where scikit-learn's macro recall counts
        such a class as 0). :attr:`notes` says so when a class has no images.

        .. versionchanged:: 0.2
           A class predicted but without images counts in the macro precision,
           specificity and F1 (it was left out, which raised them).
    topk : dict of int to tuple of float
        The tutorial's table: ``topk[k][c]`` is the fraction of class ``c``'s images whose
        true class is among the top ``k``.
    referral : ReferralMetrics or None
        The urgent-referral view; ``None`` when left out (``urgent=None``), or when the
        default urgent classes are not all among :attr:`classes`, a class is not a Kermany
        one, or every class is urgent (see :attr:`referral_note`).

        .. versionchanged:: 0.2
           Left out by default for classes other than Kermany's (AMD counted as not
           urgent) and for classes that are all urgent (100% sensitivity by construction).
    intervals : dict of str to (float, float)
        Confidence intervals, empty unless requested (``bootstrap`` > 0). Wilson score
        intervals of the proportions: ``accuracy``, ``sensitivity[CLASS]``,
        ``specificity[CLASS]``, ``precision[CLASS]``, ``referral_sensitivity`` and
        ``referral_specificity``; stratified percentile bootstrap intervals of the rest:
        ``f1[CLASS]``, ``macro_f1``, ``auc[CLASS]``, ``macro_auc`` and ``referral_auc``.
        An undefined number (a class without images) has none.

        .. versionchanged:: 0.2
           Proportions get Wilson score intervals (a bootstrap gave 100% of 20 right out
           of 20 the interval 100%-100%); precision and F1 per class have intervals.
    interval_methods : dict of str to str
        How each interval of :attr:`intervals` (and each key of :attr:`no_interval`) was
        computed: ``"wilson"`` or ``"bootstrap"``.

        .. versionadded:: 0.2
    no_interval : dict of str to str
        The bootstrapped numbers that have no interval, each with the reason: every
        resample scored the same (an AUC of 1.000 on perfectly separated classes), so the
        percentile "interval" would have no width. They are not in :attr:`intervals`.

        .. versionadded:: 0.2
    confidence : float
        Level of the intervals (0.95).
    bootstrap : int
        Number of bootstrap resamples (0: no intervals).
    seed : int
        Seed of the bootstrap resampling (``seed`` of :func:`classification_report`), so
        its intervals can be reproduced; in :meth:`to_dict` and :attr:`interval_note`.

        .. versionadded:: 0.2
    ece : float
        Top-label expected calibration error with 15 bins (see
        :func:`~retinalnet.metrics.expected_calibration_error`); NaN without images, or
        when the scores are neither probabilities (rows summing to 1, give or take rounding)
        nor log-probabilities. The per-patient report takes it of the scans' groups when
        the scans' scores are such, and is NaN when they are not.

        .. versionadded:: 0.2
    score_note : str
        For scores in [0, 1] whose rows do not sum to 1 (one-vs-rest scores): that each
        class's AUC ranks its own score as given, with no referral AUC and no ECE (one of
        :attr:`notes`); empty for probabilities, log-probabilities and logits.

        .. versionadded:: 0.2
    referral_note : str
        Why the default urgent-referral view was left out although CNV and DME are among
        the classes (one of :attr:`notes`): a class that is not a Kermany one (which
        classes are urgent then is not known: pass ``urgent=[...]``), or every class
        urgent (no rest to refer or not); empty otherwise.

        .. versionadded:: 0.2
    patients : PatientGroups or None
        For a patient-level report (:func:`~retinalnet.metrics.patient_level`), how the
        scans were grouped; the report then counts ``(patient, label)`` groups, not images.

        .. versionadded:: 0.2

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
    ece: float = math.nan
    patients: PatientGroups | None = None
    interval_methods: dict[str, str] = field(default_factory=dict)
    no_interval: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    score_note: str = ""
    referral_note: str = ""

    def __eq__(self, other: object) -> bool:
        return fields_equal(self, other)

    __hash__ = None  # type: ignore[assignment]  # holds arrays and dicts

    @property
    def interval_note(self) -> str:
        """How the intervals were computed, in words (empty without intervals): "95%
        intervals: Wilson score for proportions (...); stratified percentile bootstrap
        (1000 resamples) for F1 and AUC; bootstrap seed 0".

        .. versionadded:: 0.2
        """
        if not self.intervals and not self.no_interval:
            return ""
        return f"{methods_line(self.confidence, self.bootstrap)}; bootstrap seed {self.seed}"

    @property
    def notes(self) -> list[str]:
        """What the macro averages cover when a class has no images, which classes were
        never predicted (their precision is 0 of 0 predictions, shown as 0),
        :attr:`score_note` and :attr:`referral_note`, in words; printed under the table and
        in the JSON (``notes``, with ``macro_classes``, the classes the macro averages cover).

        .. versionadded:: 0.2
        """
        unit = "images" if self.patients is None else "groups"
        notes = average_notes(self.confusion_matrix, self.classes, unit)
        return [*notes, *(note for note in (self.score_note, self.referral_note) if note)]

    @property
    def num_samples(self) -> int:
        """Number of images (of ``(patient, label)`` groups in a patient-level report)."""
        return int(self.confusion_matrix.sum())

    def __getitem__(self, name: str) -> ClassMetrics:
        """The metrics of the class called ``name``."""
        for metrics in self.per_class:
            if metrics.name == name:
                return metrics
        raise KeyError(f"no class {name!r}; classes: {in_words(self.classes)}")

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
            "seed": self.seed,
            "confidence": self.confidence,
            "intervals": {
                k: [_plain(low), _plain(high)] for k, (low, high) in self.intervals.items()
            },
            "interval_methods": dict(self.interval_methods),
            "no_interval": dict(self.no_interval),
            "interval_note": self.interval_note,
            "ece": _plain(self.ece),
            "patients": None if self.patients is None else self.patients.to_dict(),
            "macro_classes": macro_classes(self.confusion_matrix, self.classes),
            "notes": self.notes,
        }

    def to_json(self, **kwargs: Any) -> str:
        """The report as strict JSON (``indent=2`` unless given)."""
        kwargs.setdefault("indent", 2)
        return json.dumps(utf_8_data(self.to_dict()), allow_nan=False, **kwargs)

    def _interval(self, key: str) -> str:
        if key in self.no_interval:
            return f" (no interval: {self.no_interval[key]})"
        if key not in self.intervals:
            return ""
        low, high = self.intervals[key]
        show = fraction if "auc" in key else percent
        return f" ({span(show(low), show(high))})"

    def __str__(self) -> str:
        return self.to_text()

    def to_text(self, *, headline: bool = True) -> str:
        """The report as tables (what ``print(report)`` shows).

        With intervals, a line says how they were computed, and a table below the
        metrics gives each class's.

        .. versionadded:: 0.2

        Parameters
        ----------
        headline
            Start with the line of images, accuracy and ECE. Leave it out after an
            :class:`~retinalnet.training.EvaluationResult`, which prints them; it is kept
            when there is an interval of the accuracy to show.
        """
        headline = check_bool(headline, "headline")
        width = max(8, *(len(name) + 1 for name in self.classes))
        lines = []
        if headline or "accuracy" in self.intervals:
            interval = self.intervals.get("accuracy")
            shown = (
                f" ({span(percent(interval[0], 2), percent(interval[1], 2))})" if interval else ""
            )
            groups = self.patients
            counted = (
                f"images {self.num_samples}"
                if groups is None
                else f"patients {groups.patients}  groups {groups.groups}  scans {groups.scans}"
            )
            accuracy = percent(self.accuracy, 2)
            lines.append(f"{counted}  accuracy {accuracy}{shown}  ECE {percent(self.ece)}")
        lines.extend(_grouping_notes(self.patients))
        if self.interval_note:
            lines.append(f"({self.interval_note}; each class's in the table of intervals)")
        header = ["precision", "recall", "specificity", "f1", "auc", "support"]
        if lines:
            lines.append("")
        lines.append("class".ljust(width) + "".join(h.rjust(12) for h in header))
        for m in self.per_class:
            cells = [m.precision, m.recall, m.specificity, m.f1]
            lines.append(
                m.name.ljust(width)
                + "".join(percent(v).rjust(12) for v in cells)
                + fraction(m.auc).rjust(12)
                + str(m.support).rjust(12)
            )
        for label, averages in (("macro", self.macro), ("weighted", self.weighted)):
            cells = [averages[k] for k in ("precision", "recall", "specificity", "f1")]
            lines.append(
                label.ljust(width)
                + "".join(percent(v).rjust(12) for v in cells)
                + fraction(averages["auc"]).rjust(12)
                + str(self.num_samples).rjust(12)
            )
        lines += [f"({note})" for note in self.notes]
        if self.interval_note:
            lines += [
                "",
                *interval_table(
                    self.classes, self.intervals, self.no_interval, self.confidence, width
                ),
            ]
        if self.topk:
            lines += ["", "top-k".ljust(width) + "".join(n.rjust(width) for n in self.classes)]
            for k, row in self.topk.items():
                lines.append(
                    f"top-{k}".ljust(width) + "".join(percent(v).rjust(width) for v in row)
                )
        if self.referral is not None:
            r = self.referral
            lines += [
                "",
                f"urgent referral ({' + '.join(r.urgent)} vs the rest): "
                f"sensitivity {percent(r.sensitivity)}{self._interval('referral_sensitivity')}  "
                f"specificity {percent(r.specificity)}{self._interval('referral_specificity')}  "
                f"AUC {fraction(r.auc)}{self._interval('referral_auc')}",
            ]
        return "\n".join(lines)


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

    The predicted class of an image is its most probable one (the first on ties; the top-k
    table ranks tied classes by the same rule, so its top-1 row is the recall). The report
    includes the expected calibration error (15 bins), which needs probabilities.

    Parameters
    ----------
    targets
        True class index of each image.
    probabilities
        Class probabilities, shape ``(images, classes)``; any scores work for the
        confusion matrix (the most probable class is the highest score). The AUCs rank
        images by a class's probability (the urgent-referral AUC by the summed probability
        of the urgent classes): probabilities (values in [0, 1]) as given, so a class's AUC
        is :func:`~retinalnet.metrics.roc_auc` of its column, as scikit-learn's
        ``roc_auc_score``; scores that are not probabilities (log-probabilities, logits)
        are turned into probabilities by a softmax for them, as a logit's rank across
        images also depends on the image's other logits. Probabilities in percent (rows
        summing to 100) are refused: divide them by 100. The ECE needs probabilities (each
        row summing to 1, give or take rounding to two decimals) or log-probabilities; it
        is NaN for logits and for rows that do not sum to 1. Such rows (one-vs-rest
        scores) have no referral AUC either, and :attr:`ClassificationReport.score_note`
        says so.
    classes
        Class names in output order (the Kermany classes by default).
    urgent
        Classes that need an urgent referral, named as in ``classes``; ``None`` leaves out
        the referral view. Left at the default, :data:`URGENT_CLASSES` (CNV and DME), the
        view is also left out when the classes lack one of them (a study without DME), and,
        with :attr:`ClassificationReport.referral_note` saying why, when a class is not a
        Kermany one (which of AMD, CNV, DME, ... are urgent is for you to say: pass
        ``urgent=[...]``) or when every class is urgent (CNV and DME only: no rest to
        refer or not). Given, it must leave at least one class out (the rest).

        .. versionchanged:: 0.2
           The default view needs Kermany classes and one that is not urgent.
    topk
        The ``k`` of the top-k table, a list of ints from 1 to the number of classes
        (checked also without images); by default 1 to ``min(3, classes - 1)``.
    bootstrap
        Number of bootstrap resamples for confidence intervals: 0 for none, else at least
        ``ceil(2 / (1 - confidence))`` (40 at 95%: each tail of a percentile interval needs
        a resample) and at most 100,000; 1000 is usual.
        The proportions (accuracy, each class's sensitivity, specificity and precision,
        the referral sensitivity and specificity) get Wilson score intervals, in closed
        form: they need no resample, and keep their width at 0% and 100%, where a
        bootstrap has none. F1 and AUC (per class, macro, referral AUC) get the
        percentile interval over the resamples; each resample draws, from each true
        class's images, as many as the class has, with replacement (a stratified
        bootstrap, as pROC's for an AUC, for a test set of the same class mix). The macro
        averages are over the same classes in each resample, those of the point estimate:
        a class predicted but without images counts with F1 0 in a resample that draws
        none of its predictions (scikit-learn's ``labels=``, ``zero_division=0``). A
        number that every resample scored the same (an AUC of 1 on perfectly separated
        classes) has no interval, see :attr:`ClassificationReport.no_interval`.
        About 1 ms per resample for 1,000 images.
    confidence
        Level of the intervals, in (0, 1).
    seed
        Seed of the resampling (an int >= 0), so a report is reproducible; recorded in
        :attr:`ClassificationReport.seed`.

    Returns
    -------
    ClassificationReport

    Raises
    ------
    ValueError
        If the shapes disagree, a target is out of range, a probability is NaN or infinite
        (the message counts the rows and names the first: a model with non-finite weights
        or outputs gives them), the class names are not distinct, a name given in
        ``urgent`` is not one of ``classes`` (or ``urgent`` is empty, or names every
        class: no rest to refer or not), ``bootstrap`` is not
        0 or an int from ``ceil(2 / (1 - confidence))`` to 100,000, ``seed`` is not an
        int >= 0, ``topk`` is not a list of ints from 1 to the number of classes (one
        int, ``topk=2``, is refused: pass ``[2]``), or another argument is out of range.
    TypeError
        If ``classes`` or ``urgent`` is one string rather than a list of names.

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
    _refuse_swapped(targets, probabilities, "classification_report(targets, probabilities)")
    true = _as_targets(targets)
    scores = _as_probabilities(probabilities, len(true))
    num_classes = scores.shape[1]
    # the checked values are kept: plain Python numbers (np.float32(0.9) as 0.9), so the
    # report's JSON holds no NumPy scalar
    checked = _checked_arguments(
        classes,
        num_classes,
        urgent,
        topk=topk,
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
    )
    names, urgent_index, ks = checked.names, checked.urgent_index, checked.ks
    bootstrap, confidence, seed = checked.bootstrap, checked.confidence, checked.seed
    true = _as_targets(true, num_classes)

    matrix = confusion_matrix(true, scores.argmax(axis=1) if len(true) else true, num_classes)
    precision, recall, specificity, f1, support = _per_class(matrix)
    aucs = _class_aucs(true, scores)  # probabilities as given, a softmax first for logits
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
        macro[key], weighted[key] = _averages(values, matrix)

    referral: ReferralMetrics | None = None
    if urgent_index is not None:
        sens, spec, auc, referral_matrix = _referral(true, scores, urgent_index)
        urgent_names = tuple(names[index] for index in urgent_index.tolist())
        referral = ReferralMetrics(urgent_names, sens, spec, auc, referral_matrix)

    intervals: dict[str, tuple[float, float]] = {}
    methods: dict[str, str] = {}
    no_interval: dict[str, str] = {}
    if bootstrap and len(true):
        referral_counts = None if referral is None else referral.confusion_matrix
        intervals = proportion_intervals(matrix, referral_counts, names, confidence)
        methods = dict.fromkeys(intervals, WILSON)
        resampled, no_interval = _bootstrap_intervals(
            true, scores, urgent_index, names, bootstrap=bootstrap, confidence=confidence, seed=seed
        )
        intervals.update(resampled)
        methods.update(dict.fromkeys([*resampled, *no_interval], BOOTSTRAP))

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
        ece=_ece(scores, true),
        interval_methods=methods,
        no_interval=no_interval,
        seed=seed,
        score_note=class_scores_note(scores),
        referral_note=_referral_note(urgent, names),
    )


MAX_BOOTSTRAP = 100_000
"""The most bootstrap resamples a report takes: 1,000 is usual and 10,000 plenty; each
costs about 1 ms per 1,000 images, so more would run for hours without narrowing anything."""


@dataclass(frozen=True)
class _Arguments:
    """The arguments of a report after their checks, as plain Python values (what the
    report stores: ``np.float32(0.9)`` would make its JSON fail)."""

    names: tuple[str, ...]
    urgent_index: IntArray | None  # None: no referral view
    ks: list[int]
    bootstrap: int
    confidence: float
    seed: int


def _checked_arguments(
    classes: Sequence[str],
    num_classes: int,
    urgent: Sequence[str] | None,
    *,
    topk: Sequence[int] | None,
    bootstrap: int,
    confidence: float,
    seed: int,
) -> _Arguments:
    """The arguments of a report (per scan or per patient) checked before any work, also
    without images: the class names, the urgent class indices, the ``k`` of the top-k table
    (by default 1 to ``min(3, classes - 1)``), and ``bootstrap``, ``confidence`` and
    ``seed`` as Python numbers."""
    if isinstance(classes, str):
        raise TypeError(
            f"classes must be a list of class names, got {classes!r}; pass a list such as "
            "['CNV', 'NORMAL'], in output order"
        )
    names = tuple(classes)
    if len(names) != num_classes:
        raise ValueError(
            f"{num_classes} probability columns but {len(names)} class names ({list(names)!r}); "
            "pass classes=[...] in output order"
        )
    for name in names:
        times = names.count(name)
        if times > 1:
            said = "twice" if times == 2 else f"{times} times"
            raise ValueError(
                f"class names must be distinct, got {name!r} {said} in {list(names)!r}; "
                "pass each class once, in output order"
            )
    resamples = as_integer(bootstrap)
    if resamples is None or not 0 <= resamples <= MAX_BOOTSTRAP:
        raise ValueError(
            f"bootstrap must be an int from 0 to {MAX_BOOTSTRAP:,} (resamples; 1,000 is "
            f"usual), got {bootstrap!r}"
        )
    seed = check_seed(seed, allow_none=False)  # it seeds the bootstrap: a report repeats
    level = as_number(confidence)  # never a bool or a string such as "0.9"
    if level is None or not 0 < level < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence!r}")
    fewest = minimum_resamples(level)
    if 0 < resamples < fewest:
        raise ValueError(
            f"bootstrap={resamples!r} is too few resamples for {confidence_label(level)} "
            f"intervals: each tail needs at least one resample, so at least {fewest:,} "
            f"(2 / (1 - confidence)); pass bootstrap={max(1000, fewest)} (or 0 for none)"
        )
    ks = (
        list(range(1, min(3, num_classes - 1) + 1))
        if topk is None
        else _checked_ks(topk, num_classes, "topk")
    )
    return _Arguments(
        names=names,
        urgent_index=_urgent_index(urgent, names),
        ks=ks,
        bootstrap=resamples,
        confidence=level,
        seed=seed,
    )


def urgent_names(urgent: Iterable[str]) -> tuple[str, ...]:
    """``urgent`` read once, as a tuple of names (a generator too); a single name or a value
    that is no collection of names is refused, naming it and the fix."""
    if isinstance(urgent, str):
        raise TypeError(
            f"urgent must be a list of class names, got {urgent!r}; pass urgent=[{urgent!r}]"
        )
    try:
        return tuple(urgent)
    except TypeError:
        raise TypeError(
            f"urgent must be a list of class names, got {type(urgent).__name__} {urgent!r}; "
            "pass e.g. urgent=['CNV', 'DME'], or urgent=None to leave out the referral view"
        ) from None


def _urgent_index(urgent: Sequence[str] | None, names: tuple[str, ...]) -> IntArray | None:
    """The indices of the urgent classes; ``None`` without a referral view: ``urgent`` is
    ``None``, or left at :data:`URGENT_CLASSES` (the default, checked by identity) and the
    classes lack one of them, or :func:`_referral_note` says why the view means nothing
    for them. Names given explicitly must all be classes, and leave one out (the rest).
    The one rule of every report: the text, JSON and HTML, per scan and per patient."""
    if urgent is None:
        return None
    given = urgent_names(urgent)
    if urgent is URGENT_CLASSES and not all(name in names for name in given):
        return None  # the default, for a study without CNV or DME: no referral view
    if _referral_note(urgent, names):
        return None  # the default, for classes it does not fit: the note says why
    if not given:
        raise ValueError(
            "urgent names no class; name the urgent classes (CNV and DME by default) or "
            "pass urgent=None to leave out the referral view"
        )
    for name in given:
        if name not in names:
            raise ValueError(
                f"urgent class {name!r} is not one of {in_words(names)} (the classes); "
                "spell it as in classes, or pass urgent=None to leave out the referral view"
            )
    if all(name in given for name in names):
        raise ValueError(
            f"urgent={list(given)!r} names every class, so no image is of the rest and "
            "the referral sensitivity would be 100% by construction; leave the classes "
            "that are not urgent out of urgent, or pass urgent=None to leave out the view"
        )
    return np.array([names.index(name) for name in given], dtype=np.int64)


def _referral_note(urgent: Sequence[str] | None, names: tuple[str, ...]) -> str:
    """Why the default urgent-referral view is left out of a report of ``names`` although
    CNV and DME are among them (:attr:`ClassificationReport.referral_note`); empty when
    ``urgent`` is given (or ``None``), when the view is computed, and for a study without
    CNV or DME (left out quietly, as documented). Kermany et al. grouped their own four
    classes only: another class (AMD) may or may not be urgent, and a study of urgent
    classes alone has no rest to refer or not."""
    if urgent is not URGENT_CLASSES or not all(name in names for name in urgent):
        return ""
    others = [name for name in names if name not in KERMANY_CLASSES]
    if others:
        listed = in_words(others)
        verb = "is not a Kermany class" if len(others) == 1 else "are not Kermany classes"
        return (
            f"no urgent-referral view: {listed} {verb}, so which classes need an urgent "
            "referral is not known; pass urgent=[...] naming them (urgent=['CNV', 'DME'] "
            f"counts {listed} as not urgent)"
        )
    if all(name in urgent for name in names):
        return (
            f"no urgent-referral view: every class is urgent ({in_words(names)}), so there "
            "is no other class to tell them from (its sensitivity would be 100% by "
            "construction)"
        )
    return ""


def _ece(scores: npt.NDArray[np.float64], true: IntArray) -> float:
    """The ECE of the distributions the scores stand for (:func:`distributions`: the
    probabilities or log-probabilities); NaN without images or for other scores."""
    return calibration_error_or_nan(scores, true)  # finite: refused before otherwise


def _grouping_notes(groups: PatientGroups | None) -> list[str]:
    """The lines under a patient-level report's first line that say how its units differ
    from patients: mixed-label patients count once per label, and scans without a patient
    id count as patients of their own (so the report, intervals included, treats them as
    independent patients, which several scans of one patient are not)."""
    if groups is None:
        return []
    notes = []
    if groups.mixed:
        notes.append(
            f"({groups.mixed} patient(s) have scans of more than one label: each "
            "(patient, label) group counts once)"
        )
    if groups.without_id:
        verb = "has" if groups.without_id == 1 else "have"
        notes.append(
            f"({groups.without_id} of {groups.scans} scans {verb} no patient id: each counts "
            "as a patient of its own, so if some are one patient's scans, that patient "
            "counts several times and the intervals are too narrow)"
        )
    return notes
