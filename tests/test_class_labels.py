"""Labels outside the model's classes, or not integers, are refused in one line naming the
image and the fix, at every door, before torch's loss sees them (it said ``IndexError:
Target 4 is out of bounds``, and on a GPU stops CUDA)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from _training_helpers import CLASSES, frozen_small_cnn, one_thread, quiet_trainer, tiny_cnn
from retinalnet._core.class_labels import class_labels
from retinalnet.cli import main
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.training import build_feature_cache, evaluate

_FIX = "check the data's targets and its target_transform"


def _images(labels: torch.Tensor) -> TensorDataset:
    """Prepared 32 px inputs with ``labels``."""
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(len(labels), 3, 32, 32, generator=generator), labels)


# ---------------------------------------------------------------------------------------------
# The check itself


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        pytest.param(
            torch.tensor([0, 3, 4, 1]),
            ValueError,
            r"^fit: image 2 has label 4, but the model has 4 classes \(labels 0 to 3\)",
            id="above",
        ),
        pytest.param(
            torch.tensor([0, -1]),
            ValueError,
            r"^fit: image 1 has label -1, but the model has 4 classes",
            id="negative",
        ),
        pytest.param(
            torch.tensor([0.0, 1.0]),
            TypeError,
            r"^fit: the labels of the data are torch.float32 \(first 0.0\), not integers",
            id="float",
        ),
        pytest.param(
            torch.tensor([True, False]), TypeError, r"are torch.bool \(first True\)", id="bool"
        ),
        pytest.param(
            torch.eye(4, dtype=torch.long)[:2],
            ValueError,
            r"have shape \(2, 4\); one class index per image",
            id="one-hot",
        ),
        pytest.param(  # was: "not integers ... target_transform=int", which fails on a row
            torch.eye(4)[:2],
            ValueError,
            r"have shape \(2, 4\); .*for one-hot or probability rows, .*row\.argmax\(\)",
            id="one-hot-float",
        ),
        pytest.param(["CNV", "DME"], TypeError, r"are list \['CNV', 'DME'\]", id="names"),
    ],
)
def test_labels_that_are_not_class_indices_are_refused_naming_the_image_and_the_fix(
    labels: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        class_labels(labels, 4, where="fit")
    assert _FIX in str(raised.value)


def test_labels_name_their_image_in_the_data_or_in_the_batch() -> None:
    with pytest.raises(ValueError, match=r"image 12 has label 4"):
        class_labels(torch.tensor([0, 4]), 4, where="x", first_row=11)
    with pytest.raises(ValueError, match=r"image 1 of batch 3 has label 4"):
        class_labels(torch.tensor([0, 4]), 4, where="x", batch=3)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.uint8, torch.int64])
def test_integer_labels_of_any_width_come_back_as_int64(dtype: torch.dtype) -> None:
    # torch's losses take only Long or Byte: int32 labels from NumPy failed there too
    labels = class_labels(torch.tensor([0, 3, 1], dtype=dtype), 4, where="x")
    assert labels.dtype == torch.int64
    assert labels.tolist() == [0, 3, 1]


# ---------------------------------------------------------------------------------------------
# Every door


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        pytest.param(
            torch.full((8,), 4),
            ValueError,
            r"^training, epoch 1: image 0 of batch 0 has label 4, but the model has 4 classes",
            id="label-4",
        ),
        pytest.param(
            torch.zeros(8),
            TypeError,
            r"^training, epoch 1: the labels of batch 0 are torch.float32",
            id="float",
        ),
    ],
)
def test_fit_refuses_labels_the_model_has_no_class_for(
    labels: torch.Tensor, error: type[Exception], message: str
) -> None:
    # was: IndexError: Target 4 is out of bounds. / RuntimeError: expected target dtype to be
    # Long or Byte, but got Float
    with one_thread(), pytest.raises(error, match=message):
        quiet_trainer(tiny_cnn(), max_epochs=1, batch_size=4).fit(_images(labels))


def test_fit_trains_on_int32_labels() -> None:
    labels = torch.tensor([0, 1, 2, 3] * 2, dtype=torch.int32)
    with one_thread():
        history = quiet_trainer(tiny_cnn(), max_epochs=1, batch_size=4).fit(_images(labels))
    assert len(history) == 1


def test_fit_of_a_network_of_its_own_checks_the_labels_against_its_outputs() -> None:
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 3))
    labels = torch.tensor([0, 1, 2, 3] * 2)  # 3 outputs: no class 3
    with one_thread(), pytest.raises(ValueError, match=r"has label 3, but the model has 3 classes"):
        quiet_trainer(network, max_epochs=1, batch_size=4).fit(_images(labels))


def test_lr_find_refuses_a_label_outside_the_classes() -> None:
    with (
        one_thread(),
        pytest.raises(ValueError, match=r"^training: image 0 of batch 0 has label 4"),
    ):
        quiet_trainer(tiny_cnn(), batch_size=4).lr_find(_images(torch.full((8,), 4)), num_steps=8)


def test_evaluate_names_the_image_in_data_order() -> None:
    labels = torch.tensor([0, 1, 2, 3, 0, -1, 2, 3])
    with pytest.raises(ValueError, match=r"^evaluate\(\): image 5 has label -1"):
        evaluate(tiny_cnn(), _images(labels), device="cpu", batch_size=4)
    with pytest.raises(ValueError, match=r"image 5 has label -1"):
        quiet_trainer(tiny_cnn(), batch_size=4).evaluate(_images(labels))


def test_a_target_transform_that_shifts_the_labels_is_refused(tmp_path: Path) -> None:
    root = make_synthetic_kermany(tmp_path / "data", train=2, val=1, test=1, shape=(40, 40))
    model = tiny_cnn()
    data = KermanyOCT(
        root,
        "train",
        transform=model.preprocessing.train_transform(),
        target_transform=lambda target: target + 1,
    )
    with one_thread(), pytest.raises(ValueError, match=r"has label 4, but the model has 4"):
        quiet_trainer(model, max_epochs=1, batch_size=4).fit(data)


# ---------------------------------------------------------------------------------------------
# The feature cache: built from such labels, or damaged on disk


def test_the_feature_cache_refuses_such_labels_before_it_is_saved(tmp_path: Path) -> None:
    root = make_synthetic_kermany(tmp_path / "data", train=2, val=1, test=1, shape=(40, 40))
    data = KermanyOCT(root, "train", target_transform=lambda target: target + 1)
    cache_dir = tmp_path / "features"
    with pytest.raises(ValueError, match=r"^the feature cache: image 6 has label 4"):
        build_feature_cache(
            frozen_small_cnn(), data, cache_dir=cache_dir, device="cpu", progress=False
        )
    assert not any(cache_dir.rglob("*.npy"))  # nothing saved that a later run would read


def test_a_disk_cache_is_not_reused_for_other_labels_of_the_same_files(tmp_path: Path) -> None:
    """The cache's key was the files and their folder labels: a later target_transform
    (3 - t, t + 10, float) was served the first run's labels, past every check."""
    root = make_synthetic_kermany(tmp_path / "data", train=2, val=1, test=1, shape=(40, 40))
    model, cache = frozen_small_cnn(), tmp_path / "cache"
    first = build_feature_cache(model, KermanyOCT(root, "train"), cache_dir=cache, device="cpu")
    flipped = KermanyOCT(root, "train", target_transform=lambda t: 3 - t)

    again = build_feature_cache(model, flipped, cache_dir=cache, device="cpu")

    assert again.targets.tolist() == [3 - t for t in first.targets.tolist()]
    shifted = KermanyOCT(root, "train", target_transform=lambda t: t + 10)
    with pytest.raises(ValueError, match=r"^the feature cache: image 0 has label 10, but the"):
        build_feature_cache(model, shifted, cache_dir=cache, device="cpu")


@pytest.mark.parametrize(
    ("damaged", "said"),
    [
        pytest.param(
            np.full(8, 9, dtype=np.int64),
            "its targets.npy holds label 9 at row 0, but the model has 4 classes",
            id="label-9",
        ),
        pytest.param(
            np.zeros(8, dtype=np.float32),
            "its targets.npy holds an array of float32 of shape (8,), not class indices",
            id="float",
        ),
    ],
)
def test_a_damaged_targets_file_is_named_and_the_cache_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damaged: np.ndarray, said: str
) -> None:
    root = make_synthetic_kermany(tmp_path / "data", train=2, val=1, test=1, shape=(40, 40))
    model, data = frozen_small_cnn(), KermanyOCT(root, "train")
    cache_dir = tmp_path / "features"

    def build() -> torch.Tensor:
        cache = build_feature_cache(model, data, cache_dir=cache_dir, device="cpu", progress=False)
        return cache.targets

    expected = build()
    (targets_file,) = cache_dir.glob("*/targets.npy")
    np.save(targets_file, damaged)
    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        assert build().tolist() == expected.tolist()  # rebuilt, not trained on label 9
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"feature cache {targets_file.parent} is damaged (")
    assert said in warning
    assert warning.endswith("; it is rebuilt")
    assert np.load(targets_file).tolist() == expected.tolist()


def test_the_cli_rebuilds_a_damaged_cache_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: `retinalnet evaluate --feature-cache DIR` ended in a 36-line traceback, IndexError:
    # Target 9 is out of bounds
    root = make_synthetic_kermany(tmp_path / "data", train=2, val=1, test=1, shape=(40, 40))
    model = frozen_small_cnn()
    from retinalnet.checkpoint import save_checkpoint

    checkpoint = save_checkpoint(tmp_path / "best.pt", model)
    cache_dir = tmp_path / "features"
    command = [
        "evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "--split", "train",
        "--feature-cache", str(cache_dir), "--device", "cpu", "--precision", "fp32",
    ]  # fmt: skip
    with one_thread():
        assert main(command) == 0
        (targets_file,) = cache_dir.glob("*/targets.npy")
        np.save(targets_file, np.full(8, 9, dtype=np.int64))
        capsys.readouterr()
        assert main(command) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    said = [line for line in err.splitlines() if "is damaged" in line]
    assert len(said) == 1
    assert "targets.npy holds label 9" in said[0]
    assert len(set(np.load(targets_file).tolist())) == len(CLASSES)


@pytest.mark.parametrize(
    ("labels", "said"),
    [
        (torch.tensor([0, 1, 2, 4, 0, 1, 2, 3]), r"^calibration: image 3 has label 4, but the"),
        # was: silently truncated to 1 by .to(int64), a temperature fitted on other labels
        (torch.tensor([0.0, 1.7, 2.0, 3.0] * 2), r"^calibration: the labels of the data are "),
    ],
)
def test_calibrate_names_a_label_that_is_not_a_class_index(labels: torch.Tensor, said: str) -> None:
    from retinalnet.training import calibrate

    with pytest.raises((ValueError, TypeError), match=said):
        calibrate(tiny_cnn(), _images(labels), device="cpu")
