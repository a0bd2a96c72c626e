"""Tests for retinalnet._core.images: decoding images with errors that name the file."""

from __future__ import annotations

import errno
import os
import pickle
import re
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from _image_files import png16
from _training_helpers import tiny_cnn
from retinalnet._core.images import (
    MIN_IMAGE_SIDE,
    SMALL_IMAGE_SIDE,
    check_decoded,
    coerce_image,
    draft_scale,
    frame_count,
    image_size,
    load_frames,
    to_model_mode,
)
from retinalnet._core.read_failure import EMPTY_FILE
from retinalnet._core.torch_load import not_torch_file
from retinalnet.datasets import (
    KermanyOCT,
    UnreadableImageError,
    find_images,
    load_image,
    render_bscan,
)
from retinalnet.predictor import Predictor
from retinalnet.tensor_preprocessing import read_encoded
from retinalnet.transforms import Preprocessing


def _noise(size: tuple[int, int], mode: str = "L") -> Image.Image:
    """Random pixels: they compress badly, so half a JPEG of them is clearly truncated."""
    channels = {"L": (), "RGB": (3,)}[mode]
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], *channels), np.uint8)
    return Image.fromarray(pixels, mode)


def _truncated_jpeg(path: Path) -> Path:
    _noise((64, 64)).save(path, format="JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _quoted(path: Path) -> str:
    return re.escape(repr(str(path)))


@pytest.mark.parametrize(("suffix", "mode"), [(".png", "L"), (".png", "RGB"), (".jpeg", "L")])
def test_load_image_keeps_gray_and_rgb_files_as_they_are(tmp_path, suffix, mode):
    source = _noise((48, 40), mode)
    path = tmp_path / f"scan{suffix}"
    source.save(path)
    image = load_image(path)
    assert (image.mode, image.size) == (mode, (48, 40))
    if suffix == ".png":  # lossless: the very same pixels
        assert image.tobytes() == source.tobytes()


def test_load_image_reads_the_pixels_at_once(tmp_path):
    path = tmp_path / "scan.png"
    _noise((48, 40)).save(path)
    image = load_image(str(path))
    path.unlink()  # a lazily opened image could no longer read its pixels
    assert image.tobytes() == _noise((48, 40)).tobytes()


def _missing(folder: Path) -> Path:
    return folder / "missing.jpeg"


def _text_renamed_jpeg(folder: Path) -> Path:
    path = folder / "notes.jpeg"
    path.write_text("these are notes, not a scan")
    return path


def _directory(folder: Path) -> Path:
    path = folder / "folder.jpeg"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_missing, "no such file"),
        (_text_renamed_jpeg, "not a recognised image format"),
        (lambda folder: _truncated_jpeg(folder / "half.jpeg"), "corrupt or truncated ("),
        (_directory, "it is a directory, not an image file"),
    ],
    ids=["missing", "text-renamed-jpeg", "truncated-jpeg", "directory"],
)
def test_unreadable_files_raise_an_error_naming_the_path(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(
        UnreadableImageError, match=rf"^cannot read image {_quoted(path)}: "
    ) as info:
        load_image(path)
    assert info.value.path == path
    assert info.value.reason.startswith(reason)
    assert isinstance(info.value, OSError)


@pytest.mark.parametrize(
    "read",
    [load_image, image_size, frame_count, load_frames, coerce_image, Preprocessing().prepare],
    ids=["load_image", "image_size", "frame_count", "load_frames", "coerce_image", "prepare"],
)
@pytest.mark.parametrize("suffix", [".jpeg", ".png", ".tif", ".dcm"])
def test_an_empty_file_is_said_to_be_empty_by_every_reader(tmp_path, read, suffix):
    """A copy cut short reads as 0 bytes: said so, in the words of the checkpoints."""
    if suffix == ".dcm":
        pytest.importorskip("pydicom")
    path = tmp_path / f"CNV-1-1{suffix}"
    path.touch()
    with pytest.raises(UnreadableImageError) as info:
        read(path)
    assert str(info.value) == f"cannot read image {str(path)!r}: {EMPTY_FILE}"
    assert info.value.path == path


def test_images_and_checkpoints_say_empty_in_one_wording(tmp_path):
    empty = tmp_path / "best.pt"
    empty.touch()
    assert not_torch_file(empty) == EMPTY_FILE
    assert EMPTY_FILE == "the file is empty, 0 bytes: was it cut short while written or copied?"


def test_unreadable_image_error_survives_pickling(tmp_path):
    error = UnreadableImageError(tmp_path / "CNV-1-1.jpeg", "corrupt or truncated (x)")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is UnreadableImageError
    assert copy.path == tmp_path / "CNV-1-1.jpeg"
    assert copy.reason == "corrupt or truncated (x)"
    assert str(copy) == str(error)


@pytest.fixture
def tree_with_truncated_jpeg(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/DME": []})
    _truncated_jpeg(root / "train" / "DME" / "DME-2-1.jpeg")
    return root


def test_dataloader_worker_error_names_the_broken_file(tree_with_truncated_jpeg):
    data = KermanyOCT(
        tree_with_truncated_jpeg, "train", transform=Preprocessing(size=32).eval_transform()
    )
    loader = DataLoader(data, batch_size=1, num_workers=1)
    with pytest.raises(UnreadableImageError, match=r"DME-2-1\.jpeg'?: corrupt or truncated"):
        list(loader)


def test_dataloader_worker_error_keeps_its_type_and_path(tree_with_truncated_jpeg):
    data = KermanyOCT(
        tree_with_truncated_jpeg, "train", transform=Preprocessing(size=32).eval_transform()
    )
    loader = DataLoader(data, batch_size=1, num_workers=1)
    with pytest.raises(UnreadableImageError) as info:
        list(loader)
    assert info.value.path is not None
    assert info.value.path.name == "DME-2-1.jpeg"
    assert info.value.path.is_file()
    assert info.value.reason.startswith("corrupt or truncated")


def test_dataloader_worker_error_arrives_as_the_same_one_line_error(tree_with_truncated_jpeg):
    path = tree_with_truncated_jpeg / "train" / "DME" / "DME-2-1.jpeg"
    with pytest.raises(UnreadableImageError) as here:
        load_image(path)
    data = KermanyOCT(tree_with_truncated_jpeg, "train")
    with pytest.raises(UnreadableImageError) as there:
        list(DataLoader(data, batch_size=1, num_workers=1, collate_fn=list))
    assert str(there.value) == str(here.value)
    assert "\n" not in str(there.value)
    assert any("DataLoader worker" in note for note in getattr(there.value, "__notes__", [""]))


def test_a_message_that_is_not_ours_is_kept_whole():
    error = UnreadableImageError("something else went wrong\nover two lines")
    assert (error.path, error.reason) == (None, "something else went wrong\nover two lines")
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


# --- reduced-scale JPEG decoding ------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "target", "scale"),
    [((512, 496), 256, 2), ((512, 496), 224, 2), ((512, 496), 300, 1), ((1536, 496), 128, 4),
     ((2048, 2048), 64, 8), ((100, 100), 256, 1)],
)  # fmt: skip
def test_draft_scale(size, target, scale):
    assert draft_scale(size, target) == scale


def _bscan_jpeg(path: Path, seed: int = 0) -> Path:
    pixels, _ = render_bscan("DRUSEN", np.random.default_rng(seed), shape=(496, 512))
    Image.fromarray(pixels, "L").save(path, format="JPEG", quality=90)
    return path


def test_load_image_with_target_size_decodes_a_large_jpeg_at_reduced_scale(tmp_path):
    path = _bscan_jpeg(tmp_path / "DRUSEN-1-1.jpeg")
    assert load_image(path).size == (512, 496)
    assert load_image(path, target_size=256).size == (256, 248)
    assert load_image(path, target_size=400).size == (512, 496)


def test_load_image_never_drafts_a_png(tmp_path):
    path = tmp_path / "scan.png"
    _noise((512, 496)).save(path)
    assert load_image(path, target_size=64).size == (512, 496)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_draft_decode_stays_close_to_full_decode_after_preprocessing(tmp_path, seed):
    path = _bscan_jpeg(tmp_path / f"scan{seed}.jpeg", seed)
    prep = Preprocessing()
    pipeline = prep.eval_transform()
    full = pipeline(load_image(path))
    draft = pipeline(load_image(path, target_size=prep.resize))
    assert full.shape == draft.shape == (3, 224, 224)
    std = torch.tensor(prep.std).view(3, 1, 1)
    grey_levels = ((full - draft) * std * 255).abs().mean()
    assert grey_levels < 2.0


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "256"])
def test_load_image_rejects_a_bad_target_size(tmp_path, bad):
    with pytest.raises(
        ValueError, match=rf"target_size must be a positive int .* got {re.escape(repr(bad))}"
    ):
        load_image(tmp_path / "x.jpeg", target_size=bad)


def test_draft_decode_on_the_real_sample_stays_close_to_full_decode(kermany_sample):
    prep = Preprocessing()
    pipeline = prep.eval_transform()
    std = torch.tensor(prep.std).view(3, 1, 1)
    differences = []
    for path in find_images(kermany_sample):
        full = pipeline(load_image(path))
        draft = pipeline(load_image(path, target_size=prep.resize))
        differences.append(float(((full - draft) * std * 255).abs().mean()))
    assert len(differences) == 80
    assert sum(differences) / len(differences) < 2.0  # grey levels, over the sample
    assert max(differences) < 5.0  # the worst single scan


# --- the one gate: every PIL mode to "L" or "RGB" -------------------------------------------


def _gray_ramp(size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """8-bit grey levels covering 0 to 255, shape (height, width)."""
    width, height = size
    return (np.arange(width * height).reshape(height, width) * 255 // (width * height - 1)).astype(
        np.uint8
    )


def _i16(values: np.ndarray, mode: str = "I;16") -> Image.Image:
    dtype = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2"}[mode]
    height, width = values.shape
    return Image.frombytes(mode, (width, height), values.astype(dtype).tobytes())


RAMP = _gray_ramp()
RGB_PIXELS = np.random.default_rng(3).integers(0, 256, (48, 64, 3), np.uint8)


def _rgba(alpha: int) -> Image.Image:
    pixels = np.dstack([RGB_PIXELS, np.full(RAMP.shape, alpha, np.uint8)])
    return Image.fromarray(pixels, "RGBA")


# (make the image, the mode it becomes, the grey levels / colours it must hold)
MODES: dict[str, tuple[Callable[[], Image.Image], str, np.ndarray]] = {
    "L": (lambda: Image.fromarray(RAMP), "L", RAMP),
    "RGB": (lambda: Image.fromarray(RGB_PIXELS), "RGB", RGB_PIXELS),
    "1": (lambda: Image.fromarray(RAMP >= 128).convert("1"), "L", np.where(RAMP >= 128, 255, 0)),
    "LA-opaque": (lambda: Image.fromarray(RAMP).convert("LA"), "L", RAMP),
    "LA-transparent": (
        lambda: Image.merge("LA", [Image.fromarray(RAMP), Image.new("L", (64, 48), 0)]),
        "L",
        RAMP,
    ),
    "RGBA-opaque": (lambda: _rgba(255), "RGB", RGB_PIXELS),
    "RGBA-transparent": (lambda: _rgba(0), "RGB", RGB_PIXELS),
    "RGBX": (lambda: Image.fromarray(RGB_PIXELS).convert("RGBX"), "RGB", RGB_PIXELS),
    "P-gray-palette": (lambda: Image.fromarray(RAMP).convert("P"), "RGB", np.dstack([RAMP] * 3)),
    "P-colour": (
        lambda: Image.fromarray(RGB_PIXELS).quantize(256),
        "RGB",
        np.asarray(Image.fromarray(RGB_PIXELS).quantize(256).convert("RGB")),
    ),
    "I;16": (lambda: _i16(RAMP.astype(np.uint32) * 257), "L", RAMP),
    "I;16L": (lambda: _i16(RAMP.astype(np.uint32) * 257, "I;16L"), "L", RAMP),
    "I;16B": (lambda: _i16(RAMP.astype(np.uint32) * 257, "I;16B"), "L", RAMP),
    "I;16N": (lambda: _i16(RAMP.astype(np.uint32) * 257, "I;16N"), "L", RAMP),
    "I-8-bit-values": (lambda: Image.fromarray(RAMP.astype(np.int32)), "L", RAMP),
    "I-16-bit-values": (lambda: Image.fromarray(RAMP.astype(np.int32) * 257), "L", RAMP),
    "I-signed": (lambda: Image.fromarray(RAMP.astype(np.int32) * 1000 - 70_000), "L", RAMP),
    "F-0-1": (lambda: Image.fromarray(RAMP.astype(np.float32) / 255), "L", RAMP),
    "F-0-1-overshoot": (
        lambda: Image.fromarray(
            np.where(RAMP > 250, 1.06, np.where(RAMP < 5, -0.07, RAMP / 255)).astype(np.float32)
        ),
        "L",
        np.where(RAMP > 250, 255, np.where(RAMP < 5, 0, RAMP)),
    ),
    "F-grey-levels-with-fractions": (
        lambda: Image.fromarray(RAMP.astype(np.float32) + 0.25),
        "L",
        RAMP,
    ),
    "F-grey-levels-overshoot": (
        lambda: Image.fromarray(np.where(RAMP > 250, 255.6, RAMP - 0.4).astype(np.float32)),
        "L",
        np.where(RAMP > 250, 255, RAMP),
    ),
    "F-other-range": (lambda: Image.fromarray(RAMP.astype(np.float32) * 10 - 700), "L", RAMP),
    # -10 to 40 (decibels): no grey levels; clipped to them, a fifth of it turned black
    "F-decibels": (lambda: Image.fromarray(RAMP.astype(np.float32) / 5.1 - 10), "L", RAMP),
}
STRETCHED = {"I-signed", "F-other-range", "F-decibels"}  # values no bit depth explains: warned


@pytest.mark.parametrize("case", list(MODES))
def test_every_mode_becomes_gray_or_rgb_with_its_meaning(case):
    make, mode, expected = MODES[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = to_model_mode(make(), "image 3")
    assert image.mode == mode
    assert np.array_equal(np.asarray(image), expected)
    said = [str(warning.message) for warning in caught]
    if case in STRETCHED:
        assert len(said) == 1
        assert re.match(
            r"image 3 has values from -?\d+ to \d+, neither fractions of white", said[0]
        )
    else:
        assert said == []


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "LAB", "HSV"])
def test_colour_spaces_become_rgb_by_pils_conversion(mode):
    source = Image.fromarray(RGB_PIXELS).convert(mode)
    image = to_model_mode(source)
    assert image.mode == "RGB"
    assert image.tobytes() == source.convert("RGB").tobytes()


def test_premultiplied_alpha_is_undone_before_it_is_dropped():
    image = to_model_mode(Image.new("RGBa", (16, 16), (50, 25, 10, 128)))
    assert (image.mode, image.getpixel((0, 0))) == ("RGB", (99, 49, 19))
    gray = to_model_mode(Image.new("La", (16, 16), (100, 128)))
    assert (gray.mode, gray.getpixel((0, 0))) == ("L", 199)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("transparency", [2, bytes([255, 255, 0] + [255] * 253)])
def test_palette_transparency_is_dropped_quietly(transparency):
    image = Image.new("P", (40, 40), 2)
    image.putpalette([0, 0, 0, 255, 0, 0, 10, 20, 30] + [0] * 759)
    image.info["transparency"] = transparency
    converted = to_model_mode(image)
    assert (converted.mode, converted.getpixel((0, 0))) == ("RGB", (10, 20, 30))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_gray_and_rgb_images_pass_without_a_copy(mode):
    image = Image.new(mode, (40, 40))
    assert to_model_mode(image) is image
    assert coerce_image(image) is image


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _i16(RAMP.astype(np.uint32) * 16), r"a 16-bit image whose brightest pixel is "
         r"4080 of 65535 \(12-bit data\?\): rescaled by the 16-bit range it would be nearly "
         r"black \(at most 16 of 255\)\. Rescale it to 8 bits by the scanner's real bit depth"),
        (lambda: _i16(np.zeros((48, 64))),
         r"a 16-bit image whose brightest pixel is 0 of 65535 \(all black\)"),
        (lambda: Image.fromarray(RAMP.astype(np.int32) * 10),
         r"a 32-bit integer image read as 16-bit whose brightest pixel is 2550 of 65535"),
        (lambda: Image.fromarray(np.full((48, 64), np.nan, np.float32)),
         r"3072 of its 3072 pixels are NaN or infinite"),
        (lambda: Image.fromarray(np.where(RAMP > 250, np.inf, 0.5).astype(np.float32)),
         r"\d+ of its 3072 pixels are NaN or infinite"),
        (lambda: Image.fromarray(np.full((48, 64), -70.5, np.float32)),
         r"every pixel is -70.5: a constant image outside \[0, 1\], 0 to 255 and 0 to 65535 has "
         r"no range to rescale"),
        (lambda: Image.fromarray((RAMP.astype(np.float32) + 0.25) * 4),
         r"a float image read as 16-bit whose brightest pixel is 1021 of 65535 \(10-bit data\?\)"),
    ],
    ids=["12-bit-in-16", "16-bit-black", "I-12-bit", "F-nan", "F-inf", "F-constant", "F-10-bit"],
)  # fmt: skip
def test_pixels_without_a_meaning_are_refused_naming_the_image(make, message):
    with pytest.raises(ValueError, match=rf"^cannot use image 3: {message}"):
        to_model_mode(make(), "image 3")
    with pytest.raises(ValueError, match=rf"^cannot use image 3: {message}"):
        coerce_image(make(), name="image 3")


def test_a_16_bit_png_gives_the_model_the_input_of_the_same_scan_in_8_bits(tmp_path):
    """The 0.1 bug: PIL's convert("RGB") clipped an I;16 scan, ~99% of the pixels white."""
    scan, _ = render_bscan("DRUSEN", np.random.default_rng(5), shape=(248, 256))
    gray_path = tmp_path / "scan-8.png"
    Image.fromarray(scan).save(gray_path)
    # what a 16-bit export holds: the 8-bit level times 257, plus sub-level detail
    detail = np.random.default_rng(6).integers(-128, 129, scan.shape)
    deep = np.clip(scan.astype(np.int64) * 257 + detail, 0, 65535)
    deep_path = tmp_path / "scan-16.png"
    _i16(deep).save(deep_path)
    assert Image.open(deep_path).mode == "I;16"
    assert load_image(deep_path).mode == "L"
    prep = Preprocessing(size=224)
    std = torch.tensor(prep.std).view(3, 1, 1)
    grey_levels = ((prep.prepare(deep_path) - prep.prepare(gray_path)) * std * 255).abs()
    assert float(grey_levels.max()) <= 1.0 + 1e-4
    clipped = np.asarray(Image.open(deep_path).convert("L"))
    assert (clipped == 255).mean() > 0.9  # what 0.1 gave the model


def test_a_12_bit_scan_in_a_16_bit_file_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "dicom-export.png"
    _i16(RAMP.astype(np.uint32) * 16).save(path)
    with pytest.raises(
        UnreadableImageError, match=rf"^cannot read image {_quoted(path)}: a 16-bit image whose"
    ) as info:
        load_image(path)
    assert "(12-bit data?)" in info.value.reason


def test_a_float_tiff_with_nan_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "scan.tiff"
    pixels = RAMP.astype(np.float32) / 255
    pixels[3, 4] = np.nan
    Image.fromarray(pixels).save(path)
    with pytest.raises(
        UnreadableImageError,
        match=rf"^cannot read image {_quoted(path)}: 1 of its 3072 pixels are NaN or infinite",
    ):
        load_image(path)


# --- tensors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.full((40, 40), float("nan")), r"image 0 has 1600 NaN or infinite values of 1600"),
        (torch.zeros(3, 40, 40).index_fill_(2, torch.tensor([5]), float("inf")),
         r"image 0 has 120 NaN or infinite values of 4800"),
        (torch.full((1, 40, 40), float("-inf"), dtype=torch.float16),
         r"image 0 has 1600 NaN or infinite values"),
        (torch.zeros(40, 40, dtype=torch.int32),
         r"image 0 has dtype torch\.int32; expected uint8 or float\. A tensor carries no bit "
         r"depth: convert it to float in \[0, 1\] yourself \(tensor / 65535 for 16-bit"),
        (torch.zeros(40, 40, dtype=torch.int16), r"image 0 has dtype torch\.int16"),
        (torch.zeros(40, 40, dtype=torch.uint16), r"image 0 has dtype torch\.uint16"),
    ],
    ids=["nan", "inf", "float16-inf", "int32", "int16", "uint16"],
)  # fmt: skip
def test_tensors_without_a_meaning_are_refused(tensor, message):
    with pytest.raises(ValueError, match=rf"^{message}"):
        coerce_image(tensor, name="image 0")


def test_a_nan_tensor_gets_an_error_not_a_class():
    """The 0.1 bug: a NaN-filled tensor was accepted and given a confident class."""
    predictor = Predictor(tiny_cnn(seed=1).eval(), device="cpu", precision="fp32")
    with pytest.raises(ValueError, match=r"image 0 has 1600 NaN or infinite values"):
        predictor.topk(torch.full((40, 40), float("nan")))


def test_float_tensors_are_rounded_to_the_nearest_grey_level():
    levels = torch.from_numpy(RAMP)
    for tensor in (levels.float() / 255, levels.double() / 255, levels.half() / 255):
        assert np.array_equal(np.asarray(coerce_image(tensor)), RAMP)


@pytest.mark.parametrize(
    ("values", "fix"),
    [
        (RAMP.astype(np.float32), r"0-255 grey levels\? divide by 255: {kind} / 255"),
        (RAMP / 255 * 1.05, r"a resampling overshoot\? clip it: "),
        ((RAMP / 255 - 0.45) / 0.22, r"a normalised {kind} is a model input: call the model"),
        (RAMP * 257.0, r"16-bit values\? divide by 65535: {kind} / 65535"),
    ],
    ids=["0-255", "overshoot", "normalised", "16-bit"],
)
@pytest.mark.parametrize("kind", ["tensor", "array"])
def test_floats_outside_0_1_are_refused_with_what_they_likely_are(values, fix, kind):
    image = torch.from_numpy(values) if kind == "tensor" else values
    with pytest.raises(
        ValueError,
        match=rf"^image 0 is a float {kind} with values in \[[-\d.e+]+, [\d.e+]+\]; expected an "
        rf"image in \[0, 1\] \({fix.format(kind=kind)}",
    ):
        coerce_image(image, name="image 0")


# --- NumPy arrays: the tensor rules, channels last ------------------------------------------

ARRAYS: dict[str, np.ndarray] = {
    "uint8-HW": RAMP,
    "uint8-HW1": RAMP[:, :, None],
    "uint8-HW3": RGB_PIXELS,
    "float32-HW": RAMP.astype(np.float32) / 255,
    "float64-HW3": RGB_PIXELS / 255,
    "float16-HW": (RAMP / 255).astype(np.float16),
    "big-endian-float": (RAMP / 255).astype(">f8"),
    "read-only-view": np.flipud(np.flipud(RAMP)),
    "transposed": np.ascontiguousarray(RAMP.T).T,
}


@pytest.mark.parametrize("case", list(ARRAYS))
def test_numpy_arrays_are_read_as_the_same_tensor(case):
    """They were refused ("image 0 is a ndarray"), with no fix; cv2, skimage, pydicom and
    oct-converter give arrays."""
    array = ARRAYS[case]
    if case == "read-only-view":
        array.setflags(write=False)
    channels_first = torch.from_numpy(np.array(array, dtype=array.dtype.newbyteorder("=")))
    tensor = channels_first.permute(2, 0, 1) if array.ndim == 3 else channels_first
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's warning for a read-only array, too
        image = coerce_image(array, name="image 0")
    assert image.tobytes() == coerce_image(tensor).tobytes()
    assert image.mode == ("RGB" if array.ndim == 3 and array.shape[2] == 3 else "L")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((3, 40, 48), np.uint8), r"image 0 has shape \(3, 40, 48\), channels first; NumPy "
         r"images are channels last, \(H, W, 1\) or \(H, W, 3\): pass array\.transpose\(1, 2, 0\)"),
        (np.zeros((40, 48, 4), np.uint8),
         r"image 0 has shape \(40, 48, 4\); expected \(H, W\), \(H, W, 1\) or \(H, W, 3\)"),
        (np.zeros((2, 40, 48, 3), np.uint8),
         r"image 0 is a batch array of shape \(2, 40, 48, 3\); pass list\(batch\)"),
        (np.zeros(40, np.uint8), r"image 0 has shape \(40,\); expected"),
        (np.zeros((40, 48), np.uint16), r"image 0 has dtype uint16; expected uint8 or float\. An "
         r"array carries no bit depth: convert it to float in \[0, 1\] yourself \(array / 65535"),
        (np.zeros((40, 48), bool), r"image 0 has dtype bool; expected uint8 or float"),
        (np.full((40, 48), np.nan), r"image 0 has 1920 NaN or infinite values of 1920"),
        (np.zeros((4, 48), np.uint8), r"cannot use image 0: it is 48 x 4 pixels"),
    ],
    ids=["CHW", "4-channels", "batch", "1d", "uint16", "bool", "nan", "tiny"],
)  # fmt: skip
def test_arrays_that_are_not_images_are_refused_with_the_fix(array, message):
    with pytest.raises(ValueError, match=rf"^{message}"):
        coerce_image(array, name="image 0")


@pytest.mark.parametrize("door", ["topk", "predict_proba", "gradcam", "prepare"])
def test_every_door_takes_an_array_as_its_tensor(door):
    predictor = Predictor(tiny_cnn(seed=1).eval(), device="cpu", precision="fp32")
    array = RAMP[:40, :48]
    tensor = torch.from_numpy(array.copy())
    if door == "topk":
        assert predictor.topk(array).to_dict() == predictor.topk(tensor).to_dict()
    elif door == "predict_proba":
        assert torch.equal(predictor.predict_proba([array]), predictor.predict_proba([tensor]))
    elif door == "gradcam":
        assert np.array_equal(predictor.gradcam(array), predictor.gradcam(tensor))
    else:
        prepare = predictor.preprocessing.prepare
        assert torch.equal(prepare(array), prepare(tensor))


def test_other_types_are_refused_naming_every_accepted_type():
    with pytest.raises(
        TypeError,
        match=r"^image 0 is an int; expected a path, a PIL image or an image tensor or NumPy "
        r"array$",
    ):
        coerce_image(3, name="image 0")  # type: ignore[arg-type]


# --- sizes ----------------------------------------------------------------------------------


def test_the_documented_sizes():
    assert (MIN_IMAGE_SIDE, SMALL_IMAGE_SIDE) == (8, 32)


@pytest.mark.parametrize("size", [(7, 40), (40, 7), (1, 1), (512, 1)])
def test_images_smaller_than_the_minimum_are_refused_at_every_door(tmp_path, size):
    width, height = size
    expected = rf"it is {width} x {height} pixels; images need both sides of at least 8 pixels"
    path = tmp_path / "thumb.png"
    Image.new("L", size).save(path)
    with pytest.raises(UnreadableImageError, match=rf"^cannot read image {_quoted(path)}: "):
        load_image(path)
    with pytest.raises(UnreadableImageError, match=expected):
        coerce_image(path)
    with pytest.raises(ValueError, match=rf"^cannot use image 1: {expected}"):
        coerce_image(Image.new("RGB", size), name="image 1")
    with pytest.raises(ValueError, match=rf"^cannot use image 1: {expected}"):
        coerce_image(torch.zeros(height, width, dtype=torch.uint8), name="image 1")


def test_an_empty_tensor_is_refused():
    with pytest.raises(ValueError, match=r"it is 40 x 0 pixels"):
        coerce_image(torch.zeros(0, 40))


@pytest.mark.filterwarnings("ignore:skipping unreadable image")
def test_the_skip_policy_skips_a_too_small_image(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.png"], "train/DME": ["DME-2-1.png"]})
    Image.new("L", (4, 4)).save(root / "train" / "CNV" / "CNV-1-1.png")
    data = KermanyOCT(root, "train", on_error="skip")
    with pytest.warns(RuntimeWarning, match=r"CNV-1-1\.png' \(it is 4 x 4 pixels"):
        image, target = data[0]
    assert (image.size, target) == ((40, 36), 1)


@pytest.mark.parametrize("size", [(31, 200), (8, 8), (200, 16)])
def test_small_images_are_accepted_with_a_warning(tmp_path, size):
    path = tmp_path / "small.png"
    Image.new("L", size).save(path)
    message = rf"is only {size[0]} x {size[1]} pixels, smaller than the smallest model input"
    with pytest.warns(UserWarning, match=rf"^{_quoted(path)} {message}"):
        assert load_image(path).size == size
    with pytest.warns(UserWarning, match=rf"^image 2 {message}"):
        coerce_image(torch.zeros(size[1], size[0]), name="image 2")


# --- decompression bombs --------------------------------------------------------------------


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` pixels, with no pixel data to speak of."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


BOMB = (
    r"possible decompression bomb: its header claims 900,000,000 pixels, more than the limit "
    r"of 89,478,485 pixels \(PIL\.Image\.MAX_IMAGE_PIXELS\); if the file is a genuine image, "
    r"raise that limit before reading it$"
)


@pytest.mark.parametrize("read", [load_image, image_size, coerce_image, Preprocessing().prepare])
def test_a_decompression_bomb_is_an_unreadable_image_naming_the_file(tmp_path, read):
    path = _png_header(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(UnreadableImageError, match=rf"^cannot read image {_quoted(path)}: {BOMB}"):
        read(path)


def test_pils_warning_range_is_refused_too(tmp_path, monkeypatch):
    """PIL only warns between its limit and twice it; the gate refuses from the limit."""
    path = tmp_path / "scan.png"
    _noise((40, 36)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1440 pixels: PIL would warn
    with pytest.raises(
        UnreadableImageError,
        match=r"header claims 1,440 pixels, more than the limit of 1,000 pixels",
    ):
        load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1440)
    assert load_image(path).size == (40, 36)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # the documented way to lift it
    assert load_image(path).size == (40, 36)


def test_pils_warning_range_is_refused_by_the_tensor_path_too(tmp_path, monkeypatch):
    """The GPU decoding path refuses what the PIL path refuses, without PIL's own warning."""
    path = tmp_path / "scan.jpeg"
    _noise((40, 36)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1440 pixels: PIL would warn
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(UnreadableImageError, match=r"header claims 1,440 pixels"):
            read_encoded(path, Preprocessing(size=32))
    assert [str(w.message) for w in seen] == []
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1440)
    assert read_encoded(path, Preprocessing(size=32)).dim() == 1  # the JPEG bytes, to decode


@pytest.fixture
def tree_with_bomb(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.jpeg"], "train/DME": ["DME-2-1.jpeg"]})
    _png_header(root / "train" / "CNV" / "CNV-1-2.png", 30000, 30000)
    return root


def test_the_skip_policy_skips_a_decompression_bomb(tree_with_bomb):
    data = KermanyOCT(tree_with_bomb, "train", on_error="skip")
    assert [Path(path).name for path, _ in data.samples][1] == "CNV-1-2.png"
    with pytest.warns(RuntimeWarning, match=r"skipping .*CNV-1-2\.png' \(possible decompression"):
        image, target = data[1]
    assert (image.size, target) == ((40, 36), 1)


def test_a_decompression_bomb_in_a_dataloader_worker_arrives_as_one_line(tree_with_bomb):
    data = KermanyOCT(tree_with_bomb, "train", transform=Preprocessing(size=32).eval_transform())
    with pytest.raises(UnreadableImageError) as info:
        list(DataLoader(data, batch_size=1, num_workers=1))
    path = tree_with_bomb / "train" / "CNV" / "CNV-1-2.png"
    assert re.fullmatch(rf"cannot read image {_quoted(path)}: {BOMB}", str(info.value))
    assert info.value.path == path


# --- EXIF orientation -----------------------------------------------------------------------


def test_the_exif_orientation_is_ignored(tmp_path):
    """As torchvision and OCT exporters do: the pixels are used as stored."""
    plain, rotated = tmp_path / "plain.jpeg", tmp_path / "tagged.jpeg"
    source = Image.fromarray(_gray_ramp((64, 40)))
    source.save(plain, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    source.save(rotated, quality=95, exif=exif)
    assert Image.open(rotated).getexif()[0x0112] == 6
    image = load_image(rotated)
    assert image.size == (64, 40)
    assert image.tobytes() == load_image(plain).tobytes()


def test_a_mode_without_a_rule_is_refused_with_the_fix():
    class FutureImage(Image.Image):
        mode = "I;32"  # not a mode Pillow decodes today: the gate has no rule for it

    with pytest.raises(
        ValueError,
        match=r"^cannot use image: PIL mode 'I;32' is not supported; convert it to 'L' "
        r"\(grayscale\) or 'RGB' first$",
    ):
        to_model_mode(FutureImage())


def test_jpeg_and_png_files_are_one_b_scan_and_not_dicom(tmp_path):
    from retinalnet._core.images import frame_count, is_dicom, load_frames

    path = tmp_path / "scan.png"
    _noise((48, 40)).save(path)
    assert not is_dicom(path)
    assert frame_count(path) == 1
    with pytest.raises(UnreadableImageError, match=r"missing\.jpeg': no such file"):
        frame_count(tmp_path / "missing.jpeg")
    frames = load_frames(path)
    assert len(frames) == 1
    assert np.array_equal(np.asarray(frames[0]), np.asarray(load_image(path)))


# --- files of several frames ----------------------------------------------------------------


def _stack(path: Path, frames: int = 3) -> Path:
    """A multi-page TIFF (or animated PNG, by suffix) of ``frames`` different noise frames."""
    images = [
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 48), np.uint8))
        for i in range(frames)
    ]
    lossless = {"lossless": True} if path.suffix == ".webp" else {}
    images[0].save(path, save_all=True, append_images=images[1:], **lossless)
    return path


@pytest.mark.parametrize("suffix", [".tif", ".png", ".gif", ".webp"])
def test_a_file_of_several_frames_is_a_volume_not_one_b_scan(tmp_path, suffix):
    from retinalnet._core.images import frame_count, load_frames

    path = _stack(tmp_path / f"volume{suffix}")
    assert frame_count(path) == 3
    frames = load_frames(path)
    assert [np.asarray(f.convert("L")).tolist() for f in frames] == [  # WebP decodes to RGB
        np.random.default_rng(i).integers(0, 256, (40, 48), np.uint8).tolist() for i in range(3)
    ]
    message = rf"^cannot read image {_quoted(path)}: it holds 3 frames .* not one B-scan: read it"
    with pytest.raises(UnreadableImageError, match=message):
        load_image(path)
    with pytest.raises(UnreadableImageError, match=message):
        load_frames(path, single=True)
    with pytest.raises(UnreadableImageError, match=message):
        Preprocessing(size=32).prepare(path)
    with Image.open(path) as opened, pytest.raises(ValueError, match=r"PIL image of 3 frames"):
        coerce_image(opened)


def test_a_data_set_refuses_or_skips_a_multi_page_tiff(make_tree):
    root = make_tree({"train/CNV": ["CNV-1-1.png"], "train/DME": ["DME-2-1.png"]})
    _stack(root / "train" / "CNV" / "CNV-1-2.tif")
    data = KermanyOCT(root, "train")
    assert len(data) == 3  # .tif files are found
    with pytest.raises(UnreadableImageError, match=r"CNV-1-2\.tif': it holds 3 frames"):
        [data[i] for i in range(len(data))]


def test_one_page_tiff_and_bmp_files_are_read_and_found(tmp_path):
    scan = _noise((48, 40))
    for name in ("a.tif", "b.TIFF", "c.bmp"):
        scan.save(tmp_path / name)
        assert np.array_equal(np.asarray(load_image(tmp_path / name)), np.asarray(scan))
    assert [p.name for p in find_images(tmp_path)] == ["a.tif", "b.TIFF", "c.bmp"]


# --- strips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(400_000, 8), (8, 400), (33 * 40, 40)])
def test_strips_are_refused_at_every_door_before_any_resize(tmp_path, size):
    from retinalnet._core.images import MAX_IMAGE_ASPECT
    from retinalnet.tensor_preprocessing import read_encoded

    assert MAX_IMAGE_ASPECT == 32
    width, height = size
    expected = rf"it is {width} x {height} pixels, one side [\d,.]+ times the other; .* crop it"
    path = tmp_path / "strip.png"
    Image.new("L", size).save(path)
    with pytest.raises(UnreadableImageError, match=rf"^cannot read image {_quoted(path)}: "):
        load_image(path)
    with pytest.raises(ValueError, match=rf"^cannot use image 1: {expected}"):
        coerce_image(Image.new("L", size), name="image 1")
    with pytest.raises(ValueError, match=rf"^cannot use image 1: {expected}"):
        coerce_image(torch.zeros(height, width, dtype=torch.uint8), name="image 1")
    if max(size) < 65_500:  # the JPEG limit: the tensor path reads JPEGs only
        jpeg = tmp_path / "strip.jpeg"
        Image.new("L", size).save(jpeg)
        with pytest.raises(UnreadableImageError, match=expected):
            read_encoded(jpeg, Preprocessing(size=32))


def test_a_b_scan_three_times_wider_than_tall_is_read(tmp_path):
    path = tmp_path / "wide.jpeg"
    _noise((1536, 496)).save(path)
    assert load_image(path).size == (1536, 496)
    assert coerce_image(torch.zeros(40, 32 * 40, dtype=torch.uint8)).size == (1280, 40)


# --- lazily opened PIL images ---------------------------------------------------------------


def test_a_lazily_opened_truncated_or_closed_image_is_refused_naming_it(tmp_path):
    truncated = _truncated_jpeg(tmp_path / "half.jpeg")
    with pytest.raises(ValueError, match=r"^cannot use image 0: its pixels cannot be decoded"):
        coerce_image(Image.open(truncated), name="image 0")
    good = tmp_path / "good.png"
    _noise((48, 40)).save(good)
    with Image.open(good) as opened:
        pass
    with pytest.raises(ValueError, match=r"^cannot use image 0: its pixels cannot be decoded"):
        coerce_image(opened, name="image 0")
    assert coerce_image(Image.open(good)).size == (48, 40)  # lazily opened and readable: fine


def test_the_predictor_names_a_lazily_opened_truncated_image(tmp_path):
    truncated = _truncated_jpeg(tmp_path / "half.jpeg")
    good = tmp_path / "good.png"
    _noise((48, 40)).save(good)
    predictor = Predictor(tiny_cnn(), device="cpu", on_error="skip")  # skips files, not objects
    with pytest.raises(ValueError, match=r"^cannot use image 1: its pixels cannot be decoded"):
        predictor.topk([good, Image.open(truncated)], k=1)


def test_a_tiff_preview_page_is_no_b_scan(tmp_path):
    from PIL import TiffImagePlugin

    from retinalnet._core.images import frame_count, load_frames

    scan, preview = _noise((48, 40)), _noise((12, 10))
    path = tmp_path / "scan.tif"
    reduced = TiffImagePlugin.ImageFileDirectory_v2()
    reduced[254] = 1  # NewSubfileType: a reduced-resolution copy of another page
    scan.save(path, save_all=True, append_images=[preview], tiffinfo={})
    with Image.open(path) as opened:  # write page 2 again, marked as a preview
        pages = [opened.copy()]
        opened.seek(1)
        pages.append(opened.copy())
    with TiffImagePlugin.AppendingTiffWriter(str(path), new=True) as tiff:
        for page, info in zip(pages, ({}, reduced), strict=True):
            page.save(tiff, format="TIFF", tiffinfo=info)
            tiff.newFrame()
    assert frame_count(path) == 1
    assert np.array_equal(np.asarray(load_image(path)), np.asarray(scan))
    assert len(load_frames(path)) == 1
    assert [p.name for p in find_images(tmp_path)] == ["scan.tif"]


# --- float images read as the integer image of the same values ------------------------------

DIM = RAMP.astype(np.int64) * 153 // 255  # a dim scan: grey levels 0 to 153

READERS: dict[str, Callable[[Path], Image.Image]] = {
    "load_image": load_image,
    "load_frames": lambda path: load_frames(path)[0],
    "coerce_image-path": coerce_image,
    "coerce_image-PIL": lambda path: coerce_image(Image.open(path)),
    "to_model_mode": lambda path: to_model_mode(Image.open(path)),
    "check_decoded (audit)": lambda path: check_decoded(Image.open(path), path),
}


@pytest.mark.parametrize("door", list(READERS))
@pytest.mark.parametrize("bits", [8, 16])
def test_a_float_image_of_whole_numbers_is_read_as_the_integer_image_of_them(tmp_path, door, bits):
    """A float TIFF of grey levels 0..153 was stretched to 0..255; as int32 or PNG it was not."""
    values = DIM * (257 if bits == 16 else 1)
    floats, integers = tmp_path / "scan-float.tif", tmp_path / "scan-int.tif"
    Image.fromarray(values.astype(np.float32)).save(floats)
    Image.fromarray(values.astype(np.int32)).save(integers)
    assert (Image.open(floats).mode, Image.open(integers).mode) == ("F", "I")
    read = READERS[door]
    assert np.asarray(read(floats)).tolist() == DIM.tolist()
    assert np.asarray(read(integers)).tolist() == DIM.tolist()


@pytest.mark.parametrize("door", list(READERS))
@pytest.mark.parametrize(
    "offset", [0.25, -0.3, 0.5], ids=["plus-a-quarter", "minus-0.3", "half-levels"]
)
def test_float_grey_levels_with_fractions_are_read_as_the_rounded_levels(tmp_path, door, offset):
    """Grey levels 0..153 plus a fraction (a crop, averaged or filtered frames) were stretched
    to 0..255 (up to 209 levels off) where the same whole numbers were read as they are."""
    values = DIM.astype(np.float32) + offset
    path = tmp_path / "scan-float.tif"
    Image.fromarray(values).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stretch, so no warning
        read = READERS[door](path)
    assert np.asarray(read).tolist() == np.clip(np.rint(values), 0, 255).astype(int).tolist()


@pytest.mark.parametrize("door", list(READERS))
def test_a_stretched_float_file_is_warned_of_naming_it(tmp_path, door):
    path = tmp_path / "scan-float.tif"
    Image.fromarray(RAMP.astype(np.float32) * 10 - 700.5).save(path)
    with pytest.warns(UserWarning, match=r"has values from -700\.5 to 1849\.5, neither fraction"):
        read = READERS[door](path)
    assert np.asarray(read).tolist() == RAMP.tolist()


@pytest.mark.parametrize(
    "door", [Preprocessing().prepare, "Predictor.topk"], ids=["prepare", "topk"]
)
def test_the_same_float_grey_levels_get_the_input_of_their_png(tmp_path, door):
    """Through the doors that prepare a model input: a float TIFF of fractional grey levels
    and the 8-bit PNG of the rounded levels give the same input (the same probabilities)."""
    values = RAMP.astype(np.float32) * 0.6 + 30.25
    floats, png = tmp_path / "scan.tif", tmp_path / "scan.png"
    Image.fromarray(values).save(floats)
    Image.fromarray(np.rint(values).astype(np.uint8)).save(png)
    if door == "Predictor.topk":
        predictor = Predictor(tiny_cnn(seed=1).eval(), device="cpu", precision="fp32")
        first, second = predictor.predict_proba([floats, png]).unbind()
        assert torch.equal(first, second)
        first, second = predictor.predict_proba([Image.open(floats), png]).unbind()
        assert torch.equal(first, second)
    else:
        assert torch.equal(door(floats), door(png))


# --- 16-bit colour PNGs: PIL keeps the high byte of each sample -----------------------------


def _tiff48(path: Path, values: np.ndarray) -> Path:
    """An uncompressed 16-bit RGB TIFF of grey ``values``, written by hand (as :func:`_png16`)."""
    height, width = values.shape
    data = np.dstack([values] * 3).astype("<u2").tobytes()
    tags = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, 8), (259, 3, 1, 1),
            (262, 3, 1, 2), (273, 4, 1, 14), (277, 3, 1, 3), (278, 3, 1, height),
            (279, 4, 1, len(data)), (284, 3, 1, 1)]  # fmt: skip
    entries = b"".join(
        struct.pack("<HHII" if kind == 4 or count > 1 else "<HHIHxx", tag, kind, count, value)
        for tag, kind, count, value in tags
    )
    ifd = struct.pack("<H", len(tags)) + entries + struct.pack("<I", 0)
    header = b"II*\0" + struct.pack("<I", 14 + len(data)) + struct.pack("<HHH", 16, 16, 16)
    path.write_bytes(header + data + ifd)
    return path


@pytest.mark.parametrize("door", [*READERS, "Preprocessing.prepare"])
@pytest.mark.parametrize("colour_type", [2, 4, 6, "TIFF"], ids=["RGB", "LA", "RGBA", "RGB-TIFF"])
def test_12_bit_data_in_a_16_bit_colour_file_is_refused_at_every_door(tmp_path, door, colour_type):
    """As in a 16-bit grey PNG; it was read nearly black (at most 15 of 255) without a word."""
    twelve_bit = RAMP.astype(np.int64) * 16
    if colour_type == "TIFF":
        path = _tiff48(tmp_path / "export.tif", twelve_bit)
    else:
        path = png16(tmp_path / "export.png", twelve_bit, colour_type)
    read = Preprocessing().prepare if door == "Preprocessing.prepare" else READERS[door]
    message = (
        r"a 16-bit colour image whose brightest sample is at most 4095 of 65535 \(12-bit data "
        r"or less\?\): PIL reads 16-bit colour by the high byte of each sample, so it would be "
        r"nearly black \(at most 15 of 255\)"
    )
    with pytest.raises((UnreadableImageError, ValueError), match=message):
        read(path)


@pytest.mark.parametrize("colour_type", [0, 2, 4, 6, "TIFF"])
def test_16_bit_files_of_full_range_data_are_read_within_a_grey_level(tmp_path, colour_type):
    values = np.clip(RAMP.astype(np.int64) * 257 + 100, 0, 65535)
    if colour_type == "TIFF":
        image = load_image(_tiff48(tmp_path / "scan.tif", values))
    else:
        image = load_image(png16(tmp_path / "scan.png", values, colour_type))
    expected = (values * 255 + 32767) // 65535
    assert np.abs(np.asarray(image.convert("L")).astype(np.int64) - expected).max() <= 1


# --- files the operating system will not let us read ----------------------------------------

OS_DOORS: dict[str, Callable[[Path], object]] = {
    "load_image": load_image,
    "load_frames": load_frames,
    "frame_count": frame_count,
    "image_size": image_size,
    "coerce_image": coerce_image,
    "Preprocessing.prepare": Preprocessing().prepare,
}


@pytest.mark.parametrize("door", list(OS_DOORS))
def test_a_symbolic_link_loop_is_said_to_be_one_at_every_door(tmp_path, door):
    path = tmp_path / "scan.jpeg"
    path.symlink_to(path.name)
    with pytest.raises(
        UnreadableImageError,
        match=rf"^cannot read image {_quoted(path)}: a symbolic link loop \(.+ \[ELOOP\]\)$",
    ):
        OS_DOORS[door](path)


@pytest.mark.parametrize("door", list(OS_DOORS))
def test_a_file_without_read_permission_is_said_to_be_one_at_every_door(
    tmp_path, monkeypatch, door
):
    path = tmp_path / "scan.png"
    Image.fromarray(RAMP).save(path)

    def denied(file, *args, **kwargs):  # what open() raises without read permission (not root)
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(
        UnreadableImageError,
        match=rf"^cannot read image {_quoted(path)}: permission denied \[EACCES\]: check its "
        r"permissions$",
    ):
        OS_DOORS[door](path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_a_file_made_unreadable_is_said_to_be_one(tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(RAMP).save(path)
    path.chmod(0)
    with pytest.raises(UnreadableImageError, match=r": permission denied \[EACCES\]: check its"):
        load_image(path)


def test_a_broken_link_is_said_to_be_one(tmp_path):
    path = tmp_path / "scan.png"
    path.symlink_to("gone.png")
    # the link's target named (a NAS share not mounted, a folder moved), and the fix
    message = (
        r": no such file \(a broken symbolic link to 'gone.png', which does not exist\): "
        r"remove the link, or restore the file it leads to$"
    )
    with pytest.raises(UnreadableImageError, match=message):
        load_image(path)


def test_a_file_under_a_broken_folder_link_names_the_link(tmp_path):
    # an unmounted share linked as the class folder: "no such file" said nothing more
    folder = tmp_path / "CNV"
    folder.symlink_to(tmp_path / "mnt" / "CNV")
    message = (
        rf"no such file \(its folder {re.escape(repr(str(folder)))} is a broken symbolic link "
        rf"to {re.escape(repr(str(tmp_path / 'mnt' / 'CNV')))}, which does not exist\): "
        r"remove the link, or restore the file it leads to$"
    )
    with pytest.raises(UnreadableImageError, match=message):
        load_image(folder / "CNV-1-1.jpeg")


# ---------------------------------------------------------------------------------------------
# A volume: its small B-scans are said once; its pixels in all are capped from its header


def _small_gif(path: Path, frames: int) -> Path:
    images = [Image.fromarray(np.full((16, 16), 9 * i % 250, np.uint8)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:])
    return path


def test_a_volume_of_small_b_scans_is_warned_of_once_when_read_and_predicted(
    tmp_path: Path,
) -> None:
    from retinalnet.volume import predict_volume

    volume = _small_gif(tmp_path / "small.gif", 40)
    predictor = Predictor(tiny_cnn(seed=1).eval(), device="cpu", precision="fp32")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict_volume(predictor, volume)

    said = [str(w.message) for w in caught if "smaller than the smallest" in str(w.message)]
    assert said == [
        f"40 of the 40 B-scans of the volume {str(volume)!r} are smaller than the smallest "
        "model input (32 pixels), e.g. B-scan 0 of 16 x 16: the model sees them upsampled, "
        "with little detail; check that they are whole B-scans"
    ]


def test_a_volume_given_as_images_says_its_small_b_scans_once(tmp_path: Path) -> None:
    from retinalnet._core.images import coerce_volume

    scans = [Image.fromarray(np.zeros((16, 16), np.uint8)) for _ in range(5)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coerce_volume(scans)

    assert [str(w.message)[:40] for w in caught] == ["5 of the 5 B-scans of the volume are sma"]


def test_a_multi_page_tiff_claiming_too_many_pixels_in_all_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pages.tiff"
    pages = [Image.new("L", (64, 64)) for _ in range(5)]
    pages[0].save(path, save_all=True, append_images=pages[1:], compression="tiff_deflate")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)  # each page (4,096) under it

    with pytest.raises(
        UnreadableImageError,
        match=rf"^cannot read image {re.escape(repr(str(path)))}: possible decompression bomb: "
        r"its header claims 5 frames of 20,480 pixels in all, more than the limit for a volume "
        r"of 20,000 pixels \(4 x PIL\.Image\.MAX_IMAGE_PIXELS\); if the file is a genuine "
        r"volume, raise that limit before reading it$",
    ):
        load_frames(path)
    assert frame_count(path) == 5  # the header alone is still read


def test_a_float_image_of_10_bit_data_is_refused_with_a_fix_that_works_on_floats(tmp_path):
    # the fix said `numpy.asarray(image) >> 4`, which floats do not have (TypeError), and
    # shifted 10-bit data by 4
    path = tmp_path / "f0_1000.tif"
    Image.fromarray(RAMP.astype(np.float32) * 1000 / 255).save(path)
    with pytest.raises(UnreadableImageError, match=r"10-bit data\?") as caught:
        load_image(path)
    fix = re.search(r"for 10-bit data: (Image\.fromarray\(.*\))\)$", str(caught.value))
    assert fix is not None
    image = Image.open(path)
    fixed = eval(fix.group(1), {"Image": Image, "numpy": np, "image": image})
    assert fixed.mode == "L"
    assert np.asarray(fixed).max() == 1000 * 255 // 1023  # the 10-bit full scale


def test_a_missing_image_is_a_file_not_found_error_through_every_door(tmp_path: Path) -> None:
    """A web service answers 404 with ``except FileNotFoundError``: a missing scan's error
    is one, and still an UnreadableImageError naming the file (it was neither)."""
    from retinalnet.datasets import ImageNotFoundError
    from retinalnet.volume import read_volume

    missing = tmp_path / "gone.jpeg"
    predictor = Predictor(tiny_cnn(), device="cpu")
    doors: list[Callable[[], object]] = [
        lambda: load_image(missing),
        lambda: predictor.topk(missing),
        lambda: predictor.predict_proba([missing]),
        lambda: read_volume(missing),
        lambda: predictor.topk(str(tmp_path / "gone.dcm")),
    ]
    for door in doors:
        with pytest.raises(FileNotFoundError, match=r"^cannot read image '.*gone") as caught:
            door()
        assert isinstance(caught.value, UnreadableImageError)
        assert isinstance(caught.value, ImageNotFoundError)
        assert caught.value.path is not None
        assert caught.value.path.name.startswith("gone")
    # what a worker process sends back: the same kind, the same path
    error = pickle.loads(pickle.dumps(ImageNotFoundError(missing, "no such file")))
    assert isinstance(error, FileNotFoundError)
    assert error.path == missing
    again = ImageNotFoundError(str(error))  # torch's DataLoader re-raises type(error)(text)
    assert isinstance(again, FileNotFoundError)
    assert again.path == missing
    # a file that is there but corrupt is not "not found"
    corrupt = tmp_path / "corrupt.jpeg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(UnreadableImageError) as caught:
        load_image(corrupt)
    assert not isinstance(caught.value, FileNotFoundError)
