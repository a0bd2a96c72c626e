"""The tolerance of the parity check of an export: a probability difference in (0, 1), the
same rule through :func:`check_parity`, :func:`to_onnx` and ``retinalnet export``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from _training_helpers import tiny_cnn
from retinalnet.cli import build_parser
from retinalnet.export import PARITY_TOLERANCE, check_parity, to_onnx
from retinalnet.export._parity import check_tolerance

# two probabilities differ by at most 1: a tolerance of 1 or more is a check that never fails
REFUSED = [1, 1.0, 50, math.inf, 0, -1e-4, math.nan]
TAKEN = [PARITY_TOLERANCE, 1e-6, 0.5, 0.999, np.float32(1e-3)]


@pytest.mark.parametrize("tolerance", REFUSED)
def test_a_tolerance_outside_zero_to_one_is_refused(tolerance: float) -> None:
    with pytest.raises(
        ValueError, match=r"^tolerance must be a probability difference in \(0, 1\)"
    ):
        check_tolerance(tolerance)


@pytest.mark.parametrize("tolerance", [1, 50, math.inf])
def test_a_tolerance_of_one_or_more_is_said_to_be_a_fraction_not_a_percentage(
    tolerance: float,
) -> None:
    with pytest.raises(ValueError, match="not a percentage") as refused:
        check_tolerance(tolerance)
    assert str(refused.value) == (
        f"tolerance must be a probability difference in (0, 1), got {tolerance!r}; it is a "
        "fraction of 1, not a percentage (the default 0.0001 allows 0.01 percentage points)"
    )


@pytest.mark.parametrize("tolerance", ["1e-4", True, None])
def test_a_tolerance_that_is_no_number_is_a_type_error(tolerance: object) -> None:
    with pytest.raises(TypeError, match=r"^tolerance must be a number, .* got"):
        check_tolerance(tolerance)


@pytest.mark.parametrize("tolerance", TAKEN)
def test_a_tolerance_in_zero_to_one_is_taken(tolerance: float) -> None:
    assert check_tolerance(tolerance) == float(tolerance)


def test_to_onnx_refuses_a_tolerance_of_one_before_any_work(tmp_path: Path) -> None:
    # was: exported, and recorded as "checked against PyTorch" at a tolerance of 50
    with pytest.raises(ValueError, match=r"got 50; it is a fraction of 1, not a percentage"):
        to_onnx(tiny_cnn(), tmp_path / "model.onnx", tolerance=50)
    assert list(tmp_path.iterdir()) == []


def test_check_parity_refuses_a_tolerance_of_one_before_any_work() -> None:
    # the ONNX file is never opened: the refusal comes first
    with pytest.raises(ValueError, match=r"got 1; it is a fraction of 1"):
        check_parity(tiny_cnn(), "no-such.onnx", tolerance=1)


@pytest.mark.parametrize("text", ["1e-4", "0.5", "1", "50", "0", "-1", "nan", "inf"])
def test_the_cli_takes_the_tolerances_python_takes(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "--checkpoint", "c.pt", "--out", "m.onnx", "--tolerance", text]
    try:
        check_tolerance(float(text))
    except ValueError:
        with pytest.raises(SystemExit) as stopped:
            build_parser().parse_args(argv)
        assert stopped.value.code == 2
        error = capsys.readouterr().err.splitlines()[-1]
        assert error.startswith(
            "retinalnet export: error: argument --tolerance: must be a probability difference "
            f"in (0, 1), got {text}"
        )
    else:
        assert build_parser().parse_args(argv).tolerance == float(text)
