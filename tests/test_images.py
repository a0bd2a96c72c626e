"""Tests for retinalnet._core.images: decoding images with errors that name the file."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from retinalnet._core.images import draft_scale
from retinalnet.datasets import (
    KermanyOCT,
    UnreadableImageError,
    find_images,
    load_image,
    render_bscan,
)
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
def test_load_image_decodes_in_the_files_own_mode(tmp_path, suffix, mode):
    source = _noise((24, 20), mode)
    path = tmp_path / f"scan{suffix}"
    source.save(path)
    image = load_image(path)
    assert (image.mode, image.size) == (mode, (24, 20))
    if suffix == ".png":  # lossless: the very same pixels
        assert image.tobytes() == source.tobytes()


def test_load_image_reads_the_pixels_at_once(tmp_path):
    path = tmp_path / "scan.png"
    _noise((16, 12)).save(path)
    image = load_image(str(path))
    path.unlink()  # a lazily opened image could no longer read its pixels
    assert image.tobytes() == _noise((16, 12)).tobytes()


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
