"""Reading the B-scans of a DICOM file as 8-bit grey levels, without reading who it shows.

pydicom (the ``dicom`` extra) is imported only when a DICOM file is read. Errors are
:class:`DicomReadError` with a reason and no path; :mod:`retinalnet._core.images`, the one
input gate, names the file (:class:`~retinalnet._core.images.UnreadableImageError`).

Privacy: a file is read with pydicom's ``specific_tags``, so only the pixel, SOP class and
display tags listed in ``_TAGS`` are parsed: patient, study and institution tags are never
decoded, so no message, log line or result can quote them. pydicom's own warnings and log
lines are silenced while reading (they may quote values); parsing errors are reported by
their type, never by pydicom's text.

The pixel rules (the docs page "DICOM and OCT volumes" says them for users):

1. The Modality LUT: ``value * RescaleSlope + RescaleIntercept`` (1 and 0 when absent).
2. With a window (``WindowCenter``/``WindowWidth``, the first when there are several), the
   DICOM VOI function (``LINEAR``, ``LINEAR_EXACT`` or ``SIGMOID``, PS3.3 C.11.2.1.2) maps
   the values to 0..255.
3. Without one, the range ``BitsStored`` can hold (0 to 2**BitsStored - 1, or the signed
   range), through the rescale, is mapped linearly to 0..255: the PNG rule of
   :func:`~retinalnet._core.images.to_model_mode` (16-bit PNGs are mapped by 0..65535) with
   the file's real bit depth. A fixed range keeps intensities comparable across scans; a
   frame's own min/max would not. As for 16-bit PNGs, data that fill less than 1/16 of that
   range (a wrong ``BitsStored``) are refused rather than shown nearly black.
4. ``MONOCHROME1`` is inverted (255 - grey) after 2 or 3.
5. Colour (``RGB``, ``YBR_*``, 8 bits) is kept as RGB; other photometric interpretations are
   refused.

Window and rescale are read per frame from the functional groups of enhanced multi-frame
files (Ophthalmic Tomography), then from the shared groups, then from the top level.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = [
    "DICOM_EXTENSIONS",
    "DICOM_INSTALL",
    "OCT_SOP_CLASS",
    "DicomHeader",
    "DicomReadError",
    "has_dicom_preamble",
    "read_frames",
    "read_header",
]

DICOM_EXTENSIONS: Final[frozenset[str]] = frozenset({".dcm"})
"""File suffixes (compared lower-case) read as DICOM; other files are DICOM when they carry
the ``DICM`` marker at byte 128."""

DICOM_INSTALL: Final = 'pip install "retinalnet[dicom]"'

OCT_SOP_CLASS: Final = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
"""Ophthalmic Tomography Image Storage: OCT B-scans."""

# SOP classes whose pixels are read; others are refused with their name.
_IMAGE_SOP_CLASSES: Final[dict[str, str]] = {
    OCT_SOP_CLASS: "Ophthalmic Tomography Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image Storage",
}

# The only tags ever parsed (pydicom's keywords). No patient, study or institution tag.
_HEADER_TAGS: Final = (
    "SOPClassUID",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "PhotometricInterpretation",
)
_TAGS: Final = (
    *_HEADER_TAGS,
    "PlanarConfiguration",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    "ModalityLUTSequence",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "PixelData",
)
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")
_DARK_FRACTION: Final = 1 / 16  # as images.py: a 16-bit PNG whose maximum is below 4096


class DicomReadError(ValueError):
    """Why a DICOM file cannot be read; the caller names the file."""


class MultiFrameError(DicomReadError):
    """A volume (several frames) where one image was asked for."""


@dataclass(frozen=True)
class DicomHeader:
    """What a DICOM file holds, from its header alone (no pixels decoded)."""

    frames: int
    rows: int
    columns: int
    sop_class: str
    """The SOP class's name, or ``"unknown"`` when the file does not say."""
    transfer_syntax: str
    """The transfer syntax's name (how the pixels are encoded)."""


def has_dicom_preamble(path: str | os.PathLike[str]) -> bool:
    """Whether a file carries the ``DICM`` marker after the 128-byte preamble."""
    try:
        with open(path, "rb") as file:
            return file.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _pydicom(path: Path) -> Any:
    try:
        import pydicom
    except ImportError:
        raise ModuleNotFoundError(
            f"cannot read image {str(path)!r}: reading DICOM files needs pydicom, which is not "
            f"installed: {DICOM_INSTALL}",
            name="pydicom",
        ) from None
    return pydicom


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence pydicom's warnings and log lines: they may quote a tag's value."""
    logger = logging.getLogger("pydicom")
    drop = _DropRecords()
    logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.removeFilter(drop)


def _dataset(path: Path, *, pixels: bool) -> Any:
    pydicom = _pydicom(path)
    from pydicom.errors import InvalidDicomError

    try:
        with _quiet():
            return pydicom.dcmread(
                path,
                specific_tags=list(_TAGS if pixels else _HEADER_TAGS),
                stop_before_pixels=not pixels,
            )
    except FileNotFoundError:
        raise DicomReadError("no such file") from None
    except IsADirectoryError:
        raise DicomReadError("it is a directory, not an image file") from None
    except InvalidDicomError:
        raise DicomReadError(
            "not a DICOM file: no 'DICM' marker after the 128-byte preamble (a DICOM Part 10 "
            "file starts with one)"
        ) from None
    except Exception as error:  # pydicom's text may quote raw bytes: only the type
        raise DicomReadError(
            f"corrupt or truncated DICOM file ({type(error).__name__} while parsing it)"
        ) from None


def _sop_class(dataset: Any) -> tuple[str | None, str]:
    """The SOP class UID (``None`` when absent) and its name."""
    uid = dataset.get("SOPClassUID") or dataset.file_meta.get("MediaStorageSOPClassUID")
    if uid is None:
        return None, "unknown"
    return str(uid), _IMAGE_SOP_CLASSES.get(str(uid)) or uid.name or str(uid)


def _check_sop_class(dataset: Any) -> str:
    uid, name = _sop_class(dataset)
    if uid is not None and uid not in _IMAGE_SOP_CLASSES:
        raise DicomReadError(
            f"its SOP class is {name} ({uid}), not an OCT B-scan: retinalnet reads Ophthalmic "
            "Tomography Image Storage (OCT B-scans) and Secondary Capture images"
        )
    return name


def _transfer_syntax(dataset: Any) -> Any:
    uid = dataset.file_meta.get("TransferSyntaxUID")
    if uid is None:
        raise DicomReadError(
            "its file meta information has no TransferSyntaxUID, so its pixels cannot be "
            "decoded: the file is corrupt or truncated, or was not written as a DICOM file; "
            "rewrite it with a DICOM tool (e.g. dcmtk's dcmconv)"
        )
    return uid


def read_header(path: str | os.PathLike[str]) -> DicomHeader:
    """The frames, size, SOP class and transfer syntax of a DICOM file, pixels left unread.

    Raises
    ------
    DicomReadError
        If the file is missing, not DICOM, corrupt, or of a non-image SOP class.
    ModuleNotFoundError
        If pydicom is not installed (the message names the file and the install command).
    """
    file = Path(path)
    dataset = _dataset(file, pixels=False)
    name = _check_sop_class(dataset)
    syntax = _transfer_syntax(dataset)
    rows, columns = dataset.get("Rows"), dataset.get("Columns")
    if rows is None or columns is None:
        raise DicomReadError("it holds no image: no Rows/Columns (and no pixel data)")
    frames = int(dataset.get("NumberOfFrames") or 1)
    return DicomHeader(frames, int(rows), int(columns), name, syntax.name or str(syntax))


def read_frames(
    path: str | os.PathLike[str], *, single: bool = False
) -> tuple[npt.NDArray[np.uint8], DicomHeader]:
    """The frames of a DICOM file as 8-bit grey levels (or RGB), by the module's rules.

    Parameters
    ----------
    path
        A DICOM file.
    single
        Refuse a file of several frames (:class:`MultiFrameError`) before decoding them.

    Returns
    -------
    pixels : numpy.ndarray
        uint8 ``(frames, rows, columns)``, or ``(frames, rows, columns, 3)`` for colour.
    header : DicomHeader
        What the file holds.

    Raises
    ------
    DicomReadError
        With the reason, for a missing, non-DICOM, corrupt or non-image file, no pixel
        data, an undecodable transfer syntax, or pixels the rules refuse.
    ModuleNotFoundError
        If pydicom is not installed.
    """
    file = Path(path)
    dataset = _dataset(file, pixels=True)
    name = _check_sop_class(dataset)
    syntax = _transfer_syntax(dataset)
    if "PixelData" not in dataset:
        if "FloatPixelData" in dataset or "DoubleFloatPixelData" in dataset:
            raise DicomReadError(
                "it holds float pixel data, which retinalnet does not read; export the "
                "B-scans as integer pixel data"
            )
        raise DicomReadError(
            f"it holds no pixel data (SOP class {name}): there is no image, or the file is "
            "corrupt or truncated before its pixels"
        )
    frames = int(dataset.get("NumberOfFrames") or 1)
    header = DicomHeader(
        frames, int(dataset.Rows), int(dataset.Columns), name, syntax.name or str(syntax)
    )
    if single and frames > 1:
        raise MultiFrameError(
            f"it is a volume of {frames} B-scans (a multi-frame DICOM file), not one image: "
            "read it with retinalnet.volume.read_volume, or predict it with "
            "retinalnet.volume.predict_volume (`retinalnet predict` summarises volumes)"
        )
    _check_bomb(header)
    _check_decoder(syntax)
    try:
        with _quiet():
            array = np.asarray(dataset.pixel_array)
    except Exception as error:
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise DicomReadError(
            f"its pixel data ({header.transfer_syntax}) could not be decoded "
            f"({type(error).__name__}: {first}); the file may be corrupt or truncated"
        ) from None
    samples = int(dataset.get("SamplesPerPixel") or 1)
    array = array.reshape(frames, header.rows, header.columns, *((samples,) if samples > 1 else ()))
    return _to_grey_levels(array, dataset, samples), header


def _check_bomb(header: DicomHeader) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    pixels = header.rows * header.columns
    if limit is not None and pixels > limit:
        raise DicomReadError(
            f"possible decompression bomb: its header claims {pixels:,} pixels per frame, "
            f"more than the limit of {limit:,} pixels (PIL.Image.MAX_IMAGE_PIXELS); if the "
            "file is a genuine image, raise that limit before reading it"
        )


def _check_decoder(syntax: Any) -> None:
    from pydicom.pixels.decoders.base import get_decoder

    label = f"{syntax.name} ({syntax})" if syntax.name and syntax.name != str(syntax) else syntax
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DicomReadError(
            f"its pixel data are encoded as {label}, which pydicom cannot decode; convert "
            "the file to an uncompressed transfer syntax (e.g. gdcmconv --raw, or dcmtk's "
            "dcmdjpeg) and read that"
        ) from None
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies)
        raise DicomReadError(
            f"its pixel data are compressed as {label} and no decoder for it is installed "
            f"(pydicom can use: {needs}); install one ({DICOM_INSTALL} brings the JPEG 2000 "
            "and JPEG-LS decoders), or convert the file to an uncompressed transfer syntax"
        )


def _to_grey_levels(array: npt.NDArray[Any], dataset: Any, samples: int) -> npt.NDArray[np.uint8]:
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    bits_allocated = int(dataset.get("BitsAllocated") or 8)
    if samples == 3 and photometric in _COLOUR:
        if bits_allocated != 8:
            raise DicomReadError(
                f"it is {photometric} colour with {bits_allocated} bits per sample; retinalnet "
                "reads 8-bit colour only (OCT B-scans are grey)"
            )
        return array.astype(np.uint8)
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
    unwindowed: list[tuple[int, float]] = []  # (frame, fraction of the range its data fill)
    for index, frame in enumerate(array):
        slope, intercept = _rescale(dataset, index)
        values = frame.astype(np.float64) * slope + intercept
        window = _window(dataset, index)
        if window is None:
            low, high = sorted((stored[0] * slope + intercept, stored[1] * slope + intercept))
            grey = (values - low) * (255 / (high - low))
            unwindowed.append((index, float(grey.max()) / 255))
        else:
            grey = _apply_window(values, *window)
        if photometric == "MONOCHROME1":
            grey = 255 - grey
        out[index] = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    if bits > 8 and unwindowed and max(f for _, f in unwindowed) < _DARK_FRACTION:
        _refuse_dark(array, bits, signed, max(f for _, f in unwindowed))
    return out


def _refuse_dark(array: npt.NDArray[Any], bits: int, signed: bool, fraction: float) -> None:
    high = int(array.max())
    kind = "signed range" if signed else "range"
    used = max(high, 1).bit_length()
    raise DicomReadError(
        f"it has no window (WindowCenter/WindowWidth) and its brightest stored value is "
        f"{high}, under 1/16 of the {kind} its BitsStored={bits} allows: mapped by that range "
        f"it would be nearly black (at most {round(fraction * 255)} of 255). The data look "
        f"like {used}-bit data: correct BitsStored, or give the file a window"
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
