"""Resuming a run whose learning-rate schedule the resuming fit does not have (none, or one
of another class) is refused before any epoch, through every door (``Trainer.fit``,
``retinalnet train --resume``); the run's schedule resumed repeats its rates, and the
warning of another rate names the rate in use and the run's starting one."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, ReduceLROnPlateau, StepLR

from _training_helpers import (
    InterruptAt,
    linear_classifier,
    quiet_trainer,
    same_state,
    separable_data,
    snapshot,
)
from retinalnet.checkpoint import load_checkpoint
from retinalnet.cli import main
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.models import small_cnn
from retinalnet.training import ClassificationTask
from retinalnet.transforms import Preprocessing

Factory = Callable[[torch.optim.Optimizer], Any]


def _cosine(optimizer: torch.optim.Optimizer) -> CosineAnnealingLR:
    return CosineAnnealingLR(optimizer, T_max=4)


def _halving(optimizer: torch.optim.Optimizer) -> StepLR:
    return StepLR(optimizer, 1, gamma=0.5)


def _plateau(optimizer: torch.optim.Optimizer) -> ReduceLROnPlateau:
    # mode "max" on a falling validation loss: every epoch after the first halves the rate
    return ReduceLROnPlateau(optimizer, mode="max", patience=0, factor=0.5)


def _task(scheduler: Factory | None, lr: float = 0.1) -> ClassificationTask:
    return ClassificationTask(lr=lr, scheduler=scheduler)


def _interrupted_run(out: Path, scheduler: Factory | None) -> Path:
    """A 4-epoch run interrupted as its epoch 3 starts: ``last.pt`` holds epoch 2."""
    trainer = quiet_trainer(
        linear_classifier(), _task(scheduler), max_epochs=4, out_dir=out,
        callbacks=[InterruptAt(3)], seed=0,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(separable_data(8), separable_data(4, seed=1))
    return out / "last.pt"


def _resumed(out: Path, scheduler: Factory | None, lr: float = 0.1) -> list[float]:
    """The lr column of the run in ``out`` resumed to epoch 4 with ``scheduler``."""
    trainer = quiet_trainer(
        linear_classifier(), _task(scheduler, lr), max_epochs=4, out_dir=out, seed=0
    )
    history = trainer.fit(separable_data(8), separable_data(4, seed=1), resume_from=out / "last.pt")
    return history.column("lr")


# ---------------------------------------------------------------------------------------------
# Refused: the run's schedule is not this fit's


def _by_trainer_fit(out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    last = _interrupted_run(out, _cosine)
    model = linear_classifier(seed=5)
    before = snapshot(model)
    trainer = quiet_trainer(model, _task(None), max_epochs=4, out_dir=out)
    with pytest.raises(ValueError, match="cannot resume from") as info:
        trainer.fit(separable_data(8), separable_data(4, seed=1), resume_from=last)
    assert same_state(snapshot(model), before)  # refused before the weights were loaded
    return last, str(info.value)


def _by_train_resume(out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    # the demo's run: a cosine decay, which `retinalnet train` continued at a frozen rate
    data = make_synthetic_kermany(out / "data", train=2, val=1, test=1, shape=(64, 64))
    model = small_cnn(preprocessing=Preprocessing(size=32))
    trainer = quiet_trainer(
        model, _task(_cosine), max_epochs=4, out_dir=out / "run", callbacks=[InterruptAt(3)],
        batch_size=8, seed=0,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"))
    last = out / "run" / "last.pt"
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--resume", str(last), "-q"]) == 1
    # (after a warning: a Python run records no train options)
    error = capsys.readouterr().err.splitlines()[-1]
    return last, error.removeprefix("retinalnet train: error: ")


@pytest.mark.parametrize("door", [_by_trainer_fit, _by_train_resume])
def test_a_run_with_a_schedule_resumed_without_one_is_refused_before_any_epoch(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    door: Callable[[Path, pytest.CaptureFixture[str]], tuple[Path, str]],
) -> None:
    # was: the scheduler state dropped, the rate frozen where the cosine had taken it for
    # every epoch left, and the checkpoints written on without a scheduler
    out = tmp_path / "out"
    last, message = door(out, capsys)
    before = load_checkpoint(last)

    assert message.startswith(f"cannot resume from {str(last)!r}: ")
    assert "its run stepped a CosineAnnealingLR; this fit has no scheduler" in message
    assert "start a new run" in message
    assert "\n" not in message
    after = load_checkpoint(last)
    assert (after.epoch, after.scheduler_state) == (2, before.scheduler_state)
    assert not list(out.rglob("run.lock"))


def test_a_run_without_a_schedule_resumed_with_one_is_refused(tmp_path: Path) -> None:
    last = _interrupted_run(tmp_path, None)

    with pytest.raises(ValueError, match="had no learning-rate scheduler") as info:
        _resumed(tmp_path, _cosine)

    assert str(info.value) == (
        f"cannot resume from {str(last)!r}: its run had no learning-rate scheduler; this fit "
        "steps a CosineAnnealingLR; resume without a scheduler (the run's task), or start a "
        "new run"
    )
    assert load_checkpoint(last).epoch == 2


@pytest.mark.parametrize("recorded", [True, False], ids=["class-recorded", "older-checkpoint"])
def test_a_scheduler_of_another_class_is_refused(tmp_path: Path, recorded: bool) -> None:
    # was: StepLR.load_state_dict took the cosine's state into its attributes, silently
    last = _interrupted_run(tmp_path, _cosine)
    assert load_checkpoint(last).loop_state["scheduler_class"] == "CosineAnnealingLR"
    if not recorded:  # written before the class was: told apart by the states' entries
        data = torch.load(last, weights_only=True)
        del data["loop"]["scheduler_class"]
        torch.save(data, last)

    with pytest.raises(ValueError, match="this fit") as info:
        _resumed(tmp_path, _halving)

    expected = (
        "its run stepped a CosineAnnealingLR; this fit steps a StepLR"
        if recorded
        else "its run stepped another scheduler than this fit's StepLR (its state holds "
        "T_max, eta_min, a StepLR's gamma, step_size)"
    )
    assert str(info.value).startswith(f"cannot resume from {str(last)!r}: {expected}; ")


# ---------------------------------------------------------------------------------------------
# The run's schedule resumed: its rates, and the warning of another given rate


@pytest.mark.parametrize("scheduler", [_cosine, _plateau, None], ids=["cosine", "plateau", "none"])
def test_resuming_with_the_runs_schedule_repeats_its_rates_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, scheduler: Factory | None
) -> None:
    uninterrupted = quiet_trainer(linear_classifier(), _task(scheduler), max_epochs=4, seed=0)
    expected = uninterrupted.fit(separable_data(8), separable_data(4, seed=1)).column("lr")
    _interrupted_run(tmp_path, scheduler)

    with caplog.at_level(logging.WARNING):
        rates = _resumed(tmp_path, scheduler)

    assert rates == expected
    if scheduler is not None:
        assert len(set(expected)) > 1  # the schedule moved the rate
        assert load_checkpoint(tmp_path / "last.pt").scheduler_state is not None
    # a plateau's optimizer keeps no starting rate: its reduced rate was said to be another
    # rate than the fit was given
    assert not [m for m in caplog.messages if "resumed the optimizer" in m], caplog.messages


@pytest.mark.parametrize(
    ("scheduler", "in_use"), [(_cosine, "0.05"), (_plateau, "0.05")], ids=["cosine", "plateau"]
)
def test_the_rate_warning_names_the_rate_in_use_and_the_runs_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, scheduler: Factory, in_use: str
) -> None:
    # was "with its learning rate 0.1": the rate the run started at, not the one in use
    _interrupted_run(tmp_path, scheduler)

    with caplog.at_level(logging.WARNING):
        _resumed(tmp_path, scheduler, lr=0.02)

    said = [m for m in caplog.messages if "resumed the optimizer" in m]
    assert len(said) == 1, caplog.messages
    assert (
        f"with its learning rate {in_use} in use now (the run started at 0.1, not at the 0.02 "
        "this fit was given): a resumed fit continues the run as it was" in said[0]
    )


class _Remembering(CosineAnnealingLR):
    """A scheduler of one's own that sets an attribute after its first step."""

    def get_lr(self) -> list[float]:  # type: ignore[override]
        if self.last_epoch >= 1:
            self.decayed_from = self.base_lrs[0]
        return super().get_lr()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("scheduler", "entry", "refused"),
    [
        (_cosine, "verbose", None),  # a torch version's entry
        (_plateau, "default_min_lr", None),  # one that another torch version lacks
        (lambda o: _Remembering(o, T_max=4), "decayed_from", None),  # yours, set after a step
        (_cosine, "step_size", "its state holds step_size, which a CosineAnnealingLR has not"),
        (_cosine, "-T_max", "its state lacks a CosineAnnealingLR's T_max"),
    ],
    ids=["versioned", "plateau-versioned", "your-own", "torch-extra", "torch-missing"],
)
def test_an_older_checkpoint_is_told_apart_by_its_states_settings(
    tmp_path: Path, scheduler: Factory, entry: str, refused: str | None
) -> None:
    # an entry only one side holds was refused as "another scheduler ... (its state holds
    # , ...)": a version's or your scheduler's own is the same class; torch's own
    # schedulers of one class hold the same settings
    last = _interrupted_run(tmp_path, scheduler)
    data = torch.load(last, weights_only=True)
    del data["loop"]["scheduler_class"]  # written before the class was recorded
    if entry.startswith("-"):
        del data["scheduler"][entry[1:]]
    elif entry in data["scheduler"]:
        del data["scheduler"][entry]  # this fit's holds one the run's lacks (a version's)
    else:
        data["scheduler"][entry] = 1
    torch.save(data, last)

    if refused is None:
        assert len(_resumed(tmp_path, scheduler)) == 4
    else:
        with pytest.raises(ValueError, match=re.escape(refused)):
            _resumed(tmp_path, scheduler)
