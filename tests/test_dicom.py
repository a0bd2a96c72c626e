"""DICOM files through the one input gate: pixel rules, errors that name the file, privacy.

Every file is built here with pydicom from synthetic scans (tests/_dicom_helpers.py); nothing
is downloaded. Its identifying tags hold a marker that must appear in no output.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from _dicom_helpers import (
    MARKER,
    SECONDARY_CAPTURE,
    encoded,
    functional_groups,
    scans,
    write,
    write_compressed,
)
from retinalnet._core.images import frame_count, image_size, is_dicom, load_frames
from retinalnet.datasets import KermanyOCT, UnreadableImageError, find_images, load_image

JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"
MPEG2 = "1.2.840.10008.1.2.4.100"


def _grey(path: Path) -> np.ndarray:
    image = load_image(path)
    assert image.mode == "L"
    return np.asarray(image)


@pytest.fixture
def scan() -> np.ndarray:
    return scans(1)[0]


# --- the pixel rules ------------------------------------------------------------------------


def test_an_8_bit_scan_reads_as_its_png(tmp_path: Path, scan: np.ndarray) -> None:
    Image.fromarray(scan).save(tmp_path / "scan.png")
    write(tmp_path / "scan.dcm", scan)
    assert np.array_equal(_grey(tmp_path / "scan.dcm"), _grey(tmp_path / "scan.png"))
    assert np.array_equal(_grey(tmp_path / "scan.dcm"), scan)


def test_a_16_bit_scan_reads_as_its_16_bit_png(tmp_path: Path, scan: np.ndarray) -> None:
    noise = (np.arange(scan.size).reshape(scan.shape) % 200).astype(np.uint16)
    values = scan.astype(np.uint16) * 257 + noise
    Image.fromarray(values).save(tmp_path / "scan.png")  # mode I;16: mapped by 0..65535
    write(tmp_path / "scan.dcm", values.astype(np.uint16))
    assert Image.open(tmp_path / "scan.png").mode == "I;16"
    assert np.array_equal(_grey(tmp_path / "scan.dcm"), _grey(tmp_path / "scan.png"))


def test_12_bits_stored_are_mapped_by_their_own_range(tmp_path: Path, scan: np.ndarray) -> None:
    values = (scan.astype(np.int64) * 4095 // 255).astype(np.uint16)
    garbage = values | np.uint16(0xA000)  # bits above BitsStored are not part of the value
    write(tmp_path / "scan.dcm", garbage, bits_stored=12)
    expected = np.rint(values * (255 / 4095)).astype(np.uint8)
    assert np.array_equal(_grey(tmp_path / "scan.dcm"), expected)
    assert np.abs(expected.astype(int) - scan).max() <= 1


def test_a_16_bit_file_holding_12_bit_data_is_refused_like_the_png(tmp_path: Path) -> None:
    values = np.linspace(0, 4000, 48 * 64).reshape(48, 64).astype(np.uint16)
    write(tmp_path / "dark.dcm", values)
    Image.fromarray(values).save(tmp_path / "dark.png")
    for path in (tmp_path / "dark.dcm", tmp_path / "dark.png"):
        with pytest.raises(UnreadableImageError, match="nearly black"):
            load_image(path)
    with pytest.raises(UnreadableImageError, match=r"BitsStored=16.*12-bit data"):
        load_image(tmp_path / "dark.dcm")
    write(tmp_path / "windowed.dcm", values, WindowCenter=2000, WindowWidth=4000)
    assert _grey(tmp_path / "windowed.dcm").max() == 255  # a window says how to show it


def test_monochrome1_is_inverted(tmp_path: Path, scan: np.ndarray) -> None:
    write(tmp_path / "m1.dcm", scan, photometric="MONOCHROME1")
    assert np.array_equal(_grey(tmp_path / "m1.dcm"), 255 - scan)


def test_signed_data_are_mapped_by_the_signed_range(tmp_path: Path) -> None:
    values = np.tile(np.array([-2048, -1, 0, 2047], np.int16), (32, 8))
    write(tmp_path / "signed.dcm", values, bits_stored=12, signed=True)
    grey = _grey(tmp_path / "signed.dcm")
    # -2048 -> 0, 2047 -> 255, -1 -> round(2047 * 255 / 4095), 0 -> round(2048 * 255 / 4095)
    assert grey[0, :4].tolist() == [0, 127, 128, 255]


@pytest.mark.parametrize(
    ("function", "values", "expected"),
    [
        # LINEAR, center 100, width 50: 0 below 75, 255 above 124, linear between
        ("LINEAR", [70, 75, 100, 124, 130], [0, 0, 130, 255, 255]),
        ("LINEAR_EXACT", [70, 75, 100, 125, 130], [0, 0, 128, 255, 255]),
        ("SIGMOID", [0, 100, 1000], [0, 128, 255]),
    ],
)
def test_the_window_is_the_dicom_voi_function(
    tmp_path: Path, function: str, values: list[int], expected: list[int]
) -> None:
    pixels = np.zeros((32, 32), np.uint16)
    pixels[0, : len(values)] = values
    write(
        tmp_path / "w.dcm",
        pixels,
        WindowCenter=100,
        WindowWidth=50,
        VOILUTFunction=function,
    )
    assert _grey(tmp_path / "w.dcm")[0, : len(values)].tolist() == expected


def test_the_first_window_is_used_and_applies_to_rescaled_values(tmp_path: Path) -> None:
    pixels = np.zeros((32, 32), np.uint16)
    pixels[0, :3] = [475, 550, 625]  # real values 2 * v - 1000: -50, 100, 250
    write(
        tmp_path / "w.dcm",
        pixels,
        RescaleSlope=2,
        RescaleIntercept=-1000,
        WindowCenter=[100, 9999],
        WindowWidth=[201, 1],
    )
    assert _grey(tmp_path / "w.dcm")[0, :3].tolist() == [0, 128, 255]


def test_a_rescale_without_a_window_changes_no_grey_level(tmp_path: Path, scan: np.ndarray) -> None:
    values = scan.astype(np.uint16) * 16
    write(tmp_path / "plain.dcm", values, bits_stored=12)
    write(tmp_path / "rescaled.dcm", values, bits_stored=12, RescaleSlope=3, RescaleIntercept=-7)
    assert np.array_equal(_grey(tmp_path / "plain.dcm"), _grey(tmp_path / "rescaled.dcm"))


def test_rgb_secondary_capture_stays_rgb(tmp_path: Path, scan: np.ndarray) -> None:
    colour = np.stack([scan, scan, scan], axis=-1)
    write(tmp_path / "rgb.dcm", colour, sop_class=SECONDARY_CAPTURE)
    image = load_image(tmp_path / "rgb.dcm")
    assert image.mode == "RGB"
    assert np.array_equal(np.asarray(image), colour)


def test_a_file_without_the_suffix_is_read_by_its_preamble(
    tmp_path: Path, scan: np.ndarray
) -> None:
    path = write(tmp_path / "IM000001", scan)
    assert is_dicom(path)
    assert np.array_equal(_grey(path), scan)
    assert image_size(write(tmp_path / "scan.dcm", scan)) == (64, 48)


# --- compressed transfer syntaxes -----------------------------------------------------------


def test_rle_lossless_is_decoded_by_pydicom(tmp_path: Path) -> None:
    from pydicom.uid import RLELossless

    from _dicom_helpers import dataset

    volume = scans(3)
    ds = dataset(volume)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.compress(RLELossless)
        ds.save_as(tmp_path / "rle.dcm", enforce_file_format=True)
    assert [np.asarray(i).tolist() for i in load_frames(tmp_path / "rle.dcm")] == [
        frame.tolist() for frame in volume
    ]


def test_jpeg_baseline_is_decoded(tmp_path: Path, scan: np.ndarray) -> None:
    from pydicom.uid import JPEGBaseline8Bit

    path = write_compressed(
        tmp_path / "jpeg.dcm", scan, JPEGBaseline8Bit, [encoded(scan, "JPEG", quality=95)]
    )
    assert np.abs(_grey(path).astype(int) - scan).mean() < 2


@pytest.mark.skipif(not features.check("jpg_2000"), reason="Pillow without OpenJPEG")
def test_jpeg_2000_lossless_is_decoded_exactly(tmp_path: Path, scan: np.ndarray) -> None:
    from pydicom.uid import JPEG2000Lossless

    frame = encoded(scan, "JPEG2000", irreversible=False)
    path = write_compressed(tmp_path / "j2k.dcm", scan, JPEG2000Lossless, [frame])
    assert np.array_equal(_grey(path), scan)


def test_a_transfer_syntax_without_a_decoder_is_named(tmp_path: Path, scan: np.ndarray) -> None:
    from pydicom.pixels.decoders.base import get_decoder

    if get_decoder(JPEG_LOSSLESS).is_available:
        pytest.skip("a JPEG Lossless decoder is installed")
    path = write_compressed(tmp_path / "ll.dcm", scan, JPEG_LOSSLESS, [b"\xff\xd8\xff\xd9"])
    with pytest.raises(UnreadableImageError) as error:
        load_image(path)
    message = str(error.value)
    assert message.startswith(f"cannot read image {str(path)!r}: ")
    assert "JPEG Lossless, Non-Hierarchical, First-Order Prediction" in message
    assert f"({JPEG_LOSSLESS})" in message
    assert "no decoder for it is installed" in message
    assert "\n" not in message


def test_a_transfer_syntax_pydicom_cannot_decode_is_named(tmp_path: Path, scan: np.ndarray) -> None:
    path = write_compressed(tmp_path / "mpeg.dcm", scan, MPEG2, [b"\x00\x00\x01\xb3"])
    with pytest.raises(UnreadableImageError, match=re.escape("MPEG2 Main Profile / Main Level")):
        load_image(path)
    with pytest.raises(UnreadableImageError, match=rf"\({re.escape(MPEG2)}\).*uncompressed"):
        load_image(path)


# --- errors that name the file --------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda p: write(p, None), "holds no pixel data"),
        (
            lambda p: write(p, scans(1)[0], sop_class="1.2.840.10008.5.1.4.1.1.88.11"),
            r"its SOP class is Basic Text SR Storage \(1\.2\.840\.10008\.5\.1\.4\.1\.1\.88\.11\)",
        ),
        (
            lambda p: write(p, scans(1)[0], sop_class="1.2.840.10008.5.1.4.1.1.77.1.5.1"),
            "Ophthalmic Photography 8 Bit Image Storage.*not an OCT B-scan",
        ),
        (lambda p: p.write_bytes(b"\x00" * 300), "not a DICOM file"),
        (
            lambda p: p.write_bytes(write(p, scans(1)[0]).read_bytes()[:-100]),
            r"could not be decoded \(ValueError: The number of bytes of pixel data is less.*"
            "the file may be corrupt or truncated",
        ),
        (
            lambda p: p.write_bytes(write(p, scans(1)[0]).read_bytes()[:400]),
            "no pixel data.*or the file is corrupt or truncated before its pixels",
        ),
        (
            lambda p: p.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 2),
            "corrupt or truncated, or was not written as a DICOM file",
        ),
        (lambda p: write(p, scans(1)[0], WindowCenter=10, WindowWidth=0), "WindowWidth=0"),
    ],
    ids=[
        "no-pixels",
        "structured-report",
        "fundus-photo",
        "not-dicom",
        "truncated-pixels",
        "truncated-header",
        "garbage",
        "window",
    ],
)
def test_unreadable_dicom_files_give_one_line_naming_the_file(
    tmp_path: Path, build, reason: str
) -> None:
    path = tmp_path / "bad.dcm"
    build(path)
    with pytest.raises(UnreadableImageError, match=reason) as error:
        load_image(path)
    assert error.value.path == path
    assert str(error.value).startswith(f"cannot read image {str(path)!r}: ")
    assert "\n" not in str(error.value)


def test_a_volume_is_refused_as_one_image_and_read_by_frames(tmp_path: Path) -> None:
    path = write(tmp_path / "volume.dcm", scans(5))
    assert frame_count(path) == 5
    with pytest.raises(UnreadableImageError, match=r"volume of 5 B-scans.*read_volume"):
        load_image(path)
    frames = load_frames(path)
    assert [f.size for f in frames] == [(64, 48)] * 5
    assert np.array_equal(np.asarray(frames[3]), scans(5)[3])


def test_per_frame_windows_of_an_enhanced_file_apply_per_frame(tmp_path: Path) -> None:
    pixels = np.full((2, 32, 32), 1000, np.uint16)
    groups = functional_groups(
        FrameVOILUTSequence=[
            {"WindowCenter": 1000, "WindowWidth": 100},
            {"WindowCenter": 2000, "WindowWidth": 100},
        ]
    )
    path = write(tmp_path / "v.dcm", pixels, PerFrameFunctionalGroupsSequence=groups)
    first, second = (np.asarray(frame) for frame in load_frames(path))
    # LINEAR: ((1000 - 999.5) / 99 + 0.5) * 255 = 128.8 -> 129; 1000 is below 2000's window
    assert (first == 129).all()
    assert (second == 0).all()


def test_missing_pydicom_names_the_file_and_the_extra(
    tmp_path: Path, scan: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "scan.dcm", scan)
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ModuleNotFoundError) as error:
        load_image(path)
    assert str(error.value) == (
        f"cannot read image {str(path)!r}: reading DICOM files needs pydicom, which is not "
        'installed: pip install "retinalnet[dicom]"'
    )


# --- data sets ------------------------------------------------------------------------------


def test_data_sets_read_dicom_scans_and_refuse_volumes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for index, label in enumerate(("CNV", "DME", "DRUSEN", "NORMAL")):
        folder = root / "test" / label
        folder.mkdir(parents=True)
        write(folder / f"{label}-{100 + index}-1.dcm", scans(1, seed=index)[0])
    write(root / "test" / "CNV" / "CNV-200-1.dcm", scans(3))
    assert len(find_images(root / "test")) == 5
    data = KermanyOCT(root, "test")
    image, target = data[0]
    assert image.mode == "L"
    assert target == 0
    assert np.array_equal(np.asarray(image), scans(1, seed=0)[0])
    with pytest.raises(UnreadableImageError, match="volume of 3 B-scans"):
        data[1]  # CNV-200-1.dcm
    skipping = KermanyOCT(root, "test", on_error="skip")
    with pytest.warns(RuntimeWarning, match="CNV-200-1.dcm"):
        _, target = skipping[1]
    assert target == 1  # the next readable scan: DME


# --- privacy --------------------------------------------------------------------------------


def test_no_identifying_tag_reaches_any_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    good = write(tmp_path / "good.dcm", scans(1)[0])
    volume = write(tmp_path / "volume.dcm", scans(3))
    bad = [
        write(tmp_path / "nopixels.dcm", None),
        write_compressed(tmp_path / "mpeg.dcm", scans(1)[0], MPEG2, [b"\x00"]),
        write(tmp_path / "sr.dcm", scans(1)[0], sop_class="1.2.840.10008.5.1.4.1.1.88.11"),
        write(tmp_path / "dark.dcm", np.ones((32, 32), np.uint16)),
        volume,
    ]
    truncated = tmp_path / "truncated.dcm"
    data = good.read_bytes()
    truncated.write_bytes(data[: data.index(MARKER.encode()) + 3])  # cut inside a name
    bad.append(truncated)
    texts: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        texts.append(repr(load_image(good)))
        texts.append(repr(load_frames(volume)))
        texts.append(str(image_size(good)))
        for path in bad:
            with pytest.raises(UnreadableImageError) as error:
                load_image(path)
            texts += [str(error.value), repr(error.value), error.value.reason]
    texts += [str(w.message) for w in caught]
    texts += [record.getMessage() for record in caplog.records]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err]
    assert all(MARKER not in text for text in texts)
    assert len(texts) > 3 * len(bad)


def test_the_audit_reads_dicom_scans_as_the_data_sets_do(tmp_path: Path) -> None:
    from retinalnet.datasets import audit

    root = tmp_path / "data"
    for label in ("CNV", "DME", "DRUSEN", "NORMAL"):
        (root / "train" / label).mkdir(parents=True)
        write(root / "train" / label / f"{label}-1-1.dcm", scans(1, seed=len(label))[0])
    write(root / "train" / "CNV" / "CNV-2-1.dcm", scans(3))
    write(root / "train" / "CNV" / "CNV-3-1.dcm", None)
    report = audit(root)
    assert sorted(Path(p).name for p in report.unreadable) == ["CNV-2-1.dcm", "CNV-3-1.dcm"]
    reasons = " ".join(report.unreadable.values())
    assert "volume of 3 B-scans" in reasons
    assert "holds no pixel data" in reasons
    assert MARKER not in str(report.to_dict()) + str(report)


@pytest.mark.parametrize("door", [load_image, load_frames, image_size])
def test_a_symbolic_link_loop_is_said_to_be_one(tmp_path: Path, door: object) -> None:
    # was "corrupt or truncated DICOM file (OSError while parsing it)"
    path = tmp_path / "scan.dcm"
    path.symlink_to(path.name)
    with pytest.raises(UnreadableImageError, match=r": a symbolic link loop \(.+ \[ELOOP\]\)$"):
        door(path)  # type: ignore[operator]


# --- a compressed frame larger than the header says -----------------------------------------


def _claiming(frame: bytes, width: int, height: int) -> bytes:
    """A JPEG frame whose SOF claims ``width`` x ``height``, its data left as they are."""
    data = bytearray(frame)
    start = data.find(b"\xff\xc0")
    data[start + 5 : start + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize("door", [load_image, load_frames])
def test_a_jpeg_frame_claiming_more_pixels_than_the_header_is_refused_undecoded(
    tmp_path: Path, scan: np.ndarray, door: object
) -> None:
    # was: decoded at the frame's own size (507 MB for a 988-byte file whose frame claimed
    # 13,300 x 13,300), then "could not broadcast input array from shape (...)"
    from pydicom.uid import JPEGBaseline8Bit

    frame = _claiming(encoded(scan, "JPEG", quality=90), 3000, 2000)
    path = write_compressed(tmp_path / "inner.dcm", scan, JPEGBaseline8Bit, [frame])
    message = (
        rf"^cannot read image {re.escape(repr(str(path)))}: its compressed frame claims "
        r"3,000 x 2,000 pixels, but its header says 64 x 48 \(Columns x Rows\): the file is "
        r"corrupt, so its pixels are not decoded$"
    )
    with pytest.raises(UnreadableImageError, match=message):
        door(path)  # type: ignore[operator]


def test_the_frame_of_a_volume_that_claims_another_size_is_named(tmp_path: Path) -> None:
    from pydicom.uid import JPEGBaseline8Bit

    volume = scans(3)
    frames = [encoded(frame, "JPEG", quality=90) for frame in volume]
    frames[2] = _claiming(frames[2], 64, 4000)
    path = write_compressed(tmp_path / "volume.dcm", volume, JPEGBaseline8Bit, frames)
    with pytest.raises(UnreadableImageError, match=r": B-scan 2 \(of 3, numbered from 0\): its "):
        load_frames(path)
    fine = write_compressed(
        tmp_path / "fine.dcm", volume, JPEGBaseline8Bit, [*frames[:2], frames[1]]
    )
    assert len(load_frames(fine)) == 3


@pytest.mark.skipif(not features.check("jpg_2000"), reason="Pillow without OpenJPEG")
def test_a_jpeg_2000_frame_of_another_size_is_refused_undecoded(
    tmp_path: Path, scan: np.ndarray
) -> None:
    from pydicom.uid import JPEG2000Lossless

    other = np.zeros((96, 128), dtype=np.uint8)
    frame = encoded(other, "JPEG2000", irreversible=False)
    path = write_compressed(tmp_path / "j2k.dcm", scan, JPEG2000Lossless, [frame])
    with pytest.raises(UnreadableImageError, match=r"claims 128 x 96 pixels, but its header"):
        load_image(path)
