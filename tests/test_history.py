"""History: records, CSV, columns and the best epoch."""

from __future__ import annotations

import csv
import errno
import logging
import math
import os
import sys
import typing
from dataclasses import fields
from pathlib import Path

import pytest

from retinalnet._core import files
from retinalnet.training import EpochRecord, History

FIELDS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds", "lr"]


def _record(epoch: int, val_loss: float | None, val_accuracy: float | None = None) -> EpochRecord:
    return EpochRecord(
        epoch=epoch,
        train_loss=1.0 / epoch,
        train_accuracy=0.1 * epoch,
        val_loss=val_loss,
        val_accuracy=val_accuracy,
        seconds=0.5 + epoch,
        lr=1e-3,
    )


def _history(*val_losses: float | None) -> History:
    return History([_record(i, loss) for i, loss in enumerate(val_losses, start=1)])


def test_history_is_a_sequence_of_records() -> None:
    history = _history(0.9, 0.8, 0.7)

    assert len(history) == 3
    assert history[0].epoch == 1
    assert history[-1].val_loss == 0.7
    assert [record.epoch for record in history[1:]] == [2, 3]
    assert [record.epoch for record in history] == [1, 2, 3]
    assert repr(history) == "History(epochs=3, stop_reason=None)"
    history.append(_record(4, 0.6))
    assert len(history) == 4


def test_indexing_is_typed_a_record_for_an_int_and_a_list_for_a_slice() -> None:
    """``history[-1].val_acuracy`` (a typo) is caught by a type checker: ``__getitem__``
    says what it returns instead of ``Any``."""
    hints = typing.get_type_hints(History.__getitem__)
    assert hints["return"] == EpochRecord | list[EpochRecord]
    if sys.version_info >= (3, 11):
        overloads = typing.get_overloads(History.__getitem__)
        returns = {
            typing.get_type_hints(o)["index"]: typing.get_type_hints(o)["return"] for o in overloads
        }
        assert returns == {int: EpochRecord, slice: list[EpochRecord]}
    history = _history(0.9, 0.8)
    assert isinstance(history[-1], EpochRecord)
    assert isinstance(history[:1], list)


def test_column_is_typed_a_list_of_floats_or_none() -> None:
    """``max(history.column("val_accuracy"))`` of a fit without validation data (every
    value ``None``) is caught by a type checker: ``column`` says what it returns instead of
    ``list[Any]``."""
    assert typing.get_type_hints(History.column)["return"] == list[float | None]
    values = _history(0.9, None).column("val_loss")
    assert all(value is None or isinstance(value, float) for value in values)


def test_records_round_trip() -> None:
    history = _history(0.9, None, 0.7)

    records = history.to_records()

    assert [list(record) for record in records] == [FIELDS] * 3
    assert records[1]["val_loss"] is None
    assert records[2] == {
        "epoch": 3,
        "train_loss": 1 / 3,
        "train_accuracy": 0.1 * 3,
        "val_loss": 0.7,
        "val_accuracy": None,
        "seconds": 3.5,
        "lr": 1e-3,
    }
    assert list(History.from_records(records)) == list(history)


def test_to_csv_writes_a_header_and_one_row_per_epoch(tmp_path: Path) -> None:
    history = _history(0.9, None, 0.7)

    path = history.to_csv(tmp_path / "history.csv")

    assert path == tmp_path / "history.csv"
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == FIELDS
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert [row["val_loss"] for row in rows] == ["0.9", "", "0.7"]
    assert [float(row["train_loss"]) for row in rows] == history.column("train_loss")
    assert [float(row["seconds"]) for row in rows] == [1.5, 2.5, 3.5]


def test_column_gives_one_metric_across_epochs() -> None:
    history = _history(0.9, None, 0.7)

    assert history.column("val_loss") == [0.9, None, 0.7]
    assert history.column("epoch") == [1, 2, 3]
    assert _history().column("val_loss") == []


def test_an_unknown_column_lists_the_known_ones() -> None:
    with pytest.raises(
        KeyError,
        match=r"no metric 'val_los' in the history; available: epoch, train_loss, "
        r"train_accuracy, val_loss, val_accuracy, seconds, lr",
    ):
        _history(0.9).column("val_los")
    assert [f.name for f in fields(EpochRecord)] == [*FIELDS, "extra"]


@pytest.mark.parametrize(
    ("val_losses", "best_epoch"),
    [
        ([0.9, 0.8, 0.85], 2),
        ([math.nan, 0.5, None, 0.3, math.nan], 4),
        ([0.4, math.nan, 0.4], 1),  # the first of equal values
        ([None, 2.0], 2),
    ],
)
def test_best_ignores_nan_and_missing_values(
    val_losses: list[float | None], best_epoch: int
) -> None:
    assert _history(*val_losses).best().epoch == best_epoch


def test_best_in_max_mode() -> None:
    history = History(
        [
            _record(1, 0.5, 0.5),
            _record(2, 0.6, math.nan),
            _record(3, 0.7, 0.75),
            _record(4, 0.8, 0.7),
        ]
    )

    assert history.best("val_accuracy", mode="max").epoch == 3
    assert history.best("train_loss").epoch == 4
    assert history.best("train_accuracy", mode="max").epoch == 4


@pytest.mark.parametrize("val_losses", [[], [None, None], [math.nan, None]])
def test_best_without_any_value_is_an_error(val_losses: list[float | None]) -> None:
    with pytest.raises(ValueError, match=r"no epoch has a 'val_loss' value"):
        _history(*val_losses).best()


def test_best_of_an_unknown_metric_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no metric 'accuracy'"):
        _history(0.9).best("accuracy")


def test_best_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        _history(0.9, 0.1).best(mode="mni")


def _accuracies() -> History:
    # the lowest val_accuracy at epoch 1, the highest at epoch 3; train_accuracy rises
    return History([_record(1, 0.5, 0.25), _record(2, 0.6, 0.5), _record(3, 0.7, 0.75)])


@pytest.mark.parametrize(
    ("monitor", "epoch"),
    [("val_accuracy", 3), ("train_accuracy", 3), ("val_loss", 1), ("train_loss", 3), ("lr", 1)],
)
def test_best_by_default_keeps_the_highest_accuracy_and_the_lowest_loss(
    monitor: str, epoch: int
) -> None:
    assert _accuracies().best(monitor).epoch == epoch


def test_best_with_a_mode_against_the_metric_warns_and_keeps_it() -> None:
    with pytest.warns(
        UserWarning,
        match=r"History\.best: mode='min' keeps the epoch with the lowest 'val_accuracy', of "
        r"which higher is better; pass mode='max'",
    ):
        assert _accuracies().best("val_accuracy", mode="min").epoch == 1


def test_best_of_a_metric_of_your_own_needs_a_mode() -> None:
    history = History([_with_extra(1, 0.7), _with_extra(2, 0.9)])

    with pytest.raises(
        ValueError,
        match=r"History\.best: retinalnet cannot tell whether a higher or a lower 'val_auc' is "
        r"better; pass mode='max' or mode='min'",
    ):
        history.best("val_auc")
    assert history.best("val_auc", mode="max").epoch == 2
    assert history.best("val_auc", mode="min").epoch == 1


def test_best_of_a_monitor_that_is_not_a_name_is_a_type_error() -> None:
    with pytest.raises(
        TypeError, match=r"History\.best: monitor must be a metric name such as 'val_loss', got 5"
    ):
        _accuracies().best(5)  # type: ignore[arg-type]


def test_metrics_of_a_record_leave_out_epoch_seconds_and_missing_values() -> None:
    assert _record(2, None).metrics() == {"train_loss": 0.5, "train_accuracy": 0.2, "lr": 1e-3}
    assert _record(2, 0.25, 0.5).metrics() == {
        "train_loss": 0.5,
        "train_accuracy": 0.2,
        "val_loss": 0.25,
        "val_accuracy": 0.5,
        "lr": 1e-3,
    }


# ---------------------------------------------------------------------------------------------
# Metrics by name beyond the fields: a task's validation metrics, values callbacks logged


def _with_extra(epoch: int, auc: float | None) -> EpochRecord:
    record = _record(epoch, 1.0 / epoch, 0.5)
    extra = {"val_auc": auc} if auc is not None else {}
    return EpochRecord(**{**record.to_dict(), "extra": extra})


def test_extra_metrics_are_columns_of_the_history() -> None:
    history = History([_with_extra(1, 0.7), _with_extra(2, None), _with_extra(3, 0.9)])

    assert history.names == (*FIELDS, "val_auc")
    assert history.column("val_auc") == [0.7, None, 0.9]
    assert history.best("val_auc", mode="max").epoch == 3
    assert history[0].metrics()["val_auc"] == 0.7
    assert "val_auc" not in history[1].metrics()
    with pytest.raises(KeyError, match=r"available: epoch, .*, lr, val_auc"):
        history.column("auc")


def test_extra_metrics_round_trip_flat_through_records_and_csv(tmp_path: Path) -> None:
    history = History([_with_extra(1, 0.7), _with_extra(2, None)])

    records = history.to_records()

    assert records[0] == {**_record(1, 1.0, 0.5).to_dict(), "val_auc": 0.7}
    assert list(records[1]) == FIELDS  # no value, no key
    assert list(History.from_records(records)) == list(history)
    with open(history.to_csv(tmp_path / "history.csv"), newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == [*FIELDS, "val_auc"]
    assert [row["val_auc"] for row in rows] == ["0.7", ""]


def test_a_record_without_a_field_is_refused() -> None:
    with pytest.raises(ValueError, match=r"missing: val_loss, val_accuracy, seconds, lr"):
        EpochRecord.from_dict({"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5})


def test_records_of_0_1_checkpoints_still_load() -> None:
    old = {
        "epoch": 1,
        "train_loss": 0.9,
        "train_accuracy": 0.5,
        "val_loss": None,
        "val_accuracy": None,
        "seconds": 2.0,
        "lr": 1e-3,
    }
    (record,) = History.from_records([old])
    assert record.extra == {}
    assert record.to_dict() == old


# ---------------------------------------------------------------------------------------------
# Records read back (from a checkpoint being resumed) are checked field by field


_GOOD = {
    "epoch": 1,
    "train_loss": 0.9,
    "train_accuracy": 0.5,
    "val_loss": None,
    "val_accuracy": None,
    "seconds": 2.0,
    "lr": 1e-3,
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epoch": "1"}, r"'epoch' must be an int >= 1, got '1'"),
        ({"epoch": 1.0}, r"'epoch' must be an int >= 1, got 1\.0"),
        ({"epoch": 0}, r"'epoch' must be an int >= 1, got 0"),
        ({"epoch": True}, r"'epoch' must be an int >= 1, got True"),
        ({"train_loss": "0.9"}, r"epoch 1: metric 'train_loss' must be a number, got '0\.9'"),
        ({"train_loss": None}, r"metric 'train_loss' must be a number, got None"),
        ({"lr": [1e-3]}, r"metric 'lr' must be a number, got \[0\.001\]"),
        ({"val_loss": "low"}, r"metric 'val_loss' must be a number or None, got 'low'"),
        ({"val_auc": {"a": 1}}, r"metric 'val_auc' must be a number or None"),
        ({"seconds": False}, r"metric 'seconds' must be a number, got False"),
    ],
)
def test_a_record_with_a_malformed_value_is_refused(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        History.from_records([{**_GOOD, **changes}])


def test_nan_and_integer_metrics_are_numbers() -> None:
    (record,) = History.from_records([{**_GOOD, "train_loss": math.nan, "lr": 1}])
    assert math.isnan(record.train_loss)
    assert record.lr == 1


# ---------------------------------------------------------------------------------------------
# The CSV file is written whole or not at all


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_a_refused_csv_write_names_the_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    path = _history(0.9).to_csv(tmp_path / "history.csv")
    before = path.read_bytes()

    def refused(*args: object, **kwargs: object) -> object:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.tempfile, "mkstemp", refused)
    with pytest.raises(
        OSError, match=rf"^cannot write '.*history\.csv': .*\[{errno.errorcode[code]}\]"
    ):
        _history(0.9, 0.8).to_csv(path)

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]


def test_a_history_saved_by_hand_is_left_out_of_a_figure_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``evaluate --report/--plots`` of a checkpoint saved with ``history=[{"epoch": 1}]``
    failed after all the evaluation's work; the history is left out with a word instead."""
    from retinalnet.training._history import drawable_history

    assert drawable_history([]) is None
    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        assert drawable_history([{"epoch": 1}]) is None
    assert "training history is left out: an epoch record needs" in caplog.text
    whole = {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": None,
             "val_accuracy": None, "seconds": 1.0, "lr": 0.1}  # fmt: skip
    drawn = drawable_history([whole])
    assert drawn is not None
    assert drawn[0].train_loss == 1.0
