"""make_loader and BatchedTensorDataset: batches read in one call, in the sampler's order."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from _training_helpers import tiny_cnn
from retinalnet._core.loaders import BatchedTensorDataset, make_loader
from retinalnet.predictor import Predictor


def _tensors() -> tuple[torch.Tensor, torch.Tensor]:
    features = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    return features, torch.arange(10) % 3


def test_batched_tensor_dataset_gives_the_batches_of_a_tensor_dataset() -> None:
    features, targets = _tensors()
    plain = DataLoader(
        TensorDataset(features, targets),
        batch_size=4,
        shuffle=True,
        generator=torch.Generator().manual_seed(3),
    )
    batched = make_loader(
        BatchedTensorDataset(features, targets),
        batch_size=4,
        shuffle=True,
        transform=None,
        generator=torch.Generator().manual_seed(3),
    )
    got = list(batched)
    expected = list(plain)
    assert [len(t) for _, t in got] == [4, 4, 2]
    for (x, y), (x_ref, y_ref) in zip(got, expected, strict=True):
        assert torch.equal(x, x_ref)
        assert torch.equal(y, y_ref)


def test_batched_tensor_dataset_reads_each_batch_in_one_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = BatchedTensorDataset(*_tensors())
    calls: list[list[int]] = []
    read_batch = BatchedTensorDataset.__getitems__

    def counting(self: BatchedTensorDataset, indices: list[int]) -> tuple[torch.Tensor, ...]:
        calls.append(list(indices))
        return read_batch(self, indices)

    monkeypatch.setattr(BatchedTensorDataset, "__getitems__", counting)
    batches = list(make_loader(data, batch_size=4, shuffle=False, transform=None))
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert torch.equal(batches[2][0], data.tensors[0][8:])


def test_single_rows_still_read_as_in_a_tensor_dataset() -> None:
    features, targets = _tensors()
    row, target = BatchedTensorDataset(features, targets)[7]
    assert torch.equal(row, features[7])
    assert int(target) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tensors_on_the_gpu_load_without_workers_or_pinning() -> None:
    data = BatchedTensorDataset(*(t.cuda() for t in _tensors()))
    loader = make_loader(
        data, batch_size=4, shuffle=True, transform=None, num_workers=4, pin_memory=True
    )
    assert loader.num_workers == 0
    assert not loader.pin_memory
    inputs, targets = next(iter(loader))
    assert inputs.is_cuda
    assert targets.is_cuda


def test_tensors_in_host_memory_load_without_workers_whatever_num_workers_says() -> None:
    # starting worker processes for rows already in memory only costs (issue 14)
    loader = make_loader(
        BatchedTensorDataset(*_tensors()), batch_size=4, shuffle=True, transform=None,
        num_workers=3,
    )  # fmt: skip
    assert loader.num_workers == 0
    assert not loader.persistent_workers
    assert [len(t) for _, t in loader] == [4, 4, 2]


def test_a_small_scan_is_warned_about_once_per_read(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.fromarray(np.full((20, 100), 128, np.uint8)).save(path)
    predictor = Predictor(tiny_cnn(), device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor.topk([path])
    small = [w for w in caught if "smaller than the smallest model input" in str(w.message)]
    assert len(small) == 1


# --- loader settings: one check for every door -----------------------------------------------


def _doors(batch_size: object, num_workers: object) -> dict[str, object]:
    """Every public way a batch size and a worker count reach a DataLoader."""
    from retinalnet.predictor import Predictor
    from retinalnet.training import Trainer, calibrate, evaluate

    model = tiny_cnn()
    data = [torch.zeros(3, 32, 32)]

    def outcome(call: object) -> object:
        try:
            return call()  # type: ignore[operator]
        except ValueError as error:
            return str(error)

    kwargs = {"batch_size": batch_size, "num_workers": num_workers}
    return {
        "Predictor": outcome(lambda: Predictor(model, device="cpu", **kwargs)),  # type: ignore[arg-type]
        "Trainer": outcome(lambda: Trainer(model, device="cpu", **kwargs)),  # type: ignore[arg-type]
        "evaluate": outcome(lambda: evaluate(model, data, device="cpu", **kwargs)),  # type: ignore[arg-type]
        "calibrate": outcome(lambda: calibrate(model, data, device="cpu", **kwargs)),  # type: ignore[arg-type]
    }


@pytest.mark.parametrize(
    ("batch_size", "num_workers", "message"),
    [
        (0, None, "batch_size must be an int >= 1, got 0"),
        (2.5, None, "batch_size must be an int >= 1, got 2.5"),
        (True, None, "batch_size must be an int >= 1, got True"),
        (4, -1, "num_workers must be None or an int from 0 to"),
        (4, 1.5, "num_workers must be None or an int from 0 to"),
        # 1000 worker processes on 2 cores were still starting after two minutes
        (4, 100_000, "num_workers must be None or an int from 0 to"),
    ],
)
def test_a_bad_batch_size_or_worker_count_is_refused_by_name_at_every_door(
    batch_size: object, num_workers: object, message: str
) -> None:
    # was: torch's sampler or DataLoader error, and a Predictor that took num_workers=-1
    # without a word until its first prediction
    outcomes = _doors(batch_size, num_workers)
    assert all(
        isinstance(found, str) and found.startswith(message) for found in outcomes.values()
    ), outcomes


def test_numpy_integers_are_counts_at_every_door(tmp_path: Path) -> None:
    # np.int64 (from a config read with NumPy, a grid search) was refused as "not an int"
    from retinalnet.models import create_model, small_cnn
    from retinalnet.plots import plot_confusion_matrix
    from retinalnet.predictor import Predictor
    from retinalnet.training import Trainer
    from retinalnet.volume import summarise_volume

    pytest.importorskip("matplotlib")
    four = np.int64(4)
    predictor = Predictor(tiny_cnn(), device="cpu", batch_size=four, num_workers=np.int64(0))
    assert (predictor.batch_size, type(predictor.batch_size)) == (4, int)
    assert len(predictor.topk(torch.zeros(3, 32, 32), k=np.int64(2)).top) == 2
    trainer = Trainer(tiny_cnn(), device="cpu", max_epochs=np.int64(2), batch_size=four)
    assert (type(trainer.max_epochs), type(trainer.batch_size)) == (int, int)
    assert small_cnn(num_classes=np.int64(2)).classes == ("class_0", "class_1")
    assert create_model("small_cnn", weights=None, classes={"CNV": 0, "NORMAL": 1}.keys())
    assert summarise_volume([(0.9, 0.1)], ("CNV", "NORMAL"), min_scans=np.int64(1)).label == "CNV"
    plot_confusion_matrix(
        np.eye(2, dtype=np.int64), ["CNV", "NORMAL"], dpi=np.float32(50), save=tmp_path / "m.png"
    )
    assert (tmp_path / "m.png").is_file()


def test_numpy_integers_are_counts_in_the_recipes_callbacks_and_checks(tmp_path: Path) -> None:
    # the older checks took Python ints only: FineTune(epochs=np.int64(3)) was "not an int";
    # each keeps a Python int (a NumPy one would reach a checkpoint's options)
    from retinalnet.datasets import audit, make_synthetic_kermany
    from retinalnet.models import small_cnn
    from retinalnet.training import (
        EarlyStopping,
        FeatureCacheConfig,
        FineTune,
        balanced_sampler,
        discriminative_param_groups,
    )
    from retinalnet.training._history import EpochRecord

    two = np.int64(2)
    recipe = FineTune(
        blocks=two, epochs=np.int64(3), probe_epochs=two, probe_views=two, patience=two
    )
    counts = (
        recipe.blocks,
        recipe.epochs,
        recipe.probe_epochs,
        recipe.probe_views,
        recipe.patience,
    )
    assert counts == (2, 3, 2, 2, 2)
    assert {type(count) for count in counts} == {int}
    assert type(FeatureCacheConfig(views=two).views) is int
    assert type(EarlyStopping(patience=two).patience) is int
    assert len(list(balanced_sampler([0, 1, 1], num_samples=np.int64(5), seed=0))) == 5
    groups = discriminative_param_groups(
        small_cnn(num_classes=2), np.int64(1), lr=1e-4, head_lr=1e-3
    )
    assert {group["name"] for group in groups} == {"head", "block -1"}
    values = dict.fromkeys(["train_loss", "train_accuracy", "seconds", "lr"], 0.5)
    record = EpochRecord.from_dict(
        {**values, "epoch": np.int64(1), "val_loss": None, "val_accuracy": None}
    )
    assert type(record.epoch) is int
    root = make_synthetic_kermany(tmp_path / "data", train=1, val=0, test=0, shape=(32, 32))
    report = audit(root, min_side=np.int64(8), max_side=np.int64(64))
    assert sum(report.counts["train"].values()) == 4


def test_numpy_floats_are_numbers_at_every_door(tmp_path: Path) -> None:
    # np.float32 (a grid search over np.linspace, a config read with NumPy) was refused as
    # "must be a finite number" by FineTune, the task, lr_find, the volume rule, the
    # temperatures, the head's dropout and audit; each keeps a Python float
    from retinalnet.datasets import audit, make_synthetic_kermany
    from retinalnet.engine import InferenceEngine
    from retinalnet.models import build_head, small_cnn
    from retinalnet.training import ClassificationTask, FineTune, discriminative_param_groups
    from retinalnet.volume import summarise_volume

    half = np.float32(0.5)
    recipe = FineTune(
        lr=np.float32(2e-4), head_lr=np.float64(1e-3), lr_decay=half, warmup_epochs=np.float32(1)
    )
    floats = (recipe.lr, recipe.head_lr, recipe.lr_decay, recipe.warmup_epochs)
    assert {type(value) for value in floats} == {float}
    task = ClassificationTask(lr=np.float32(1e-3), weight_decay=np.float32(0))
    assert (type(task.lr), type(task.weight_decay)) == (float, float)
    model = small_cnn(num_classes=2)
    groups = discriminative_param_groups(model, 1, lr=np.float32(1e-4), head_lr=half)
    assert {type(group["lr"]) for group in groups} == {float}
    model.temperature = np.float32(1.5)
    assert type(model.temperature) is float
    engine = InferenceEngine(model, device="cpu")
    engine.temperature = half
    assert type(engine.temperature) is float
    assert isinstance(build_head(8, 2, dropout=half)[2], torch.nn.Dropout)
    assert summarise_volume([(0.9, 0.1)], ("CNV", "NORMAL"), threshold=half).label == "CNV"
    root = make_synthetic_kermany(tmp_path / "data", train=1, val=0, test=0, shape=(32, 32))
    assert sum(audit(root, max_aspect=np.float32(4)).counts["train"].values()) == 4


def test_numpy_numbers_at_the_model_and_image_doors_too(tmp_path: Path) -> None:
    # four more doors refused np.int64 / np.float32: freeze, create_model's trainable
    # blocks, load_image's target size and a checkpoint's temperature
    from retinalnet.checkpoint import load_checkpoint, save_checkpoint, set_checkpoint_temperature
    from retinalnet.datasets import load_image
    from retinalnet.models import create_model, freeze, small_cnn

    model = small_cnn(num_classes=2)
    freeze(model, trainable_blocks=np.int64(1))
    assert create_model("small_cnn", weights=None, freeze=True, trainable_blocks=np.int64(1))
    Image.new("L", (80, 60), 90).save(tmp_path / "scan.png")
    assert load_image(tmp_path / "scan.png", target_size=np.int64(40)).size == (80, 60)
    path = save_checkpoint(tmp_path / "model.pt", model)
    set_checkpoint_temperature(path, np.float32(1.5))
    assert load_checkpoint(path).build_model().temperature == 1.5


# -- a model's data: one path from image to model input ----------------------------------


class _Samples(torch.utils.data.Dataset[tuple[object, object]]):
    """A data set of the samples given, as they are."""

    def __init__(self, samples: list[tuple[object, object]]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[object, object]:
        return self.samples[index]


def _model_loader(data: object) -> DataLoader[object]:
    transform = tiny_cnn(size=32).preprocessing.eval_transform()
    return make_loader(data, batch_size=2, shuffle=False, transform=transform)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("image", "target", "error", "match"),
    [
        (
            torch.zeros(40, 48, dtype=torch.uint8),
            0,
            ValueError,
            r"image of sample 0 of _Samples is a uint8 tensor \(40, 48\), an image; model "
            r"inputs are float tensors \(3, 32, 32\).*eval_transform\(\)",
        ),
        (
            torch.rand(3, 40, 48),
            0,
            ValueError,
            r"float32 tensor \(3, 40, 48\); model inputs are float tensors \(3, 32, 32\)",
        ),
        (
            torch.zeros(1, 32, 32),
            0,
            ValueError,
            r"float32 tensor \(1, 32, 32\); model inputs are float tensors \(3, 32, 32\)",
        ),
        (np.zeros((40, 48), np.uint8), 0, TypeError, r"NumPy array \(40, 48\) uint8.*PIL"),
        (Image.new("L", (40, 48)), "CNV", TypeError, r"target 'CNV'; targets must be class"),
        ({"image": 1}, 0, TypeError, r"is a dict; expected a PIL image, a file path or a"),
    ],
)
def test_a_models_data_of_unprepared_images_is_refused_in_one_line(
    image: object, target: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        _model_loader(_Samples([(image, target)] * 2))


def test_a_models_loader_of_unprepared_images_is_refused_too() -> None:
    loader = DataLoader(TensorDataset(torch.rand(2, 3, 40, 48), torch.tensor([0, 1])))
    with pytest.raises(ValueError, match=r"a DataLoader is used as it is: yield PIL images"):
        _model_loader(loader)


def test_prepared_inputs_with_no_negative_value_are_warned_about_once() -> None:
    data = TensorDataset(torch.rand(4, 3, 32, 32), torch.arange(4))
    with pytest.warns(UserWarning, match=r"holds no negative value.*not normalised") as caught:
        loader = _model_loader(data)
    assert len(caught) == 1
    assert len(list(loader)) == 2


@pytest.mark.parametrize(
    "inputs",
    [
        torch.randn(4, 3, 32, 32),  # normalised model inputs
        torch.randn(4, 8),  # features (a head's inputs)
        torch.randn(4, 1, 2, 2),  # logits shaped by hand: no image has sides of 2 pixels
    ],
)
def test_prepared_inputs_and_features_pass_as_they_are(inputs: torch.Tensor) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batches = list(_model_loader(TensorDataset(inputs, torch.arange(4))))
    assert torch.equal(torch.cat([batch[0] for batch in batches]), inputs)


def test_file_paths_are_read_and_prepared_as_the_model_prepares_them(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    Image.fromarray(np.arange(48 * 40, dtype=np.uint8).reshape(40, 48)).save(path)
    preprocessing = tiny_cnn(size=32).preprocessing

    (inputs, targets), *_ = list(_model_loader(_Samples([(str(path), 2), (path, 3)])))

    expected = preprocessing.prepare(path)
    assert torch.equal(inputs[0], expected)
    assert torch.equal(inputs[1], expected)
    assert targets.tolist() == [2, 3]


def _fit(data: TensorDataset) -> object:
    from retinalnet.training import Trainer

    trainer = Trainer(tiny_cnn(size=32), max_epochs=1, batch_size=2, device="cpu", progress=False)
    return trainer.fit(data)


def _evaluate(data: TensorDataset) -> object:
    from retinalnet.training import evaluate

    return evaluate(tiny_cnn(size=32), data, device="cpu", precision="fp32")


def _lr_find(data: TensorDataset) -> object:
    from retinalnet.training import Trainer

    trainer = Trainer(tiny_cnn(size=32), batch_size=2, device="cpu", progress=False)
    return trainer.lr_find(data, num_steps=8)


def _engine_loader(data: TensorDataset) -> object:
    from retinalnet.engine import InferenceEngine

    return InferenceEngine(tiny_cnn(size=32), device="cpu").loader(data)


@pytest.mark.parametrize("door", [_fit, _evaluate, _lr_find, _engine_loader])
def test_every_door_of_a_models_data_refuses_unprepared_image_tensors(
    door: Callable[[TensorDataset], object],
) -> None:
    images = torch.rand(4, 3, 40, 48)  # crops in [0, 1], never resized nor normalised
    with pytest.raises(ValueError, match=r"model inputs are float tensors \(3, 32, 32\)"):
        door(TensorDataset(images, torch.tensor([0, 1, 2, 3])))


class _Arrays(torch.utils.data.Dataset[tuple[object, int]]):
    """Channels-last NumPy images, as a data set reading them with imageio yields them."""

    def __init__(self, dtype: type) -> None:
        self.dtype = dtype

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[object, int]:
        return np.zeros((40, 48, 3), self.dtype), index % 4


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("door", [_fit, _evaluate, _lr_find, _engine_loader])
def test_a_data_set_of_channels_last_arrays_is_told_to_yield_pil_images(
    door: Callable[[TensorDataset], object], dtype: type
) -> None:
    # (40, 48, 3): its smallest side, 3, read it as no image, and the network's first
    # convolution was blamed ("give the network a 3-channel first convolution")
    with pytest.raises(TypeError, match=r"NumPy array \(40, 48, 3\).*Image\.fromarray"):
        door(_Arrays(dtype))  # type: ignore[arg-type]


def _stacked(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """A collate_fn of a user's own: make_loader cannot check its samples."""
    return torch.stack([x for x, _ in samples]), torch.stack([y for _, y in samples])


def _own_collate(images: torch.Tensor) -> DataLoader[object]:
    data = TensorDataset(images, torch.arange(len(images)) % 4)
    return DataLoader(data, batch_size=2, collate_fn=_stacked)


@pytest.mark.parametrize("door", [_fit, _evaluate, _lr_find])
@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.zeros(4, 3, 32, 32, dtype=torch.uint8), r"inputs are a uint8 tensor \(2, 3, 32"),
        (torch.randn(4, 32, 32, 3), r"float32 tensor \(2, 32, 32, 3\), images with their ch"),
    ],
    ids=["uint8", "channels last"],
)
def test_a_loader_with_its_own_collate_fn_has_its_first_batch_checked_at_every_door(
    door: Callable[[object], object], images: torch.Tensor, match: str
) -> None:
    # fit and lr_find ended in torch's "expected scalar type Byte but found Float"
    with pytest.raises(ValueError, match=match):
        door(_own_collate(images))


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.rand(4, 3, 32, 32), r"the batch holds no negative value.*not normalised"),
        (torch.randn(4, 3, 48, 48), r"inputs of 48 x 48 pixels are not the model's prepared"),
    ],
    ids=["unnormalised", "48 px"],
)
def test_a_loader_with_its_own_collate_fn_is_warned_of_as_grad_cam_warns(
    images: torch.Tensor, match: str
) -> None:
    from retinalnet.gradcam import grad_cam

    with pytest.warns(UserWarning, match=match):
        _evaluate(_own_collate(images))  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match=match):
        grad_cam(tiny_cnn(size=32), images)


@pytest.mark.parametrize(
    "inputs",
    [
        torch.randn(4, 3, 40, 48),  # prepared by the user's own pipeline, at another size
        torch.rand(4, 8, 10, 10) * 3,  # feature maps cached by the user (after a ReLU)
    ],
    ids=["another size", "feature maps"],
)
def test_float_inputs_of_another_shape_are_warned_of_and_given_to_the_network(
    inputs: torch.Tensor,
) -> None:
    # they were refused ("yield PIL images or file paths"), which threw away the user's
    # cache; they were accepted when the data set had an attribute named `transform`
    data = TensorDataset(inputs, torch.tensor([0, 1, 2, 3]))
    preprocessing = tiny_cnn(size=32).preprocessing
    with pytest.warns(UserWarning, match=r"not the model's prepared inputs \(3, 32, 32\): it is"):
        loader = make_loader(
            data,
            batch_size=2,
            shuffle=False,
            transform=preprocessing.eval_transform(),
        )
    assert torch.equal(next(iter(loader))[0], inputs[:2])


def test_normalised_inputs_above_1_are_not_taken_for_images_never_normalised() -> None:
    # a bright scan, normalised, has no negative value but lies above 1: it was warned of
    # as "an image that was not normalised"
    data = TensorDataset(torch.rand(4, 3, 32, 32) + 1.5, torch.tensor([0, 1, 2, 3]))
    transform = tiny_cnn(size=32).preprocessing.eval_transform()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_loader(data, batch_size=2, shuffle=False, transform=transform)
    with pytest.warns(UserWarning, match="no negative value"):
        make_loader(
            TensorDataset(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])),
            batch_size=2,
            shuffle=False,
            transform=transform,
        )


@pytest.mark.parametrize("workers", [0, 1])
def test_a_loader_in_order_leaves_the_global_random_generator_as_it_was(workers: int) -> None:
    # inference drew its workers' base seed from torch's global generator: a seeded host
    # program drew other numbers after a prediction than without it
    data = TensorDataset(torch.arange(8.0)[:, None], torch.arange(8) % 4)
    loader = make_loader(data, batch_size=4, shuffle=False, transform=None, num_workers=workers)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    batches = [inputs for inputs, _ in loader]
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(torch.cat(batches), data.tensors[0])  # in order, as before


def test_a_shuffling_loader_shuffles_with_the_global_generator_as_a_dataloader_does() -> None:
    data = TensorDataset(torch.arange(16.0)[:, None], torch.arange(16) % 4)
    orders = []
    for loader in (
        make_loader(data, batch_size=4, shuffle=True, transform=None),
        DataLoader(data, batch_size=4, shuffle=True),
    ):
        torch.manual_seed(5)
        orders.append(torch.cat([inputs for inputs, _ in loader]))
    assert torch.equal(orders[0], orders[1])


def test_the_readability_check_of_a_skipping_data_set_leaves_the_global_generator(
    tmp_path: Path,
) -> None:
    """Evaluating a data set with ``on_error="skip"`` reads each file once with workers
    first: that pass drew its workers' seed from torch's global generator."""
    from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
    from retinalnet.datasets._readable import readable_for_scoring

    root = make_synthetic_kermany(tmp_path / "d", train=1, val=1, test=2, shape=(40, 40))
    broken = sorted((root / "test" / "CNV").iterdir())[0]
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    data = KermanyOCT(root, "test", on_error="skip")
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept, left_out = readable_for_scoring(data, None, where="test", num_workers=2)
    assert torch.equal(torch.rand(3), expected)
    assert [path for path, _ in left_out] == [str(broken)]
    assert len(kept) == len(data) - 1


# --- data that is no data set: the argument named, and what to pass ---------------------------


@pytest.mark.parametrize("door", [_fit, _evaluate, _lr_find])
@pytest.mark.parametrize(
    ("data", "said"),
    [
        ("data/val", r"'data/val' is a path \(str\), not a data set: expected a map-style .*"
         r"read a Kermany-layout folder with KermanyOCT\('data', 'val'\)"),
        (Path("OCT2017"), rf"'OCT2017' is a path \({type(Path()).__name__}\), .*"
         r"KermanyOCT\('OCT2017', split\), split 'train', 'val' or 'test'"),
        ("split.csv", r"KermanyOCT\.from_manifest\('split\.csv', split, root=\.\.\.\)"),
        # was: "expected a map-style torch Dataset (with __len__)": a list has __len__
        ([(torch.zeros(3, 32, 32), 0)] * 4, r"\(list of 4 item\(s\)\) is not a torch Dataset: "
         r"expected .*; wrap the \(image, label\) pairs in a torch\.utils\.data\.Dataset"),
    ],
    ids=["split folder", "root folder", "manifest", "list"],
)  # fmt: skip
def test_data_that_is_no_data_set_is_told_what_to_pass_at_every_door(
    door: Callable[[object], object], data: object, said: str
) -> None:
    with pytest.raises(TypeError, match=rf"^the (data|train argument|val argument) .*{said}"):
        door(data)  # type: ignore[arg-type]


def test_the_argument_is_named_when_the_caller_says_which() -> None:
    with pytest.raises(TypeError, match=r"^the val argument 'data/val' is a path"):
        make_loader("data/val", batch_size=2, shuffle=False, transform=None, name="val")  # type: ignore[arg-type]


# --- a data set decoding otherwise than its model ---------------------------------------------


def _decoding_warnings(call: Callable[[], object]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if "another Preprocessing's load" in str(w.message)]


def test_a_data_set_read_by_another_preprocessings_load_is_warned_of_once(make_tree) -> None:  # type: ignore[no-untyped-def]
    """Was: with_loader(Preprocessing(reduced_decode=True).load) trained a full-decoding model
    on half-scale decodes that prediction never sees, without a word."""
    from retinalnet.datasets import KermanyOCT
    from retinalnet.training import Trainer, evaluate
    from retinalnet.transforms import Preprocessing

    files = {f"train/{name}": [f"{name}-1-1.jpeg"] for name in ("CNV", "DME", "DRUSEN", "NORMAL")}
    root = make_tree(files, size=(600, 560))
    model = tiny_cnn(size=32)  # reduced_decode=False
    fast = Preprocessing(size=32, reduced_decode=True)
    data = KermanyOCT(root, "train").with_loader(fast.load)
    trainer = Trainer(model, max_epochs=1, batch_size=2, device="cpu", progress=False)

    (said,) = _decoding_warnings(lambda: trainer.fit(data))
    assert said.startswith(
        "KermanyOCT reads its files with another Preprocessing's load, which decodes large "
        "JPEGs at reduced scale, towards a shorter side of 37 pixels (reduced_decode=True), "
        "while the model decodes at full size (reduced_decode=False): that loader is used as "
        "given"
    )
    assert "Preprocessing(reduced_decode=True) (retinalnet train --reduced-decode)" in said
    assert _decoding_warnings(lambda: evaluate(model, data, device="cpu")) == []  # once
    other = KermanyOCT(root, "train").with_loader(fast.load)
    assert len(_decoding_warnings(lambda: evaluate(model, other, device="cpu"))) == 1

    same = KermanyOCT(root, "train")
    for loader in (model.preprocessing.load, Preprocessing(size=32).load, load_image_as_is):
        fit = lambda loader=loader: trainer.fit(same.with_loader(loader))  # noqa: E731
        assert _decoding_warnings(fit) == []


def load_image_as_is(path: str) -> Image.Image:
    """A loader of the user's own: used as given, without a word."""
    from retinalnet.datasets import load_image

    return load_image(path)
