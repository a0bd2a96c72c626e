"""Resuming from a checkpoint whose training state is malformed: a ValueError naming the file
and the field, never a KeyError or TypeError from inside a callback or the optimizer."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from _training_helpers import linear_classifier, quiet_trainer, separable_data
from retinalnet.training import ClassificationTask, EarlyStopping


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
            r"field 'history' is malformed: epoch 2: metric 'train_loss' must be a number, "
            r"got 'low'",
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
