"""``loadable_data``: NumPy values made plain, tensors kept, anything else refused by place."""

from __future__ import annotations

import collections
import datetime
import enum
import fractions
import io
import pickle
from typing import Any

import numpy as np
import pytest
import torch

from retinalnet._core.loadable_data import NotLoadableError, loadable_data
from retinalnet._core.python_values import python_number, python_values


class _Level(enum.IntEnum):
    LOW = 1


class _Opaque:
    pass


def _round_trip(value: Any) -> Any:
    """``value`` written by ``torch.save`` and read back as a safe load reads it."""
    stream = io.BytesIO()
    torch.save({"value": value}, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=True)["value"]


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        (np.float64(0.5), 0.5),
        (np.float32(0.25), 0.25),
        (np.int64(3), 3),
        (np.uint8(7), 7),
        (np.bool_(True), True),
        (np.str_("cnv"), "cnv"),
        (np.array(0.5), 0.5),  # 0-d, as np.load gives scalars back
        (np.complex64(1j), 1j),
    ],
)
def test_numpy_scalars_become_the_python_values_they_hold(value: Any, plain: Any) -> None:
    made = loadable_data({"x": [value, (value,)]}, "state")

    assert made == {"x": [plain, (plain,)]}
    assert type(made["x"][0]) is type(plain)
    assert _round_trip(made) == made


def test_numpy_arrays_become_tensors_and_string_arrays_lists() -> None:
    reversed_view = np.arange(4.0)[::-1]  # negative strides, which torch.from_numpy refuses
    reversed_view.flags.writeable = False

    made = loadable_data(
        {"a": reversed_view, "b": np.array([True, False]), "c": np.array(["x"])}, "s"
    )

    assert torch.equal(made["a"], torch.tensor([3.0, 2.0, 1.0, 0.0], dtype=torch.float64))
    assert made["b"].dtype == torch.bool
    assert made["c"] == ["x"]
    assert torch.equal(_round_trip(made)["a"], made["a"])


def test_keys_and_containers_are_made_plain_tensors_kept_not_copied() -> None:
    tensor = torch.ones(3)
    value = {
        np.int64(0): {"step": torch.tensor(2.0), "exp_avg": tensor},
        "ordered": collections.OrderedDict(b=np.float32(1.0)),
        "counts": collections.Counter(a=2),
        "default": collections.defaultdict(int, c=np.int64(1)),
        "set": {np.int64(4)},
        "size": torch.Size([2, 3]),
        "dtype": torch.float16,
        "device": torch.device("cpu"),
    }

    made = loadable_data(value, "optimizer")

    assert list(made) == [0, "ordered", "counts", "default", "set", "size", "dtype", "device"]
    assert type(next(iter(made))) is int
    assert made[0]["exp_avg"] is tensor  # not copied
    assert made[0]["step"].ndim == 0  # a 0-d tensor stays a tensor (Adam's step)
    assert type(made["ordered"]) is collections.OrderedDict
    assert type(made["counts"]) is collections.Counter
    assert made["default"] == {"c": 1}
    assert type(made["default"]) is dict
    assert made["set"] == {4}
    assert isinstance(value["ordered"]["b"], np.float32)  # the value given is not changed
    loaded = _round_trip(made)
    assert loaded.keys() == made.keys()
    assert loaded[0]["exp_avg"].equal(tensor)


_WIDE = pytest.mark.skipif(
    np.dtype(np.longdouble).itemsize == 8, reason="long double is a float64 here (Windows)"
)


@pytest.mark.parametrize(
    ("value", "where", "shown"),
    [
        ({"best": _Opaque()}, r"state\['best'\]", "_Opaque"),
        ({"a": [1, {"level": _Level.LOW}]}, r"state\['a'\]\[1\]\['level'\]", "_Level"),
        ({_Level.LOW: 1}, "state key <_Level.LOW: 1>", "_Level"),
        ({"p": fractions.Fraction(1, 2)}, r"state\['p'\]", "Fraction"),
        ({"t": collections.namedtuple("Pair", "a b")(1, 2)}, r"state\['t'\]", "Pair"),
        ({"d": datetime.date(2024, 1, 2)}, r"state\['d'\]", "date"),
        ({"d": np.datetime64("2024-01-02")}, r"state\['d'\]", "datetime64"),
        ({"m": np.ma.array([1, 2])}, r"state\['m'\]", "MaskedArray"),
        ({"r": range(3)}, r"state\['r'\]", "range"),
        ({"f": frozenset({1})}, r"state\['f'\]", "frozenset"),
        # no Python type holds them: .item() gives the NumPy scalar back (R14)
        pytest.param({"x": np.longdouble(0.25)}, r"state\['x'\]", "longdouble", marks=_WIDE),
        pytest.param(
            {"x": np.array(0.25, dtype=np.longdouble)}, r"state\['x'\]", "ndarray", marks=_WIDE
        ),
        pytest.param({"z": np.clongdouble(1 + 2j)}, r"state\['z'\]", "clongdouble", marks=_WIDE),
    ],
)
def test_what_a_safe_load_would_not_read_back_is_named_by_its_place(
    value: Any, where: str, shown: str
) -> None:
    with pytest.raises(NotLoadableError, match=rf"^{shown} .* at {where}( \(.*\))?$") as info:
        loadable_data(value, "state")

    assert "\n" not in str(info.value)
    # what the refusal saves the user from: a file torch.save writes (or fails to) and a
    # safe load refuses
    with pytest.raises((pickle.PicklingError, pickle.UnpicklingError)):
        _round_trip(value)


def test_a_container_that_holds_itself_is_refused() -> None:
    loop: list[Any] = [1]
    loop.append(loop)

    with pytest.raises(NotLoadableError, match=r"at state\['l'\]\[1\] \(it holds itself\)$"):
        loadable_data({"l": loop}, "state")


def test_the_same_container_twice_is_no_loop() -> None:
    shared = [np.float64(1.0)]

    assert loadable_data({"a": shared, "b": shared}, "s") == {"a": [1.0], "b": [1.0]}


def test_python_number_and_python_values_agree() -> None:
    assert python_number(np.float64(0.5)) == 0.5
    assert python_number("x") == "x"
    array = np.arange(2)
    assert python_number(array) is array  # an array is not a number: kept
    # python_values (a model's settings) makes 0-d tensors numbers too; checkpoints keep them
    assert python_values({"a": torch.tensor(0.5), "b": np.array(2)}) == {"a": 0.5, "b": 2}
