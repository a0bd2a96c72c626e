"""A loss that is NaN or infinite stops the fit at once, names where, and saves nothing of it.

Faults by class: the first step of the first epoch, a step in the middle of an epoch after
good epochs, NaN, +inf and -inf, the validation loss, a real divergence, and what every one
of them leaves behind (history, checkpoints, callbacks, the lock).
"""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional

from _training_helpers import (
    Recorder,
    ScriptedValidationLoss,
    linear_classifier,
    quiet_trainer,
    same_state,
    separable_data,
)
from retinalnet.checkpoint import checkpoint_epoch, load_checkpoint
from retinalnet.training import ClassificationTask, NonFiniteLossError

STEPS = 4  # 16 training samples in batches of 4


class ScriptedTrainingLoss(nn.Module):
    """NLL loss whose reported value at some (epoch, step) is replaced, the gradient kept.

    ``loss + (value - loss.detach())`` has the value ``value`` and the gradient of the NLL
    loss, so the weights stay finite: the test is about spotting the value, wherever it is.
    Validation (inference mode) gets the plain NLL loss.
    """

    def __init__(self, values: dict[tuple[int, int], float]) -> None:
        super().__init__()
        self.values = values
        self.calls = 0

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = functional.nll_loss(outputs, targets)
        if torch.is_inference_mode_enabled():
            return loss
        epoch, step = divmod(self.calls, STEPS)
        self.calls += 1
        value = self.values.get((epoch + 1, step + 1))
        return loss if value is None else loss + (value - loss.detach())


@pytest.mark.parametrize(
    ("epoch", "step", "value"),
    [
        pytest.param(1, 1, math.nan, id="nan-at-the-first-step"),
        pytest.param(1, STEPS, math.inf, id="inf-at-the-last-step-of-epoch-1"),
        pytest.param(3, 2, math.nan, id="nan-mid-epoch-after-good-epochs"),
        pytest.param(2, 3, -math.inf, id="minus-inf"),
    ],
)
def test_a_nonfinite_training_loss_stops_the_fit_at_once(
    tmp_path: Path, epoch: int, step: int, value: float
) -> None:
    recorder = Recorder()
    trainer = quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=ScriptedTrainingLoss({(epoch, step): value}), lr=0.05),
        max_epochs=6,
        batch_size=4,
        out_dir=tmp_path,
        callbacks=[recorder],
    )

    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit(separable_data(16), separable_data(8, seed=1))

    error = info.value
    assert isinstance(error, FloatingPointError)
    assert isinstance(error, RuntimeError)  # the command line's one-line errors
    assert (error.stage, error.epoch, error.step) == ("training", epoch, step)
    assert str(error.value) == str(value)
    message = str(error)
    assert "\n" not in message
    shown = "nan" if math.isnan(value) else str(value)
    assert message.startswith(
        f"the training loss became {shown} at epoch {epoch}, step {step} of {STEPS}: "
        "training diverged. The fit stopped, and nothing of epoch "
    )
    assert "Lower the learning rate (it is 0.05" in message
    # nothing of the failed epoch is recorded, and no later epoch began
    assert [record.epoch for record in trainer.history] == list(range(1, epoch))
    assert trainer.epoch == epoch - 1
    assert ("epoch_start", epoch + 1) not in recorder.calls
    assert recorder.calls[-1] == ("exception", "NonFiniteLossError")
    assert ("fit_end",) not in recorder.calls
    assert trainer.history.stop_reason == (
        f"the training loss became {value} at epoch {epoch}, step {step}"
    )
    assert not (tmp_path / "run.lock").exists()
    # the checkpoints hold the last good epoch (or there are none), never the failed one
    if epoch == 1:
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        assert f"no checkpoint in {str(tmp_path)!r}" in message
    else:
        last = load_checkpoint(tmp_path / "last.pt")
        assert last.epoch == epoch - 1
        assert same_state(last.state_dict, recorder.weights[epoch - 1])
        best = load_checkpoint(tmp_path / "best.pt")
        assert best.epoch <= epoch - 1
        assert all(math.isfinite(record["train_loss"]) for record in last.history)
        assert f"{str(tmp_path / 'best.pt')!r} holds epoch {best.epoch}" in message
        assert f"{str(tmp_path / 'last.pt')!r} epoch {epoch - 1}" in message


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_nonfinite_validation_loss_stops_the_fit_before_saving(
    tmp_path: Path, value: float
) -> None:
    recorder = Recorder()
    trainer = quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=ScriptedValidationLoss([0.8, 0.5, value, 0.1]), lr=0.05),
        max_epochs=4,
        out_dir=tmp_path,
        callbacks=[recorder],
    )

    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit(separable_data(16), separable_data(4, seed=1))

    error = info.value
    assert (error.stage, error.epoch, error.step) == ("validation", 3, None)
    assert re.match(
        rf"the validation loss is {'nan' if math.isnan(value) else 'inf'} after epoch 3\. The "
        r"fit stopped, and nothing of epoch 3 was saved: '.*best\.pt' holds epoch 2, "
        r"'.*last\.pt' epoch 2; the weights in memory are not usable\. Check the validation "
        r"data for NaN or infinite values, or lower the learning rate \(it is 0\.05",
        str(error),
    ), str(error)
    assert len(trainer.history) == 2
    assert checkpoint_epoch(tmp_path / "best.pt") == 2
    assert checkpoint_epoch(tmp_path / "last.pt") == 2
    assert ("epoch_end", 3) not in [call[:2] for call in recorder.calls]


def test_a_diverged_fit_names_the_rate_set_not_the_warm_ups_current_one(tmp_path: Path) -> None:
    # a warm-up starts at 0: the message said "Lower the learning rate (it is 0 ...)"
    warm_up = lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.0)  # noqa: E731
    task = ClassificationTask(
        loss=ScriptedTrainingLoss({(1, 1): math.nan}), lr=0.05, scheduler=warm_up
    )
    trainer = quiet_trainer(linear_classifier(), task, max_epochs=2, batch_size=4, out_dir=tmp_path)

    with pytest.raises(NonFiniteLossError, match=r"Lower the learning rate \(it is 0\.05:"):
        trainer.fit(separable_data(16), separable_data(8, seed=1))


def test_a_real_divergence_is_caught_within_its_epoch() -> None:
    trainer = quiet_trainer(
        linear_classifier(), ClassificationTask(lr=1e37), max_epochs=20, batch_size=4
    )

    with pytest.raises(
        NonFiniteLossError,
        match=r"^the training loss became (nan|inf) at epoch 1, step \d+ of 16: .*no checkpoint "
        r"is written without out_dir",
    ) as info:
        trainer.fit(separable_data(64))

    assert info.value.step is not None
    assert 1 < info.value.step <= 16
    assert len(trainer.history) == 0
    assert "(it is 1e+37" in str(info.value)


def test_without_validation_the_training_loss_is_checked_too(tmp_path: Path) -> None:
    trainer = quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=ScriptedTrainingLoss({(2, 1): math.nan}), lr=0.05),
        max_epochs=3,
        batch_size=4,
        out_dir=tmp_path,
    )

    with pytest.raises(NonFiniteLossError, match="at epoch 2, step 1 of 4"):
        trainer.fit(separable_data(16))

    assert checkpoint_epoch(tmp_path / "best.pt") == 1


def test_the_error_survives_pickling() -> None:
    error = NonFiniteLossError("the training loss became nan", stage="training", epoch=3,
                               step=7, value=math.nan)  # fmt: skip
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is NonFiniteLossError
    assert (str(copy), copy.stage, copy.epoch, copy.step) == (str(error), "training", 3, 7)
    assert math.isnan(copy.value)


class _PoisonedGradient(nn.Module):
    """NLL loss whose value stays finite, but whose gradient is NaN at (epoch, step).

    ``0 * sqrt(0)`` is 0, and its derivative ``0 * inf`` is NaN: the optimizer then writes NaN
    into the weights without any loss showing it.
    """

    def __init__(self, epoch: int, step: int) -> None:
        super().__init__()
        self.at = (epoch - 1) * STEPS + step
        self.calls = 0

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = functional.nll_loss(outputs, targets)
        if torch.is_inference_mode_enabled():
            return loss
        self.calls += 1
        if self.calls == self.at:
            return loss + 0 * torch.sqrt(outputs.sum() * 0)
        return loss


def test_weights_broken_at_the_last_step_of_an_epoch_are_never_saved(tmp_path: Path) -> None:
    trainer = quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=_PoisonedGradient(epoch=2, step=STEPS), lr=0.05),
        max_epochs=4,
        batch_size=4,
        out_dir=tmp_path,
    )

    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit(separable_data(16))  # no validation data to show it either

    assert (info.value.stage, info.value.epoch, info.value.step) == ("weights", 2, None)
    assert str(info.value).startswith(
        "the weights (network.1.weight) became NaN or infinite in epoch 2, though every step's "
        "loss was finite: training diverged. The fit stopped, and nothing of epoch 2 was saved"
    )
    assert len(trainer.history) == 1
    assert checkpoint_epoch(tmp_path / "last.pt") == 1
    saved = load_checkpoint(tmp_path / "best.pt").state_dict
    assert all(torch.isfinite(value).all() for value in saved.values())


# ---------------------------------------------------------------------------------------------
# A model whose weights an earlier fit left NaN


_ALREADY_NAN = (
    "{where}: the model's weight network.1.weight is already NaN before training (an "
    "earlier fit diverged?): rebuild the model or load best.pt"
)


@pytest.mark.parametrize(
    ("call", "where"), [("fit", "Trainer.fit"), ("lr_find", "Trainer.lr_find")]
)
def test_a_model_already_nan_is_refused_before_training_not_blamed_on_the_rate(
    call: str, where: str
) -> None:
    model = linear_classifier()
    with torch.no_grad():
        model.network[1].weight[0, 0] = math.nan
    trainer = quiet_trainer(model, ClassificationTask(lr=1e-4), max_epochs=1, batch_size=8)

    with pytest.raises(ValueError, match=f"^{re.escape(_ALREADY_NAN.format(where=where))}$"):
        getattr(trainer, call)(separable_data(16))
    assert trainer.history.stop_reason is None  # nothing ran


def test_a_resumed_fit_of_a_nan_model_loads_the_checkpoint_s_weights(tmp_path: Path) -> None:
    model = linear_classifier()
    quiet_trainer(model, max_epochs=1, out_dir=tmp_path).fit(separable_data(16))
    with torch.no_grad():
        model.network[1].weight.fill_(math.nan)
    trainer = quiet_trainer(model, max_epochs=2, out_dir=tmp_path)

    history = trainer.fit(separable_data(16), resume_from=tmp_path / "last.pt")

    assert len(history) == 2
    assert bool(torch.isfinite(model.network[1].weight).all())


def test_an_infinite_buffer_by_design_is_no_divergence() -> None:
    # an attention mask of -inf is a buffer's legitimate value: fit refused it as "already
    # infinite before training" (and, before that check, as diverged after epoch 1)
    from retinalnet.training._nonfinite import check_finite_weights, first_nonfinite_state

    model = torch.nn.Linear(2, 2)
    model.register_buffer("mask", torch.tensor([0.0, float("-inf")]))
    assert first_nonfinite_state(model) is None
    check_finite_weights(model, "Trainer.fit")
    model.mask[0] = float("nan")  # a NaN is never by design
    assert first_nonfinite_state(model) == "mask"
    with torch.no_grad():
        model.mask[0] = 0.0
        model.weight[0, 0] = float("inf")  # nor an infinite weight
    assert first_nonfinite_state(model) == "weight"
