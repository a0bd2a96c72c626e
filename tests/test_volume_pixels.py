"""A volume file's pixels in all, capped from its header before any frame is decoded: a
multi-frame DICOM file as a multi-page TIFF (tests/test_images.py), and one warning for
its small B-scans."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("pydicom")

from _dicom_helpers import scans, write
from retinalnet._core.images import load_frames
from retinalnet.datasets import UnreadableImageError


def test_a_dicom_volume_claiming_too_many_pixels_in_all_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "volume.dcm", scans(5))  # 5 frames of 64 x 48 = 3,072 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3_500)

    with pytest.raises(
        UnreadableImageError,
        match=rf"^cannot read image {re.escape(repr(str(path)))}: possible decompression bomb: "
        r"its header claims 5 frames of 15,360 pixels in all, more than the limit for a volume "
        r"of 14,000 pixels \(4 x PIL\.Image\.MAX_IMAGE_PIXELS\)",
    ):
        load_frames(path)


def test_a_dicom_volume_of_small_frames_is_warned_of_once(tmp_path: Path) -> None:
    path = write(tmp_path / "volume.dcm", scans(6)[:, :16, :16].copy())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_frames(path)

    said = [str(w.message) for w in caught if "smaller than the smallest" in str(w.message)]
    assert len(said) == 1
    assert said[0].startswith(f"6 of the 6 B-scans of the volume {str(path)!r} are smaller")
