"""DICOM files built with pydicom from synthetic scans, for the DICOM and volume tests.

Every identifying tag of a written file holds :data:`MARKER` (a date tag holds it too, an
invalid date that pydicom would warn about, quoting it, if it were ever read), so a test can
assert that no output ever shows it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

pydicom = pytest.importorskip("pydicom")

from PIL import Image  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.sequence import Sequence as DicomSequence  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from retinalnet.datasets import render_bscan  # noqa: E402

MARKER = "ZQXMARKER7"
OCT = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
IDENTIFYING = {
    "PatientName": f"{MARKER}^Jane",
    "PatientID": MARKER,
    "PatientBirthDate": MARKER,  # not a date: pydicom warns, quoting it, when it is read
    "AccessionNumber": MARKER,
    "InstitutionName": MARKER,
    "ReferringPhysicianName": f"{MARKER}^Dr",
    "StudyDescription": MARKER,
    "SeriesDescription": MARKER,
    "OperatorsName": MARKER,
}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pydicom warns and logs, quoting it, about the invalid date when a file is built."""
    logger = logging.getLogger("pydicom")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger.disabled = True
        try:
            yield
        finally:
            logger.disabled = False


def scans(count: int = 1, *, shape: tuple[int, int] = (48, 64), seed: int = 0) -> np.ndarray:
    """``count`` synthetic B-scans, uint8 ``(count, height, width)``."""
    labels = ("NORMAL", "DRUSEN", "DME", "CNV")
    return np.stack(
        [
            render_bscan(labels[i % 4], np.random.default_rng([seed, i]), shape=shape)[0]
            for i in range(count)
        ]
    )


def dataset(
    pixels: npt.NDArray[Any] | None,
    *,
    bits_stored: int | None = None,
    signed: bool = False,
    photometric: str = "MONOCHROME2",
    sop_class: str = OCT,
    transfer_syntax: str = ExplicitVRLittleEndian,
    multi_frame: bool | None = None,
    **tags: Any,
) -> Dataset:
    """A DICOM data set of ``pixels`` ``(H, W)``, ``(N, H, W)`` or ``(H, W, 3)``, uint8/16."""
    with _quiet():
        return _dataset(
            pixels,
            bits_stored=bits_stored,
            signed=signed,
            photometric=photometric,
            sop_class=sop_class,
            transfer_syntax=transfer_syntax,
            multi_frame=multi_frame,
            **tags,
        )


def _dataset(
    pixels: npt.NDArray[Any] | None,
    *,
    bits_stored: int | None,
    signed: bool,
    photometric: str,
    sop_class: str,
    transfer_syntax: str,
    multi_frame: bool | None,
    **tags: Any,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "OPT"
    for keyword, value in IDENTIFYING.items():
        setattr(ds, keyword, value)
    if pixels is not None:
        colour = pixels.ndim == 3 and pixels.shape[-1] == 3 and not multi_frame
        frames = pixels.shape[0] if pixels.ndim == 3 and not colour else 1
        ds.Rows, ds.Columns = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
        ds.SamplesPerPixel = 3 if colour else 1
        if colour:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = "RGB" if colour else photometric
        ds.BitsAllocated = pixels.dtype.itemsize * 8
        ds.BitsStored = bits_stored or ds.BitsAllocated
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = int(signed)
        if frames > 1 or multi_frame:
            ds.NumberOfFrames = frames
        ds.PixelData = pixels.tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def write(path: Path, pixels: npt.NDArray[Any] | None, **options: Any) -> Path:
    """Write :func:`dataset` to ``path`` as a DICOM Part 10 file."""
    ds = dataset(pixels, **options)
    with _quiet():
        ds.save_as(path, enforce_file_format=True)
    return path


def write_compressed(
    path: Path, pixels: npt.NDArray[np.uint8], transfer_syntax: str, frames: Sequence[bytes]
) -> Path:
    """A file whose pixel data are the given encoded frames, under ``transfer_syntax``."""
    ds = dataset(pixels, transfer_syntax=transfer_syntax)
    ds.PixelData = encapsulate(list(frames))
    ds["PixelData"].VR = "OB"
    with _quiet():
        ds.save_as(path, enforce_file_format=True)
    return path


def encoded(pixels: npt.NDArray[np.uint8], format: str, **options: Any) -> bytes:
    """One frame encoded by Pillow (``"JPEG"``, ``"JPEG2000"``)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format, **options)
    return buffer.getvalue()


def functional_groups(**sequences: list[dict[str, Any]]) -> DicomSequence:
    """A functional groups sequence: one item per frame, each with the named sequences."""
    count = max(len(items) for items in sequences.values())
    groups = []
    for index in range(count):
        group = Dataset()
        for name, items in sequences.items():
            item = Dataset()
            for keyword, value in items[index].items():
                setattr(item, keyword, value)
            setattr(group, name, DicomSequence([item]))
        groups.append(group)
    return DicomSequence(groups)
