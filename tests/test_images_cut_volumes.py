"""A multi-frame GIF or TIFF cut short (an interrupted copy) is an unreadable image naming the
file, at every reader and every door, never PIL's own error; a GIF volume that ends before
its trailer is never read as a shorter volume."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from _training_helpers import tiny_cnn
from retinalnet._core.gif_blocks import ends_before_trailer
from retinalnet._core.images import coerce_image, frame_count, load_frames, load_image
from retinalnet.checkpoint import save_checkpoint
from retinalnet.cli import main
from retinalnet.datasets import KermanyOCT, UnreadableImageError
from retinalnet.predictor import Predictor
from retinalnet.volume import predict_volume, read_volume

FRAMES = 6
_CUT_SHORT = ("corrupt or truncated", "not a recognised image format")  # the latter: in its header


def _volume_bytes(kind: str, frames: int = FRAMES, mode: str = "L") -> bytes:
    """A volume of random 32-px B-scans (they compress badly: every cut lands in data)."""
    rng = np.random.default_rng(3)
    images = [
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).convert(mode)
        for _ in range(frames)
    ]
    buffer = io.BytesIO()
    images[0].save(buffer, format=kind, save_all=True, append_images=images[1:])
    return buffer.getvalue()


def _pil_count(path: Path) -> int | None:
    """What PIL alone makes of a file: its frame count, or ``None`` when it raises."""
    try:
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


@pytest.mark.parametrize("kind", ["GIF", "TIFF"])
def test_every_cut_of_a_volume_is_an_unreadable_image_or_the_whole_volume(
    tmp_path: Path, kind: str
) -> None:
    # was: 410 of 532 cuts of a TIFF raised TypeError "Missing dimensions", 298 of 820 of a
    # GIF IndexError or struct.error, past every reader's handler
    data = _volume_bytes(kind)
    path = tmp_path / f"cut.{kind.lower()}"
    reasons: set[str] = set()
    pil_failed = 0
    for cut in range(20, len(data), 37):
        path.write_bytes(data[:cut])
        pil_failed += _pil_count(path) is None
        for read in (load_image, load_frames, frame_count, read_volume):
            result = _outcome(read, path)
            if not isinstance(result, UnreadableImageError):
                # a count from the header, or the whole volume: never a shorter one
                assert read in (load_image, frame_count) or len(result) == FRAMES, (cut, read)
                continue
            assert result.path == path
            said = (*_CUT_SHORT, "it holds ") if read is load_image else _CUT_SHORT
            assert result.reason.startswith(said), (cut, read, result)
            reasons.add(result.reason.split(":")[0])
    assert pil_failed > 10  # the cuts reach the case PIL itself fails on
    assert "corrupt or truncated (its frames cannot be counted" in reasons


def test_the_reason_names_the_file_and_what_pil_raised(tmp_path: Path) -> None:
    data = _volume_bytes("TIFF")
    path = tmp_path / "cut.tiff"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImageError) as caught:
        frame_count(path)
    assert str(caught.value) == (
        f"cannot read image {str(path)!r}: corrupt or truncated (its frames cannot be counted: "
        "TypeError: Missing dimensions)"
    )


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
    assert err[2].strip().startswith(f"{cut_tiff}: corrupt or truncated (its frames")
