"""TensorPreprocessing: batches of JPEG bytes prepared on a device give what the PIL path
gives, within the documented tolerance; what it cannot decode alike goes the PIL way."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from retinalnet.datasets import UnreadableImageError
from retinalnet.tensor_preprocessing import TOLERANCE, TensorPreprocessing
from retinalnet.transforms import Preprocessing

SAMPLE = Path("/work/shared/data/kermany-sample")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _scan(path: Path, size: tuple[int, int], mode: str, seed: int, fmt: str = "JPEG") -> Path:
    """A textured image: smooth bands, speckle, blurred (an OCT scan's kind of content)."""
    rng = np.random.default_rng(seed)
    width, height = size
    rows = np.linspace(0, 6 * np.pi, height)[:, None]
    cols = np.linspace(0, 2 * np.pi, width)[None, :]
    base = 110 + 70 * np.sin(rows + np.sin(cols) * 2) + rng.normal(0, 25, (height, width))
    pixels = base.clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(0.8))
    if mode == "RGB":
        tint = Image.fromarray(np.roll(pixels, 7, axis=1))
        image = Image.merge("RGB", (image, tint, Image.fromarray(255 - pixels)))
    elif mode != "L":
        image = image.convert(mode)
    image.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return path


def _check_close(got: torch.Tensor, expected: torch.Tensor, device: str) -> None:
    difference = (got.cpu() - expected).abs()
    assert difference.max() <= TOLERANCE[device], float(difference.max())
    assert difference.mean() <= TOLERANCE[device] / 10, float(difference.mean())


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("scans")
    sizes = [
        ((512, 496), "L"),  # the real size mix of the Kermany scans
        ((768, 496), "L"),
        ((1536, 496), "L"),
        ((512, 512), "L"),
        ((512, 496), "RGB"),  # 3-channel JPEGs exist in the download
        ((333, 517), "RGB"),  # odd sizes, portrait
        ((257, 255), "L"),
        ((40, 36), "L"),  # small but over 32 px: still the tensor path
    ]
    return [
        _scan(folder / f"scan{i}.jpeg", size, mode, seed=i) for i, (size, mode) in enumerate(sizes)
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [224, 64])
def test_synthetic_jpegs_match_the_pil_path(scans: list[Path], device: str, size: int) -> None:
    prep = Preprocessing(size=size)
    expected = torch.stack([prep.prepare(path) for path in scans])
    tensor_prep = TensorPreprocessing(prep, device=device)
    assert all(tensor_prep.read(path).dim() == 1 for path in scans)  # all decoded as tensors
    got = tensor_prep.prepare_files(scans)
    assert got.shape == (len(scans), 3, size, size)
    assert got.device.type == device
    _check_close(got, expected, device)


def test_the_float_resize_of_gpus_matches_too(scans: list[Path]) -> None:
    # the resize a GPU runs (float32, rounded back to 8 bits), checked here on the CPU
    prep = Preprocessing()
    tensor_prep = TensorPreprocessing(prep, device="cpu")
    tensor_prep._uint8_resize = False
    _check_close(
        tensor_prep.prepare_files(scans), torch.stack([prep.prepare(p) for p in scans]), "cpu"
    )


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="the real Kermany sample is not here")
@pytest.mark.parametrize("device", DEVICES)
def test_real_sample_scans_match_the_pil_path(device: str) -> None:
    paths = sorted(SAMPLE.glob("*/*/*.jpeg"))[::4]  # 20 of the 80, every class and split
    prep = Preprocessing()
    expected = torch.stack([prep.prepare(path) for path in paths])
    _check_close(TensorPreprocessing(prep, device=device).prepare_files(paths), expected, device)


@pytest.mark.parametrize(
    ("mode", "fmt", "size"),
    [
        ("L", "PNG", (300, 280)),  # not a JPEG
        ("CMYK", "JPEG", (300, 280)),  # PIL's own colour conversion
        ("L", "JPEG", (30, 300)),  # under 32 px: the PIL path warns about it
    ],
)
def test_what_the_tensor_path_cannot_decode_alike_goes_the_pil_way(
    tmp_path: Path, mode: str, fmt: str, size: tuple[int, int]
) -> None:
    path = _scan(tmp_path / f"odd.{fmt.lower()}", size, mode, seed=5, fmt=fmt)
    prep = Preprocessing(size=64)
    tensor_prep = TensorPreprocessing(prep, device="cpu")
    with pytest.warns(UserWarning, match="smaller than") if min(size) < 32 else nullcontext():
        item = tensor_prep.read(path)
    assert item.shape == (3, 64, 64)  # prepared by PIL in the reading worker
    with pytest.warns(UserWarning, match="smaller than") if min(size) < 32 else nullcontext():
        expected = prep.prepare(path)
    assert torch.equal(item, expected)
    jpeg = _scan(tmp_path / "plain.jpeg", (300, 280), "L", seed=6)
    batch = tensor_prep.batch([item, tensor_prep.read(jpeg)])  # mixed batches keep their order
    assert torch.equal(batch[0], expected)
    _check_close(batch[1:], prep.prepare(jpeg)[None], "cpu")


def test_reduced_decode_goes_the_pil_way(scans: list[Path]) -> None:
    prep = Preprocessing(reduced_decode=True)
    item = TensorPreprocessing(prep, device="cpu").read(scans[0])
    assert torch.equal(item, prep.prepare(scans[0]))


def test_broken_files_are_named(tmp_path: Path, scans: list[Path]) -> None:
    truncated = tmp_path / "truncated.jpeg"
    truncated.write_bytes(scans[0].read_bytes()[:5000])
    tensor_prep = TensorPreprocessing(Preprocessing(), device="cpu")
    with pytest.raises(UnreadableImageError, match=r"truncated\.jpeg"):
        tensor_prep.prepare_files([scans[1], truncated])
    missing = tmp_path / "missing.jpeg"
    with pytest.raises(UnreadableImageError, match=r"missing\.jpeg"):
        tensor_prep.read(missing)


def test_bad_arguments_say_what_is_expected() -> None:
    tensor_prep = TensorPreprocessing(Preprocessing(size=64), device="cpu")
    with pytest.raises(ValueError, match="at least one item"):
        tensor_prep.batch([])
    with pytest.raises(ValueError, match=r"model inputs are float tensors \(3, 64, 64\)"):
        tensor_prep.batch([torch.zeros(3, 32, 32)])
    with pytest.raises(TypeError, match="Preprocessing"):
        TensorPreprocessing({"size": 64}, device="cpu")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("item", "match"),
    [
        # an image, not a prepared input: it was taken as one (values 0..255 as the input)
        (torch.zeros(3, 64, 64, dtype=torch.uint8), r"item 0 is a uint8 tensor \(3, 64, 64\)"),
        (torch.zeros(40, dtype=torch.int64), r"item 0 is an int64 tensor \(40,\), not JPEG"),
    ],
)
def test_batch_refuses_what_read_does_not_give(item: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TensorPreprocessing(Preprocessing(size=64), device="cpu").batch([item])


def test_batch_warns_of_an_input_that_was_never_normalised() -> None:
    tensor_prep = TensorPreprocessing(Preprocessing(size=64), device="cpu")
    image = torch.rand(3, 64, 64)  # an image in [0, 1] of the right size

    with pytest.warns(UserWarning, match=r"item 0 holds no negative value.*not normalised"):
        tensor_prep.batch([image])


@pytest.mark.parametrize(
    "value",
    [Image.new("L", (64, 64)), np.zeros((64, 64), dtype=np.uint8), torch.zeros(64, 64)],
)
def test_read_and_prepare_files_take_file_paths_only(value: object) -> None:
    tensor_prep = TensorPreprocessing(Preprocessing(size=64), device="cpu")
    with pytest.raises(TypeError, match=r"^read\(\) takes a file path .*Preprocessing\.prepare"):
        tensor_prep.read(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^prepare_files\(\) item 0 takes a file path"):
        tensor_prep.prepare_files([value])  # type: ignore[list-item]
