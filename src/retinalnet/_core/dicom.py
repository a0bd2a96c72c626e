"""Reading the B-scans of a DICOM file as 8-bit grey levels, without reading who it shows.

pydicom (the ``dicom`` extra) is imported only when a DICOM file is read. Errors are
:class:`DicomReadError` with a reason and no path; :mod:`retinalnet._core.images`, the one
input gate, names the file (:class:`~retinalnet._core.images.UnreadableImageError`).

Privacy: a file is read with pydicom's ``specific_tags``, so only the pixel, SOP class and
display tags listed in ``_TAGS`` are parsed: patient, study and institution tags are never
decoded, so no message, log line or result can quote them. pydicom's own warnings and log
lines are silenced while reading (they may quote values); parsing errors are reported by
their type, never by pydicom's text.

The pixel rules are in :mod:`retinalnet._core.dicom_pixels`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from PIL import Image

from retinalnet._core.codestreams import claimed_size
from retinalnet._core.dicom_pixels import DicomReadError, Unwindowed, dark_reason, to_grey_levels
from retinalnet._core.pixel_modes import in_frame
from retinalnet._core.read_failure import EMPTY_FILE, is_empty, read_failure
from retinalnet._core.regular_files import SpecialFileError, check_regular_file, open_regular
from retinalnet._core.volume_pixels import volume_pixels_reason
from retinalnet._core.warning_filters import warnings_ignored

__all__ = [
    "DICOM_EXTENSIONS",
    "DICOM_INSTALL",
    "OCT_SOP_CLASS",
    "DicomHeader",
    "DicomReadError",
    "Unwindowed",
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
        with open_regular(path) as file:  # a named pipe is not waited on
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
        with warnings_ignored():
            yield
    finally:
        logger.removeFilter(drop)


def _dataset(path: Path, *, pixels: bool) -> Any:
    try:
        check_regular_file(path)  # a device or a named pipe: pydicom would read it for ever
    except SpecialFileError as error:
        raise DicomReadError(error.reason) from None
    pydicom = _pydicom(path)
    from pydicom.errors import InvalidDicomError

    try:
        with _quiet():
            return pydicom.dcmread(
                path,
                specific_tags=list(_TAGS if pixels else _HEADER_TAGS),
                stop_before_pixels=not pixels,
            )
    except OSError as error:  # the file system's reason: missing, a link loop, permissions
        if error.errno is None:
            raise DicomReadError(
                f"corrupt or truncated DICOM file ({type(error).__name__} while parsing it)"
            ) from None
        missing = isinstance(error, FileNotFoundError)
        raise DicomReadError(read_failure(path, error), not_found=missing) from None
    except InvalidDicomError:
        if is_empty(path):
            raise DicomReadError(EMPTY_FILE) from None
        raise DicomReadError(
            "not a DICOM file: no 'DICM' marker after the 128-byte preamble (a DICOM Part 10 "
            "file starts with one)"
        ) from None
    except Exception as error:  # pydicom's text may quote raw bytes: only the type
        if is_empty(path):
            raise DicomReadError(EMPTY_FILE) from None
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
    path: str | os.PathLike[str], *, single: bool = False, check_dark: bool = True
) -> tuple[npt.NDArray[np.uint8], DicomHeader, Unwindowed | None]:
    """The frames of a DICOM file as 8-bit grey levels (or RGB), by the module's rules.

    Parameters
    ----------
    path
        A DICOM file.
    single
        Refuse a file of several frames (:class:`MultiFrameError`) before decoding them.
    check_dark
        Refuse frames without a window that would be nearly black (a wrong ``BitsStored``;
        :func:`~retinalnet._core.dicom_pixels.dark_reason`). ``False`` leaves it to the
        caller, who checks the files of a volume given one file per B-scan together.

    Returns
    -------
    pixels : numpy.ndarray
        uint8 ``(frames, rows, columns)``, or ``(frames, rows, columns, 3)`` for colour.
    header : DicomHeader
        What the file holds.
    unwindowed : Unwindowed or None
        How bright its frames without a window are, for
        :func:`~retinalnet._core.dicom_pixels.dark_reason` (``None``: nothing to check).

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
    rows, columns = dataset.get("Rows"), dataset.get("Columns")
    if not rows or not columns:
        raise DicomReadError("its pixel data come without Rows/Columns: the file is corrupt")
    frames = int(dataset.get("NumberOfFrames") or 1)
    header = DicomHeader(frames, int(rows), int(columns), name, syntax.name or str(syntax))
    if single and frames > 1:
        raise MultiFrameError(
            f"it is a volume of {frames} B-scans (a multi-frame DICOM file), not one image: "
            "read it with retinalnet.volume.read_volume, or predict it with "
            "retinalnet.volume.predict_volume (`retinalnet predict` summarises volumes)"
        )
    _check_bomb(header)
    whole = volume_pixels_reason(frames, frames * header.rows * header.columns)
    if whole is not None:  # each frame under PIL's limit, all of them together not
        raise DicomReadError(whole)
    _check_decoder(syntax)
    if syntax.is_encapsulated:
        _check_frame_sizes(dataset, header)
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
    grey, unwindowed = to_grey_levels(array, dataset, samples)
    if check_dark:
        reason = dark_reason([] if unwindowed is None else [unwindowed])
        if reason is not None:
            raise DicomReadError(reason)
    return grey, header, unwindowed


def _check_bomb(header: DicomHeader) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    pixels = header.rows * header.columns
    if limit is not None and pixels > limit:
        raise DicomReadError(
            f"possible decompression bomb: its header claims {pixels:,} pixels per frame, "
            f"more than the limit of {limit:,} pixels (PIL.Image.MAX_IMAGE_PIXELS); if the "
            "file is a genuine image, raise that limit before reading it"
        )


def _check_frame_sizes(dataset: Any, header: DicomHeader) -> None:
    """Refuse a compressed frame whose own header (a JPEG's SOF, a JPEG 2000 codestream's
    SIZ) claims another size than the file's Rows and Columns, before any frame is decoded:
    a decoder allocates the size its frame claims (a 988-byte file's frame claiming
    13,300 x 13,300 pixels took 507 MB), past the pixel limit the header was checked
    against. Frames whose size cannot be read from their bytes (RLE) are decoded at the
    header's size; frames that cannot be found are left to the decoder, which says so."""
    from pydicom.encaps import generate_frames

    expected = (header.columns, header.rows)
    try:
        with _quiet():
            for index, frame in enumerate(
                generate_frames(dataset.PixelData, number_of_frames=header.frames)
            ):
                claimed = claimed_size(frame)
                if claimed is not None and claimed != expected:
                    raise DicomReadError(
                        in_frame(
                            index,
                            header.frames,
                            f"its compressed frame claims {claimed[0]:,} x {claimed[1]:,} "
                            f"pixels, but its header says {expected[0]:,} x {expected[1]:,} "
                            "(Columns x Rows): the file is corrupt, so its pixels are not "
                            "decoded",
                        )
                    )
    except DicomReadError:
        raise
    except Exception:  # frames pydicom cannot find: its decoder says what is wrong
        return


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
