"""Calibration: expected calibration error, the reliability curve, and temperature scaling.

A classifier is calibrated when its confidence means what it says: of the images it gives
80 %, 80 % are right. Guo et al., "On Calibration of Modern Neural Networks" (ICML 2017),
measure the gap with the expected calibration error and close most of it with one number,
the temperature ``T`` that divides the network's outputs before the softmax.

Why this module is long: its three functions share their reading of scores (logits,
log-probabilities or probabilities, rounded ones included), and the ECE and the reliability
curve their bins; half of the length is their NumPy docstrings, which state those rules.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.counts import as_number
from retinalnet.metrics._confusion import (
    FloatArray,
    IntArray,
    _as_probabilities,
    _as_targets,
    _refuse_swapped,
)
from retinalnet.metrics._rates import are_probabilities, distributions, refuse_percentages
from retinalnet.metrics._temperature_likelihood import nll_slope, shifted_by_row_max
from retinalnet.metrics._temperature_likelihood import temperature_nll as temperature_nll

__all__ = ["expected_calibration_error", "fit_temperature", "reliability_curve"]

TEMPERATURE_BOUNDS: tuple[float, float] = (1e-3, 1e3)
"""The range :func:`fit_temperature` searches by default."""

_SMALLEST_PROBABILITY = float(np.finfo(np.float32).smallest_subnormal)
"""A probability of 0 as :func:`fit_temperature` takes its log: float32's smallest, about
1e-45 (log -103), as a float32 softmax rounds anything smaller to 0."""

_SMALLEST_FLOAT64 = float(np.finfo(np.float64).smallest_subnormal)
"""A probability of 0 among probabilities some of which are below float32's smallest (a
float64 softmax's): float64's smallest, about 5e-324 (log -744), so the 0 stays below them."""

_GRID_RESOLUTION = 8
"""A precision tells a value on a grid of step ``s`` from one off it only where its epsilon
is at most ``s / 8``: float32 for any step down to 1e-6, float16 down to 0.01 (any float16
near 1 lies on the grid of 0.001 at float16's precision)."""


def _on_grid(values: FloatArray, stored: IntArray, digits: int) -> bool:
    """Whether every value is a multiple of ``10 ** -digits``: the multiple itself (give or
    take float64's rounding, as in 0.1 + 0.2), or the multiple as the precision its row was
    given in rounds it (float32's 0.1 is 0.100000001; :func:`stored_precision`), give or take
    two of that precision's steps at 1 for a nonzero multiple of a step of at least 0.001 (a
    column written as ``1 - p``)."""
    grid = np.round(values, digits)
    on = np.abs(values - grid) <= 4 * np.finfo(np.float64).eps * np.abs(grid)
    for code, dtype in enumerate(_STORED_DTYPES[:-1]):
        rows = stored == code
        if rows.any() and _GRID_RESOLUTION * np.finfo(dtype).eps <= 10.0**-digits:
            with np.errstate(over="ignore", under="ignore"):
                written = grid[rows].astype(dtype).astype(np.float64)
            on[rows] |= values[rows] == written
            # within two of the precision's steps at 1 of a nonzero multiple: that multiple
            # after arithmetic (float32's 1 - 0.97 is 0.029999971), where that is at most a
            # thousandth of the grid's step (up to 3 decimals in float32): an unrounded
            # value is that near a multiple by chance once in 2,000 at most; 0 only as 0
            slack = 2 * float(np.finfo(dtype).eps)
            if slack * 1000 <= 10.0**-digits:
                near = np.abs(values[rows] - written) <= slack
                on[rows] |= (grid[rows] != 0) & near
    return bool(on.all())


def _rounding_step(values: FloatArray) -> float | None:
    """The step probabilities were rounded to (0.01 for two decimals, up to six), else
    ``None``: every value lies on that grid, in the precision it was given in
    (:func:`_on_grid`).

    A value on the grid is 0 or at least the step, so a nonzero probability below half
    the step (a saturated softmax's 4e-18 or 1e-30) says the probabilities were not
    rounded: only 0 and values that are the grid's own, in their precision, count as
    rounded."""
    stored = stored_precision(values)
    for digits in range(1, 7):
        if _on_grid(values, stored, digits):
            return 10.0**-digits
    return None


def _smallest_kept(values: FloatArray) -> float:
    """What a probability of exactly 0 is read as before its log is taken (every other
    probability keeps its value, however small).

    A softmax's own zeros (an output far below the others) are the smallest float32, or the
    smallest float64 where a probability given is below float32's (a float64 softmax: a 0
    read above a 1e-87 would rank it first); a probability rounded to 0 (``round(p, 2)``
    in a CSV) is anything under half the rounding step, and is read as that half: the
    smallest float32 would be a logit gap of 103 that no temperature explains (a fitted
    77.9 for 4.5), half the step one of about 5. A warning says the fit is then
    approximate.
    """
    step = _rounding_step(values) if np.any(values == 0) else None
    if step is None:
        below_float32 = (values > 0) & (values < _SMALLEST_PROBABILITY)
        return _SMALLEST_FLOAT64 if below_float32.any() else _SMALLEST_PROBABILITY
    decimals = round(-math.log10(step))
    warn_caller(
        f"fit_temperature: the probabilities are rounded to {decimals} decimal(s), some to 0: "
        f"those are read as {step / 2:g} (half the rounding step) and the temperature is "
        "approximate; pass logits, log-probabilities or unrounded probabilities",
        UserWarning,
    )
    return step / 2


MAX_BINS = 1000
"""The most bins :func:`reliability_curve` takes: a width of 0.001, finer than any
confidence a model reports meaningfully (Guo et al. use 15); more only costs memory."""


def _checked(
    probabilities: npt.ArrayLike, targets: npt.ArrayLike, bins: int, where: str
) -> tuple[FloatArray, IntArray, IntArray]:
    _refuse_swapped(targets, probabilities, f"{where}(probabilities, targets)")
    true = _as_targets(targets)
    scores = _as_probabilities(probabilities, len(true))
    true = _as_targets(true, scores.shape[1])
    if (
        isinstance(bins, bool)
        or not isinstance(bins, (int, np.integer))
        or not 1 <= bins <= MAX_BINS
    ):
        raise ValueError(
            f"bins must be an int from 1 to {MAX_BINS:,} (equal-width bins of [0, 1]; "
            f"15 is usual), got {bins!r}"
        )
    refuse_percentages(scores)
    rows = distributions(scores)  # probabilities or log-probabilities, as a report takes
    if rows is None and not are_probabilities(scores):  # finite: refused before otherwise
        raise ValueError(
            "probabilities must be in [0, 1] (the model's softmax outputs) or be "
            f"log-probabilities, got values from {scores.min():g} to {scores.max():g}; pass "
            "softmax(logits)"
        )
    if rows is None:  # in [0, 1], but a row misses a sum of 1 by more than rounding
        sums = np.clip(scores, 0.0, 1.0).sum(axis=1)
        worst = int(np.abs(sums - 1.0).argmax())
        raise ValueError(
            f"each image's probabilities must sum to 1 (every class's, give or take "
            f"rounding), but row {worst} sums to {sums[worst]:.4g}; pass the softmax "
            "outputs of every class (not one-vs-rest scores or a subset of the classes)"
        )
    return rows, true, stored_precision(scores)  # clipped, rounded rows rescaled


def reliability_curve(
    probabilities: npt.ArrayLike, targets: npt.ArrayLike, *, bins: int = 15
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Confidence against accuracy, in equal-width bins of confidence.

    The confidence of an image is its top probability, and it is right when that class (the
    first one on ties, the library's rule: see :mod:`retinalnet.metrics`) is its true class.
    Bin ``m`` (from 0) holds the images whose confidence lies in
    ``(m / bins, (m + 1) / bins]``; the first bin also takes a confidence of exactly 0.
    A confidence is compared with the edges in the precision it was given in (float16,
    float32 or float64), so one written as an edge lies on it: float32's 0.8 (0.800000012)
    is in ``(0.733, 0.8]`` with 15 bins, as 5/6 is in ``(2/3, 5/6]`` with 6.

    .. versionadded:: 0.2

    Parameters
    ----------
    probabilities
        Class probabilities, shape ``(images, classes)``.
    targets
        True class index of each image.
    bins
        Number of equal-width bins of ``[0, 1]`` (15, as Guo et al.), at most 1,000.

    Returns
    -------
    confidence, accuracy : numpy.ndarray
        Mean confidence and accuracy of the images in each bin (NaN for an empty bin).
    count : numpy.ndarray
        Images in each bin (int64).

    Raises
    ------
    ValueError
        If the shapes disagree, a target is out of range, a probability is NaN or infinite
        (the message counts the rows and names the first), the scores are neither
        probabilities nor log-probabilities (logits, scaled probabilities; percentages,
        rows summing to 100, are refused saying to divide them by 100), a row of
        probabilities does not sum to 1 give or take 0.02 (rows rounded to two decimals are
        rescaled; a row of log-probabilities may miss a logsumexp of 0 as much, as a bf16
        log-softmax does), or ``bins`` is not an int from 1 to 1,000.

    Examples
    --------
    >>> from retinalnet.metrics import reliability_curve
    >>> confidence, accuracy, count = reliability_curve(
    ...     [[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]], [0, 1, 1], bins=2)
    >>> confidence.round(4).tolist(), accuracy.round(4).tolist(), count.tolist()
    ([nan, 0.7667], [nan, 0.6667], [0, 3])
    """
    rows, true, stored = _checked(probabilities, targets, bins, "reliability_curve")
    return _binned(rows, true, bins, stored)


_STORED_DTYPES: tuple[npt.DTypeLike, ...] = (np.float16, np.float32, np.float64)


def stored_precision(scores: FloatArray) -> IntArray:
    """Each row's index into :data:`_STORED_DTYPES`: the narrowest that holds every value of
    the row exactly, the precision probabilities were given in (float64 for others)."""
    stored = np.full(len(scores), len(_STORED_DTYPES) - 1, dtype=np.int64)
    if scores.size and are_probabilities(scores):
        for code in (1, 0):  # float32, then float16
            with np.errstate(over="ignore", under="ignore"):
                back = scores.astype(_STORED_DTYPES[code]).astype(np.float64)
            stored[(back == scores).all(axis=1)] = code
    return stored


def _binned(
    scores: FloatArray, true: IntArray, bins: int, stored: IntArray
) -> tuple[FloatArray, FloatArray, IntArray]:
    """:func:`reliability_curve` of checked distributions (:func:`_checked`), each row's
    confidence compared with the edges ``m / bins`` at the precision ``stored`` its row was
    given in (:func:`stored_precision`), both rounded to it: a probability written as an
    edge (float32's 0.8 is 0.800000012; ``linspace`` misses 5/6 with 6 bins) lies on it."""
    confidence = scores.max(axis=1) if len(true) else np.empty(0)
    correct = (scores.argmax(axis=1) == true) if len(true) else np.empty(0, dtype=bool)
    edges = np.arange(bins + 1) / bins  # each m / bins correctly rounded
    index = np.empty(len(confidence), dtype=np.int64)
    for code, dtype in enumerate(_STORED_DTYPES):
        rows = stored == code
        # (edges[m], edges[m + 1]]: searchsorted(side="left") finds the first edge >= it
        index[rows] = np.searchsorted(
            edges.astype(dtype), confidence[rows].astype(dtype), side="left"
        )
    index = np.clip(index - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct.astype(np.float64), minlength=bins) / count
    return mean_confidence, accuracy, count


def expected_calibration_error(
    probabilities: npt.ArrayLike, targets: npt.ArrayLike, *, bins: int = 15
) -> float:
    """The top-label expected calibration error (ECE) of Guo et al. (2017).

    .. math::

        \\mathrm{ECE} = \\sum_{m=1}^{M} \\frac{|B_m|}{n}
        \\left| \\mathrm{acc}(B_m) - \\mathrm{conf}(B_m) \\right|

    where the ``n`` images are put in ``M`` equal-width bins ``B_m`` by their confidence
    (their top probability; bin ``m`` holds ``((m - 1) / M, m / M]``), ``acc(B_m)`` is the
    fraction of the bin's images whose top class is the true one and ``conf(B_m)`` their
    mean confidence. 0 is perfect calibration; an empty bin adds nothing. See
    :func:`reliability_curve` for the bins.

    .. versionadded:: 0.2

    Parameters
    ----------
    probabilities
        Class probabilities, shape ``(images, classes)``.
    targets
        True class index of each image.
    bins
        Number of bins ``M`` (15, as Guo et al.).

    Returns
    -------
    float
        The ECE, in [0, 1]; NaN for no images.

    Raises
    ------
    ValueError
        As :func:`reliability_curve`.

    Examples
    --------
    Two bins: ``(0, 0.5]`` is empty; ``(0.5, 1]`` holds all three images, with mean
    confidence 0.7667 and accuracy 2/3, so the ECE is 0.1:

    >>> from retinalnet.metrics import expected_calibration_error
    >>> round(expected_calibration_error(
    ...     [[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]], [0, 1, 1], bins=2), 6)
    0.1
    """
    rows, true, stored = _checked(probabilities, targets, bins, "expected_calibration_error")
    return _calibration_error(rows, true, bins, stored)


def calibration_error_or_nan(
    scores: FloatArray, true: IntArray, stored: IntArray | None = None
) -> float:
    """The ECE (15 bins) of the distributions ``scores`` stand for (probabilities or
    log-probabilities: ``metrics._rates.distributions``), NaN without images or for other
    scores, as a report, the per-patient report and ``EvaluationResult.ece`` give it.
    ``scores`` are finite; ``stored`` is each row's precision as given
    (:func:`stored_precision`) where ``scores`` are not (a patient's mean)."""
    rows = distributions(scores)
    if not len(true) or rows is None:
        return math.nan
    stored = stored_precision(scores) if stored is None else stored
    return _calibration_error(rows, true, 15, stored)


def _calibration_error(rows: FloatArray, true: IntArray, bins: int, stored: IntArray) -> float:
    """:func:`expected_calibration_error` of checked distributions (:func:`_checked`, or a
    report's :func:`~retinalnet.metrics._rates.distributions`), binned by :func:`_binned`."""
    confidence, accuracy, count = _binned(rows, true, bins, stored)
    total = int(count.sum())
    if total == 0:
        return math.nan
    used = count > 0
    gaps = np.abs(accuracy[used] - confidence[used]) * count[used]
    return float(gaps.sum() / total)


def fit_temperature(
    scores: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> float:
    """The temperature that minimises the negative log-likelihood of ``softmax(scores / T)``.

    Temperature scaling (Guo et al., 2017): one number ``T > 0`` divides the network's
    outputs before the softmax. It never changes the most probable class, so accuracy and
    the confusion matrix stay the same; the AUCs of a model of more than two classes can
    change (an AUC ranks a class's probability across images, and the softmax of a class
    depends on the image's other outputs). ``T > 1`` softens overconfident probabilities,
    ``T < 1`` sharpens underconfident ones.

    ``scores`` may be logits or log-probabilities: the registered models end in
    ``LogSoftmax``, and ``log_softmax(z) = z - logsumexp(z)`` differs from ``z`` by a
    constant per image, so ``softmax(log_softmax(z) / T) == softmax(z / T)``; the same ``T``
    fits both. Probabilities (every value in [0, 1], each row summing to 1 give or take
    rounding, as :func:`expected_calibration_error` takes them) are fitted as their logs,
    ``log(p)``, which are log-probabilities: ``softmax(log(p) / T) == softmax(z / T)``, so
    the temperature is the logits'. A probability of 0 is taken as float32's smallest,
    about 1e-45 (a float32 softmax rounds smaller ones to 0), or float64's, about 5e-324,
    when some probability given is below float32's smallest (a float64 softmax's 1e-87
    keeps its own log, and a 0 stays below it), except in probabilities rounded to a few
    decimals (a CSV of ``round(p, 2)``: every value a multiple of 0.1 to 1e-6 in the
    precision it was given in, give or take two of its steps (a float32 ``1 - 0.97``),
    so 0 or at least the step; a saturated float32 softmax's 4e-18 is not rounded): there
    a 0 stands for anything under half the rounding step, and is read as that half (0.005
    for two decimals), with a warning that the temperature is approximate (the rounding
    lost what the logits knew). Only zeros are replaced; every other probability is fitted
    as its own log. Scores in [0, 1] whose rows do not sum to 1 are taken as logits.

    .. versionchanged:: 0.2
       Probabilities are fitted as log-probabilities (they were taken as logits, which
       gave a temperature on the wrong side of 1).

    The negative log-likelihood is convex in ``1 / T``, so the search is a bisection of its
    slope on ``log(1 / T)``: deterministic, to a relative precision of 1e-10. Each row is
    shifted by its maximum before it is scaled, so adding a constant to a row changes
    nothing and huge finite scores (1e306) do not overflow.

    .. versionadded:: 0.2

    Parameters
    ----------
    scores
        Logits, log-probabilities or probabilities, shape ``(images, classes)``; finite.
    targets
        True class index of each image.
    bounds
        The range searched, ``(low, high)`` with ``0 < low < high``.

    Returns
    -------
    float
        The temperature. It is a bound when the optimum lies beyond it: when every image
        is right, the likelihood keeps growing as ``T`` falls to 0, so the search returns
        ``low`` (a validation set without errors cannot show overconfidence). 1.0 when each
        image's scores are all equal (no temperature changes anything).

    Raises
    ------
    ValueError
        If there are no images, a score is NaN or infinite (the message counts the rows
        and names the first), the shapes disagree, a target is out of range, the scores
        are probabilities in percent (rows summing to 100: divide them by 100), or
        ``bounds`` is not ``0 < low < high``. Rows whose scores span more than float64
        holds (from -1.5e308 to 1.5e308) are fitted all the same: the far score's weight
        is 0.

    Warns
    -----
    UserWarning
        When the scores are probabilities rounded to a few decimals, some of them to 0:
        those are read as half the rounding step, and the temperature is approximate; pass
        logits, log-probabilities or unrounded probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> from retinalnet.metrics import fit_temperature
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(scale=4.0, size=(4000, 4))
    >>> probabilities = np.exp(logits / 2.0)
    >>> probabilities /= probabilities.sum(axis=1, keepdims=True)
    >>> targets = [rng.choice(4, p=row) for row in probabilities]
    >>> abs(fit_temperature(logits, targets) - 2.0) < 0.1  # the temperature that made them
    True
    """
    _refuse_swapped(targets, scores, "fit_temperature(scores, targets)")
    true = _as_targets(targets)
    values = _as_probabilities(scores, len(true), "scores")
    true = _as_targets(true, values.shape[1])
    refuse_percentages(values, "scores")
    given = [as_number(bound) for bound in bounds] if len(bounds) == 2 else []
    if len(given) != 2 or None in given:  # never a bool or a string such as "10"
        raise ValueError(f"bounds must be (low, high) numbers, got {bounds!r}")
    low, high = (float(bound) for bound in given if bound is not None)
    if not (0 < low < high and math.isfinite(high)):
        raise ValueError(f"bounds must be (low, high) with 0 < low < high, got {bounds!r}")
    if not len(true):
        raise ValueError("fit_temperature needs at least one image")
    rows = distributions(values) if are_probabilities(values) else None
    if rows is not None:  # probabilities: their logs are log-probabilities, the same T fits
        # only a 0 is replaced: a float64 1e-87 keeps its log (-200), not float32's -103
        values = np.log(np.where(rows > 0, rows, _smallest_kept(values)))
    # the slope in beta = 1 / T rises with beta (convexity): bisect for its zero, on scores
    # shifted by their row max first, so beta * scores cannot overflow (a finite 1e306)
    beta_low, beta_high = 1.0 / high, 1.0 / low
    shifted = shifted_by_row_max(values)
    if not (-shifted.min(axis=1) > 1e-12 * (1 + np.abs(values).max(axis=1))).any():
        return 1.0  # every image's scores are equal: the likelihood does not depend on T
    if nll_slope(shifted, true, beta_high) <= 0:
        return low  # still falling at the sharpest temperature allowed
    if nll_slope(shifted, true, beta_low) >= 0:
        return high  # already rising at the softest
    log_low, log_high = math.log(beta_low), math.log(beta_high)
    while log_high - log_low > 1e-10:
        middle = (log_low + log_high) / 2
        if nll_slope(shifted, true, math.exp(middle)) < 0:
            log_low = middle
        else:
            log_high = middle
    return 1.0 / math.exp((log_low + log_high) / 2)
