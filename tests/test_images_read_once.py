"""retinalnet._core.images reads a file once: a JPEG's bytes are read once and parsed once by
PIL (the damage checks read the same bytes), a decompression bomb is refused by its size
(not by a warning turned into an error, which changed the process's filters), and a warning
Python shows once in the caller's loop stays shown once while the loop reads images."""

from __future__ import annotations

import builtins
import io
import os
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from retinalnet._core.images import frame_count, image_size
from retinalnet.datasets import UnreadableImageError, load_image
from retinalnet.datasets._audit_file import _decode as audited_file
from retinalnet.tensor_preprocessing import TensorPreprocessing
from retinalnet.transforms import Preprocessing


def _noise(size: tuple[int, int]) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0]), np.uint8)
    return Image.fromarray(pixels, "L")


def _users_step() -> None:
    warnings.warn("the user's own, shown once at this place", UserWarning, stacklevel=1)


@pytest.mark.parametrize("suffix", [".jpeg", ".png"])
def test_a_warning_shown_once_in_a_loop_that_reads_images_is_shown_once(
    tmp_path: Path, suffix: str
) -> None:
    """Every file read told ``warnings`` its filters changed (twice per block, two blocks),
    which empties every module's registry of warnings already shown: the user's warning in
    a training or prediction loop was shown at every iteration, where Python shows it once."""
    path = tmp_path / f"scan{suffix}"
    _noise((256, 240)).save(path)
    prepare = Preprocessing(size=32).prepare
    tensors = TensorPreprocessing(Preprocessing(size=32))  # its JPEG check opened with PIL too
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        for _ in range(5):
            _users_step()
            load_image(path)
            image_size(path)
            frame_count(path)
            prepare(path)
            tensors.read(path)
            with path.open("rb") as stream:  # the audit's reader
                audited_file(stream, str(path))
    assert [str(w.message) for w in seen] == ["the user's own, shown once at this place"]


class _Counts:
    """What reading files costs: PIL opens, JPEG header parses, files opened."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
        self.pil_opens = 0
        self.jpeg_parses = 0
        self.file_opens = 0
        real_open, real_parse = Image.open, JpegImagePlugin.JpegImageFile._open
        real_builtin_open, real_os_open = builtins.open, os.open

        def pil_open(*args: Any, **kwargs: Any) -> Image.Image:
            self.pil_opens += 1
            return real_open(*args, **kwargs)

        def parse(image: JpegImagePlugin.JpegImageFile) -> None:
            self.jpeg_parses += 1
            real_parse(image)

        def builtin_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            self.file_opens += isinstance(file, (str, os.PathLike)) and Path(file) == path
            return real_builtin_open(file, *args, **kwargs)

        def os_open(file: Any, *args: Any, **kwargs: Any) -> int:
            self.file_opens += isinstance(file, (str, os.PathLike)) and Path(file) == path
            return real_os_open(file, *args, **kwargs)

        monkeypatch.setattr(Image, "open", pil_open)
        monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "_open", parse)
        monkeypatch.setattr(builtins, "open", builtin_open)
        monkeypatch.setattr(os, "open", os_open)


@pytest.mark.parametrize(
    "options",
    [{}, {"progressive": True}, {"quality": 95, "subsampling": 0}],
    ids=["baseline", "progressive", "colour"],
)
@pytest.mark.parametrize("target_size", [None, 16])
def test_a_jpeg_file_is_opened_once_and_parsed_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, Any],
    target_size: int | None,
) -> None:
    """PIL parsed each JPEG's header twice (the file, then its bytes with the end marker
    withheld for the damage checks), and the file was read again for those checks."""
    path = tmp_path / "scan.jpeg"
    mode = "RGB" if "subsampling" in options else "L"
    _noise((64, 60)).convert(mode).save(path, "JPEG", **options)
    expected = Image.open(path)
    if target_size is not None:
        expected.draft(mode, (32, 30))
    expected = expected.convert(mode)
    counts = _Counts(monkeypatch, path)
    image = load_image(path, target_size=target_size)
    assert (counts.pil_opens, counts.jpeg_parses, counts.file_opens) == (1, 1, 1)
    assert (image.mode, image.size) == (mode, expected.size)
    assert image.tobytes() == expected.tobytes()


def _claiming(width: int, height: int) -> bytes:
    """A 64 x 64 JPEG whose header claims ``width x height`` pixels."""
    stream = io.BytesIO()
    Image.new("L", (64, 64), 128).save(stream, "JPEG")
    data = bytearray(stream.getvalue())
    struct.pack_into(">HH", data, data.find(b"\xff\xc0") + 5, height, width)
    return bytes(data)


BOMB = (
    "possible decompression bomb: its header claims 900,000,000 pixels, more than the limit "
    "of 89,478,485 pixels (PIL.Image.MAX_IMAGE_PIXELS); if the file is a genuine image, "
    "raise that limit before reading it"
)


@pytest.mark.parametrize("read", [load_image, image_size, frame_count])
def test_a_jpeg_decompression_bomb_is_refused_naming_the_file(tmp_path: Path, read: Any) -> None:
    path = tmp_path / "bomb.jpeg"
    path.write_bytes(_claiming(30000, 30000))
    with pytest.raises(UnreadableImageError) as info:
        read(path)
    assert str(info.value) == f"cannot read image {str(path)!r}: {BOMB}"


@pytest.mark.parametrize("suffix", [".jpeg", ".png"])
@pytest.mark.parametrize("read", [load_image, image_size, frame_count])
def test_a_bomb_is_refused_though_pils_warning_was_shown_for_the_hosts_own_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, read: Any
) -> None:
    """PIL's bomb warning for the same size, already shown at its place (the host opened
    such an image itself), is skipped before any filter is read: the size decides."""
    path = tmp_path / f"scan{suffix}"
    _noise((40, 36)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1440 pixels: PIL would warn
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        Image.open(path).close()  # the host's own read, its warning shown once at its place
        assert [w.category for w in seen] == [Image.DecompressionBombWarning]
        with pytest.raises(
            UnreadableImageError,
            match=re.escape("header claims 1,440 pixels, more than the limit of 1,000 pixels"),
        ):
            read(path)
    assert len(seen) == 1  # PIL's warning for the file refused: not shown


def test_pils_warning_range_is_refused_for_a_jpeg_without_its_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scan.jpeg"
    _noise((40, 36)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(UnreadableImageError, match=r"header claims 1,440 pixels"):
            load_image(path)
    assert seen == []
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1440)
    assert load_image(path).size == (40, 36)


def test_a_multi_picture_jpeg_is_read_as_its_first_picture(tmp_path: Path) -> None:
    """An MPO file (stereo cameras) begins as a JPEG: PIL reads it as before, one picture."""
    path = tmp_path / "scan.jpeg"
    first, second = _noise((64, 60)), Image.new("L", (64, 60), 30)
    first.save(path, "MPO", save_all=True, append_images=[second])
    assert Image.open(path).format == "MPO"
    image = load_image(path)
    with Image.open(path) as opened:
        expected = opened.convert("L")
    assert (image.mode, image.size) == ("L", (64, 60))
    assert image.tobytes() == expected.tobytes()
