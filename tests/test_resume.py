"""Resuming from a checkpoint whose training state is malformed: a ValueError naming the file
and the field, never a KeyError or TypeError from inside a callback or the optimizer."""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from _training_helpers import (
    ScriptedValidationLoss,
    StopAfter,
    linear_classifier,
    quiet_trainer,
    same_state,
    separable_data,
    snapshot,
    tiny_cnn,
)
from retinalnet.checkpoint import load_checkpoint
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.training import ClassificationTask, EarlyStopping, Trainer


def _first_run(out: Path) -> Path:
    quiet_trainer(linear_classifier(), max_epochs=2, out_dir=out, callbacks=[EarlyStopping()]).fit(
        separable_data(8), separable_data(4, seed=1)
    )
    return out / "last.pt"


def _edit(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = torch.load(path, weights_only=True)
    edit(data)
    torch.save(data, path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            lambda data: data["callbacks"]["EarlyStopping"].pop("wait"),
            r"field 'callbacks\.EarlyStopping' does not hold the state of EarlyStopping "
            r"\(missing 'wait'\)",
            id="early-stopping-without-wait",
        ),
        pytest.param(
            lambda data: data["callbacks"]["EarlyStopping"].__setitem__("wait", "two"),
            r"field 'callbacks\.EarlyStopping' does not hold the state of EarlyStopping",
            id="early-stopping-wait-not-a-number",
        ),
        pytest.param(
            lambda data: data["callbacks"].__setitem__("ModelCheckpoint", {}),
            r"field 'callbacks\.ModelCheckpoint' does not hold the state of ModelCheckpoint "
            r"\(missing 'best_score'\)",
            id="model-checkpoint-empty",
        ),
        pytest.param(
            lambda data: data["history"][1].__setitem__("train_loss", "low"),
            # refused as the checkpoint loads, before any resume
            r"field 'history' is malformed: epoch record 2: 'train_loss' must be a number or "
            r"None, got str 'low'",
            id="history-value",
        ),
        pytest.param(
            lambda data: data["history"][0].pop("lr"),
            r"field 'history' is malformed: an epoch record needs .*; missing: lr",
            id="history-field-missing",
        ),
        pytest.param(
            lambda data: data["optimizer"].__setitem__("param_groups", "adam"),
            r"cannot resume the optimizer from '.*last\.pt' \(",
            id="optimizer-garbage",
        ),
    ],
)
def test_a_malformed_training_state_is_named(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    last = _first_run(tmp_path)
    _edit(last, edit)
    trainer = quiet_trainer(
        linear_classifier(), max_epochs=3, out_dir=tmp_path, callbacks=[EarlyStopping()]
    )

    with pytest.raises(ValueError, match=rf"'.*last\.pt'.*{message}|{message}") as info:
        trainer.fit(separable_data(8), separable_data(4, seed=1), resume_from=last)

    assert "\n" not in str(info.value)
    assert not (tmp_path / "run.lock").exists()


def test_resuming_with_another_learning_rate_says_the_checkpoints_wins(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    last = _first_run(tmp_path)
    trainer = quiet_trainer(
        linear_classifier(), ClassificationTask(lr=1e-5), max_epochs=3, out_dir=tmp_path
    )

    with caplog.at_level(logging.WARNING):
        trainer.fit(separable_data(8), separable_data(4, seed=1), resume_from=last)

    assert trainer.optimizer.param_groups[0]["lr"] == 1e-3
    assert any(
        "with its learning rate 0.001, not the 1e-05 this fit was given" in message
        and "start a new run" in message
        for message in caplog.messages
    ), caplog.messages


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param({"size": 256}, "size=224 there, 256 now", id="size"),
        pytest.param({"resize": 300}, "resize=256 there, 300 now", id="resize"),
        pytest.param({"mean": (0.5, 0.5, 0.5)}, "mean=", id="normalisation"),
        pytest.param({"reduced_decode": True}, "reduced_decode=False there, True now", id="decode"),
    ],
)
def test_resuming_a_model_that_prepares_images_otherwise_is_refused(
    tmp_path: Path, change: dict[str, Any], named: str
) -> None:
    last = _first_run(tmp_path)
    model = linear_classifier()
    model.preprocessing = dataclasses.replace(model.preprocessing, **change)
    trainer = quiet_trainer(model, max_epochs=3, out_dir=tmp_path)

    with pytest.raises(ValueError, match="its images were prepared otherwise") as info:
        trainer.fit(separable_data(8), separable_data(4, seed=1), resume_from=last)

    assert named in str(info.value)
    assert "load_checkpoint(path).preprocessing" in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run.lock").exists()


def test_resuming_with_another_augmentation_goes_on(tmp_path: Path) -> None:
    last = _first_run(tmp_path)
    model = linear_classifier()
    model.preprocessing = model.preprocessing.with_augmentation("oct")
    trainer = quiet_trainer(model, max_epochs=3, out_dir=tmp_path)

    history = trainer.fit(separable_data(8), separable_data(4, seed=1), resume_from=last)

    assert len(history) == 3


# ---------------------------------------------------------------------------------------------
# A run a callback ended has nothing left to train: resuming it is a no-op, as for max_epochs


def _early_stopped(out: Path, losses: list[float], patience: int) -> Trainer:
    trainer = quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=ScriptedValidationLoss(losses), lr=0.1),
        max_epochs=6,
        out_dir=out,
        callbacks=[EarlyStopping(patience=patience)],
        seed=0,
    )
    trainer.fit(separable_data(16), separable_data(4, seed=1))
    return trainer


@pytest.mark.parametrize(
    ("losses", "patience", "stop_epoch", "best_epoch"),
    [
        ([0.5, 0.9, 0.9, 0.3, 0.2, 0.1], 2, 3, 1),
        ([0.5, 0.4, 0.9, 0.1, 0.1, 0.1], 1, 3, 2),
        ([0.9, 0.8, 0.7, 0.7, 0.7, 0.7], 3, 6, 3),  # stopped at max_epochs' epoch too
    ],
)
def test_resuming_an_early_stopped_run_trains_nothing(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    losses: list[float],
    patience: int,
    stop_epoch: int,
    best_epoch: int,
) -> None:
    whole = _early_stopped(tmp_path, losses, patience)
    assert (len(whole.history), whole.history.restored_epoch) == (stop_epoch, best_epoch)
    weights, best = snapshot(whole.model), (tmp_path / "best.pt").read_bytes()
    resumed = quiet_trainer(
        linear_classifier(seed=5),
        ClassificationTask(loss=ScriptedValidationLoss([0.0] * 6), lr=0.1),
        max_epochs=6,
        out_dir=tmp_path,
        callbacks=[EarlyStopping(patience=patience)],
        seed=0,
    )

    with caplog.at_level(logging.WARNING):
        history = resumed.fit(
            separable_data(16), separable_data(4, seed=1), resume_from=tmp_path / "last.pt"
        )

    assert history.to_records() == whole.history.to_records()
    assert (history.stop_reason, history.restored_epoch) == (whole.stop_reason, best_epoch)
    assert same_state(snapshot(resumed.model), weights)
    assert (tmp_path / "best.pt").read_bytes() == best
    assert load_checkpoint(tmp_path / "last.pt").epoch == stop_epoch
    said = [m for m in caplog.messages if "had stopped early" in m]
    assert len(said) == 1, caplog.messages
    assert f"stopped early at epoch {stop_epoch}" in said[0]
    assert "nothing to train" in said[0]
    assert "\n" not in said[0]


@pytest.mark.parametrize(
    ("reason", "stop_reason"),
    [
        pytest.param("enough", "enough", id="with-reason"),
        pytest.param(None, "stopped by a callback after epoch 2", id="without-reason"),
    ],
)
def test_any_callback_s_stop_is_honoured_on_resume(
    tmp_path: Path, reason: str | None, stop_reason: str
) -> None:
    data = separable_data(8), separable_data(4, seed=1)
    trainer = quiet_trainer(
        linear_classifier(), max_epochs=5, out_dir=tmp_path, callbacks=[StopAfter(2, reason)]
    )
    assert trainer.fit(*data).stop_reason == stop_reason
    weights = snapshot(trainer.model)
    resumed = quiet_trainer(
        linear_classifier(seed=3), max_epochs=5, out_dir=tmp_path, callbacks=[StopAfter(2, reason)]
    )

    history = resumed.fit(*data, resume_from=tmp_path / "last.pt")

    assert (len(history), history.stop_reason, resumed.epoch) == (2, stop_reason, 2)
    assert same_state(snapshot(resumed.model), weights)


def test_a_checkpoint_without_the_stop_decision_trains_on_as_before(tmp_path: Path) -> None:
    _early_stopped(tmp_path, [0.5, 0.9, 0.9, 0.3, 0.2, 0.1], 2)
    _edit(tmp_path / "last.pt", lambda data: data["loop"].pop("should_stop"))
    resumed = quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=ScriptedValidationLoss([0.3, 0.2, 0.1]), lr=0.1),
        max_epochs=6,
        out_dir=tmp_path,
        callbacks=[EarlyStopping(patience=2)],
        seed=0,
    )

    history = resumed.fit(
        separable_data(16), separable_data(4, seed=1), resume_from=tmp_path / "last.pt"
    )

    assert len(history) == 6


# ---------------------------------------------------------------------------------------------
# Another epoch size: a per-step schedule is refused, otherwise a warning


def _per_step_task(interval: str = "step") -> ClassificationTask:
    return ClassificationTask(
        scheduler=lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5),
        scheduler_interval=interval,
    )


def _epoch_sized_run(out: Path, interval: str | None) -> Path:
    task = _per_step_task(interval) if interval is not None else None
    quiet_trainer(linear_classifier(), task, max_epochs=2, out_dir=out, batch_size=4).fit(
        separable_data(8), separable_data(4, seed=1)
    )
    return out / "last.pt"


@pytest.mark.parametrize(
    ("images", "batch_size", "now"),
    [
        pytest.param(8, 2, r"4 steps per epoch \(8 images / batch size 2\)", id="batch-size"),
        pytest.param(16, 4, r"4 steps per epoch \(16 images / batch size 4\)", id="images"),
    ],
)
def test_resuming_a_per_step_schedule_over_another_epoch_size_is_refused(
    tmp_path: Path, images: int, batch_size: int, now: str
) -> None:
    last = _epoch_sized_run(tmp_path, "step")
    before = last.read_bytes()
    trainer = quiet_trainer(
        linear_classifier(), _per_step_task(), max_epochs=4, out_dir=tmp_path,
        batch_size=batch_size,
    )  # fmt: skip

    with pytest.raises(ValueError, match="learning-rate schedule is per step") as info:
        trainer.fit(separable_data(images), separable_data(4, seed=1), resume_from=last)

    message = str(info.value)
    assert re.search(r"its run took 2 steps per epoch \(8 images / batch size 4\)", message)
    assert re.search(rf"this fit takes {now}", message), message
    assert "resume with the same training data, batch size and feature cache (each" in message
    assert "\n" not in message
    assert last.read_bytes() == before
    assert not (tmp_path / "run.lock").exists()


@pytest.mark.parametrize("interval", [None, "epoch"])
def test_resuming_with_another_batch_size_without_a_per_step_schedule_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, interval: str | None
) -> None:
    last = _epoch_sized_run(tmp_path, interval)
    task = _per_step_task(interval) if interval is not None else None
    trainer = quiet_trainer(linear_classifier(), task, max_epochs=3, out_dir=tmp_path, batch_size=2)

    with caplog.at_level(logging.WARNING):
        history = trainer.fit(separable_data(8), separable_data(4, seed=1), resume_from=last)

    assert len(history) == 3
    said = [m for m in caplog.messages if "steps per epoch" in m]
    assert len(said) == 1, caplog.messages
    assert "2 steps per epoch (8 images / batch size 4)" in said[0]
    assert "4 steps per epoch (8 images / batch size 2)" in said[0]


def test_resuming_with_the_same_epoch_size_says_nothing_of_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    last = _epoch_sized_run(tmp_path, "step")
    trainer = quiet_trainer(
        linear_classifier(), _per_step_task(), max_epochs=3, out_dir=tmp_path, batch_size=4
    )

    with caplog.at_level(logging.WARNING):
        trainer.fit(separable_data(8), separable_data(4, seed=1), resume_from=last)

    assert not [m for m in caplog.messages if "steps per epoch" in m]


# ---------------------------------------------------------------------------------------------
# Resuming an earlier epoch (best.pt) over the run's later last.pt is refused


def _four_epochs(out: Path) -> None:
    quiet_trainer(
        linear_classifier(),
        ClassificationTask(loss=ScriptedValidationLoss([0.5, 0.9, 0.9, 0.9])),
        max_epochs=4,
        out_dir=out,
        seed=0,
    ).fit(separable_data(8), separable_data(4, seed=1))


def test_resuming_best_pt_beside_the_run_s_later_last_pt_is_refused(tmp_path: Path) -> None:
    _four_epochs(tmp_path)
    last = (tmp_path / "last.pt").read_bytes()
    trainer = quiet_trainer(linear_classifier(), max_epochs=6, out_dir=tmp_path, seed=0)

    with pytest.raises(
        ValueError, match=r"holds epoch 1, and last\.pt beside it holds epoch 4 of"
    ) as info:
        trainer.fit(separable_data(8), separable_data(4, seed=1), resume_from=tmp_path / "best.pt")

    assert f"resume from {str(tmp_path / 'last.pt')!r}, or train into another out_dir" in str(
        info.value
    )
    assert "\n" not in str(info.value)
    assert (tmp_path / "last.pt").read_bytes() == last
    assert not (tmp_path / "run.lock").exists()


def test_best_pt_resumed_into_another_folder_goes_on_from_its_epoch(tmp_path: Path) -> None:
    _four_epochs(tmp_path / "run")
    trainer = quiet_trainer(linear_classifier(), max_epochs=3, out_dir=tmp_path / "again", seed=0)

    history = trainer.fit(
        separable_data(8), separable_data(4, seed=1), resume_from=tmp_path / "run" / "best.pt"
    )

    assert len(history) == 3
    assert load_checkpoint(tmp_path / "run" / "last.pt").epoch == 4


def test_best_pt_beside_another_run_s_last_pt_is_resumed(tmp_path: Path) -> None:
    _four_epochs(tmp_path / "run")
    other = tmp_path / "other"
    quiet_trainer(linear_classifier(seed=2), max_epochs=3, out_dir=other, seed=1).fit(
        separable_data(8, seed=4), separable_data(4, seed=1)
    )
    shutil.copy(tmp_path / "run" / "best.pt", other / "best.pt")
    trainer = quiet_trainer(linear_classifier(), max_epochs=3, out_dir=other, seed=0)

    history = trainer.fit(
        separable_data(8), separable_data(4, seed=1), resume_from=other / "best.pt"
    )

    assert len(history) == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("should_stop", "yes", r"field 'loop\.should_stop' must be a bool, got str"),
        ("stop_reason", 3, r"field 'loop\.stop_reason' must be a str or None, got int"),
        ("steps_per_epoch", 2.5, r"field 'loop\.steps_per_epoch' must be an int or None"),
        ("threads", True, r"field 'loop\.threads' must be an int or None, got bool"),
    ],
)
def test_a_malformed_stop_or_epoch_record_is_named(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    last = _first_run(tmp_path)
    _edit(last, lambda data: data["loop"].__setitem__(field, value))
    trainer = quiet_trainer(linear_classifier(), max_epochs=3, out_dir=tmp_path)

    with pytest.raises(ValueError, match=message):
        trainer.fit(separable_data(8), separable_data(4, seed=1), resume_from=last)


def test_resuming_on_other_training_images_of_the_same_number_is_warned_of(
    tmp_path: Path,
) -> None:
    """``retinalnet train --resume`` refuses them; in Python it may be meant, and is said."""
    data = make_synthetic_kermany(tmp_path / "data", train=2, val=1, test=1, shape=(40, 40))
    moved, other = tmp_path / "moved", tmp_path / "other"
    shutil.copytree(data, moved)
    shutil.copytree(data, other)
    first = sorted((other / "train" / "DME").iterdir())[0]
    first.rename(first.with_name("DME-999999-1" + first.suffix))  # as many, one other
    quiet_trainer(tiny_cnn(), max_epochs=1, out_dir=tmp_path / "run").fit(
        KermanyOCT(data, "train"), KermanyOCT(data, "val")
    )

    def resumed(root: Path) -> list[str]:
        run = shutil.copytree(tmp_path / "run", tmp_path / f"run-{root.name}")
        trainer = quiet_trainer(tiny_cnn(), max_epochs=2, out_dir=run)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(
                KermanyOCT(root, "train"), KermanyOCT(root, "val"), resume_from=run / "last.pt"
            )
        return [str(w.message) for w in caught if "training images" in str(w.message)]

    # was: resumed without a word
    said = resumed(other)
    assert len(said) == 1
    assert "run-other/last.pt' on other training images than its run's" in said[0]
    assert resumed(moved) == []  # the run's images, in another folder


def test_a_run_records_its_workers_and_threads_and_a_resume_with_others_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bit-for-bit repeat needs the same workers and threads as the seed; they were not
    recorded, so a resume with others went on without a word of it."""
    last = _first_run(tmp_path)
    state = load_checkpoint(last).loop_state
    assert (state["num_workers"], state["threads"]) == (0, torch.get_num_threads())

    def resumed(threads: int) -> list[str]:
        monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
        run = shutil.copytree(tmp_path, tmp_path.parent / f"run-{threads}")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="retinalnet"):
            quiet_trainer(linear_classifier(), max_epochs=3, out_dir=run).fit(
                separable_data(8), separable_data(4, seed=1), resume_from=run / "last.pt"
            )
        return [r.getMessage() for r in caplog.records if "other settings" in r.getMessage()]

    assert resumed(state["threads"]) == []
    (said,) = resumed(state["threads"] + 3)
    assert f"(torch threads: {state['threads']} then, {state['threads'] + 3} now)" in said
