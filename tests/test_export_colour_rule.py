"""The ``colour`` step an exported model carries says the rules the library's image gate
applies, with its numbers: a consumer following it refuses what retinalnet refuses."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from retinalnet._core.images import to_model_mode
from retinalnet.export import preprocessing_steps
from retinalnet.transforms import Preprocessing


def _colour() -> dict[str, object]:
    (step,) = [s for s in preprocessing_steps(Preprocessing()) if s["op"] == "colour"]
    return step


def test_the_colour_rule_names_the_12_bit_refusal_and_the_I_and_F_rules() -> None:
    """Was: "16-bit grey -> 'L' as round(v * 255 / 65535)" only, which turns a 12-bit scan
    nearly black and an "I" image of 8-bit values too."""
    step = _colour()
    rule = str(step["rule"])
    assert "round(v * 255 / 65535)" in rule
    assert "refused when the brightest pixel is below 4096" in rule
    assert "'I' (32-bit integer): values 0 to 255 are grey levels as they are" in rule
    assert "'F' (float): NaN or infinite values refused" in rule
    assert "[-0.1, 1.1] are fractions of white" in rule
    assert step["sixteen_bit_modes"] == ["I;16", "I;16L", "I;16B", "I;16N"]


@pytest.mark.parametrize("dtype", [np.uint16, np.int32], ids=["I;16", "I"])
def test_the_16_bit_threshold_it_states_is_the_one_the_gate_applies(dtype: type) -> None:
    below = int(_colour()["sixteen_bit_refused_below"])  # type: ignore[call-overload]
    values = np.full((16, 16), 300, dtype=dtype)
    values[0, 0] = below - 1
    with pytest.raises(ValueError, match="12-bit data"):
        to_model_mode(Image.fromarray(values))
    values[0, 0] = below
    assert to_model_mode(Image.fromarray(values)).mode == "L"


def test_the_float_ranges_it_states_are_the_ones_the_gate_applies() -> None:
    step = _colour()
    low, high = step["float_fractions_within"]  # type: ignore[misc]
    inside = (low / 2, 1 + (high - 1) / 2)  # an overshoot within the stated range, clipped
    fractions = np.array([[*inside, 0.5, 1.0] * 4] * 16, dtype=np.float32)
    assert sorted(set(np.asarray(to_model_mode(Image.fromarray(fractions))).ravel())) == [
        0,
        128,
        255,
    ]
    grey_low, grey_high = step["float_grey_levels_within"]  # type: ignore[misc]
    grey = np.array([[grey_low, 128.0, grey_high, 2.0] * 4] * 16, dtype=np.float32)
    assert sorted(set(np.asarray(to_model_mode(Image.fromarray(grey))).ravel())) == [0, 2, 128, 255]
