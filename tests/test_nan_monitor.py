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

NEVER_BEST = "val_auc was NaN (undefined) in every epoch of this fit, so no epoch was best"


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


def test_calibration_leaves_an_earlier_runs_best_pt_alone(tmp_path: Path) -> None:
    # a fit whose metric was NaN in every epoch writes no best.pt: TemperatureScaling
    # calibrated the earlier run's in its place, on this run's validation data
    from retinalnet.training import TemperatureScaling

    _fit([0.5], [ModelCheckpoint(tmp_path, monitor="val_auc", mode="max")], max_epochs=1)
    before = (tmp_path / "best.pt").read_bytes()
    again = ModelCheckpoint(tmp_path, monitor="val_auc", mode="max", overwrite=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit([math.nan], [again, TemperatureScaling()], max_epochs=2)

    assert (tmp_path / "best.pt").read_bytes() == before
    said = _no_best_warnings(caught)
    assert len(said) == 1
    assert "is an earlier run's" in said[0]


def test_a_resumed_runs_own_best_pt_is_not_called_an_earlier_runs(tmp_path: Path) -> None:
    # resumed monitoring another metric, NaN since the resume: best.pt is this run's own
    task = ClassificationTask(lr=0.1, metrics={"val_auc": _scripted_metric([0.7])})
    first = quiet_trainer(
        linear_classifier(), task, max_epochs=2, callbacks=[ModelCheckpoint(tmp_path)]
    )
    first.fit(separable_data(8), separable_data(4, seed=1))
    task = ClassificationTask(lr=0.1, metrics={"val_auc": _scripted_metric([math.nan])})
    checkpoint = ModelCheckpoint(tmp_path, monitor="val_auc", mode="max")
    resumed = quiet_trainer(linear_classifier(), task, max_epochs=4, callbacks=[checkpoint])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed.fit(separable_data(8), separable_data(4, seed=1), resume_from=tmp_path / "last.pt")

    said = _no_best_warnings(caught)
    assert len(said) == 1
    assert "every epoch of this fit" in said[0]
    assert "earlier run's" not in said[0]
