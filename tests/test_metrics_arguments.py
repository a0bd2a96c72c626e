"""Arguments of the metrics and of the class-balance helpers that numpy or Python used to
refuse in their own words (audit AJ, F5 and F8): each is one line naming the argument, the
value and the fix."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from retinalnet.metrics import (
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    patient_level,
    reliability_curve,
    topk_accuracy,
)
from retinalnet.plots import plot_reliability_diagram, plot_roc_curves
from retinalnet.training import balanced_sampler, class_counts, class_weights

TARGETS = [0, 1, 2, 3]
PROBABILITIES = np.full((4, 4), 0.25)


@pytest.mark.parametrize("num_classes", [0, 4.0, None, "4", True, -1])
def test_confusion_matrix_refuses_a_bad_num_classes(num_classes: object) -> None:
    message = rf"^num_classes must be an int >= 1 .*, got {re.escape(repr(num_classes))}$"
    with pytest.raises(ValueError, match=message):
        confusion_matrix([0, 1], [0, 1], num_classes)  # type: ignore[arg-type]


def test_confusion_matrix_takes_a_numpy_int() -> None:
    assert confusion_matrix([0, 1], [0, 1], np.int64(2)).tolist() == [[1, 0], [0, 1]]


@pytest.mark.parametrize(
    ("targets", "shown"),
    [(["CNV", "DME"], r"dtype <U3 \(first value 'CNV'\)"), ([0.0, 1.0], "dtype float64")],
)
@pytest.mark.parametrize(
    "function",
    [class_weights, balanced_sampler, class_counts],
    ids=lambda function: function.__name__,
)
def test_balance_helpers_refuse_labels_that_are_not_class_indices(
    function: Callable[..., Any], targets: list[object], shown: str
) -> None:
    with pytest.raises(ValueError, match=rf"^targets must be integer class indices, got {shown}"):
        function(targets)


def test_class_weights_refuses_a_num_classes_that_is_not_an_int() -> None:
    with pytest.raises(ValueError, match=r"^num_classes must be an int >= 1 .*, got 4\.0$"):
        class_weights(np.array([0, 1]), num_classes=4.0)  # type: ignore[arg-type]


def test_balance_helpers_take_arrays_and_tensors() -> None:
    expected = class_weights([0, 0, 1])
    assert torch.equal(class_weights(np.array([0, 0, 1])), expected)
    assert torch.equal(class_weights(torch.tensor([0, 0, 1])), expected)
    assert len(balanced_sampler(torch.tensor([0, 0, 1]), seed=0)) == 3


@pytest.mark.parametrize(
    ("call", "order"),
    [
        (lambda: topk_accuracy(PROBABILITIES, TARGETS), "topk_accuracy(targets, probabilities)"),
        (
            lambda: classification_report(PROBABILITIES, TARGETS, urgent=None),
            "classification_report(targets, probabilities)",
        ),
        (
            lambda: expected_calibration_error(TARGETS, PROBABILITIES),
            "expected_calibration_error(probabilities, targets)",
        ),
        (
            lambda: reliability_curve(TARGETS, PROBABILITIES),
            "reliability_curve(probabilities, targets)",
        ),
        (lambda: fit_temperature(TARGETS, PROBABILITIES), "fit_temperature(scores, targets)"),
        (
            lambda: patient_level(TARGETS, PROBABILITIES, ["a", "a", "b", "b"], urgent=None),
            "patient_level(probabilities, targets, ...)",
        ),
        (
            lambda: plot_roc_curves((PROBABILITIES, TARGETS)),
            "plot_roc_curves((targets, probabilities))",
        ),
        (
            lambda: plot_reliability_diagram((PROBABILITIES, TARGETS)),
            "plot_reliability_diagram((targets, probabilities))",
        ),
    ],
)
def test_swapped_targets_and_probabilities_are_named_with_the_order(
    call: Callable[[], object], order: str
) -> None:
    with pytest.raises(
        ValueError, match=rf"^the arguments look swapped: .*; {re.escape(order)} takes them"
    ):
        call()


def test_the_right_order_still_works() -> None:
    assert topk_accuracy(TARGETS, PROBABILITIES, ks=[1])[1].shape == (4,)
    assert 0 <= expected_calibration_error(PROBABILITIES, TARGETS) <= 1


def test_topk_accuracy_refuses_a_bare_k() -> None:
    with pytest.raises(ValueError, match=r"^ks must be a list of ints, e.g. \[1, 2\], got 2$"):
        topk_accuracy(TARGETS, PROBABILITIES, ks=2)  # type: ignore[arg-type]
