"""A multi-frame GIF or TIFF cut short (an interrupted copy) is an unreadable image naming the
file, at every reader and every door, never PIL's own error or warning; a GIF volume that
ends before its trailer, or a TIFF volume cut inside a page's directory, is never read as a
shorter volume."""

from __future__ import annotations

import io
import logging
import struct
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, features

from _training_helpers import tiny_cnn
from retinalnet._core.gif_blocks import ends_before_trailer
from retinalnet._core.images import (
    coerce_image,
    frame_count,
    image_size,
    load_frames,
    load_image,
)
from retinalnet._core.tiff_pages import cut_short_reason
from retinalnet.checkpoint import save_checkpoint
from retinalnet.cli import main
from retinalnet.datasets import KermanyOCT, UnreadableImageError
from retinalnet.predictor import Predictor
from retinalnet.volume import predict_volume, read_volume

FRAMES = 6
_CUT_SHORT = ("corrupt or truncated", "not a recognised image format")  # the latter: in its header


def _volume_bytes(kind: str, frames: int = FRAMES, mode: str = "L", **options: Any) -> bytes:
    """A volume of random 32-px B-scans (they compress badly: every cut lands in data)."""
    rng = np.random.default_rng(3)
    if mode == "I;16":
        arrays = [rng.integers(0, 2**16, (32, 32)).astype(np.uint16) for _ in range(frames)]
        images = [Image.fromarray(array) for array in arrays]
    else:
        images = [
            Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).convert(mode)
            for _ in range(frames)
        ]
    buffer = io.BytesIO()
    images[0].save(buffer, format=kind, save_all=True, append_images=images[1:], **options)
    return buffer.getvalue()


def _pil_count(path: Path) -> int | None:
    """What PIL alone makes of a file: its frame count, or ``None`` when it raises."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's own, for this probe only
            with Image.open(path) as opened:
                return int(opened.n_frames)
    except Exception:  # PIL's own errors, as the readers met them before
        return None


def _outcome(read: Callable[[Path], Any], path: Path) -> Any:
    """What ``read`` gives for ``path``, or the :class:`UnreadableImageError` it raises
    (any other error fails the test)."""
    try:
        return read(path)
    except UnreadableImageError as error:
        return error


@pytest.mark.parametrize(
    ("kind", "options"),
    [("GIF", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"})],
    ids=["GIF", "TIFF", "TIFF-LZW"],
)
def test_every_cut_of_a_volume_is_an_unreadable_image_or_the_whole_volume(
    tmp_path: Path, kind: str, options: dict[str, str]
) -> None:
    # was: 410 of 532 cuts of a TIFF raised TypeError "Missing dimensions", 298 of 820 of a
    # GIF IndexError or struct.error, past every reader's handler; an LZW TIFF cut inside a
    # page's directory was read as a volume of 1 to 5 B-scans, with PIL's bare warning
    data = _volume_bytes(kind, **options)
    path = tmp_path / f"cut.{kind.lower()}"
    reasons: set[str] = set()
    pil_failed = pil_short = 0
    for cut in range(20, len(data), 37 if kind == "GIF" else 11):
        path.write_bytes(data[:cut])
        count = _pil_count(path)
        pil_failed += count is None
        pil_short += count is not None and count < FRAMES
        for read in (load_image, load_frames, frame_count, read_volume, image_size):
            with warnings.catch_warnings(record=True) as shown:
                warnings.simplefilter("always")
                result = _outcome(read, path)
            assert not [w for w in shown if "EXIF" in str(w.message)], (cut, read)
            if not isinstance(result, UnreadableImageError):
                # the whole volume, and a TIFF's count is the whole one: never a shorter one;
                # a GIF's count is from its header
                counted = len(result) if isinstance(result, list) else result
                whole = read in (load_frames, read_volume) or (kind, read) == ("TIFF", frame_count)
                assert not whole or counted == FRAMES, (cut, read)
                continue
            assert result.path == path
            said = (*_CUT_SHORT, "it holds ") if read is load_image else _CUT_SHORT
            if read is image_size:
                said = (*_CUT_SHORT, "cannot read its header")
            assert result.reason.startswith(said), (cut, read, result)
            reasons.add(result.reason.split(":")[0])
    assert pil_failed > 10  # the cuts reach the case PIL itself fails on
    if kind == "GIF":
        assert "corrupt or truncated (its frames cannot be counted" in reasons
    else:
        assert pil_short > 10  # and the cuts PIL reads as a shorter volume
        assert any(" runs past the end of the file " in reason for reason in reasons)


def test_the_reason_names_the_file_and_what_pil_raised(cut_gif: Path) -> None:
    with pytest.raises(UnreadableImageError) as caught:
        frame_count(cut_gif)
    assert str(caught.value).startswith(
        f"cannot read image {str(cut_gif)!r}: corrupt or truncated (its frames cannot be "
        "counted: IndexError"
    )


def test_a_tiff_cut_in_half_is_refused_in_words(cut_tiff: Path) -> None:
    # was: "its frames cannot be counted: TypeError: Missing dimensions", PIL's words
    with pytest.raises(UnreadableImageError) as caught:
        frame_count(cut_tiff)
    assert str(caught.value) == (
        f"cannot read image {str(cut_tiff)!r}: corrupt or truncated (the directory of its page "
        "3 (numbered from 0) runs past the end of the file (3456 bytes): the file was cut "
        "short, so pages or their data are missing); copy it again from its source"
    )


def _directory_cuts(data: bytes) -> list[tuple[int, int]]:
    """``(page, cut)``: a cut inside each page's directory (IFD) of a little-endian TIFF,
    in its link to the next page, all its entries whole (PIL reads the page, and stops)."""
    with Image.open(io.BytesIO(data)) as opened:
        starts = []
        for page in range(opened.n_frames):
            opened.seek(page)
            starts.append(opened._frame_pos[page])  # type: ignore[attr-defined]
    entries = [struct.unpack("<H", data[start : start + 2])[0] for start in starts]
    return [
        (page, start + 2 + 12 * n + 2)
        for page, (start, n) in enumerate(zip(starts, entries, strict=True))
    ]


@pytest.mark.parametrize("compression", ["tiff_lzw", "raw", "packbits"])
def test_a_tiff_cut_in_a_page_directory_is_refused_not_read_as_a_shorter_volume(
    tmp_path: Path, compression: str
) -> None:
    # was: read as a volume of `page` (or page + 1) B-scans, with only PIL's
    # "Corrupt EXIF data" warning, which names no file
    data = _volume_bytes("TIFF", compression=compression)
    path = tmp_path / "volume.tiff"
    short = 0
    for page, cut in _directory_cuts(data):
        path.write_bytes(data[:cut])
        count = _pil_count(path)
        short += count is not None and count < FRAMES
        expected = rf"the directory of its page {page} \(numbered from 0\) runs past the end"
        for read in (load_frames, frame_count, read_volume, load_image, image_size):
            with warnings.catch_warnings(record=True) as shown:
                warnings.simplefilter("always")
                with pytest.raises(UnreadableImageError, match=expected) as caught:
                    read(path)
            assert caught.value.path == path
            assert caught.value.reason.startswith("corrupt or truncated (")
            assert [str(w.message) for w in shown] == [], read
    assert short >= FRAMES - 2  # PIL reads them as shorter volumes


def test_a_tiff_page_whose_data_run_past_the_end_is_refused_from_its_header(
    tmp_path: Path,
) -> None:
    data = _volume_bytes("TIFF", compression="tiff_lzw")
    with Image.open(io.BytesIO(data)) as opened:
        opened.seek(FRAMES - 1)
        last_strip = opened.tag_v2[273][0]
    path = tmp_path / "volume.tiff"
    path.write_bytes(data[: last_strip + 10])  # Pillow writes a page's data, then its IFD
    with pytest.raises(UnreadableImageError, match="corrupt or truncated"):
        frame_count(path)
    data = _volume_bytes("TIFF")  # raw: each page's IFD first, then its data
    with Image.open(io.BytesIO(data)) as opened:
        opened.seek(FRAMES - 1)
        last_strip = opened.tag_v2[273][0]
    path.write_bytes(data[: last_strip + 10])
    # was: 6 pages from the header, a refusal only when the last page was decoded
    with pytest.raises(UnreadableImageError, match=r"the image data of its page 5 \(numbered"):
        frame_count(path)


def _tiff_compressions() -> list[str]:
    """The compressions this Pillow writes TIFF pages with."""
    found = ["raw", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits"]
    return [*found, "jpeg"] if features.check("jpg") and features.check("libtiff") else found


@pytest.mark.parametrize("compression", _tiff_compressions())
@pytest.mark.parametrize("mode", ["L", "I;16", "RGB"])
@pytest.mark.parametrize("frames", [1, 2, 5])
def test_whole_tiffs_are_read(tmp_path: Path, compression: str, mode: str, frames: int) -> None:
    if compression == "jpeg" and mode == "I;16":
        pytest.skip("libtiff writes no 16-bit JPEG")
    data = _volume_bytes("TIFF", frames, mode, compression=compression)
    assert cut_short_reason(io.BytesIO(data)) is None
    path = tmp_path / "whole.tiff"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a 16-bit volume's stretch
        assert frame_count(path) == frames
        assert len(load_frames(path)) == frames
        if frames == 1:
            assert load_image(path).size == (32, 32)


def test_whole_tiffs_tifffile_writes_are_read(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 256, (FRAMES, 32, 32), dtype=np.uint8)
    for name, options in [
        ("plain", {}),
        ("lzw", {"compression": "lzw"}),
        ("big", {"bigtiff": True}),
        ("tiled", {"tile": (16, 16)}),
        ("big-endian", {"byteorder": ">"}),
    ]:
        path = tmp_path / f"{name}.tiff"
        tifffile.imwrite(path, volume, **options)
        assert frame_count(path) == FRAMES, name
        assert len(load_frames(path)) == FRAMES, name


def _hand_made_tiff(order: str, big: bool, pages: int) -> bytes:
    """An ``"L"`` TIFF of ``pages`` 8 x 8 pages, each its IFD then its data, in either
    byte order, classic or BigTIFF (the layouts Pillow does not write)."""
    offset, count, entry = ("Q", "Q", 20) if big else ("L", "H", 12)
    header = b"II" if order == "<" else b"MM"
    header += (
        struct.pack(order + "HHH" + "Q", 43, 8, 0, 16) if big else struct.pack(order + "HL", 42, 8)
    )
    data = bytearray(header)
    tags = [(256, 8), (257, 8), (258, 8), (259, 1), (262, 1), (273, 0), (278, 8), (279, 64)]
    for page in range(pages):
        at = len(data)
        size = struct.calcsize(order + count) + len(tags) * entry + struct.calcsize(order + offset)
        pixels = at + size
        following = pixels + 64 if page < pages - 1 else 0
        data += struct.pack(order + count, len(tags))
        for tag, value in tags:
            value = pixels if tag == 273 else value
            if big:
                data += struct.pack(order + "HHQQ", tag, 16, 1, value)
            else:
                data += struct.pack(order + "HHLL", tag, 4, 1, value)
        data += struct.pack(order + offset, following)
        data += bytes(range(page, page + 64))
    return bytes(data)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("big", [False, True], ids=["classic", "BigTIFF"])
def test_every_tiff_layout_is_walked(order: str, big: bool) -> None:
    data = _hand_made_tiff(order, big, 3)
    if not (big and order == ">"):  # Pillow 13 reads no big-endian BigTIFF
        with Image.open(io.BytesIO(data)) as opened:
            assert opened.n_frames == 3  # it reads it as written
    assert cut_short_reason(io.BytesIO(data)) is None
    header = 16 if big else 8
    for cut in range(header, len(data)):
        assert cut_short_reason(io.BytesIO(data[:cut])) is not None, cut
    assert cut_short_reason(io.BytesIO(data[:4])) is None  # no TIFF: judged elsewhere


def _frame_boundary_cuts(data: bytes, folder: Path) -> list[int]:
    """The cuts of a GIF that PIL reads without an error as a volume of fewer frames (two at
    least)."""
    cuts = []
    path = folder / "probe.gif"
    ends = [at for at in range(20, len(data)) if data[at - 1] == 0 and data[at] in b"!,"]
    for cut in ends:  # a block's terminator, then an extension or an image
        path.write_bytes(data[:cut])
        count = _pil_count(path)
        if count is None or not 1 < count < FRAMES:  # one frame without a trailer is read
            continue
        try:
            with Image.open(path) as opened:
                for index in range(count):
                    opened.seek(index)
                    opened.load()
        except Exception:
            continue
        cuts.append(cut)
    return cuts


def test_a_gif_cut_between_frames_is_refused_not_read_as_a_shorter_volume(
    tmp_path: Path,
) -> None:
    # was: a 6-frame GIF cut at a frame boundary was summarised as "3 B-scans", without a word
    data = _volume_bytes("GIF")
    cuts = _frame_boundary_cuts(data, tmp_path)
    assert cuts  # PIL reads each as a shorter volume
    path = tmp_path / "volume.gif"
    for cut in [*cuts, len(data) - 1]:  # and the whole volume without its trailer
        path.write_bytes(data[:cut])
        for read in (load_frames, frame_count, read_volume, load_image):
            with pytest.raises(UnreadableImageError, match="before the GIF trailer"):
                read(path)
    refused = pytest.raises(ValueError, match=r"cannot use image 0: corrupt or truncated")
    with Image.open(path) as opened, refused:  # an image given in memory: named as one
        coerce_image(opened, name="image 0")


@pytest.mark.parametrize("mode", ["L", "P", "RGB", "1"])
@pytest.mark.parametrize("frames", [1, 2, FRAMES])
def test_whole_gifs_are_read(tmp_path: Path, mode: str, frames: int) -> None:
    data = _volume_bytes("GIF", frames, mode)
    assert not ends_before_trailer(data)
    path = tmp_path / "whole.gif"
    path.write_bytes(data)
    assert frame_count(path) == frames
    assert len(load_frames(path)) == frames


def test_a_gif_of_one_frame_without_its_trailer_is_read(tmp_path: Path) -> None:
    """Old writers left it out (Python 3.8's idlelib icons): the one image is whole."""
    data = _volume_bytes("GIF", 1)
    path = tmp_path / "icon.gif"
    path.write_bytes(data[:-1])
    assert ends_before_trailer(path.read_bytes())
    assert load_image(path).size == (32, 32)


def test_bytes_that_are_no_gif_are_not_judged() -> None:
    assert not ends_before_trailer(b"")
    assert not ends_before_trailer(_volume_bytes("TIFF"))


# --- the doors ------------------------------------------------------------------------------


@pytest.fixture
def cut_gif(tmp_path: Path) -> Path:
    """A 6-frame GIF volume cut where PIL's frame count raises IndexError."""
    data = _volume_bytes("GIF")
    path = tmp_path / "cut.gif"
    for cut in range(len(data) // 2, len(data)):
        path.write_bytes(data[:cut])
        try:
            Image.open(path).n_frames  # noqa: B018 - what is tried is the count
        except IndexError:
            return path
    raise AssertionError("no cut of the GIF makes PIL raise IndexError")


@pytest.fixture
def cut_tiff(tmp_path: Path) -> Path:
    data = _volume_bytes("TIFF")
    path = tmp_path / "cut.tiff"
    path.write_bytes(data[: len(data) // 2])
    return path


def test_a_data_set_skips_a_cut_volume(make_tree, cut_gif: Path) -> None:
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/DME": ["DME-2-1.jpeg"]})
    cut_gif.replace(root / "train" / "CNV" / "CNV-1-2.gif")
    data = KermanyOCT(root, "train", on_error="skip")
    assert [Path(path).name for path, _ in data.samples] == [
        "CNV-1-1.jpeg",
        "CNV-1-2.gif",
        "DME-2-1.jpeg",
    ]
    with pytest.warns(RuntimeWarning, match=r"CNV-1-2\.gif' \(corrupt or truncated \(its frames"):
        _, target = data[1]
    assert target == 1  # the DME scan that follows
    with pytest.raises(UnreadableImageError, match=r"CNV-1-2\.gif'?: corrupt or truncated"):
        KermanyOCT(root, "train")[1]


def test_a_predictor_skips_a_cut_volume(
    cut_gif: Path, cut_tiff: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "good.png"
    Image.linear_gradient("L").resize((40, 36)).save(good)
    predictor = Predictor(tiny_cnn(), device="cpu", precision="fp32", on_error="skip")
    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        predictions = predictor.topk([good, cut_gif, cut_tiff], k=1)
    assert [p.source for p in predictions] == [str(good)]
    assert [s.source for s in predictor.skipped] == [str(cut_gif), str(cut_tiff)]
    assert all(s.reason.startswith("corrupt or truncated (") for s in predictor.skipped)
    for volume in (cut_gif, cut_tiff):
        with pytest.raises(UnreadableImageError, match="corrupt or truncated"):
            predict_volume(predictor, volume)


@pytest.mark.parametrize("skip", [False, True])
def test_retinalnet_predict_reports_a_cut_volume_in_one_line(
    cut_gif: Path, cut_tiff: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], skip: bool
) -> None:
    checkpoint = save_checkpoint(tmp_path / "best.pt", tiny_cnn())
    good = tmp_path / "good.png"
    Image.linear_gradient("L").resize((40, 36)).save(good)
    extra = ["--on-error", "skip"] if skip else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(
            ["predict", "-q", "--checkpoint", str(checkpoint), str(good), str(cut_gif),
             str(cut_tiff), *extra]
        )  # fmt: skip
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    if not skip:
        assert code == 1
        assert len(err) == 1
        assert f"cannot read image {str(cut_gif)!r}: corrupt or truncated (its frames" in err[0]
        return
    assert code == 0
    assert captured.out.startswith(str(good))
    assert err[0] == "retinalnet predict: skipped 2 unreadable images:"
    assert err[1].strip().startswith(f"{cut_gif}: corrupt or truncated (its frames")
    assert err[2].strip().startswith(f"{cut_tiff}: corrupt or truncated (the directory of")
