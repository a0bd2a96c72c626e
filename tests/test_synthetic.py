"""Tests for the procedurally generated OCT data set: retinalnet.datasets._render (the
renderer) and retinalnet.datasets._synthetic (SyntheticOCT, make_synthetic_kermany)."""

from __future__ import annotations

import errno
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from retinalnet._core.classes import KERMANY_CLASSES, KERMANY_SPLITS
from retinalnet.datasets import SyntheticOCT, make_synthetic_kermany, render_bscan

SMALL = (64, 64)
FILE_NAME = re.compile(r"^(CNV|DME|DRUSEN|NORMAL)-(\d{7})-(\d+)\.jpeg$")


def _dilate(mask: npt.NDArray[np.bool_], steps: int) -> npt.NDArray[np.bool_]:
    """Binary dilation with a 3x3 square, ``steps`` times, without SciPy."""
    grown: npt.NDArray[np.bool_] = mask.copy()
    for _ in range(steps):
        padded = np.pad(grown, 1)
        grown = np.zeros(mask.shape, dtype=np.bool_)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                grown |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return grown


# --- render_bscan ---------------------------------------------------------------------------


@pytest.mark.parametrize("label", KERMANY_CLASSES)
@pytest.mark.parametrize("size", [(64, 64), (48, 96), (128, 112)])
def test_render_bscan_shapes_and_dtypes(label: str, size: tuple[int, int]) -> None:
    image, mask = render_bscan(label, np.random.default_rng(0), shape=size)
    assert image.shape == size
    assert image.dtype == np.uint8
    assert mask.shape == size
    assert mask.dtype == np.bool_
    assert image.min() < 40 < 160 < image.max()  # dark vitreous and a bright retina


@pytest.mark.parametrize("label", KERMANY_CLASSES)
def test_render_bscan_is_deterministic(label: str) -> None:
    first = render_bscan(label, np.random.default_rng([3, 1]), shape=SMALL)
    again = render_bscan(label, np.random.default_rng([3, 1]), shape=SMALL)
    other = render_bscan(label, np.random.default_rng([3, 2]), shape=SMALL)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize(
    ("label", "size", "rng", "error", "match"),
    [
        ("AMD", SMALL, np.random.default_rng(0), ValueError, r"label must be one of .*'AMD'"),
        ("cnv", SMALL, np.random.default_rng(0), ValueError, r"label must be one of"),
        ("CNV", (16, 64), np.random.default_rng(0), ValueError, r"shape must be .*\(16, 64\)"),
        ("CNV", SMALL, 0, TypeError, r"numpy.random.Generator, got int"),
    ],
)
def test_render_bscan_rejects_bad_arguments(
    label: str, size: tuple[int, int], rng: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        render_bscan(label, rng, shape=size)  # type: ignore[arg-type]


# --- lesion masks ---------------------------------------------------------------------------


def test_normal_masks_are_empty_and_lesion_masks_are_not() -> None:
    data = SyntheticOCT(6, shape=SMALL, seed=1)
    for index, target in enumerate(data.targets):
        mask = data.mask(index)
        assert mask.shape == SMALL
        assert mask.dtype == np.bool_
        if data.classes[target] == "NORMAL":
            assert not mask.any()
        else:
            assert mask.any()
            rows = np.flatnonzero(mask.any(axis=1))
            assert rows.min() > 0.05 * SMALL[0]  # below the vitreous, inside the image


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_dme_cysts_are_darker_than_the_retina_around_them(seed: int) -> None:
    image, mask = render_bscan("DME", np.random.default_rng(seed), shape=(128, 128))
    ring = _dilate(mask, 3) & ~mask
    assert image[mask].mean() + 30 < image[ring].mean()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_drusen_lie_under_the_rpe_in_the_outer_retina(seed: int) -> None:
    image, mask = render_bscan("DRUSEN", np.random.default_rng(seed), shape=(128, 128))
    pixels = image.astype(np.float64)
    smooth = (pixels[:-2] + pixels[1:-1] + pixels[2:]) / 3  # row r + 1 of the scan
    fractions = []
    cap, inside = [], []
    for column in np.flatnonzero(mask.any(axis=0)):
        rows = np.flatnonzero(mask[:, column])
        top, bottom = rows.min(), rows.max()
        # The retinal surface: the first row that is half-way from vitreous to the brightest.
        profile = smooth[:, column]
        threshold = (np.median(profile[:10]) + profile.max()) / 2
        surface = int(np.argmax(profile > threshold)) + 1
        fractions.append((top - surface) / (bottom + 1 - surface))
        cap.append(pixels[max(0, top - 3) : top, column].mean())
        inside.append(pixels[rows, column].mean())
    # The drusen sit in the outer part of the retina, under a bright RPE cap.
    assert np.median(fractions) > 0.5
    assert np.mean(cap) > np.mean(inside)


# --- SyntheticOCT ---------------------------------------------------------------------------


def test_dataset_is_shaped_like_an_image_folder() -> None:
    data = SyntheticOCT(3, shape=SMALL, seed=0)
    assert len(data) == 12
    assert data.classes == list(KERMANY_CLASSES)
    assert data.class_to_idx == {"CNV": 0, "DME": 1, "DRUSEN": 2, "NORMAL": 3}
    assert data.targets == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [target for _, target in data.samples] == data.targets
    assert data.shape == SMALL
    assert data.seed == 0
    assert data.transform is None
    assert data.target_transform is None
    for (name, target), patient in zip(data.samples, data.patient_ids, strict=True):
        match = FILE_NAME.match(name)
        assert match is not None, name
        assert match.group(1) == data.classes[target]
        assert match.group(2) == patient
        assert 1_000_000 <= int(patient) <= 9_999_999
    assert len(set(data.patient_ids)) == len(data)


def test_getitem_returns_grayscale_pil_images_and_targets() -> None:
    data = SyntheticOCT(1, shape=(48, 80), seed=0)
    for index, target in enumerate(data.targets):
        image, label = data[index]
        assert isinstance(image, Image.Image)
        assert image.mode == "L"
        assert image.size == (80, 48)  # PIL sizes are (width, height)
        assert label == target


def test_images_are_deterministic_and_depend_on_the_seed() -> None:
    first = SyntheticOCT(2, shape=SMALL, seed=7)
    second = SyntheticOCT(2, shape=SMALL, seed=7)
    other = SyntheticOCT(2, shape=SMALL, seed=8)
    assert first.patient_ids == second.patient_ids
    assert not set(first.patient_ids) & set(other.patient_ids)
    for index in range(len(first)):
        pixels = np.asarray(first[index][0])
        np.testing.assert_array_equal(pixels, np.asarray(second[index][0]))
        np.testing.assert_array_equal(pixels, np.asarray(first.image(index)))  # again
        np.testing.assert_array_equal(first.mask(index), second.mask(index))
        assert not np.array_equal(pixels, np.asarray(other[index][0]))
    # Image i is render_bscan with default_rng([seed, i]), in any process.
    label = first.classes[first.targets[3]]
    expected, expected_mask = render_bscan(label, np.random.default_rng([7, 3]), shape=SMALL)
    np.testing.assert_array_equal(np.asarray(first.image(3)), expected)
    np.testing.assert_array_equal(first.mask(3), expected_mask)


def test_dataset_survives_pickling_like_a_dataloader_worker_copy() -> None:
    data = SyntheticOCT(1, shape=SMALL, seed=5)
    copy = pickle.loads(pickle.dumps(data))
    for index in range(len(data)):
        np.testing.assert_array_equal(np.asarray(copy[index][0]), np.asarray(data[index][0]))


def test_transforms_are_applied() -> None:
    data = SyntheticOCT(
        1,
        shape=SMALL,
        transform=lambda image: np.asarray(image, dtype=np.float32) / 255,
        target_transform=lambda target: f"class {target}",
    )
    image, target = data[1]
    assert isinstance(image, np.ndarray)
    assert image.shape == SMALL
    assert 0.0 <= image.min() <= image.max() <= 1.0
    assert target == "class 1"


def test_a_transform_that_cannot_be_called_is_refused_when_made() -> None:
    """Was: accepted, then Python's "object is not callable" at the first read."""
    from retinalnet.transforms import Preprocessing

    with pytest.raises(TypeError, match=r"^SyntheticOCT\(transform=Preprocessing\(\.\.\.\)\)"):
        SyntheticOCT(1, shape=SMALL, transform=Preprocessing(size=32))
    with pytest.raises(
        TypeError, match=r"^SyntheticOCT: target_transform must be .* got an int 3$"
    ):
        SyntheticOCT(1, shape=SMALL, target_transform=3)


def test_per_class_counts_from_a_mapping() -> None:
    data = SyntheticOCT({"CNV": 2, "NORMAL": 1, "DME": 0}, shape=SMALL)
    assert data.targets == [0, 0, 3]
    assert [name.split("-")[0] for name, _ in data.samples] == ["CNV", "CNV", "NORMAL"]
    assert len(SyntheticOCT(0, shape=SMALL)) == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_per_class": -1}, ValueError, r"num_per_class must be >= 0 images, got -1"),
        ({"num_per_class": 2.5}, TypeError, r"num_per_class must be an int .* float"),
        ({"num_per_class": True}, TypeError, r"num_per_class must be an int"),
        ({"num_per_class": {"AMD": 3}}, ValueError, r"unknown class name 'AMD'.*'CNV'"),
        ({"num_per_class": {"CNV": -2}}, ValueError, r"num_per_class\['CNV'\] must be >= 0"),
        ({"shape": (31, 64)}, ValueError, r"shape must be .* >= 32, got \(31, 64\)"),
        ({"shape": (64,)}, ValueError, r"shape must be a \(height, width\) pair"),
        ({"shape": (64.0, 64)}, ValueError, r"got \(64\.0, 64\)"),
        ({"shape": "64x64"}, ValueError, r"got '64x64'"),
        ({"seed": -1}, ValueError, r"seed must be a non-negative int, got -1"),
        ({"seed": 1.5}, TypeError, r"seed must be a non-negative int, got 1\.5 of type float"),
        ({"seed": None}, TypeError, r"seed must be a non-negative int, got None"),
    ],
)
def test_constructor_rejects_bad_arguments(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        SyntheticOCT(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("index", [-1, 8, 100])
def test_out_of_range_index_raises_index_error(index: int) -> None:
    data = SyntheticOCT(2, shape=SMALL)
    with pytest.raises(IndexError, match=rf"index {index} is out of range .* length 8"):
        data[index]
    with pytest.raises(IndexError, match=rf"index {index}"):
        data.mask(index)


def test_numpy_integer_indices_are_accepted() -> None:
    data = SyntheticOCT(1, shape=SMALL)
    np.testing.assert_array_equal(np.asarray(data[np.int64(2)][0]), np.asarray(data[2][0]))


def test_repr_names_the_length_size_and_seed() -> None:
    assert repr(SyntheticOCT(2, shape=SMALL, seed=4)) == (
        "SyntheticOCT(num_images=8, shape=(64, 64), seed=4)"
    )


# --- writing to disk ------------------------------------------------------------------------


def test_write_uses_the_kermany_layout(tmp_path: Path) -> None:
    data = SyntheticOCT({"CNV": 2, "DRUSEN": 1}, shape=(48, 80), seed=2)
    split_dir = data.write(tmp_path, "val")
    assert split_dir == tmp_path / "val"
    assert sorted(path.name for path in split_dir.iterdir()) == list(KERMANY_CLASSES)
    files = sorted(split_dir.glob("*/*"))
    assert len(files) == 3
    for (name, target), path in zip(sorted(data.samples), files, strict=True):
        assert path.name == name
        assert path.parent.name == data.classes[target]
        assert FILE_NAME.match(path.name)
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.mode == "L"
            assert image.size == (80, 48)


@pytest.mark.parametrize(
    ("split", "quality", "match"),
    [
        ("training", 95, r"split must be one of \['train', 'val', 'test'\], got 'training'"),
        ("train", 0, r"quality must be an int from 1 to 100, got 0"),
        ("train", 101, r"quality must be an int from 1 to 100, got 101"),
    ],
)
def test_write_rejects_bad_arguments(tmp_path: Path, split: str, quality: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SyntheticOCT(1, shape=SMALL).write(tmp_path, split, quality=quality)
    assert not any(tmp_path.iterdir())


def test_make_synthetic_kermany_writes_three_disjoint_splits(tmp_path: Path) -> None:
    root = make_synthetic_kermany(
        tmp_path / "oct", train=3, val={"CNV": 2, "NORMAL": 1}, test=1, shape=SMALL, seed=4
    )
    assert root == tmp_path / "oct"
    assert sorted(path.name for path in root.iterdir()) == sorted(KERMANY_SPLITS)
    patients: dict[str, set[str]] = {}
    for split in KERMANY_SPLITS:
        assert sorted(path.name for path in (root / split).iterdir()) == list(KERMANY_CLASSES)
        names = [path.name for path in (root / split).glob("*/*.jpeg")]
        matches = [FILE_NAME.match(name) for name in names]
        assert all(matches), names
        patients[split] = {match.group(2) for match in matches if match}
    assert len(patients["train"]) == 12
    assert len(patients["val"]) == 3
    assert len(patients["test"]) == 4
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shape": (64, 8)}, ValueError, r"shape must be .*got \(64, 8\)"),
        ({"train": -3}, ValueError, r"train must be >= 0 images, got -3"),
        ({"val": {"Normal": 1}}, ValueError, r"val has unknown class name 'Normal'"),
        ({"test": "10"}, TypeError, r"test must be an int"),
        ({"seed": -2}, ValueError, r"seed must be a non-negative int, got -2"),
    ],
)
def test_make_synthetic_kermany_checks_arguments_before_writing(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {"train": 1, "val": 1, "test": 1, "shape": SMALL, **kwargs}
    with pytest.raises(error, match=match):
        make_synthetic_kermany(tmp_path / "oct", **arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "oct").exists()


# --- the classes can be told apart ----------------------------------------------------------


def _features(data: SyntheticOCT) -> npt.NDArray[np.float64]:
    """32x32 thumbnails and their absolute vertical and horizontal gradients."""
    rows = []
    for index in range(len(data)):
        thumb = data.image(index).resize((32, 32), Image.Resampling.BILINEAR)
        pixels = np.asarray(thumb, dtype=np.float64) / 255
        rows.append(
            np.concatenate(
                [
                    pixels.ravel(),
                    np.abs(np.diff(pixels, axis=0)).ravel(),
                    np.abs(np.diff(pixels, axis=1)).ravel(),
                ]
            )
        )
    return np.stack(rows)


def test_a_linear_classifier_on_thumbnails_beats_chance() -> None:
    # A ridge-regression classifier on pixel features, fitted on one seed and scored on the
    # images of another: guards that the classes differ in what they show, not just in noise.
    # A small CNN at 112 px separates them almost perfectly; a linear model on 32x32 thumbnails
    # of randomly placed retinas is a much weaker, but fast, check (it scores about 0.8).
    train, held_out = SyntheticOCT(80, shape=SMALL, seed=0), SyntheticOCT(25, shape=SMALL, seed=1)
    x_train, x_test = _features(train), _features(held_out)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    targets = np.eye(4)[train.targets] - 0.25
    # Dual form: solve an (n, n) system rather than a (features, features) one.
    gram = x_train @ x_train.T
    alpha = np.linalg.solve(gram + 1000.0 * np.eye(len(gram)), targets)
    predicted = (x_test @ x_train.T @ alpha).argmax(axis=1)
    accuracy = np.mean(predicted == np.array(held_out.targets))
    assert accuracy > 0.6  # chance is 0.25


def test_the_0_1_name_size_still_works_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"SyntheticOCT\(size=\.\.\.\) is deprecated"):
        data = SyntheticOCT(1, size=SMALL)
    assert data.shape == SMALL
    with pytest.warns(DeprecationWarning, match=r"SyntheticOCT.size is deprecated"):
        assert data.size == SMALL
    with pytest.warns(DeprecationWarning, match=r"render_bscan\(size=\.\.\.\)"):
        image, _ = render_bscan("CNV", np.random.default_rng(0), size=(40, 48))
    assert image.shape == (40, 48)
    with pytest.raises(TypeError, match="got both size= and shape="):
        SyntheticOCT(1, size=SMALL, shape=(40, 40))


@pytest.mark.parametrize("shape", [(10**6, 10**6), (4097, 64), (64, 4097)])
def test_a_shape_too_large_to_render_is_refused_up_front(shape: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=r"shape must have each side at most 4096 pixels, got"):
        SyntheticOCT(1, shape=shape)
    with pytest.raises(ValueError, match=r"shape must have each side at most 4096 pixels"):
        make_synthetic_kermany("never-written", shape=shape)


def test_the_largest_shape_is_accepted() -> None:
    assert SyntheticOCT(1, shape=(4096, 32)).shape == (4096, 32)


@pytest.mark.parametrize("inside", [False, True])
def test_a_root_that_is_a_file_is_refused_naming_it(tmp_path: Path, inside: bool) -> None:
    afile = tmp_path / "afile.txt"
    afile.write_text("notes")
    root = afile / "oct" if inside else afile
    where = rf"is inside '{re.escape(str(afile))}', which is" if inside else "is"
    message = rf"make_synthetic_kermany root '{re.escape(str(root))}' {where} a file, not a folder"
    with pytest.raises(ValueError, match=message):
        make_synthetic_kermany(root, train=1, val=1, test=1, shape=SMALL)
    with pytest.raises(ValueError, match=r"SyntheticOCT\.write root .* a file, not a folder"):
        SyntheticOCT(1, shape=SMALL).write(root)
    assert afile.read_text() == "notes"


def test_an_empty_root_or_one_that_is_not_a_path_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"root is an empty path, which would mean the current"):
        make_synthetic_kermany("", train=1, val=1, test=1, shape=SMALL)
    with pytest.raises(TypeError, match=r"root must be a folder path \(str or path\), got None$"):
        SyntheticOCT(1, shape=SMALL).write(None)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and EFBIG as on Linux")
def test_a_full_disk_stops_the_writer_and_leaves_no_cut_scan(tmp_path: Path) -> None:
    # PIL let a refused write through: 800 scans of 1500 bytes each, "written", that failed
    # only when training read them
    from _file_limits import file_size_limit

    data = SyntheticOCT(num_per_class=2, shape=(128, 128), seed=0)
    refused = r"(?i)\.jpeg'?: file too large"
    with pytest.raises(OSError, match=refused) as raised, file_size_limit(1500):
        data.write(tmp_path, "train")
    assert raised.value.errno == errno.EFBIG
    assert len(str(raised.value).splitlines()) == 1
    for path in tmp_path.rglob("*"):
        if path.is_file():  # what was written is whole, and no temporary file is left
            assert path.suffix == ".jpeg"
            with Image.open(path) as image:
                image.load()
    with pytest.raises(OSError, match=r"(?i)file too large"), file_size_limit(1500):
        make_synthetic_kermany(tmp_path / "kermany", train=1, val=1, test=1, shape=(128, 128))
