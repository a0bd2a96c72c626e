"""How a report's confidence intervals are computed and named: Wilson score intervals of its
proportions, the level's label, the fewest bootstrap resamples a level allows, and the line
that says which method gave which interval.

The proportions (accuracy, each class's sensitivity, specificity and precision, the
referral sensitivity and specificity) get Wilson score intervals, in closed form: a
percentile bootstrap of a proportion of 0 or 1 has no spread at all (every resample of 20
right out of 20 is right), and one stratified by class gives the accuracy only the spread of
the classes that are neither all right nor all wrong. The numbers that are not one
proportion (F1, AUC, their averages) keep the stratified percentile bootstrap of
:mod:`retinalnet.metrics._bootstrap`.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from retinalnet._core.proportion_text import fraction, percent, percent_as_given, span
from retinalnet.metrics._confusion import FloatArray, IntArray

WILSON = "wilson"
"""The method of an interval in :attr:`ClassificationReport.interval_methods`: a Wilson score
interval of a proportion."""

BOOTSTRAP = "bootstrap"
"""The method of an interval in :attr:`ClassificationReport.interval_methods`: a stratified
percentile bootstrap."""


def confidence_label(confidence: float) -> str:
    """The level of an interval as a percentage, unrounded to whole points.

    Examples
    --------
    >>> confidence_label(0.95), confidence_label(0.975), confidence_label(0.995)
    ('95%', '97.5%', '99.5%')
    """
    return percent_as_given(confidence)


def minimum_resamples(confidence: float) -> int:
    """The fewest bootstrap resamples that give a percentile interval at ``confidence``:
    each tail, ``(1 - confidence) / 2`` of the resamples, must hold at least one, so
    ``ceil(2 / (1 - confidence))`` (40 at 95%, 400 at 99.5%).

    Examples
    --------
    >>> minimum_resamples(0.95), minimum_resamples(0.99), minimum_resamples(0.995)
    (40, 200, 400)
    """
    return math.ceil(2 / (1 - confidence) - 1e-9)  # 2 / (1 - 0.95) is 40.000000000000004


def wilson_intervals(
    successes: FloatArray, trials: FloatArray, confidence: float
) -> tuple[FloatArray, FloatArray]:
    """Wilson score intervals of the proportions ``successes / trials``, elementwise; NaN
    where ``trials`` is 0 (a proportion of nothing has no interval).

    With ``z`` the normal quantile of ``(1 + confidence) / 2``, ``p = successes / trials``
    and ``n = trials``, the interval is
    ``(p + z**2 / (2 n) -+ z sqrt(p (1 - p) / n + z**2 / (4 n**2))) / (1 + z**2 / n)``:
    20 right out of 20 at 95% gives ``(20 / (20 + z**2), 1)``, about (0.839, 1).

    Examples
    --------
    >>> low, high = wilson_intervals(np.array([20.0]), np.array([20.0]), 0.95)
    >>> round(float(low[0]), 4), float(high[0])
    (0.8389, 1.0)
    """
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(trials > 0, trials, np.nan)
        p = successes / n
        scale = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / scale
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / scale
    # the bounds at p = 0 and p = 1 are 0 and 1 exactly; rounding can miss them by 1e-16
    low: FloatArray = np.where(p == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    high: FloatArray = np.where(p == 1, 1.0, np.clip(centre + half, 0.0, 1.0))
    return low, high


def proportion_intervals(
    matrix: IntArray,
    referral_matrix: IntArray | None,
    names: tuple[str, ...],
    confidence: float,
) -> dict[str, tuple[float, float]]:
    """Wilson intervals of a report's proportions, from its confusion matrix (rows true,
    columns predicted) and, when it has one, the referral's (rows not urgent, urgent).

    Keys: ``accuracy``, ``sensitivity[CLASS]``, ``specificity[CLASS]``,
    ``precision[CLASS]``, ``referral_sensitivity`` and ``referral_specificity``; a
    proportion of nothing (a class without images, a class never predicted) has none.
    """
    counts = matrix.astype(np.float64)
    tp = np.diag(counts)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    negatives = counts.sum() - support
    true_negatives = negatives - (predicted - tp)
    proportions: list[tuple[str, float, float]] = [
        ("accuracy", float(tp.sum()), float(counts.sum()))
    ]
    for c, name in enumerate(names):
        proportions += [
            (f"sensitivity[{name}]", tp[c], support[c]),
            (f"specificity[{name}]", true_negatives[c], negatives[c]),
            (f"precision[{name}]", tp[c], predicted[c]),
        ]
    if referral_matrix is not None:
        urgent = referral_matrix.astype(np.float64)
        proportions += [
            ("referral_sensitivity", urgent[1, 1], urgent[1].sum()),
            ("referral_specificity", urgent[0, 0], urgent[0].sum()),
        ]
    low, high = wilson_intervals(
        np.array([k for _, k, _ in proportions]),
        np.array([n for _, _, n in proportions]),
        confidence,
    )
    return {
        key: (float(low[i]), float(high[i]))
        for i, (key, _, _) in enumerate(proportions)
        if not np.isnan(low[i])
    }


def methods_line(confidence: float, bootstrap: int) -> str:
    """The sentence that says how a report's intervals were computed.

    Examples
    --------
    >>> print(methods_line(0.975, 1000))  # doctest: +NORMALIZE_WHITESPACE
    97.5% intervals: Wilson score for proportions (accuracy, sensitivity, specificity,
    precision); stratified percentile bootstrap (1000 resamples) for F1 and AUC
    """
    return (
        f"{confidence_label(confidence)} intervals: Wilson score for proportions (accuracy, "
        "sensitivity, specificity, precision); stratified percentile bootstrap "
        f"({bootstrap} resamples) for F1 and AUC"
    )


def interval_table(
    classes: tuple[str, ...],
    intervals: dict[str, tuple[float, float]],
    no_interval: dict[str, str],
    confidence: float,
    width: int,
) -> list[str]:
    """The lines of the text report's table of per-class intervals: one row per class, and
    one of the macro averages, with a column per number; "-" where a number has none, and
    "no interval" (explained below the table) where every resample scored the same. The ends
    are shown as ``retinalnet._core.proportion_text`` shows them (an upper end of 0.9999
    as ">99.9%", never "100.0%")."""
    columns = ("precision", "sensitivity", "specificity", "f1", "auc")
    titles = ("precision", "recall", "specificity", "f1", "auc")
    title = f"{confidence_label(confidence)} intervals"
    width = max(width, len(title) + 1)
    reasons: list[str] = []
    rows = [(name, [f"{column}[{name}]" for column in columns]) for name in classes]
    rows.append(("macro", [f"macro_{column}" for column in columns]))
    table: list[tuple[str, list[str]]] = []
    for name, keys in rows:
        cells = []
        for column, key in zip(columns, keys, strict=True):
            if key in intervals:
                low, high = intervals[key]
                show = fraction if column == "auc" else percent
                cells.append(span(show(low), show(high)))
            elif key in no_interval:
                cells.append("no interval")
                if no_interval[key] not in reasons:
                    reasons.append(no_interval[key])
            else:
                cells.append("-")
        table.append((name, cells))
    # 15 fits "99.7%-100.0%"; "99.8% to >99.9%" (an end short of 100%) needs more
    cell_width = max([15, *(len(cell) + 2 for _, cells in table for cell in cells)])
    lines = [title.ljust(width) + "".join(t.rjust(cell_width) for t in titles)]
    lines += [
        name.ljust(width) + "".join(c.rjust(cell_width) for c in cells) for name, cells in table
    ]
    lines += [f"no interval: {reason}" for reason in reasons]
    return lines
