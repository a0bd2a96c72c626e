"""A monitored metric that is NaN: what EarlyStopping and ModelCheckpoint say about it.

NaN never counts as an improvement. A metric NaN in every epoch (an AUC on validation data
of one class) stops early saying so, is logged once per fit by each callback that monitors
it, and leaves ModelCheckpoint without a best.pt, which it warns about at the end of the fit.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _training_helpers import linear_classifier, quiet_trainer, separable_data
from retinalnet.checkpoint import checkpoint_epoch
from retinalnet.training import ClassificationTask, EarlyStopping, History, ModelCheckpoint

NEVER_BEST = "val_auc was NaN (undefined) in every epoch, so no epoch was best"


def _scripted_metric(values: list[float]) -> Callable[[Any], float]:
    """A validation metric that returns ``values`` in turn, the last one from then on."""
    remaining: Iterator[float] = iter(values)
    last = [values[-1]]

    def metric(result: Any) -> float:
        last[0] = next(remaining, last[0])
        return last[0]

    return metric


def _fit(values: list[float], callbacks: list[Any], max_epochs: int = 3) -> History:
    task = ClassificationTask(lr=0.1, metrics={"val_auc": _scripted_metric(values)})
    trainer = quiet_trainer(linear_classifier(), task, max_epochs=max_epochs, callbacks=callbacks)
    return trainer.fit(separable_data(8), separable_data(4, seed=1))


def _nan_logs(caplog: pytest.LogCaptureFixture, owner: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING
        and record.getMessage().startswith(f"{owner}: val_auc is NaN (undefined)")
    ]


def _no_best_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "wrote no best.pt" in str(w.message)]


def test_early_stopping_on_a_metric_nan_in_every_epoch_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopping = EarlyStopping("val_auc", mode="max", patience=2)

    with caplog.at_level(logging.WARNING):
        history = _fit([math.nan], [stopping])

    assert stopping.stop_reason == f"early stopping: {NEVER_BEST}"
    assert history.stop_reason == stopping.stop_reason
    assert "None" not in (history.stop_reason or "")
    logs = _nan_logs(caplog, "EarlyStopping")
    assert len(logs) == 1  # once per fit, though two epochs were NaN
    assert "at epoch 1" in logs[0]
    assert "an AUC on validation data without images of both classes" in logs[0]


@pytest.mark.parametrize("save_last", [True, False])
def test_model_checkpoint_on_a_metric_nan_in_every_epoch_warns_at_the_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, save_last: bool
) -> None:
    checkpoint = ModelCheckpoint(tmp_path, monitor="val_auc", mode="max", save_last=save_last)

    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit([math.nan], [checkpoint], max_epochs=2)

    assert not checkpoint.best_path.exists()
    (message,) = _no_best_warnings(caught)
    assert message.startswith(f"ModelCheckpoint wrote no best.pt: {NEVER_BEST}; ")
    if save_last:
        assert f"{str(checkpoint.last_path)!r} holds the last epoch (2)" in message
        assert checkpoint_epoch(checkpoint.last_path) == 2
    else:
        assert "no last.pt was written either (save_last=False)" in message
    logs = _nan_logs(caplog, "ModelCheckpoint")
    assert len(logs) == 1
    assert "best.pt is not written for it" in logs[0]


def test_each_callback_logs_the_first_nan_once_in_each_fit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stopping = EarlyStopping("val_auc", mode="max", patience=5)
    checkpoint = ModelCheckpoint(tmp_path, monitor="val_auc", mode="max", overwrite=True)

    with caplog.at_level(logging.WARNING), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _fit([math.nan], [stopping, checkpoint], max_epochs=2)
        _fit([math.nan], [stopping, checkpoint], max_epochs=2)

    assert len(_nan_logs(caplog, "EarlyStopping")) == 2
    assert len(_nan_logs(caplog, "ModelCheckpoint")) == 2


def test_a_metric_nan_at_first_then_a_number_writes_best_and_does_not_warn_at_the_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stopping = EarlyStopping("val_auc", mode="max", patience=2)
    checkpoint = ModelCheckpoint(tmp_path, monitor="val_auc", mode="max")

    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = _fit([math.nan, 0.5, 0.4, 0.3], [stopping, checkpoint], max_epochs=4)

    assert _no_best_warnings(caught) == []
    assert checkpoint_epoch(checkpoint.best_path) == 2
    assert checkpoint.best_epoch == stopping.best_epoch == 2
    assert history.stop_reason == (
        "early stopping: val_auc did not improve for 2 epoch(s) (best 0.5000 at epoch 2)"
    )
    for owner in ("EarlyStopping", "ModelCheckpoint"):
        (log,) = _nan_logs(caplog, owner)
        assert "at epoch 1" in log
