"""Small models, data and callbacks shared by the training, checkpoint and predictor tests.

Everything here is tiny on purpose: a linear classifier on 8 features, or ``small_cnn`` at
32 px with a handful of channels, so each test runs in milliseconds on a CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional
from torch.utils.data import TensorDataset

from retinalnet.datasets import SyntheticOCT
from retinalnet.models import Classifier, small_cnn
from retinalnet.training import (
    Callback,
    ClassificationTask,
    EarlyStopping,
    History,
    Trainer,
    _trainer,
)
from retinalnet.transforms import Preprocessing

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
FEATURES = 8


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block, then restore the thread count.

    The models here are tiny: one thread is as fast as two, and it does not collapse when
    other processes keep the cores busy (two spinning OpenMP threads on a loaded 2-core
    machine made a 3 s fit take over 100 s).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def linear_classifier(
    *, seed: int = 0, classes: Iterable[str] = CLASSES, features: int = FEATURES
) -> Classifier:
    """``Flatten - Linear - LogSoftmax`` wrapped in a Classifier (no arch: built by hand)."""
    names = tuple(classes)
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Flatten(), nn.Linear(features, len(names)), nn.LogSoftmax(dim=1))
    return Classifier(network, classes=names)


def tiny_cnn(*, seed: int = 0, width: int = 4, size: int = 32) -> Classifier:
    """``small_cnn`` with a few channels at 32 px: BatchNorm, dropout and an arch config."""
    torch.manual_seed(seed)
    return small_cnn(width=width, hidden=8, preprocessing=Preprocessing(size=size))


def frozen_small_cnn(size: int = 32) -> Classifier:
    """``small_cnn`` with its features frozen (so the feature cache applies), seeded."""
    from retinalnet.models import create_model

    torch.manual_seed(0)
    return create_model(
        "small_cnn", weights=None, freeze=True, preprocessing=Preprocessing(size=size)
    )


def separable_data(n: int = 32, *, seed: int = 0, features: int = FEATURES) -> TensorDataset:
    """Features whose largest value among the first four is the class: linearly separable."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, features, generator=generator)
    targets = inputs[:, : len(CLASSES)].argmax(dim=1)
    return TensorDataset(inputs, targets)


def quiet_trainer(
    model: nn.Module, task: ClassificationTask | None = None, **kwargs: Any
) -> Trainer:
    """A CPU Trainer that logs no epoch lines at INFO."""
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("progress", False)
    return Trainer(model, task, **kwargs)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's state dict."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def same_state(first: Mapping[str, torch.Tensor], second: Mapping[str, torch.Tensor]) -> bool:
    """Whether two state dicts have the same keys and exactly equal tensors."""
    return first.keys() == second.keys() and all(
        torch.equal(first[name], second[name]) for name in first
    )


class ScriptedValidationLoss(nn.Module):
    """NLL loss for training; in validation (inference mode) it returns scripted values.

    The Trainer evaluates its loss once per validation batch, under ``torch.inference_mode``.
    With a validation set that fits in one batch, the n-th validation of a fit reports
    ``val_losses[n]`` as ``val_loss``, so tests can decide which epoch is best.
    """

    def __init__(self, val_losses: Iterable[float]) -> None:
        super().__init__()
        self._values = iter(list(val_losses))

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if torch.is_inference_mode_enabled():
            return torch.tensor(next(self._values), dtype=torch.float64)
        return functional.nll_loss(outputs, targets)


class Recorder(Callback):
    """Records every hook call, and a copy of the weights at the end of each epoch."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_fit_start(self, trainer: Trainer) -> None:
        self.calls.append(("fit_start",))

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.calls.append(("epoch_start", epoch))

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        self.calls.append(("epoch_end", epoch, tuple(sorted(metrics))))
        self.weights[epoch] = snapshot(trainer.model)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.calls.append(("fit_end",))

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        self.calls.append(("exception", type(exception).__name__))


class InterruptAt(Callback):
    """Raises ``KeyboardInterrupt`` when epoch ``epoch`` starts, as Ctrl-C would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


SYNTHETIC_SIZE = (128, 128)


class StopAfter(Callback):
    """Asks the trainer to stop after epoch ``epoch`` (``reason``: its stop reason, if any)."""

    def __init__(self, epoch: int, reason: str | None = None) -> None:
        self.epoch = epoch
        self.reason = reason

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        if epoch == self.epoch:
            trainer.should_stop = True
            if self.reason is not None:
                trainer.stop_reason = self.reason


def trained_small_cnn(seed: int = 0) -> tuple[Classifier, History]:
    """``small_cnn`` at 64 px fitted 20 epochs on 48 synthetic scans (val: 16), best restored.

    About 3 s on one thread; shared by the learning and the Grad-CAM pointing-game tests.
    """
    torch.manual_seed(seed)
    model = small_cnn(preprocessing=Preprocessing(size=64))
    trainer = Trainer(
        model,
        ClassificationTask(lr=1e-3),
        batch_size=4,
        max_epochs=20,
        seed=seed,
        device="cpu",
        progress=False,
        callbacks=[EarlyStopping(patience=20)],
    )
    history = trainer.fit(
        SyntheticOCT(12, shape=SYNTHETIC_SIZE, seed=0),
        SyntheticOCT(4, shape=SYNTHETIC_SIZE, seed=1),
    )
    return model, history


class BuildSpy:
    """Stands in for ``build_feature_cache`` in the Trainer: counts the builds, and either
    builds (``refuse=False``) or raises, as a build that must not happen."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, refuse: bool = False) -> None:
        self.calls = 0
        self.refuse = refuse
        self._real = _trainer.build_feature_cache
        monkeypatch.setattr(_trainer, "build_feature_cache", self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.refuse:
            raise AssertionError("the feature cache was built")
        return self._real(*args, **kwargs)
