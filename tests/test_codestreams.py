"""What a JPEG or JPEG 2000 header claims, read from its bytes without decoding."""

from __future__ import annotations

import io
import struct
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, features

from retinalnet._core.codestreams import claimed_size, jpeg_frame


def _jpeg(size: tuple[int, int], mode: str = "L", **options: object) -> bytes:
    stream = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], len(mode)), np.uint8)
    Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels).save(stream, "JPEG", **options)
    return stream.getvalue()


@pytest.mark.parametrize(
    ("size", "mode", "options", "coding", "blocks"),
    [
        ((64, 40), "L", {}, 0xC0, 8 * 5),
        ((33, 17), "L", {}, 0xC0, 5 * 3),  # partial blocks count
        ((64, 48), "RGB", {"subsampling": 2}, 0xC0, 8 * 6),  # 4:2:0: the luma's blocks
        ((64, 48), "L", {"progressive": True}, 0xC2, 8 * 6),
    ],
)
def test_the_frame_header_is_read_as_written(
    size: tuple[int, int], mode: str, options: dict[str, object], coding: int, blocks: int
) -> None:
    data = _jpeg(size, mode, **options)
    frame = jpeg_frame(data)
    assert frame is not None
    assert (frame.coding, frame.width, frame.height, frame.blocks) == (coding, *size, blocks)
    assert frame.scan_start is not None
    header = data.rfind(b"\xff\xda", 0, frame.scan_start)  # the scan header just before
    length = int.from_bytes(data[header + 2 : header + 4], "big")
    assert header + 2 + length == frame.scan_start
    assert claimed_size(data) == size


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_first_scan_coding_every_component_is_told_from_one_per_component(mode: str) -> None:
    data = _jpeg((32, 24), mode)
    frame = jpeg_frame(data)
    assert frame is not None
    assert (frame.components, frame.all_in_first_scan) == (len(mode), True)
    header = data.find(b"\xff\xda")
    one_component = data[: header + 4] + b"\x01" + data[header + 5 :]  # scans one per component
    expected = mode == "L"
    assert jpeg_frame(one_component) == replace(frame, all_in_first_scan=expected)


def test_markers_that_cannot_be_walked_give_no_header() -> None:
    data = _jpeg((64, 40))
    assert jpeg_frame(b"not a jpeg") is None
    assert jpeg_frame(data[:2] + b"\x00" + data[3:]) is None  # no marker where one must be
    cut = jpeg_frame(data[: data.find(b"\xff\xda")])  # the frame header, then nothing
    assert cut is not None
    assert (cut.width, cut.height, cut.scan_start) == (64, 40, None)


def test_a_height_given_later_is_no_claimed_size() -> None:
    data = bytearray(_jpeg((64, 40)))
    start = data.find(b"\xff\xc0")
    struct.pack_into(">H", data, start + 5, 0)  # the height of a file with a DNL marker
    assert claimed_size(bytes(data)) is None


@pytest.mark.skipif(not features.check("jpg_2000"), reason="Pillow without OpenJPEG")
@pytest.mark.parametrize("kind", ["j2k", "jp2"])
def test_a_jpeg_2000_size_is_read_bare_or_in_jp2_boxes(kind: str) -> None:
    stream = io.BytesIO()
    Image.new("L", (70, 30)).save(stream, "JPEG2000", no_jp2=kind == "j2k")
    assert claimed_size(stream.getvalue()) == (70, 30)
    assert claimed_size(stream.getvalue()[:20]) is None


def test_other_data_claim_no_size() -> None:
    assert claimed_size(b"") is None
    assert claimed_size(b"\x00" * 64) is None  # an RLE frame's header has no size
