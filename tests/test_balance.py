"""Class imbalance: retinalnet.training._balance and ClassificationTask(balance=...)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.models import small_cnn
from retinalnet.training import (
    ClassificationTask,
    Trainer,
    balanced_sampler,
    class_counts,
    class_weights,
)
from retinalnet.transforms import Preprocessing

KAGGLE_TRAIN = {"CNV": 37_205, "DME": 11_348, "DRUSEN": 8_616, "NORMAL": 26_315}


def test_class_counts() -> None:
    assert class_counts([0, 0, 1, 3]) == [2, 1, 0, 1]
    assert class_counts([1], num_classes=4) == [0, 1, 0, 0]


def test_class_weights_with_the_kaggle_counts() -> None:
    targets = [i for i, n in enumerate(KAGGLE_TRAIN.values()) for _ in range(n)]
    weights = class_weights(targets)
    assert weights.dtype == torch.float32
    assert weights.tolist() == pytest.approx([0.5610, 1.8392, 2.4224, 0.7931], abs=1e-4)
    # every class contributes the same total weight
    per_class = [w * n for w, n in zip(weights.tolist(), KAGGLE_TRAIN.values(), strict=True)]
    assert max(per_class) == pytest.approx(min(per_class))


def test_class_weights_work_as_nllloss_weights_and_skip_empty_classes() -> None:
    weights = class_weights([0, 0, 0, 1], num_classes=3)
    assert weights.tolist() == pytest.approx([2 / 3, 2.0, 0.0])
    loss = nn.NLLLoss(weight=weights)(torch.log_softmax(torch.zeros(2, 3), 1), torch.tensor([0, 1]))
    assert torch.isfinite(loss)


@pytest.mark.parametrize(
    ("targets", "num_classes", "message"),
    [
        ([], None, "targets is empty"),
        ([0, -1], None, "class indices >= 0, got -1"),
        ([0, 4], 4, "target 4 is out of range for num_classes=4"),
    ],
)
def test_bad_targets(targets: list[int], num_classes: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        class_weights(targets, num_classes)


def test_balanced_sampler_draws_classes_equally_and_is_seeded() -> None:
    targets = [0] * 900 + [1] * 100
    sampler = balanced_sampler(targets, seed=0)
    drawn = list(sampler)
    assert len(drawn) == 1000
    counts = Counter(targets[i] for i in drawn)
    assert abs(counts[0] - counts[1]) < 150
    assert list(balanced_sampler(targets, seed=0)) == drawn
    assert len(balanced_sampler(targets, num_samples=10)) == 10
    with pytest.raises(ValueError, match="num_samples must be a positive int or None, got 0"):
        balanced_sampler(targets, num_samples=0)


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("balance") / "data"
    counts = {"CNV": 6, "DME": 2, "DRUSEN": 1, "NORMAL": 3}
    return make_synthetic_kermany(root, train=counts, val=1, test=1, shape=(48, 48), seed=1)


@pytest.mark.parametrize("balance", ["weights", "sampler", None])
def test_trainer_balance_options_train(imbalanced: Path, balance: str | None) -> None:
    model = small_cnn(preprocessing=Preprocessing(size=32))
    task = ClassificationTask(balance=balance)
    trainer = Trainer(model, task, max_epochs=1, batch_size=4, seed=0, progress=False, device="cpu")
    history = trainer.fit(KermanyOCT(imbalanced, "train"), KermanyOCT(imbalanced, "val"))
    assert len(history) == 1
    if balance == "weights":
        weight = task.criterion.weight
        assert weight.tolist() == pytest.approx(
            class_weights([0] * 6 + [1] * 2 + [2] + [3] * 3).tolist()
        )
        assert task.loss.weight is None  # validation loss stays unweighted


def test_balance_is_checked_at_construction() -> None:
    with pytest.raises(
        ValueError, match=r"balance must be None or one of 'weights', 'sampler', got 'x'"
    ):
        ClassificationTask(balance="x")
    with pytest.raises(ValueError, match="with your own loss, pass weight="):
        ClassificationTask(balance="weights", loss=nn.NLLLoss())


def test_trainer_balance_needs_targets(imbalanced: Path) -> None:
    model = small_cnn(preprocessing=Preprocessing(size=32))
    data = KermanyOCT(imbalanced, "train", transform=Preprocessing(size=32).eval_transform())
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    trainer = Trainer(model, ClassificationTask(balance="sampler"), progress=False, device="cpu")
    with pytest.raises(TypeError, match="needs a data set with a `targets` attribute"):
        trainer.fit(loader)


def test_balance_reads_targets_from_a_tensor_dataset() -> None:
    model = small_cnn(preprocessing=Preprocessing(size=32))
    data = torch.utils.data.TensorDataset(
        torch.randn(6, 3, 32, 32), torch.tensor([0, 0, 0, 0, 1, 2])
    )
    task = ClassificationTask(balance="sampler")
    trainer = Trainer(model, task, max_epochs=1, batch_size=3, progress=False, device="cpu")
    assert len(trainer.fit(data)) == 1
