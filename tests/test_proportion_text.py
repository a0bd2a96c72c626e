"""Proportions and AUCs as text: a value strictly between 0 and 1 never reads as an end
(1,999 of 2,000 was "100.0%", the text of a model that missed no one)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retinalnet._core.proportion_text import (
    fixed_or_exact,
    fraction,
    percent,
    percent_as_given,
    percent_beside,
    span,
)
from retinalnet.models._summary import ParameterSummary
from retinalnet.training._calibration import CalibrationResult
from retinalnet.training._epoch import epoch_line


@pytest.mark.parametrize(
    ("value", "decimals", "shown"),
    [
        (0.9995, 1, ">99.9%"),  # was 100.0%: 1 of 2,000 missed
        (0.99949, 1, "99.9%"),
        (0.9999999999999999, 1, ">99.9%"),
        (1.0, 1, "100.0%"),
        (0.0004, 1, "<0.1%"),  # was 0.0%
        (5e-324, 1, "<0.1%"),
        (0.0005, 1, "0.1%"),
        (0.0, 1, "0.0%"),
        (0.123456, 1, "12.3%"),
        (0.99996, 2, ">99.99%"),  # the headline accuracy's two decimals
        (0.99994, 2, "99.99%"),
        (0.00004, 2, "<0.01%"),
        (0.996, 0, ">99%"),  # a normalized confusion-matrix cell
        (0.004, 0, "<1%"),
        (1.0, 0, "100%"),
        (0.0, 0, "0%"),
        (math.nan, 1, "-"),
        (np.float32(0.99999), 1, ">99.9%"),
    ],
)
def test_percent_never_rounds_inside_values_to_an_end(
    value: float, decimals: int, shown: str
) -> None:
    assert percent(value, decimals) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.9996, ">0.999"),  # was 1.000, the text of perfect separation
        (0.9995, ">0.999"),
        (0.99949, "0.999"),
        (1.0, "1.000"),
        (0.0004, "<0.001"),
        (0.0, "0.000"),
        (0.5, "0.500"),
        (math.nan, "-"),
    ],
)
def test_fraction_never_rounds_inside_values_to_an_end(value: float, shown: str) -> None:
    assert fraction(value) == shown


def test_the_marks_keep_the_width_of_the_ends_they_replace() -> None:
    # the text tables right-align to the width of "100.0%" and "1.000"
    assert len(percent(0.9995)) == len(percent(1.0))
    assert len(percent(0.0004)) == len(percent(0.0)) + 1
    assert len(fraction(0.9996)) == len(fraction(1.0)) + 1


@pytest.mark.parametrize(
    ("low", "high", "shown"),
    [
        ("95.1%", "99.0%", "95.1%-99.0%"),
        ("99.8%", "100.0%", "99.8%-100.0%"),
        ("99.8%", ">99.9%", "99.8% to >99.9%"),  # not "99.8%->99.9%", an arrow
        ("<0.1%", "2.0%", "<0.1% to 2.0%"),
        ("0.999", ">0.999", "0.999 to >0.999"),
    ],
)
def test_span_says_to_where_an_end_is_marked(low: str, high: str, shown: str) -> None:
    assert span(low, high) == shown


def test_the_epoch_log_line_and_the_calibration_summary_never_round_to_an_end() -> None:
    line = epoch_line(3, 10, {"val_loss": 0.01, "val_accuracy": 0.99999, "lr": 0.1}, 2.0)
    assert "val_acc >99.99%" in line
    assert "100.00%" not in line
    calibrated = CalibrationResult(1.5, True, 2000, 0.0004, 0.00002, 0.3, 0.2)
    assert "ECE <0.1% -> <0.1%" in str(calibrated)


def test_a_setting_reads_as_given_and_a_share_of_trainable_parameters_never_as_0() -> None:
    assert [percent_as_given(v) for v in (0.95, 0.975, 0.525, 0.999, 1 / 200)] == [
        "95%",
        "97.5%",
        "52.5%",
        "99.9%",
        "0.5%",
    ]
    assert percent_beside(0.9985, 0.999) == "99.85%"
    assert str(ParameterSummary(85_801_732, 3_076)).endswith("trainable (<0.01%)")


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (0.97310423, "0.973104"),
        (0.99999964, "0.99999964"),  # was 1.000000, a certainty the model did not give
        (3.6e-07, "3.6e-07"),  # was 0.000000
        (float(np.float32(0.9999999)), "0.9999998807907104"),  # a float32 probability
        (0.9999994, "0.999999"),
        (1.0, "1.000000"),
        (0.0, "0.000000"),
    ],
)
def test_a_data_files_probability_is_never_rounded_to_0_or_1(value: float, written: str) -> None:
    assert fixed_or_exact(value) == written
    assert float(written) not in (0.0, 1.0) or value in (0.0, 1.0)
