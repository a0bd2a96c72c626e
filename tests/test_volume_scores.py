"""What the referral rule takes: probabilities summing to 1 in each row; percentages,
log-probabilities, logits and rows that are no distribution are refused naming the values
found and the fix, by the metrics' own rules of what scores stand for."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retinalnet.datasets import KERMANY_CLASSES
from retinalnet.volume import summarise_volume

ROWS = np.array([[0.1, 0.1, 0.1, 0.7], [0.6, 0.2, 0.1, 0.1]])


@pytest.mark.parametrize(
    ("scores", "match"),
    [
        # was: "probabilities must be finite and in [0, 1]", naming neither values nor fix
        (np.log(ROWS), r"got values from -2\.3 to -0\.357, log-probabilities .*pass their exp"),
        (
            torch.log_softmax(torch.tensor([[2.0, 0.0, 0.0, 1.0]]), dim=1),
            r"log-probabilities \(each row's exp sums to 1, what the models output\)",
        ),
        (ROWS * 100, r"look like percentages \(values from 10 to 70, .*divide them by 100"),
        (
            np.array([[3.0, -1.0, 0.5, 0.2]]),
            r"got values from -1 to 3 \(logits\? pass their softmax",
        ),
        # was: summarised as CNV, though no row is a distribution
        (np.full((2, 4), 0.9), r"B-scan 0's sum to 3\.6 \(rows sum to 3\.6 to 3\.6\): one-vs-rest"),
        (ROWS * [[1.0], [0.9]], r"B-scan 1's sum to 0\.9 .*pass a softmax's probabilities"),
        (np.array([ROWS[0], [0.5, 0.5, math.nan, 0.0]]), r"1 of 2 B-scans hold NaN .*B-scan 1"),
        (np.array([ROWS[0], [0.5, 0.5, math.inf, 0.0]]), r"1 of 2 B-scans hold NaN or infinite"),
        (np.array([ROWS[0], [0.5, -math.inf, 0.2, 0.3]]), r"1 of 2 B-scans hold NaN or infinite"),
        # was: blamed on "a model with non-finite weights or outputs"; -inf is log(0)
        (
            torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 3).log(),
            r"got values from -inf to 0, log-probabilities \(each row's exp sums to 1, what the "
            r"models output; -inf, the log of a probability of 0, in 3 of 3 B-scans\): pass "
            r"their exp \(tensor\.exp\(\), numpy\.exp\(array\)\)",
        ),
        (
            np.array([np.log(ROWS[0]), [math.log(0.5), math.log(0.5), -math.inf, -math.inf]]),
            r"-inf, the log of a probability of 0, in 1 of 2 B-scans",
        ),
    ],
    ids=[
        "log",
        "log-tensor",
        "percent",
        "logits",
        "one-vs-rest",
        "scaled",
        "nan",
        "inf",
        "-inf-no-log-probabilities",
        "log-of-zeros",
        "log-of-some-zeros",
    ],
)
def test_what_is_no_distribution_is_refused_naming_the_values_and_the_fix(scores, match) -> None:
    with pytest.raises(ValueError, match=match):
        summarise_volume(scores, KERMANY_CLASSES)


def test_rounded_rows_and_float32_rounding_are_read() -> None:
    rounded = [(0.33, 0.33, 0.33, 0.0), (0.1, 0.1, 0.1, 0.71)]  # sums 0.99 and 1.01
    assert summarise_volume(rounded, KERMANY_CLASSES).label == "NORMAL"
    # float32 rounding, as the metrics read it: clipped (was: refused as outside [0, 1])
    rounding = torch.tensor([[1.0000001, 0.0, 0.0, 0.0], [-1e-9, 0.0, 0.0, 1.0]])
    summary = summarise_volume(rounding.double(), KERMANY_CLASSES)
    assert summary.label == "CNV"
    assert summary.probabilities == ((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
