"""JPEG files damaged but closed with an end marker: refused at the one image gate (every
door), where PIL decoded them without a word (libjpeg's "Corrupt JPEG data" warnings are
dropped); whole files of every PIL setting read exactly as before."""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from retinalnet._core.codestreams import jpeg_frame
from retinalnet._core.images import check_decoded, coerce_image, load_frames
from retinalnet._core.jpeg_damage import DATA_ENDS_EARLY, short_data_reason, with_end_withheld
from retinalnet.datasets import UnreadableImageError, audit, load_image, render_bscan


def _scan_jpeg(**options: Any) -> bytes:
    """A synthetic 512 x 496 B-scan as the JPEG PIL writes."""
    pixels = render_bscan("CNV", np.random.default_rng(0), shape=(496, 512))[0]
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, "JPEG", **{"quality": 95, **options})
    return stream.getvalue()


def _cut_and_closed(data: bytes) -> bytes:
    """Cut in the middle of its data and given an end marker (a copy cut short, "repaired")."""
    return data[: len(data) // 2] + b"\xff\xd9"


def _claiming_9000(path: Path) -> Path:
    """A 64 x 64 JPEG whose header claims 9000 x 9000 pixels (378 bytes in all)."""
    stream = io.BytesIO()
    Image.new("L", (64, 64), 128).save(stream, "JPEG")
    data = bytearray(stream.getvalue())
    struct.pack_into(">HH", data, data.find(b"\xff\xc0") + 5, 9000, 9000)
    path.write_bytes(bytes(data))
    return path


_DOORS: dict[str, Callable[[Path], Any]] = {
    "load_image": load_image,
    "load_image reduced": lambda path: load_image(path, target_size=256),
    "load_frames": load_frames,
    "check_decoded (audit)": lambda path: check_decoded(Image.open(path), path),
}


@pytest.mark.parametrize("door", sorted(_DOORS))
def test_a_jpeg_cut_short_and_given_an_end_marker_is_refused(tmp_path: Path, door: str) -> None:
    # was: decoded, its missing half filled with grey, and predicted without a word
    path = tmp_path / "CNV-1-1.jpeg"
    path.write_bytes(_cut_and_closed(_scan_jpeg()))
    message = rf"^cannot read image {re.escape(repr(str(path)))}: {re.escape(DATA_ENDS_EARLY)}$"
    with pytest.raises(UnreadableImageError, match=message):
        _DOORS[door](path)


def test_a_lazily_opened_damaged_jpeg_is_refused_in_memory_too(tmp_path: Path) -> None:
    path = tmp_path / "CNV-1-1.jpeg"
    path.write_bytes(_cut_and_closed(_scan_jpeg()))
    with Image.open(path) as opened, pytest.raises(ValueError, match=r"^cannot use image 3: "):
        coerce_image(opened, name="image 3")
    whole = tmp_path / "whole.jpeg"
    whole.write_bytes(_scan_jpeg())
    with Image.open(whole) as opened:
        assert np.array_equal(np.asarray(coerce_image(opened)), np.asarray(load_image(whole)))


@pytest.mark.parametrize("door", sorted(_DOORS))
def test_a_tiny_jpeg_claiming_a_huge_size_is_refused_before_it_is_decoded(
    tmp_path: Path, door: str
) -> None:
    # was: a 378-byte file decoded as a 9000 x 9000 image (81 MB)
    path = _claiming_9000(tmp_path / "CNV-1-1.jpeg")
    with pytest.raises(UnreadableImageError, match=r": corrupt or truncated: its header claims"):
        _DOORS[door](path)


def test_a_real_scan_with_a_zeroed_block_is_refused(kermany_sample: Path, tmp_path: Path) -> None:
    # the auditor's bad sector: 4 KB of zeros inside the data of a real Kermany scan
    data = bytearray((kermany_sample / "test" / "CNV" / "CNV-4973751-11.jpeg").read_bytes())
    data[30000:34096] = bytes(4096)
    path = tmp_path / "CNV-4973751-11.jpeg"
    path.write_bytes(bytes(data))
    with pytest.raises(UnreadableImageError, match=re.escape(DATA_ENDS_EARLY)):
        load_image(path)


def test_the_audit_lists_damaged_jpegs_as_unreadable(make_tree: Any) -> None:
    root: Path = make_tree({f"train/{name}": [f"{name}-1-1.jpeg"] for name in ("CNV", "DME")})
    (root / "train" / "CNV" / "CNV-2-1.jpeg").write_bytes(_cut_and_closed(_scan_jpeg()))
    _claiming_9000(root / "train" / "DME" / "DME-2-1.jpeg")
    report = audit(root)
    reasons = {Path(path).name: reason for path, reason in report.unreadable.items()}
    assert reasons == {
        "CNV-2-1.jpeg": DATA_ENDS_EARLY,
        "DME-2-1.jpeg": reasons["DME-2-1.jpeg"],
    }
    assert reasons["DME-2-1.jpeg"].startswith("corrupt or truncated: its header claims 9,000")


@pytest.mark.parametrize(
    "options",
    [
        {"quality": 5},
        {"quality": 75, "optimize": True},
        {"quality": 100},
        {"quality": 90, "restart_marker_blocks": 3},
        {"quality": 90, "restart_marker_rows": 1},
        {"quality": 90, "progressive": True},
    ],
)
@pytest.mark.parametrize("content", ["scan", "flat", "noise"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_whole_jpegs_of_every_setting_read_as_pil_decodes_them(
    tmp_path: Path, options: dict[str, Any], content: str, mode: str
) -> None:
    # the damage checks must never refuse a whole file, nor change a pixel of it
    rng = np.random.default_rng(1)
    pixels = {
        "scan": render_bscan("DME", rng, shape=(61, 83))[0],
        "flat": np.full((61, 83), 128, np.uint8),
        "noise": rng.integers(0, 256, (61, 83), np.uint8),
    }[content]
    path = tmp_path / "scan.jpeg"
    Image.fromarray(pixels).convert(mode).save(path, "JPEG", **options)
    with Image.open(path) as plain:
        expected = np.asarray(plain.convert(mode))
    assert np.array_equal(np.asarray(load_image(path)), expected)


def test_a_file_with_bytes_after_its_end_marker_is_read(tmp_path: Path) -> None:
    path = tmp_path / "scan.jpeg"
    path.write_bytes(_scan_jpeg() + b"trailer written by a camera")
    assert load_image(path).size == (512, 496)


def test_load_truncated_images_reads_damaged_files_as_pil_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "CNV-1-1.jpeg"
    path.write_bytes(_cut_and_closed(_scan_jpeg()))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # the caller's choice
    assert load_image(path).size == (512, 496)


def test_only_one_scan_huffman_files_ending_with_their_marker_are_withheld() -> None:
    whole = _scan_jpeg()
    frame = jpeg_frame(whole)
    assert frame is not None
    withheld = with_end_withheld(whole, frame)
    assert withheld is not None
    assert withheld.startswith(whole[:-2])
    assert with_end_withheld(whole + b"\x00", frame) is None  # data after its end marker
    progressive = _scan_jpeg(progressive=True)
    progressive_frame = jpeg_frame(progressive)
    assert progressive_frame is not None
    assert with_end_withheld(progressive, progressive_frame) is None  # several scans
    one_per_component = replace(frame, all_in_first_scan=False)  # baseline, several scans
    assert with_end_withheld(whole, one_per_component) is None
    assert short_data_reason(whole, frame) is None
    assert short_data_reason(whole[: frame.scan_start + 496], frame) is None  # 3,968 blocks
    assert short_data_reason(whole[: frame.scan_start + 495], frame) is not None
