"""Which way a monitored metric is better: ``mode="auto"`` from the name, the checks of
``monitor`` and ``mode``, and how a resumed state's best was judged."""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any

import numpy as np
import pytest

from retinalnet.training._history import FIELDS
from retinalnet.training._monitor import (
    check_mode,
    check_monitor_name,
    judged_otherwise,
    known_mode,
    refuse_unknown_direction,
    resolve_mode,
)
from retinalnet.training._task import TRAIN_METRICS, VAL_METRICS


@pytest.mark.parametrize(
    ("monitor", "mode"),
    [
        ("val_loss", "min"),
        ("train_loss", "min"),
        ("val_focal_loss", "min"),
        ("lr", "min"),
        ("val_accuracy", "max"),
        ("train_accuracy", "max"),
        ("val_balanced_accuracy", "max"),
        ("val_auc", None),
        ("val_error", None),
        ("val_loss_gap", None),
        ("val_los", None),
        ("seconds", None),
    ],
)
def test_known_mode_from_the_name(monitor: str, mode: str | None) -> None:
    assert known_mode(monitor) == mode


def test_every_metric_the_library_records_has_a_known_direction() -> None:
    recorded = {*TRAIN_METRICS, *VAL_METRICS, *FIELDS} - {"epoch", "seconds"}
    assert {name: known_mode(name) for name in sorted(recorded)} == {
        "lr": "min",
        "train_accuracy": "max",
        "train_loss": "min",
        "val_accuracy": "max",
        "val_loss": "min",
    }


@pytest.mark.parametrize(
    ("monitor", "error", "message"),
    [
        (
            5,
            TypeError,
            "EarlyStopping: monitor must be a metric name such as 'val_loss', got 5; for the "
            "patience, pass EarlyStopping(patience=5)",
        ),
        (np.int64(5), TypeError, "; for the patience, pass EarlyStopping(patience=5)"),
        (2.5, TypeError, "monitor must be a metric name such as 'val_loss', got 2.5"),
        (True, TypeError, "monitor must be a metric name such as 'val_loss', got True"),
        (None, TypeError, "monitor must be a metric name such as 'val_loss', got None"),
        (["val_loss"], TypeError, "got ['val_loss']"),
        ("", ValueError, "EarlyStopping: monitor must be a metric name such as 'val_loss', got ''"),
    ],
)
def test_a_monitor_must_be_a_metric_name(
    monitor: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)) as raised:
        check_monitor_name(monitor, "EarlyStopping")
    if isinstance(monitor, bool | float) or monitor is None:
        assert "patience" not in str(raised.value)


def test_only_early_stopping_is_told_about_patience() -> None:
    with pytest.raises(TypeError) as raised:
        check_monitor_name(5, "ModelCheckpoint")
    assert str(raised.value) == (
        "ModelCheckpoint: monitor must be a metric name such as 'val_loss', got 5"
    )


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("mnx", "EarlyStopping: mode must be 'auto', 'min' or 'max', got 'mnx'"),
        ("MIN", "mode must be 'auto', 'min' or 'max', got 'MIN'"),
        (None, "mode must be 'auto', 'min' or 'max', got None"),
        (5, "got 5; for the patience, pass EarlyStopping(patience=5)"),
    ],
)
def test_a_mode_must_be_auto_min_or_max(mode: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_mode(mode, "EarlyStopping")


@pytest.mark.parametrize("mode", ["auto", "min", "max"])
def test_the_modes_pass(mode: str) -> None:
    assert check_mode(mode, "History.best") == mode


@pytest.mark.parametrize(
    ("monitor", "mode", "resolved"),
    [
        ("val_loss", "auto", "min"),
        ("val_accuracy", "auto", "max"),
        ("val_auc", "auto", "auto"),  # undecided: refused where it is used
        ("val_auc", "max", "max"),
        ("val_error", "min", "min"),
        ("val_accuracy", "max", "max"),
        ("val_loss", "min", "min"),
    ],
)
def test_resolve_mode_without_a_warning(monitor: str, mode: str, resolved: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_mode(monitor, mode, "ModelCheckpoint") == resolved
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize(
    ("monitor", "mode", "message"),
    [
        (
            "val_accuracy",
            "min",
            "ModelCheckpoint: mode='min' keeps the epoch with the lowest 'val_accuracy', of "
            "which higher is better; pass mode='max', or leave mode out ('auto' picks it)",
        ),
        (
            "val_loss",
            "max",
            "ModelCheckpoint: mode='max' keeps the epoch with the highest 'val_loss', of which "
            "lower is better; pass mode='min', or leave mode out ('auto' picks it)",
        ),
    ],
)
def test_a_mode_against_the_known_direction_is_kept_with_a_warning(
    monitor: str, mode: str, message: str
) -> None:
    with pytest.warns(UserWarning, match=re.escape(message)) as caught:
        assert resolve_mode(monitor, mode, "ModelCheckpoint") == mode
    assert [str(w.message) for w in caught] == [message]
    assert caught[0].filename == __file__  # points at the caller, not into retinalnet


def test_auto_is_refused_for_a_metric_whose_name_tells_nothing() -> None:
    refuse_unknown_direction("val_auc", "max", "EarlyStopping")  # decided: nothing to say
    with pytest.raises(ValueError, match="cannot tell") as raised:
        refuse_unknown_direction("val_auc", "auto", "EarlyStopping")
    assert str(raised.value) == (
        "EarlyStopping: retinalnet cannot tell whether a higher or a lower 'val_auc' is "
        "better; pass mode='max' or mode='min' (mode='auto' decides only for lr and names "
        "ending in '_loss' or '_accuracy')"
    )


# ---------------------------------------------------------------------------------------------
# A resumed state: was its best judged as this callback judges?

OLD = {"best_score": 0.25, "best_epoch": 1}  # before 0.2: neither monitor nor mode recorded


@pytest.mark.parametrize(
    ("state", "monitor", "mode", "given", "otherwise", "logged"),
    [
        pytest.param(OLD, "val_loss", "min", "auto", None, None, id="old-loss"),
        pytest.param(OLD, "val_error", "min", "min", None, None, id="old-own-metric"),
        pytest.param(OLD, "val_accuracy", "max", "max", None, None, id="old-explicit-max"),
        # its mode cannot be told: mode="max" (the only right way then) resumes as it ran
        pytest.param(OLD, "val_accuracy", "max", "auto", None, None, id="old-accuracy-auto"),
        pytest.param(
            {**OLD, "monitor": "val_accuracy", "mode": "min"},
            "val_accuracy",
            "max",
            "auto",
            "mode",
            "the resumed EarlyStopping state kept the lowest 'val_accuracy' (mode='min'), and "
            "this one keeps the highest (mode='max'): its epoch 1 (0.25) stays the one to "
            "beat, and patience counts again from here",
            id="recorded-the-other-way",
        ),
        pytest.param(
            {**OLD, "monitor": "val_accuracy", "mode": "max"},
            "val_accuracy",
            "max",
            "auto",
            None,
            None,
            id="new-same",
        ),
        pytest.param(
            {**OLD, "monitor": "val_loss", "mode": "min"},
            "val_accuracy",
            "max",
            "auto",
            "monitor",
            "the resumed EarlyStopping state is of 'val_loss', and this one monitors "
            "'val_accuracy': its best (0.25 at epoch 1) is left out, and the next epoch "
            "starts the best afresh",
            id="new-other-metric",
        ),
        pytest.param(
            {"best_score": None, "best_epoch": None, "monitor": "val_loss", "mode": "min"},
            "val_accuracy",
            "max",
            "auto",
            None,
            None,
            id="no-best-yet",
        ),
    ],
)
def test_judged_otherwise(
    caplog: pytest.LogCaptureFixture,
    state: dict[str, Any],
    monitor: str,
    mode: str,
    given: str,
    otherwise: str | None,
    logged: str | None,
) -> None:
    with caplog.at_level(logging.WARNING, logger="retinalnet.training._monitor"):
        assert judged_otherwise(state, monitor, mode, given, "EarlyStopping") == otherwise
    assert [r.getMessage() for r in caplog.records] == ([logged] if logged else [])
