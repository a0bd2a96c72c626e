"""The grey levels of DICOM pixels: rescale, window, bit depth, MONOCHROME1.

The rules (the docs page "DICOM and OCT volumes" says them for users):

1. The Modality LUT: ``value * RescaleSlope + RescaleIntercept`` (1 and 0 when absent).
2. With a window (``WindowCenter``/``WindowWidth``, the first when there are several), the
   DICOM VOI function (``LINEAR``, ``LINEAR_EXACT`` or ``SIGMOID``, PS3.3 C.11.2.1.2) maps
   the values to 0..255.
3. Without one, the range ``BitsStored`` can hold (0 to 2**BitsStored - 1, or the signed
   range), through the rescale, is mapped linearly to 0..255: the PNG rule of
   :func:`~retinalnet._core.images.to_model_mode` (16-bit PNGs are mapped by 0..65535) with
   the file's real bit depth. A fixed range keeps intensities comparable across scans; a
   frame's own min/max would not. As for 16-bit PNGs, data that fill less than 1/16 of that
   range (a wrong ``BitsStored``) are refused rather than shown nearly black: checked over all
   the frames of a file, and over all the files of a volume given as one file per B-scan
   (:func:`dark_reason`), so a dim B-scan (a blink) does not get its volume refused.
4. ``MONOCHROME1`` is inverted (255 - grey) after 2 or 3.
5. Colour (``RGB``, ``YBR_*``, 8 bits) is kept as RGB; other photometric interpretations are
   refused.

Window and rescale are read per frame from the functional groups of enhanced multi-frame
files (Ophthalmic Tomography), then from the shared groups, then from the top level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["DicomReadError", "Unwindowed", "dark_reason", "to_grey_levels"]

_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")
_DARK_FRACTION: Final = 1 / 16  # as images.py: a 16-bit PNG whose maximum is below 4096


class DicomReadError(ValueError):
    """Why a DICOM file cannot be read; the caller names the file. ``not_found`` is true
    for a file that does not exist (the caller's error says so by its kind too)."""

    def __init__(self, reason: str, *, not_found: bool = False) -> None:
        super().__init__(reason)
        self.not_found = not_found


@dataclass(frozen=True)
class Unwindowed:
    """How bright the frames of one DICOM file shown without a window are (rule 3): what
    :func:`dark_reason` reads, for one file or for the files of a volume together."""

    fill: float
    """The largest share of the range ``BitsStored`` allows that its frames reach (0 to 1)."""
    high: int
    """Its brightest stored value."""
    bits: int
    """Its ``BitsStored``."""
    signed: bool
    """Whether its values are signed (``PixelRepresentation`` 1)."""


def to_grey_levels(
    array: npt.NDArray[Any], dataset: Any, samples: int
) -> tuple[npt.NDArray[np.uint8], Unwindowed | None]:
    """uint8 grey levels (or RGB) of decoded frames ``(frames, rows, columns[, samples])``.

    ``dataset`` is the pydicom data set the frames came from (its pixel and display tags).
    Nearly black frames are not refused here: the caller asks :func:`dark_reason`, for the
    file or for all the files of its volume.

    Returns
    -------
    grey : numpy.ndarray
        The grey levels, uint8, the shape of ``array``.
    unwindowed : Unwindowed or None
        How bright its frames without a window are, for :func:`dark_reason`; ``None`` when
        every frame has a window, or the file stores 8 bits or fewer (nothing to check).

    Raises
    ------
    DicomReadError
        For pixels the rules refuse (see the module).
    """
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    bits_allocated = int(dataset.get("BitsAllocated") or 8)
    if samples == 3 and photometric in _COLOUR:
        if bits_allocated != 8:
            raise DicomReadError(
                f"it is {photometric} colour with {bits_allocated} bits per sample; retinalnet "
                "reads 8-bit colour only (OCT B-scans are grey)"
            )
        return array.astype(np.uint8), None
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomReadError(
            f"its photometric interpretation is {photometric!r} with {samples} samples per "
            "pixel; retinalnet reads MONOCHROME1, MONOCHROME2 and 8-bit RGB/YBR"
        )
    if "ModalityLUTSequence" in dataset:
        raise DicomReadError(
            "it holds a Modality LUT table (ModalityLUTSequence), which retinalnet does not "
            "apply; export the B-scans with RescaleSlope/RescaleIntercept or none"
        )
    bits = int(dataset.get("BitsStored") or bits_allocated)
    signed = int(dataset.get("PixelRepresentation") or 0) == 1
    stored = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    out = np.empty(array.shape, np.uint8)
    unwindowed: list[float] = []  # the fraction of the range each unwindowed frame fills
    for index, frame in enumerate(array):
        slope, intercept = _rescale(dataset, index)
        values = frame.astype(np.float64) * slope + intercept
        window = _window(dataset, index)
        if window is None:
            low, high = sorted((stored[0] * slope + intercept, stored[1] * slope + intercept))
            grey = (values - low) * (255 / (high - low))
            unwindowed.append(float(grey.max()) / 255)
        else:
            grey = _apply_window(values, *window)
        if photometric == "MONOCHROME1":
            grey = 255 - grey
        out[index] = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    if bits <= 8 or not unwindowed:
        return out, None
    return out, Unwindowed(max(unwindowed), int(array.max()), bits, signed)


def dark_reason(files: Sequence[Unwindowed]) -> str | None:
    """Why frames without a window are refused as nearly black, in words; ``None`` when one
    of them fills 1/16 of its range or more (rule 3).

    ``files`` holds one :class:`Unwindowed` per file: one for a DICOM file (all its frames
    together), several for a volume given as one file per B-scan, whose files are checked
    together as the frames of one multi-frame file are.
    """
    if not files or max(file.fill for file in files) >= _DARK_FRACTION:
        return None
    brightest = max(files, key=lambda file: file.fill)
    kind = "signed range" if brightest.signed else "range"
    used = max(brightest.high, 1).bit_length()
    black = f"at most {round(brightest.fill * 255)} of 255"
    if len(files) == 1:
        return (
            f"it has no window (WindowCenter/WindowWidth) and its brightest stored value is "
            f"{brightest.high}, under 1/16 of the {kind} its BitsStored={brightest.bits} "
            f"allows: mapped by that range it would be nearly black ({black}). The data look "
            f"like {used}-bit data: correct BitsStored, or give the file a window"
        )
    return (
        f"none of its {len(files)} DICOM files without a window (WindowCenter/WindowWidth) "
        f"reaches 1/16 of the {kind} its BitsStored allows (the brightest holds "
        f"{brightest.high} with BitsStored={brightest.bits}): mapped by that range the "
        f"volume would be nearly black ({black}). The data look like {used}-bit data: "
        "correct BitsStored in the files, or give them a window"
    )


def _functional(dataset: Any, index: int, sequence: str, keyword: str) -> Any:
    """A per-frame value: the frame's functional group, the shared group, then the top level."""
    groups = []
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        items = group.get(sequence)
        if items and keyword in items[0]:
            return items[0].get(keyword)
    return dataset.get(keyword)


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return float(value[0]) if len(value) else None
    return float(value)


def _rescale(dataset: Any, index: int) -> tuple[float, float]:
    slope = _first(_functional(dataset, index, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _first(
        _functional(dataset, index, "PixelValueTransformationSequence", "RescaleIntercept")
    )
    slope = 1.0 if slope is None else slope
    if slope == 0 or not np.isfinite(slope):
        raise DicomReadError(
            f"its RescaleSlope is {slope}; expected a finite, non-zero number (or none)"
        )
    return slope, 0.0 if intercept is None else intercept


def _window(dataset: Any, index: int) -> tuple[float, float, str] | None:
    center = _first(_functional(dataset, index, "FrameVOILUTSequence", "WindowCenter"))
    width = _first(_functional(dataset, index, "FrameVOILUTSequence", "WindowWidth"))
    if center is None or width is None:
        if "VOILUTSequence" in dataset:
            raise DicomReadError(
                "its display is given by a VOI LUT table (VOILUTSequence), which retinalnet "
                "does not apply; export the B-scans with WindowCenter/WindowWidth or none"
            )
        return None
    function = str(
        _functional(dataset, index, "FrameVOILUTSequence", "VOILUTFunction") or "LINEAR"
    ).strip()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        raise DicomReadError(
            f"its VOILUTFunction is {function!r}; expected LINEAR, LINEAR_EXACT or SIGMOID"
        )
    minimum = 1.0 if function == "LINEAR" else 0.0
    if not (np.isfinite(center) and np.isfinite(width)) or width < minimum or width <= 0:
        raise DicomReadError(
            f"its window is WindowCenter={center:g}, WindowWidth={width:g}; expected a finite "
            f"width of at least 1 ({function}); correct or remove the window"
        )
    return center, width, function


def _apply_window(
    values: npt.NDArray[np.float64], center: float, width: float, function: str
) -> npt.NDArray[np.float64]:
    """DICOM PS3.3 C.11.2.1.2: the VOI function, output 0..255 (before rounding)."""
    if function == "SIGMOID":
        return 255 / (1 + np.exp(-4 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip(((values - center) / width + 0.5) * 255, 0, 255)
    if width == 1:  # a threshold at center - 0.5
        return np.where(values > center - 0.5, 255.0, 0.0)
    return np.clip(((values - (center - 0.5)) / (width - 1) + 0.5) * 255, 0, 255)
