"""A hand-built EvaluationResult: each field checked where it is built (_result_fields)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from retinalnet.training import EvaluationResult

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
TARGETS = np.array([0, 1, 2, 3, 3])
PROBABILITIES = np.eye(4)[[0, 1, 2, 3, 2]] * 0.7 + 0.075


def _fields(**changed: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "classes": CLASSES,
        "loss": 0.5,
        "accuracy": 0.8,
        "confusion_matrix": np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]),
        "probabilities": PROBABILITIES,
        "targets": TARGETS,
        "patient_ids": ("1", "2", "3", "4", "4"),
    }
    return fields | changed


def test_a_result_built_from_lists_holds_the_documented_types() -> None:
    result = EvaluationResult(
        **_fields(
            classes=list(CLASSES),
            confusion_matrix=_fields()["confusion_matrix"].astype(float).tolist(),
            probabilities=PROBABILITIES.tolist(),
            targets=TARGETS.tolist(),
            patient_ids=["1", "2", "3", "4", "4"],
        )
    )

    assert result == EvaluationResult(**_fields())
    assert result.classes == CLASSES
    assert result.confusion_matrix.dtype == np.int64
    assert result.probabilities is not None
    assert result.probabilities.dtype == np.float64
    assert result.targets is not None
    assert result.targets.dtype == np.int64
    assert result.patient_ids == ("1", "2", "3", "4", "4")
    assert result.per_class_accuracy["NORMAL"] == 0.5
    single = EvaluationResult(**_fields(probabilities=PROBABILITIES.astype(np.float32)))
    assert single.probabilities is not None
    assert single.probabilities.dtype == np.float64


@pytest.mark.parametrize(
    ("changed", "error", "said"),
    [
        # was: IndexError from __str__ and per_class_accuracy
        (
            {"confusion_matrix": np.eye(3, dtype=np.int64)},
            ValueError,
            r"confusion_matrix is 3x3 but there are 4 classes \('CNV', 'DME', 'DRUSEN', "
            r"'NORMAL'\); pass one row and one column per class",
        ),
        # was: a per-class accuracy of -100%
        (
            {"confusion_matrix": -np.eye(4, dtype=np.int64)},
            ValueError,
            r"confusion_matrix must hold counts of images .* a negative count \(-1 at row 0, "
            r"column 0\); pass image counts \[true, predicted\]",
        ),
        # was: fractions printed as counts
        (
            {"confusion_matrix": np.eye(4) / 2},
            ValueError,
            r"confusion_matrix must hold counts .* fractions \(0\.5 at row 0, column 0\)",
        ),
        ({"confusion_matrix": np.ones(4)}, ValueError, r"confusion_matrix must be square"),
        # was: "accuracy 9500.00%"
        ({"accuracy": 95}, ValueError, r"accuracy must be a fraction from 0 to 1 .* got 95;"),
        ({"accuracy": -0.1}, ValueError, r"accuracy must be a fraction from 0 to 1"),
        ({"accuracy": "0.8"}, ValueError, r"accuracy must be a fraction .* got '0\.8'"),
        ({"loss": "0.5"}, ValueError, r"loss must be a number .* got str '0\.5'"),
        ({"loss": None}, ValueError, r"loss must be a number .* got NoneType None"),
        ({"temperature": 0.0}, ValueError, r"temperature must be a positive finite number"),
        ({"temperature": math.inf}, ValueError, r"temperature must be a positive finite"),
        ({"temperature": math.nan}, ValueError, r"temperature must be a positive finite"),
        # as a model's class names are checked (models._checks.check_class_names)
        ({"classes": "CNV"}, TypeError, r"classes must be a list of class names, got the str"),
        ({"classes": ()}, ValueError, r"classes must be 2 or more distinct names, got \[\]"),
        ({"classes": (0, 1, 2, 3)}, TypeError, r"classes must be names \(strings\), got 0"),
        (
            {"classes": ("CNV", "CNV", "DRUSEN", "NORMAL")},
            ValueError,
            r"classes must be 2 or more distinct names",
        ),
        # a column short: every report of it refused later, far from the mistake
        (
            {"probabilities": PROBABILITIES[:, :3]},
            ValueError,
            r"probabilities must have shape \(images, 4\), one column per class .* got \(5, 3\)",
        ),
        (
            {"probabilities": PROBABILITIES[0]},
            ValueError,
            r"probabilities must have shape \(images, 4\)",
        ),
        (
            {"probabilities": [["a"] * 4] * 5},
            TypeError,
            r"probabilities must be numbers, one row per image, got list",
        ),
        (
            {"targets": np.array([0, 1, 2, 3, 4])},
            ValueError,
            r"targets must be class indices from 0 to 3, got values from 0 to 4",
        ),
        ({"targets": TARGETS.astype(float)}, ValueError, r"targets must be integer class"),
        (
            {"targets": TARGETS[:4]},
            ValueError,
            r"the per-image fields differ in length \(probabilities 5, targets 4, "
            r"patient_ids 5\); pass one of each per image",
        ),
        (
            {"patient_ids": ("1",)},
            ValueError,
            r"the per-image fields differ in length \(probabilities 5, targets 5, patient_ids 1\)",
        ),
    ],
)
def test_a_bad_field_is_refused_where_the_result_is_built(
    changed: dict[str, Any], error: type[Exception], said: str
) -> None:
    with pytest.raises(error, match=rf"^EvaluationResult: {said}"):
        EvaluationResult(**_fields(**changed))


@pytest.mark.parametrize(
    "changed",
    [
        {},
        {"probabilities": None, "targets": None, "patient_ids": None},
        {"probabilities": None},  # targets alone
        {"accuracy": math.nan, "loss": math.nan},  # no images
        {"probabilities": np.full((5, 4), np.nan)},  # a validation pass records NaN outputs
        {"accuracy": 1, "temperature": 2},  # ints are numbers
    ],
)
def test_what_evaluate_and_users_build_is_accepted(changed: dict[str, Any]) -> None:
    EvaluationResult(**_fields(**changed))


def test_an_empty_result_prints() -> None:
    result = EvaluationResult(
        CLASSES, math.nan, math.nan, np.zeros((4, 4), dtype=np.int64), np.empty((0, 4)),
        np.empty(0, dtype=np.int64),
    )  # fmt: skip

    assert result.num_samples == 0
    assert "images 0" in str(result)


def test_numpy_numbers_are_stored_as_python_floats() -> None:
    # np.float32 was stored as given: json.dumps(result.to_dict()) then raised
    import json

    result = EvaluationResult(
        **_fields(loss=np.float32(0.5), accuracy=np.float32(0.8), temperature=np.float64(2.0))
    )
    # a loss as criterion(...) returns it, a 0-d tensor, and a 0-d array: the numbers held
    import torch

    for loss in (torch.tensor(0.5), np.array(0.5)):
        assert EvaluationResult(**_fields(loss=loss)).loss == 0.5

    assert [type(v) for v in (result.loss, result.accuracy, result.temperature)] == [float] * 3
    assert json.loads(json.dumps(result.to_dict()))["accuracy"] == pytest.approx(0.8)
