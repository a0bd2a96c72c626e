"""Callbacks: EarlyStopping as tables of scripted losses, hook order, ModelCheckpoint files."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from _training_helpers import (
    Recorder,
    ScriptedValidationLoss,
    StopAfter,
    linear_classifier,
    quiet_trainer,
    same_state,
    separable_data,
    snapshot,
)
from retinalnet.checkpoint import load_checkpoint
from retinalnet.models import Classifier
from retinalnet.training import (
    Callback,
    ClassificationTask,
    EarlyStopping,
    ModelCheckpoint,
    Trainer,
)

nan = math.nan
inf = math.inf

# ---------------------------------------------------------------------------------------------
# EarlyStopping driven hook by hook: the weights of epoch n are all filled with n, so the
# weights left at the end tell which epoch was restored.


@pytest.fixture
def trainer() -> Trainer:
    """A trainer that has just fit with validation data, so ``val_*`` metrics are available."""
    trainer = quiet_trainer(linear_classifier(), max_epochs=1)
    trainer.fit(separable_data(8), separable_data(4, seed=1))
    return trainer


def _fill_trainable(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.fill_(value)


def _metrics(monitor: str, value: float) -> dict[str, float]:
    metrics = {
        "train_loss": 1.0,
        "train_accuracy": 0.5,
        "val_loss": 1.0,
        "val_accuracy": 0.5,
        "lr": 1e-3,
    }
    metrics[monitor] = value
    return metrics


def _drive(
    callback: EarlyStopping, trainer: Trainer, values: Sequence[float]
) -> tuple[int | None, int]:
    """Run the hooks over ``values`` (one per epoch); return (stopped epoch, epochs run)."""
    callback.on_fit_start(trainer)
    stopped = None
    epoch = 0
    for epoch, value in enumerate(values, start=1):
        _fill_trainable(trainer.model, epoch)
        callback.on_epoch_end(trainer, epoch, _metrics(callback.monitor, value))
        if trainer.should_stop:
            stopped = epoch
            break
    callback.on_fit_end(trainer)
    return stopped, epoch


def _trainable_values(model: nn.Module) -> set[float]:
    return {
        float(value)
        for parameter in model.parameters()
        if parameter.requires_grad
        for value in parameter.detach().flatten().unique()
    }


EARLY_STOPPING_TABLE = [
    # values, EarlyStopping arguments, epoch after which it stops (None: ran out), best epoch
    pytest.param([0.9, 0.8, 0.85, 0.86, 0.87], {}, 5, 2, id="rises-after-best"),
    pytest.param([0.9, 0.8, 0.7], {}, None, 3, id="improving-until-the-end"),
    pytest.param([0.9, 0.5, 0.6, 0.7], {}, None, 2, id="runs-out-after-best"),
    pytest.param(
        [0.60, 0.52, 0.47, 0.44, 0.45, 0.46, 0.47, 0.48, 0.49, 0.50], {}, 7, 4, id="tutorial"
    ),
    pytest.param([1.0, 1.0, 1.0, 1.0], {}, 4, 1, id="equal-is-no-improvement"),
    pytest.param([1.0, nan, nan, nan], {}, 4, 1, id="nan-after-best"),
    pytest.param([nan, 2.0, 1.0], {}, None, 3, id="nan-first"),
    pytest.param([1.0, 0.75, 0.5], {"patience": 1, "min_delta": 0.25}, 2, 1, id="delta-exact"),
    pytest.param([1.0, 0.7, 0.5], {"patience": 1, "min_delta": 0.25}, 3, 2, id="delta-beaten"),
    pytest.param([1.0, 0.95, 0.92], {"patience": 1}, None, 3, id="no-delta"),
    pytest.param(
        [0.5, 0.7, 0.6, 0.65],
        {"monitor": "val_accuracy", "mode": "max", "patience": 2},
        4,
        2,
        id="max-stops",
    ),
    pytest.param(
        [0.5, 0.6, 0.7],
        {"monitor": "val_accuracy", "mode": "max"},
        None,
        3,
        id="max-improving",
    ),
    pytest.param(
        [0.5, 0.625, 0.75],
        {"monitor": "val_accuracy", "mode": "max", "patience": 2, "min_delta": 0.25},
        3,
        1,
        id="max-delta",
    ),
    pytest.param([2.0, 1.0, 1.5], {"monitor": "train_loss", "patience": 1}, 3, 2, id="train-loss"),
    # mode="auto" (the default): higher is better for an accuracy, lower for a loss and lr
    pytest.param(
        [0.5, 0.7, 0.6, 0.65], {"monitor": "val_accuracy", "patience": 2}, 4, 2, id="auto-accuracy"
    ),
    pytest.param(
        [0.3, 0.2, 0.1], {"monitor": "val_accuracy", "patience": 2}, 3, 1, id="auto-accuracy-falls"
    ),
    pytest.param([0.9, 0.8], {"monitor": "train_accuracy"}, None, 1, id="auto-train-accuracy"),
    pytest.param([1e-3, 1e-4, 1e-2], {"monitor": "lr", "patience": 1}, 3, 2, id="auto-lr"),
    pytest.param([1.0, 0.9, 0.95, 0.8], {"patience": 0}, 3, 2, id="patience-0"),
    pytest.param([1.0, 1.0], {"patience": 0}, 2, 1, id="patience-0-equal"),
]


@pytest.mark.parametrize(("values", "kwargs", "stop", "best"), EARLY_STOPPING_TABLE)
def test_early_stopping_table(
    trainer: Trainer,
    values: list[float],
    kwargs: dict[str, Any],
    stop: int | None,
    best: int,
) -> None:
    callback = EarlyStopping(**{"patience": 3, **kwargs})

    stopped, last = _drive(callback, trainer, values)

    assert stopped == stop
    assert callback.stopped_epoch == stop
    assert trainer.should_stop is (stop is not None)
    assert callback.best_epoch == best
    assert callback.best_score == values[best - 1]
    # The best weights come back whether it stopped early or ran out of epochs.
    assert _trainable_values(trainer.model) == {float(best)}
    assert trainer.history.restored_epoch == best
    if stop is None:
        assert last == len(values)
        assert callback.stop_reason is None
    else:
        assert callback.stop_reason == trainer.stop_reason
        assert re.fullmatch(
            rf"early stopping: {callback.monitor} did not improve for "
            rf"{max(callback.patience, 1)} epoch\(s\) "
            rf"\(best {values[best - 1]:.4f} at epoch {best}\)",
            callback.stop_reason or "",
        )


@pytest.mark.parametrize(("patience", "stop"), [(3, 3), (5, None)])
def test_early_stopping_only_nan_never_sets_a_best(
    trainer: Trainer, patience: int, stop: int | None
) -> None:
    callback = EarlyStopping(patience=patience)

    stopped, last = _drive(callback, trainer, [nan, nan, nan])

    assert stopped == stop
    assert last == 3
    assert callback.best_score is None
    assert callback.best_epoch is None
    # nothing to restore: the weights of the last epoch stay
    assert _trainable_values(trainer.model) == {3.0}
    assert trainer.history.restored_epoch is None


def test_early_stopping_without_restoring_keeps_the_last_weights(trainer: Trainer) -> None:
    callback = EarlyStopping(patience=2, restore_best_weights=False)

    stopped, _ = _drive(callback, trainer, [0.9, 0.5, 0.7, 0.8])

    assert stopped == 4
    assert callback.best_epoch == 2
    assert _trainable_values(trainer.model) == {4.0}
    assert trainer.history.restored_epoch is None
    assert callback.state_dict()["best_weights"] is None


def test_early_stopping_keeps_trainable_parameters_and_buffers_only() -> None:
    frozen = nn.Linear(8, 8)
    frozen.requires_grad_(False)
    norm = nn.BatchNorm1d(8)
    network = nn.Sequential(frozen, norm, nn.Linear(8, 4), nn.LogSoftmax(dim=1))
    trainer = quiet_trainer(Classifier(network, classes=["a", "b", "c", "d"]), max_epochs=1)
    trainer.fit(separable_data(8), separable_data(4, seed=1))
    callback = EarlyStopping(patience=2)
    callback.on_fit_start(trainer)
    for epoch, loss in enumerate([0.9, 0.5, 0.7], start=1):
        _fill_trainable(trainer.model, epoch)
        norm.running_mean.fill_(epoch)
        callback.on_epoch_end(trainer, epoch, _metrics("val_loss", loss))

    kept = callback.state_dict()["best_weights"]
    callback.on_fit_end(trainer)

    assert set(kept) == {
        "network.1.weight",
        "network.1.bias",
        "network.1.running_mean",
        "network.1.running_var",
        "network.1.num_batches_tracked",
        "network.2.weight",
        "network.2.bias",
    }
    assert _trainable_values(trainer.model) == {2.0}
    assert torch.equal(norm.running_mean, torch.full((8,), 2.0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "mnx"}, "EarlyStopping: mode must be 'auto', 'min' or 'max', got 'mnx'"),
        ({"mode": "MIN"}, "mode must be 'auto', 'min' or 'max', got 'MIN'"),
        ({"mode": None}, "mode must be 'auto', 'min' or 'max', got None"),
        (
            {"monitor": ""},
            "EarlyStopping: monitor must be a metric name such as 'val_loss', got ''",
        ),
        ({"patience": -1}, "patience must be an int >= 0, got -1"),
        ({"patience": 2.5}, "patience must be an int >= 0, got 2.5"),
        ({"patience": True}, "patience must be an int >= 0, got True"),
        ({"min_delta": -0.1}, "min_delta must be a finite number >= 0, got -0.1"),
        ({"min_delta": nan}, "min_delta must be a finite number >= 0, got nan"),
        ({"min_delta": inf}, "min_delta must be a finite number >= 0, got inf"),
        ({"min_delta": "0.01"}, "min_delta must be a finite number >= 0, got '0.01'"),
        ({"min_delta": None}, "min_delta must be a finite number >= 0, got None"),
        ({"min_delta": True}, "min_delta must be a finite number >= 0, got True"),
    ],
)
def test_early_stopping_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        EarlyStopping(**kwargs)


def test_early_stopping_on_val_loss_without_validation_data_lists_the_metrics() -> None:
    trainer = quiet_trainer(linear_classifier(), callbacks=[EarlyStopping()], max_epochs=2)

    with pytest.raises(
        ValueError,
        match=r"EarlyStopping monitors 'val_loss', which this fit does not produce \(pass "
        r"validation data to fit\); available: train_loss, train_accuracy, lr$",
    ):
        trainer.fit(separable_data(8))
    assert len(trainer.history) == 0


def test_early_stopping_with_a_misspelt_metric_lists_the_metrics() -> None:
    trainer = quiet_trainer(linear_classifier(), callbacks=[EarlyStopping(monitor="val_los")])

    with pytest.raises(
        ValueError,
        match=r"monitors 'val_los'.*available: train_loss, train_accuracy, val_loss, "
        r"val_accuracy, lr",
    ):
        trainer.fit(separable_data(8), separable_data(4, seed=1))


def test_early_stopping_state_round_trips_through_a_weights_only_file(
    trainer: Trainer, tmp_path: Path
) -> None:
    first = EarlyStopping(patience=3)
    first.on_fit_start(trainer)
    for epoch, loss in enumerate([0.9, 0.5, 0.7], start=1):
        _fill_trainable(trainer.model, epoch)
        first.on_epoch_end(trainer, epoch, _metrics("val_loss", loss))
    torch.save(first.state_dict(), tmp_path / "state.pt")

    second = EarlyStopping(patience=3)
    second.on_fit_start(trainer)  # the Trainer loads resumed state after on_fit_start
    second.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))

    assert (second.best_score, second.best_epoch, second.wait) == (0.5, 2, 1)
    assert second.stopped_epoch is None
    for epoch, loss in [(4, 0.8), (5, 0.6)]:
        _fill_trainable(trainer.model, epoch)
        second.on_epoch_end(trainer, epoch, _metrics("val_loss", loss))
    assert second.stopped_epoch == 5
    second.on_fit_end(trainer)
    assert _trainable_values(trainer.model) == {2.0}


# ---------------------------------------------------------------------------------------------
# EarlyStopping inside a real fit, with the validation loss scripted.


def _fit_with_scripted_losses(
    losses: Sequence[float], *, max_epochs: int, callbacks: Sequence[Callback]
) -> tuple[Trainer, Recorder]:
    recorder = Recorder()
    trainer = quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=ScriptedValidationLoss(losses), lr=0.1),
        max_epochs=max_epochs,
        callbacks=[recorder, *callbacks],
    )
    trainer.fit(separable_data(16), separable_data(4, seed=1))
    return trainer, recorder


@pytest.mark.parametrize(
    ("losses", "max_epochs", "epochs_run", "best", "reason"),
    [
        pytest.param(
            [0.60, 0.52, 0.47, 0.44, 0.45, 0.46, 0.47, 0.48, 0.49, 0.50],
            10,
            7,
            4,
            r"early stopping: val_loss did not improve for 3 epoch\(s\) "
            r"\(best 0\.4400 at epoch 4\)",
            id="tutorial-stops-after-7",
        ),
        pytest.param([0.9, 0.5, 0.6, 0.7], 4, 4, 2, r"reached max_epochs=4", id="epochs-run-out"),
    ],
)
def test_early_stopping_in_a_fit_restores_the_best_epoch(
    losses: list[float], max_epochs: int, epochs_run: int, best: int, reason: str
) -> None:
    callback = EarlyStopping(patience=3)

    trainer, recorder = _fit_with_scripted_losses(
        losses, max_epochs=max_epochs, callbacks=[callback]
    )

    assert [record.epoch for record in trainer.history] == list(range(1, epochs_run + 1))
    assert trainer.history.column("val_loss") == pytest.approx(losses[:epochs_run])
    assert re.fullmatch(reason, trainer.stop_reason or "")
    assert trainer.history.stop_reason == trainer.stop_reason
    assert trainer.history.restored_epoch == best
    assert not same_state(recorder.weights[best], recorder.weights[epochs_run])
    assert same_state(snapshot(trainer.model), recorder.weights[best])


def test_early_stopping_starts_afresh_in_each_fit() -> None:
    callback = EarlyStopping(patience=2)
    trainer, _ = _fit_with_scripted_losses([0.1, 0.5, 0.6], max_epochs=3, callbacks=[callback])
    assert callback.stopped_epoch == 3

    trainer.task.loss = ScriptedValidationLoss([0.9, 0.8, 0.7])
    trainer.fit(separable_data(16), separable_data(4, seed=1))

    assert len(trainer.history) == 3
    assert (callback.best_score, callback.best_epoch, callback.stopped_epoch) == (0.7, 3, None)
    assert trainer.stop_reason == "reached max_epochs=3"


# ---------------------------------------------------------------------------------------------
# Callback hooks


def test_a_callback_setting_should_stop_ends_the_fit_after_that_epoch() -> None:
    recorder = Recorder()
    trainer = quiet_trainer(
        linear_classifier(), max_epochs=5, callbacks=[StopAfter(2, "enough"), recorder]
    )

    history = trainer.fit(separable_data(8), separable_data(4, seed=1))

    metrics = ("lr", "train_accuracy", "train_loss", "val_accuracy", "val_loss")
    assert recorder.calls == [
        ("fit_start",),
        ("epoch_start", 1),
        ("epoch_end", 1, metrics),
        ("epoch_start", 2),
        ("epoch_end", 2, metrics),
        ("fit_end",),
    ]
    assert len(history) == 2
    assert trainer.epoch == 2
    assert trainer.stop_reason == history.stop_reason == "enough"


def test_stop_reason_does_not_claim_max_epochs_when_a_callback_stopped_early() -> None:
    trainer = quiet_trainer(linear_classifier(), max_epochs=5, callbacks=[StopAfter(2)])

    history = trainer.fit(separable_data(8))

    assert len(history) == 2
    assert "max_epochs" not in (history.stop_reason or "")


def test_callbacks_run_in_order_and_without_validation_get_train_metrics() -> None:
    calls: list[str] = []

    class Named(Callback):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_fit_start(self, trainer: Trainer) -> None:
            calls.append(f"{self.name}.fit_start")

        def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
            calls.append(f"{self.name}.epoch_end {epoch} {','.join(sorted(metrics))}")

        def on_fit_end(self, trainer: Trainer) -> None:
            calls.append(f"{self.name}.fit_end")

    trainer = quiet_trainer(linear_classifier(), max_epochs=1, callbacks=[Named("a"), Named("b")])
    trainer.fit(separable_data(8))

    assert calls == [
        "a.fit_start",
        "b.fit_start",
        "a.epoch_end 1 lr,train_accuracy,train_loss",
        "b.epoch_end 1 lr,train_accuracy,train_loss",
        "a.fit_end",
        "b.fit_end",
    ]


def test_an_exception_in_a_callback_reaches_on_exception_and_propagates() -> None:
    class Broken(Callback):
        def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
            if epoch == 2:
                raise RuntimeError("callback failed")

    recorder = Recorder()
    trainer = quiet_trainer(linear_classifier(), max_epochs=4, callbacks=[Broken(), recorder])

    with pytest.raises(RuntimeError, match="callback failed"):
        trainer.fit(separable_data(8))

    assert recorder.calls[-1] == ("exception", "RuntimeError")
    assert ("fit_end",) not in recorder.calls
    assert trainer.epoch == 2


def test_the_base_callback_does_nothing() -> None:
    class Custom(Callback):
        pass

    callback = Custom()
    trainer = quiet_trainer(linear_classifier(), max_epochs=2, callbacks=[callback])

    history = trainer.fit(separable_data(8))

    assert len(history) == 2
    assert callback.state_key == "Custom"
    assert callback.state_dict() == {}
    assert EarlyStopping().state_key == "EarlyStopping"


# ---------------------------------------------------------------------------------------------
# ModelCheckpoint


class _ProbeFiles(Callback):
    """After each epoch, reads which epochs best.pt and last.pt hold: when the next epoch
    starts, and when the fit ends (checkpoints are written after every other callback has
    taken in the epoch, so not yet in this one's ``on_epoch_end``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.best: list[int] = []
        self.last: list[int] = []

    def _read(self) -> None:
        self.best.append(load_checkpoint(self.folder / "best.pt").epoch)
        self.last.append(load_checkpoint(self.folder / "last.pt").epoch)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if epoch > 1:
            self._read()

    def on_fit_end(self, trainer: Trainer) -> None:
        self._read()


def test_model_checkpoint_writes_best_on_improvement_and_last_every_epoch(
    tmp_path: Path,
) -> None:
    checkpoint = ModelCheckpoint(tmp_path)
    probe = _ProbeFiles(tmp_path)
    losses = [1.0, 0.5, 0.8, 0.4, 0.9]

    _, recorder = _fit_with_scripted_losses(losses, max_epochs=5, callbacks=[checkpoint, probe])

    assert probe.best == [1, 2, 2, 4, 4]
    assert probe.last == [1, 2, 3, 4, 5]
    assert checkpoint.best_score == 0.4
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.history[-1]["val_loss"] == pytest.approx(0.4)
    assert same_state(best.state_dict, recorder.weights[4])
    last = load_checkpoint(tmp_path / "last.pt")
    assert same_state(last.state_dict, recorder.weights[5])
    assert last.callback_states["ModelCheckpoint"] == {
        "best_score": 0.4,
        "best_epoch": 4,
        "monitor": "val_loss",
        "mode": "min",
    }
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_model_checkpoint_without_save_last_writes_only_best(tmp_path: Path) -> None:
    _fit_with_scripted_losses(
        [1.0, 0.5], max_epochs=2, callbacks=[ModelCheckpoint(tmp_path, save_last=False)]
    )

    assert sorted(path.name for path in tmp_path.iterdir()) == ["best.pt"]
    assert load_checkpoint(tmp_path / "best.pt").epoch == 2


@pytest.mark.parametrize("mode", [{"mode": "max"}, {}], ids=["max", "auto"])
def test_model_checkpoint_in_max_mode_keeps_the_highest_accuracy(
    tmp_path: Path, mode: dict[str, str]
) -> None:
    checkpoint = ModelCheckpoint(tmp_path, monitor="val_accuracy", **mode)
    trainer = quiet_trainer(
        linear_classifier(),
        ClassificationTask(lr=0.2),
        max_epochs=5,
        seed=0,
        callbacks=[checkpoint],
    )

    history = trainer.fit(separable_data(64), separable_data(32, seed=1))

    best = history.best("val_accuracy", **mode)
    accuracies = history.column("val_accuracy")
    first_best = accuracies.index(best.val_accuracy) + 1
    assert first_best > accuracies.index(min(accuracies)) + 1  # max mode, not min
    assert load_checkpoint(tmp_path / "best.pt").epoch == first_best
    assert checkpoint.best_score == best.val_accuracy


@pytest.mark.parametrize("how", ["trainer", "callback"])
def test_model_checkpoint_refuses_to_replace_best_of_another_run(tmp_path: Path, how: str) -> None:
    def make_trainer(overwrite: bool) -> Trainer:
        if how == "trainer":
            return quiet_trainer(linear_classifier(seed=1), out_dir=tmp_path, overwrite=overwrite)
        return quiet_trainer(
            linear_classifier(seed=1),
            callbacks=[ModelCheckpoint(tmp_path, overwrite=overwrite)],
        )

    quiet_trainer(linear_classifier(), max_epochs=1, out_dir=tmp_path).fit(
        separable_data(8), separable_data(4, seed=1)
    )
    before = (tmp_path / "best.pt").read_bytes()

    trainer = make_trainer(overwrite=False)
    with pytest.raises(
        FileExistsError,
        match=r"best\.pt already exists and would be replaced by this new run; resume that run "
        r".*resume_from=last\.pt.*overwrite=True",
    ):
        trainer.fit(separable_data(8), separable_data(4, seed=1))
    assert (tmp_path / "best.pt").read_bytes() == before
    assert len(trainer.history) == 0

    trainer = make_trainer(overwrite=True)
    trainer.fit(separable_data(8), separable_data(4, seed=1))
    assert (tmp_path / "best.pt").read_bytes() != before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "mnx"}, "ModelCheckpoint: mode must be 'auto', 'min' or 'max', got 'mnx'"),
        ({"monitor": ""}, "ModelCheckpoint: monitor must be a metric name such as 'val_loss'"),
    ],
)
def test_model_checkpoint_rejects_bad_arguments(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ModelCheckpoint(tmp_path, **kwargs)


def test_model_checkpoint_on_val_loss_without_validation_data_lists_the_metrics(
    tmp_path: Path,
) -> None:
    trainer = quiet_trainer(linear_classifier(), callbacks=[ModelCheckpoint(tmp_path)])

    with pytest.raises(
        ValueError,
        match=r"ModelCheckpoint monitors 'val_loss'.*available: train_loss, train_accuracy, lr",
    ):
        trainer.fit(separable_data(8))
    assert not (tmp_path / "best.pt").exists()


def test_early_stopping_takes_numpy_and_integer_deltas() -> None:
    assert EarlyStopping(min_delta=np.float32(0.25)).min_delta == 0.25
    assert EarlyStopping(min_delta=1).min_delta == 1.0


# ---------------------------------------------------------------------------------------------
# monitor and mode, the same for EarlyStopping and ModelCheckpoint: a metric name; "auto"
# keeps the lowest loss and the highest accuracy, and asks about any other metric


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda folder: EarlyStopping(5),  # patience meant: monitor is the first parameter
            "EarlyStopping: monitor must be a metric name such as 'val_loss', got 5; for the "
            "patience, pass EarlyStopping(patience=5)",
            id="EarlyStopping(5)",
        ),
        pytest.param(
            lambda folder: EarlyStopping(monitor=np.int64(3)),
            "got np.int64(3); for the patience, pass EarlyStopping(patience=3)",
            id="numpy-int",
        ),
        pytest.param(
            lambda folder: EarlyStopping(monitor=None),
            "EarlyStopping: monitor must be a metric name such as 'val_loss', got None",
            id="None",
        ),
        pytest.param(
            lambda folder: ModelCheckpoint(folder, monitor=5),
            "ModelCheckpoint: monitor must be a metric name such as 'val_loss', got 5",
            id="ModelCheckpoint",
        ),
    ],
)
def test_a_monitor_that_is_not_a_metric_name_is_refused_when_built(
    tmp_path: Path, build: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        build(tmp_path)


def test_a_patience_given_as_the_mode_is_refused_naming_patience() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            "EarlyStopping: mode must be 'auto', 'min' or 'max', got 5; for the patience, "
            "pass EarlyStopping(patience=5)"
        ),
    ):
        EarlyStopping("val_loss", 5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("monitor", "mode"),
    [
        ("val_loss", "min"),
        ("train_loss", "min"),
        ("lr", "min"),
        ("val_accuracy", "max"),
        ("train_accuracy", "max"),
        ("val_auc", "auto"),  # undecided until the fit, which refuses it
    ],
)
def test_auto_mode_follows_the_metric(tmp_path: Path, monitor: str, mode: str) -> None:
    assert EarlyStopping(monitor).mode == mode
    assert ModelCheckpoint(tmp_path, monitor=monitor).mode == mode


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda folder: EarlyStopping("val_accuracy", "min"),
            "EarlyStopping: mode='min' keeps the epoch with the lowest 'val_accuracy', of which "
            "higher is better; pass mode='max', or leave mode out ('auto' picks it)",
        ),
        (
            lambda folder: ModelCheckpoint(folder, monitor="train_loss", mode="max"),
            "ModelCheckpoint: mode='max' keeps the epoch with the highest 'train_loss', of "
            "which lower is better; pass mode='min', or leave mode out ('auto' picks it)",
        ),
    ],
    ids=["EarlyStopping", "ModelCheckpoint"],
)
def test_a_mode_against_the_metric_warns_when_built_and_is_kept(
    tmp_path: Path, build: Any, message: str
) -> None:
    with pytest.warns(UserWarning, match=re.escape(message)) as caught:
        callback = build(tmp_path)
    assert len(caught) == 1
    assert callback.mode in ("min", "max")  # as given: the lowest accuracy may be wanted


def _val_error(result: Any) -> float:
    return 1.0 - float(result.accuracy)


@pytest.mark.parametrize("owner", ["EarlyStopping", "ModelCheckpoint"])
def test_a_metric_of_your_own_needs_a_mode_at_fit_start(tmp_path: Path, owner: str) -> None:
    def build(**mode: str) -> Callback:
        if owner == "EarlyStopping":
            return EarlyStopping(monitor="val_error", **mode)
        return ModelCheckpoint(tmp_path, monitor="val_error", **mode)

    task = ClassificationTask(lr=0.1, metrics={"val_error": _val_error})
    trainer = quiet_trainer(linear_classifier(), task, max_epochs=2, callbacks=[build()])
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{owner}: retinalnet cannot tell whether a higher or a lower 'val_error' is "
            "better; pass mode='max' or mode='min' (mode='auto' decides only for lr and names "
            "ending in '_loss' or '_accuracy')"
        ),
    ):
        trainer.fit(separable_data(8), separable_data(4, seed=1))
    assert len(trainer.history) == 0  # refused before any epoch

    callback = build(mode="min")
    trainer = quiet_trainer(linear_classifier(), task, max_epochs=2, callbacks=[callback])
    history = trainer.fit(separable_data(8), separable_data(4, seed=1))
    assert callback.best_score == min(history.column("val_error"))  # type: ignore[union-attr]


def test_a_metric_nobody_produces_is_named_before_its_mode_is_asked_for() -> None:
    trainer = quiet_trainer(linear_classifier(), callbacks=[EarlyStopping(monitor="val_acuracy")])

    with pytest.raises(
        ValueError, match=r"monitors 'val_acuracy', which this fit does not produce"
    ):
        trainer.fit(separable_data(8), separable_data(4, seed=1))


# ---------------------------------------------------------------------------------------------
# Resuming a state recorded with another mode (0.1 kept the lowest val_accuracy by default)

_OLD_STATE = {"best_score": 0.25, "best_epoch": 1, "wait": 2, "stopped_epoch": None}


def test_early_stopping_resumes_an_old_accuracy_state_as_it_ran(
    trainer: Trainer, caplog: pytest.LogCaptureFixture
) -> None:
    # an old state records no mode: mode="max" then (the only right way) or the default
    # "min" cannot be told apart, so it resumes as it ran, its patience count kept
    callback = EarlyStopping(monitor="val_accuracy", patience=3)
    callback.on_fit_start(trainer)

    with caplog.at_level(logging.WARNING):
        callback.load_state_dict({**_OLD_STATE, "best_weights": None})

    assert caplog.text == ""
    assert (callback.best_score, callback.best_epoch, callback.wait) == (0.25, 1, 2)
    callback.on_epoch_end(trainer, 3, _metrics("val_accuracy", 0.6))
    assert (callback.best_score, callback.best_epoch, callback.wait) == (0.6, 3, 0)


def test_early_stopping_resumes_an_old_loss_state_as_before(
    trainer: Trainer, caplog: pytest.LogCaptureFixture
) -> None:
    callback = EarlyStopping(patience=3)
    callback.on_fit_start(trainer)

    with caplog.at_level(logging.WARNING):
        callback.load_state_dict({**_OLD_STATE, "best_weights": None})

    assert caplog.text == ""
    assert (callback.best_score, callback.best_epoch, callback.wait) == (0.25, 1, 2)
    assert callback.state_dict()["mode"] == "min"


def test_early_stopping_drops_a_resumed_best_of_another_metric(
    trainer: Trainer, caplog: pytest.LogCaptureFixture
) -> None:
    callback = EarlyStopping(monitor="val_accuracy")
    callback.on_fit_start(trainer)
    weights = {"network.1.weight": torch.zeros(4, 8)}
    state = {**_OLD_STATE, "best_weights": weights, "monitor": "val_loss", "mode": "min"}

    with caplog.at_level(logging.WARNING):
        callback.load_state_dict(state)

    assert "state is of 'val_loss', and this one monitors 'val_accuracy'" in caplog.text
    assert (callback.best_score, callback.best_epoch, callback.wait) == (None, None, 0)
    assert callback.state_dict()["best_weights"] is None


class _ScriptedAccuracy(Callback):
    """Logs ``val_scripted_accuracy`` (an accuracy: higher is better) from a script."""

    metric_names = ("val_scripted_accuracy",)

    def __init__(self, values: Sequence[float]) -> None:
        self.values = list(values)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        trainer.log("val_scripted_accuracy", self.values[epoch - 1])


def test_a_run_that_kept_the_lowest_accuracy_resumes_keeping_the_highest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scores = [0.5, 0.3, 0.6, 0.8, 0.7]
    with pytest.warns(UserWarning, match="keeps the epoch with the lowest"):
        old = ModelCheckpoint(tmp_path, monitor="val_scripted_accuracy", mode="min")
    quiet_trainer(
        linear_classifier(), max_epochs=2, callbacks=[_ScriptedAccuracy(scores), old]
    ).fit(separable_data(8), separable_data(4, seed=1))
    assert load_checkpoint(tmp_path / "best.pt").epoch == 2  # the lowest, as 0.1 kept it
    # last.pt as 0.1 wrote it: its state records neither the metric nor the mode
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    saved["callbacks"]["ModelCheckpoint"] = {"best_score": 0.3, "best_epoch": 2}
    torch.save(saved, tmp_path / "last.pt")

    checkpoint = ModelCheckpoint(tmp_path, monitor="val_scripted_accuracy")
    with caplog.at_level(logging.WARNING):
        quiet_trainer(
            linear_classifier(), max_epochs=5, callbacks=[_ScriptedAccuracy(scores), checkpoint]
        ).fit(separable_data(8), separable_data(4, seed=1), resume_from=tmp_path / "last.pt")

    assert "kept the lowest" not in caplog.text  # its mode cannot be told from the state
    assert (checkpoint.best_score, checkpoint.best_epoch) == (0.8, 4)
    assert load_checkpoint(tmp_path / "best.pt").epoch == 4
    assert load_checkpoint(tmp_path / "last.pt").callback_states["ModelCheckpoint"] == {
        "best_score": 0.8,
        "best_epoch": 4,
        "monitor": "val_scripted_accuracy",
        "mode": "max",
    }
