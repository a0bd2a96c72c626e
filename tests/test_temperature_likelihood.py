"""The likelihood of ``softmax(scores / T)`` and its slope: no overflow for huge scores.

Each row is shifted by its maximum before it is scaled, so finite scores however large
(1e306, where ``1000 * scores`` was ``inf`` and ``inf - inf`` NaN steered the bisection to an
arbitrary temperature) give the temperature and likelihood of their softmax, and adding a
constant to a row changes nothing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
import pytest

from retinalnet.metrics import fit_temperature
from retinalnet.metrics._calibration import TEMPERATURE_BOUNDS, temperature_nll
from retinalnet.metrics._temperature_likelihood import (
    nll_slope,
    shifted_by_row_max,
    tempered_softmax,
)

ALL_RIGHT = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.5]])
ALL_RIGHT_TARGETS = np.array([0, 1, 1])


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    """An overflow RuntimeWarning (``inf - inf``) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _logits(seed: int = 0) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Logits on a grid of 1/8 (exact after adding a constant up to 1e12), and targets
    drawn from their softmax at T = 2, so the optimum lies inside the bounds."""
    rng = np.random.default_rng(seed)
    logits = np.round(rng.normal(scale=4.0, size=(300, 4)) * 8) / 8
    probabilities = np.exp(logits / 2.0)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    targets = np.array([rng.choice(4, p=row) for row in probabilities])
    return logits, targets


FitDoor = Callable[[npt.NDArray[np.float64], npt.NDArray[np.int64]], float]

FIT_DOORS: dict[str, FitDoor] = {
    "default bounds": lambda scores, targets: fit_temperature(scores, targets),
    "narrow bounds": lambda scores, targets: fit_temperature(scores, targets, bounds=(0.5, 2.0)),
}


@pytest.mark.parametrize("door", FIT_DOORS.values(), ids=FIT_DOORS.keys())
@pytest.mark.parametrize("scale", [1.0, 1e100, 1e306])
def test_rows_all_right_fit_the_lowest_temperature_at_any_scale(
    door: FitDoor, scale: float
) -> None:
    low = 0.5 if door is FIT_DOORS["narrow bounds"] else TEMPERATURE_BOUNDS[0]

    assert door(ALL_RIGHT * scale, ALL_RIGHT_TARGETS) == low


@pytest.mark.parametrize("door", FIT_DOORS.values(), ids=FIT_DOORS.keys())
@pytest.mark.parametrize("shift", [-1e6, 1e6, 1e12])
def test_the_temperature_does_not_change_with_a_constant_added_to_the_rows(
    door: FitDoor, shift: float
) -> None:
    logits, targets = _logits()
    per_row = shift * np.arange(1, len(logits) + 1)[:, None] % 7  # a constant of each row's

    assert door(logits + shift, targets) == door(logits, targets)
    assert door(logits + per_row, targets) == door(logits, targets)


@pytest.mark.parametrize("shift", [1e6, 1e12])
def test_the_likelihood_does_not_change_with_a_constant_added_to_the_rows(shift: float) -> None:
    logits, targets = _logits()

    for temperature in (0.01, 1.0, 2.0):
        assert temperature_nll(logits + shift, targets, temperature) == pytest.approx(
            temperature_nll(logits, targets, temperature), rel=1e-12
        )


@pytest.mark.parametrize("scale", [1e100, 1e306, 1.5e308])
def test_huge_scores_give_the_likelihood_of_their_softmax(scale: float) -> None:
    assert temperature_nll(ALL_RIGHT * scale, ALL_RIGHT_TARGETS, TEMPERATURE_BOUNDS[0]) == 0.0
    # a true class far below the top: -log p = scale / T (inf beyond float64's range)
    assert temperature_nll([[scale, 0.0]], [1], 1e-3) == pytest.approx(scale * 1e3)
    probabilities = tempered_softmax(np.array([[scale, scale, 0.0]]), 1e-3)
    assert probabilities.tolist() == [[0.5, 0.5, 0.0]]


@pytest.mark.parametrize(
    ("scores", "targets", "expected"),
    [
        pytest.param([[1.5e308, -1.5e308], [0.0, 1.0]], [0, 1], TEMPERATURE_BOUNDS[0], id="right"),
        pytest.param([[-1.5e308, 1.5e308], [0.0, 1.0]], [0, 1], TEMPERATURE_BOUNDS[1], id="wrong"),
    ],
)
def test_a_row_spanning_more_than_float64_holds_is_fitted_without_nan(
    scores: list[list[float]], targets: list[int], expected: float
) -> None:
    shifted = shifted_by_row_max(np.array(scores))
    assert shifted[0].tolist() in ([0.0, -math.inf], [-math.inf, 0.0])

    assert fit_temperature(scores, targets) == expected


def test_a_nan_slope_is_refused_not_bisected() -> None:
    shifted = np.array([[0.0, math.nan]])

    with pytest.raises(ValueError, match=r"the likelihood's slope at T = 1 is NaN"):
        nll_slope(shifted, np.array([1]), 1.0)
