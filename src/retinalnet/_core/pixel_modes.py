"""What the pixels of each PIL mode become for a model (``"L"`` or ``"RGB"``), by one rule
per file; :func:`retinalnet._core.images.to_model_mode` says the rules to users.

The scale of a file's numbers is chosen once, from all its frames (:func:`file_scale`): the
bit depth of integer pixels, the range of float pixels, whether 16-bit data hold 12 bits or
fewer. Chosen frame by frame, a volume would lose the differences between its B-scans (a dim
float B-scan stretched as bright as the others) or be read on the 16-bit scale in one
B-scan and on the 8-bit scale in the next; DICOM volumes are checked over all their frames
too (:mod:`retinalnet._core.dicom_pixels`).

Float pixels follow one rule whatever their fractions: values within [0, 1] are fractions of
white (give or take a resampling overshoot of :data:`OVERSHOOT`, clipped), values within
[0, 255] grey levels (rounded, give or take :data:`GREY_SLACK`); others are rounded to whole numbers
and read as the 32-bit integer image of them (16-bit data 0 to 65535). Only values no bit
depth explains (negative, above 65535) are stretched from their own minimum and maximum,
and the gate warns of it, naming the image (:attr:`FileScale.stretches`,
:func:`stretch_warning`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "FULL_16_BIT",
    "GREY_SLACK",
    "LOW_16_BIT",
    "OVERSHOOT",
    "SIXTEEN_BIT_MODES",
    "FileScale",
    "UnusablePixelsError",
    "file_scale",
    "in_frame",
    "model_mode",
    "sixteen_bit_colour",
    "stretch_warning",
]

FULL_16_BIT = 65535
LOW_16_BIT = 4096  # a 16-bit image whose brightest pixel is below this holds 12 bits or fewer
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_TO_RGB = ("RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
_WIDE_COLOUR = ("RGB", "RGBA", "LA")  # the modes PIL reads 16-bit colour samples into

OVERSHOOT = 0.1
"""How far, as a share of the range, float pixels may reach outside [0, 1] and still be
fractions of white (clipped): a bicubic or Lanczos resize overshoots at sharp edges (-0.085
to 1.049 for a resized OCT scan in [0, 1])."""

GREY_SLACK = 1.0
"""How far float pixels may reach outside [0, 255] and still be grey levels (clipped): grey
levels shifted by half a level reach 255.5. Values further out (-10 to 40 dB) are no grey
levels: clipped, a fifth of such a scan turned black without a word."""


class UnusablePixelsError(ValueError):
    """Why a decoded image cannot be given to a model; the caller names the image."""


@dataclass(frozen=True)
class _Rule:
    """Values ``low`` to ``high`` become grey levels 0 to 255; ``bits=16`` rounds as the
    integer rule ``(value * 255 + 32767) // 65535``."""

    low: float
    high: float
    bits: int | None = None


_EIGHT_BIT = _Rule(0, 255, 8)
_SIXTEEN = _Rule(0, FULL_16_BIT, 16)
_UNIT = _Rule(0, 1)


@dataclass(frozen=True)
class FileScale:
    """How the numbers of one file's frames become grey levels, chosen from all of them.

    Attributes
    ----------
    integer : _Rule or None
        The rule of its integer frames (``"I;16"`` modes and ``"I"``), if it has any.
    real : _Rule or None
        The rule of its float frames (``"F"``), if it has any.
    """

    integer: _Rule | None = None
    real: _Rule | None = None

    @property
    def stretches(self) -> tuple[tuple[float, float], ...]:
        """The ranges stretched from their own minimum and maximum to 0 to 255 (values no
        bit depth explains), which the gate warns of; empty for every other file."""
        rules = (self.integer, self.real)
        return tuple((rule.low, rule.high) for rule in rules if rule and _stretched(rule))


def _stretched(rule: _Rule) -> bool:
    return rule.bits is None and rule != _UNIT


def stretch_warning(name: str, low: float, high: float) -> str:
    """The gate's warning for an image (or a volume) whose values were stretched."""
    return (
        f"{name} has values from {low:g} to {high:g}, neither fractions of white in [0, 1] nor "
        "grey levels (0 to 255, or 0 to 65535 for 16-bit data): they were stretched from "
        "their own minimum and maximum to grey levels 0 to 255, so the same tissue can get "
        "other grey levels in another image; scale the pixels to [0, 1] yourself to choose "
        "their grey levels"
    )


def in_frame(index: int, frames: int, reason: str) -> str:
    """``reason`` about one B-scan of a volume, naming it (``frames`` > 1) or as it is."""
    return f"B-scan {index} (of {frames}, numbered from 0): {reason}" if frames > 1 else reason


def sixteen_bit_colour(opened: Image.Image) -> bool:
    """Whether an opened frame, not decoded yet, stores 16 bits per colour sample (a 16-bit
    RGB, RGBA or grey+alpha PNG or TIFF): PIL reads such samples by their high byte, into
    ``"RGB"`` or ``"RGBA"``. ``False`` once the frame is decoded (its tiles are gone)."""
    tiles: Any = getattr(opened, "tile", None)  # an ImageFile's, not yet decoded
    if opened.mode not in _WIDE_COLOUR or not tiles:
        return False
    args: Any = tiles[0].args
    rawmode = args[0] if isinstance(args, tuple) and args else args
    return isinstance(rawmode, str) and ";16" in rawmode


def file_scale(frames: Sequence[Image.Image], wide: Sequence[bool] = ()) -> FileScale:
    """The rules for the integer and float frames of one file, from all its frames.

    ``wide[i]`` says frame ``i`` held 16-bit colour samples (:func:`sixteen_bit_colour`).

    Raises
    ------
    UnusablePixelsError
        NaN or infinite values (naming the B-scan of a volume), or a file whose pixels have
        no meaning on the chosen scale: 16-bit data (or floats rounded to whole numbers above
        255) with no value of 4096 or more, a constant image no bit depth explains.
    """
    count = len(frames)
    integers: list[tuple[int, int]] = []
    reals: list[tuple[float, float]] = []
    high_bytes: list[int] = []
    for index, frame in enumerate(frames):
        if frame.mode in SIXTEEN_BIT_MODES or frame.mode == "I":
            values = np.asarray(frame)
            if values.size:
                integers.append((int(values.min()), int(values.max())))
        elif frame.mode == "F":
            values = np.asarray(frame).astype(np.float64)
            finite = np.isfinite(values)
            if not finite.all():
                raise UnusablePixelsError(
                    in_frame(
                        index,
                        count,
                        f"{int((~finite).sum())} of its {values.size} pixels are NaN or "
                        "infinite; expected finite values",
                    )
                )
            if values.size:
                reals.append((float(values.min()), float(values.max())))
        elif index < len(wide) and wide[index] and frame.mode in _WIDE_COLOUR:
            values = np.asarray(frame)
            colour = values[..., :1] if frame.mode == "LA" else values[..., :3]
            high_bytes.append(int(colour.max()) if colour.size else 0)
    if high_bytes and max(high_bytes) < LOW_16_BIT >> 8:
        raise UnusablePixelsError(_dark_colour(max(high_bytes), count))
    sixteen = any(frame.mode in SIXTEEN_BIT_MODES for frame in frames)
    integer = real = None
    if integers:
        low, high = min(pair[0] for pair in integers), max(pair[1] for pair in integers)
        kind = "a 16-bit image" if sixteen else "a 32-bit integer image read as 16-bit"
        integer = _integer_rule(low, high, _volume(kind, count), count, eight=not sixteen)
    if reals:
        bottom, top = min(item[0] for item in reals), max(item[1] for item in reals)
        if _within(bottom, top, 1):
            real = _UNIT  # fractions of white, an overshoot clipped
        elif top <= 1 + OVERSHOOT:  # fractions far below 0: no rule, stretched
            real = _stretch_rule(bottom, top, count)
        elif bottom >= -GREY_SLACK and top <= 255 + GREY_SLACK:
            real = _EIGHT_BIT  # grey levels, rounded, half a level over clipped
        else:  # rounded to whole numbers: the rule of mode "I"
            low, high = int(np.rint(bottom)), int(np.rint(top))
            if low >= 0 and high <= FULL_16_BIT:
                kind = _volume("a float image read as 16-bit", count)
                real = _integer_rule(low, high, kind, count, eight=True, floats=True)
            else:  # no bit depth explains them: their own range (the gate warns)
                real = _stretch_rule(bottom, top, count)
    return FileScale(integer, real)


def _within(bottom: float, top: float, full: int) -> bool:
    """Whether values lie within [0, full], give or take :data:`OVERSHOOT` of it."""
    return bottom >= -OVERSHOOT * full and top <= (1 + OVERSHOOT) * full


def _to_eight_bits(high: int, *, floats: bool) -> str:
    """How to rescale data of ``high``'s bit depth to 8 bits: a shift for integers, a
    division for floats (which have no ``>>``)."""
    bits = max(high.bit_length(), 1)
    if floats:
        full = (1 << bits) - 1
        return (
            f"Image.fromarray((numpy.asarray(image) * 255 / {full}).clip(0, 255).astype('uint8'))"
        )
    return f"Image.fromarray((numpy.asarray(image) >> {max(bits - 8, 0)}).astype('uint8'))"


def _volume(kind: str, frames: int) -> str:
    """``"a 16-bit image"`` said of a volume: ``"a 16-bit volume of 3 B-scans"``."""
    return kind.replace(" image", f" volume of {frames} B-scans", 1) if frames > 1 else kind


def _integer_rule(
    low: int, high: int, kind: str, frames: int, *, eight: bool, floats: bool = False
) -> _Rule:
    if eight and low >= 0 and high <= 255:
        return _EIGHT_BIT
    if low >= 0 and high <= FULL_16_BIT:
        if high < LOW_16_BIT:
            guess = f"{high.bit_length()}-bit data?" if high else "all black"
            example = f"{max(high.bit_length(), 1)}-bit" if high else "such"
            raise UnusablePixelsError(
                f"{kind} whose brightest pixel is {high} of 65535 ({guess}): rescaled by the "
                "16-bit range it would be nearly black (at most "
                f"{round(high * 255 / FULL_16_BIT)} of 255). Rescale it to 8 bits by the "
                f"scanner's real bit depth and pass that image (for {example} data: "
                f"{_to_eight_bits(high, floats=floats)})"
            )
        return _SIXTEEN
    return _stretch_rule(low, high, frames)


def _stretch_rule(low: float, high: float, frames: int) -> _Rule:
    if high == low:
        every = "every pixel of its B-scans" if frames > 1 else "every pixel"
        raise UnusablePixelsError(
            f"{every} is {low:g}: a constant image outside [0, 1], 0 to 255 and 0 to 65535 "
            "has no range to rescale to grey levels"
        )
    return _Rule(low, high)


def _dark_colour(high_byte: int, frames: int) -> str:
    most = high_byte * 256 + 255
    kind = _volume("a 16-bit colour image", frames)
    return (
        f"{kind} whose brightest sample is at most {most} of 65535 ({most.bit_length()}-bit "
        f"data or less?): PIL reads 16-bit colour by the high byte of each sample, so it "
        f"would be nearly black (at most {high_byte} of 255). Save it as 8-bit grey, scaled "
        "by the scanner's real bit depth, and pass that file"
    )


def model_mode(image: Image.Image, scale: FileScale | None = None) -> Image.Image:
    """``image`` in ``"L"`` or ``"RGB"``, its numbers read by ``scale`` (by default, the
    scale of the image alone).

    Raises
    ------
    UnusablePixelsError
        As :func:`file_scale`, or for a mode without a rule.
    """
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode in ("LA", "La"):
        return image.convert("LA").getchannel(0)
    if mode in ("RGBa", "P", "PA"):  # through RGBA: no PIL warning about palette transparency
        return image.convert("RGBA").convert("RGB")
    if mode in _TO_RGB:
        return image.convert("RGB")
    if mode in SIXTEEN_BIT_MODES or mode in ("I", "F"):
        scale = scale or file_scale([image])
        rule = scale.real if mode == "F" else scale.integer
        return Image.fromarray(_apply(np.asarray(image), rule or _EIGHT_BIT))
    raise UnusablePixelsError(
        f"PIL mode {mode!r} is not supported; convert it to 'L' (grayscale) or 'RGB' first"
    )


def _apply(values: np.ndarray[Any, Any], rule: _Rule) -> np.ndarray[Any, Any]:
    if rule.bits == 16:
        whole: np.ndarray[Any, Any] = np.rint(values).astype(np.int64)  # floats rounded
        return ((whole * 255 + FULL_16_BIT // 2) // FULL_16_BIT).astype(np.uint8)
    scaled = (values.astype(np.float64) - rule.low) * (255 / (rule.high - rule.low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
