"""Equality by value of results holding arrays and tensors (``_core/value_equality``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from retinalnet._core.value_equality import fields_equal, values_equal


@pytest.mark.parametrize(
    ("first", "second", "equal"),
    [
        (torch.ones(2, 3), torch.ones(2, 3), True),
        (torch.ones(2, 3), torch.ones(3, 2), False),  # same values, other shape
        (torch.ones(2), torch.ones(2, dtype=torch.float64), False),  # other dtype
        (torch.ones(2), np.ones(2, dtype=np.float32), False),  # a tensor is no array
        (np.eye(2), np.eye(2), True),
        (np.eye(2), np.zeros((2, 2)), False),
        (np.eye(2, dtype=np.int64), np.eye(2, dtype=np.int32), False),
        ({"w": torch.ones(2), "step": 3}, {"w": torch.ones(2), "step": 3}, True),
        ({"w": torch.ones(2)}, {"w": torch.zeros(2)}, False),
        ({"w": torch.ones(2)}, {"v": torch.ones(2)}, False),
        ({0: {"avg": torch.ones(2)}, 1: [1, 2]}, {0: {"avg": torch.ones(2)}, 1: [1, 2]}, True),
        ([np.ones(2), "a"], [np.ones(2), "a"], True),
        ([np.ones(2)], (np.ones(2),), False),  # a list is not a tuple, as in Python
        ([np.ones(2)], [np.ones(2), np.ones(2)], False),
        (1.5, 1.5, True),
        (float("nan"), float("nan"), False),  # two NaNs are not equal...
        (None, np.ones(2), False),
    ],
)  # fmt: skip
def test_values_equal(first: object, second: object, equal: bool) -> None:
    assert values_equal(first, second) is equal
    assert values_equal(second, first) is equal


def test_a_value_is_equal_to_itself_a_nan_too() -> None:
    nan = math.nan
    assert values_equal(nan, nan)  # ...but one NaN is itself, as in a list
    assert values_equal([nan], [nan])


@dataclass(frozen=True, eq=False)
class _Result:
    matrix: np.ndarray
    name: str
    note: str = field(default="", compare=False)

    def __eq__(self, other: object) -> bool:
        return fields_equal(self, other)


@dataclass(frozen=True, eq=False)
class _Other:
    matrix: np.ndarray
    name: str
    note: str = ""

    def __eq__(self, other: object) -> bool:
        return fields_equal(self, other)


def test_fields_equal_compares_the_compared_fields_of_one_type() -> None:
    result = _Result(np.eye(2), "a", note="x")
    assert result == _Result(np.eye(2), "a", note="y")  # compare=False is left out
    assert result != _Result(np.zeros((2, 2)), "a")
    assert result != _Result(np.eye(2), "b")
    assert result != _Other(np.eye(2), "a")  # another type: never equal
    assert result != "a"


def test_a_classification_report_and_a_feature_cache_compare_by_value() -> None:
    """``report == other`` raised "the truth value of an array ... is ambiguous" (its
    confusion matrix), as ``FeatureCache == other`` did (its tensors)."""
    import copy

    import numpy as np
    import pytest
    import torch

    from retinalnet.metrics import classification_report
    from retinalnet.training import FeatureCache

    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    report = classification_report([0, 1, 1, 1], probabilities, classes=["a", "b"])
    assert report == copy.deepcopy(report)
    assert report != classification_report([0, 1, 0, 1], probabilities, classes=["a", "b"])
    cache = FeatureCache(torch.ones(2, 3), torch.tensor([0, 1]), "head", "f")
    assert cache == copy.deepcopy(cache)
    assert cache != FeatureCache(torch.zeros(2, 3), torch.tensor([0, 1]), "head", "f")
    with pytest.raises(TypeError, match="unhashable type: 'ClassificationReport'"):
        hash(report)
