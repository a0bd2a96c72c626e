"""The ``colour`` step of an exported model's ``preprocessing_steps``, written from the
constants of the library's image gate, so the file says what retinalnet does to each PIL
mode (its refusals included) and a consumer without retinalnet can do the same."""

from __future__ import annotations

from typing import Any

# the gate's own numbers (private there: see the fixer's report): the one place they live
from retinalnet._core.pixel_modes import (
    FULL_16_BIT,
    GREY_SLACK,
    LOW_16_BIT,
    OVERSHOOT,
    SIXTEEN_BIT_MODES,
)

__all__ = ["colour_step"]


def colour_step() -> dict[str, Any]:
    """The ``colour`` step of :func:`preprocessing_steps`: how each PIL mode becomes ``"L"``
    or ``"RGB"``, refusals included, in words and numbers.

    Written from the constants the library's image gate applies
    (:mod:`retinalnet._core.pixel_modes`, said to users by
    :func:`~retinalnet._core.images.to_model_mode`), so the file says what retinalnet does:
    a consumer following only ``round(v * 255 / 65535)`` turned a 12-bit scan nearly black
    where retinalnet refuses it, and read an ``"I"`` image of 8-bit values as 16-bit.
    """
    full, low = FULL_16_BIT, LOW_16_BIT
    fractions = (-OVERSHOOT, 1 + OVERSHOOT)
    grey = (-GREY_SLACK, 255 + GREY_SLACK)
    sixteen = ", ".join(repr(mode) for mode in SIXTEEN_BIT_MODES)
    refused = (
        f"refused when the brightest pixel is below {low} (12-bit data or less, which would "
        "be nearly black: rescale it to 8 bits by its real bit depth first)"
    )
    stretch = (
        "stretched from the image's own minimum and maximum, "
        "rint((v - min) * 255 / (max - min)) (retinalnet warns; a constant image is refused)"
    )
    rules = [
        "keep 'L' (grey) and 'RGB'",
        "'1' -> 'L' (0 and 255); 'LA', 'La' -> 'L' (the grey channel)",
        f"16-bit grey ({sixteen}) -> 'L' as (v * 255 + {full // 2}) // {full}, that is "
        f"round(v * 255 / {full}); {refused}",
        f"'I' (32-bit integer): values 0 to 255 are grey levels as they are, values 0 to "
        f"{full} 16-bit grey as above (refused likewise below {low}), any other range "
        f"{stretch}",
        "'F' (float): NaN or infinite values refused; values within "
        f"[{fractions[0]:g}, {fractions[1]:g}] are fractions of white, rint(v * 255); others "
        f"with a maximum up to {fractions[1]:g} are stretched as for 'I'; values within "
        f"[{grey[0]:g}, {grey[1]:g}] are grey levels, rint(v); others rounded, rint(v), and "
        f"read as 'I' (0 to {full}: 16-bit grey, refused below {low}; any other range: the "
        "float values stretched as above)",
        "every result clipped to 0 to 255",
        "16-bit colour samples (a 16-bit RGB, RGBA or grey+alpha PNG or TIFF) -> the high byte "
        f"of each sample, as PIL reads them; refused when no colour sample reaches {low}",
        "other modes -> 'RGB' by PIL's convert ('P', 'PA', 'RGBa' through 'RGBA'), alpha dropped",
    ]
    return {
        "op": "colour",
        "rule": "; ".join(rules),
        "sixteen_bit_modes": list(SIXTEEN_BIT_MODES),
        "sixteen_bit_refused_below": low,
        "float_fractions_within": list(fractions),
        "float_grey_levels_within": list(grey),
    }
