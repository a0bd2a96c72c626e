"""NumPy values in a checkpoint's history and training state are written as the Python values
they hold, so the file loads with ``weights_only=True``; a value no safe load reads back is
refused by its field and place before a byte is written, by every writer of checkpoints."""

from __future__ import annotations

import datetime
import enum
import fractions
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _training_helpers import tiny_cnn
from retinalnet.checkpoint import load_checkpoint, save_checkpoint, set_checkpoint_temperature
from retinalnet.datasets import SyntheticOCT
from retinalnet.training import Callback, Trainer


class _Opaque:
    """An object of the user's class: ``torch.save`` writes it, a safe load refuses it."""


class _Mode(enum.Enum):
    MIN = "min"


def test_numpy_values_in_every_field_load_back_as_python_values(tmp_path: Path) -> None:
    path = save_checkpoint(
        tmp_path / "best.pt",
        tiny_cnn(),
        epoch=np.int64(2),
        history=[
            {"epoch": np.int64(1), "train_loss": np.float64(0.5), "val_accuracy": np.float32(0.25)},
            {"epoch": 2, "train_loss": np.array(0.125), "val_loss": None},
        ],
        optimizer_state={
            "state": {np.int64(0): {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}},
            "param_groups": [{"lr": np.float32(0.5), "params": [0], "amsgrad": np.bool_(False)}],
        },
        scheduler_state={"last_epoch": np.int64(2), "_last_lr": [np.float64(0.1)]},
        callback_states={"BestSeen": {"best": np.float64(0.25), "seen": np.array([1, 2])}},
        loop_state={"seed": np.int64(7), "order": np.arange(3)},
    )

    loaded = load_checkpoint(path)  # weights_only=True: it used to refuse the numpy scalars

    assert loaded.epoch == 2
    assert type(loaded.epoch) is int
    assert loaded.history == [
        {"epoch": 1, "train_loss": 0.5, "val_accuracy": 0.25},
        {"epoch": 2, "train_loss": 0.125, "val_loss": None},
    ]
    assert [type(value) for value in loaded.history[0].values()] == [int, float, float]
    optimizer = loaded.optimizer_state
    assert optimizer is not None
    assert list(optimizer["state"]) == [0]
    assert torch.equal(optimizer["state"][0]["step"], torch.tensor(3.0))  # a tensor stays one
    assert optimizer["param_groups"] == [{"lr": 0.5, "params": [0], "amsgrad": False}]
    assert type(optimizer["param_groups"][0]["amsgrad"]) is bool
    assert loaded.scheduler_state == {"last_epoch": 2, "_last_lr": [0.1]}
    best = loaded.callback_states["BestSeen"]
    assert best["best"] == 0.25
    assert type(best["best"]) is float
    assert torch.equal(best["seen"], torch.tensor([1, 2]))  # an array is stored as a tensor
    assert loaded.loop_state["seed"] == 7
    assert type(loaded.loop_state["seed"]) is int
    # the file is plain data: a bare safe load reads it, numpy not needed
    torch.load(path, weights_only=True)


@pytest.mark.parametrize(
    ("field", "arguments", "where", "shown", "hint"),
    [
        pytest.param(
            "callbacks",
            {"callback_states": {"MyCallback": {"best": _Opaque()}}},
            r"callbacks\['MyCallback'\]\['best'\]",
            "_Opaque",
            r"return plain Python values .* from that callback's state_dict\(\)",
            id="callback",
        ),
        pytest.param(
            "optimizer",
            {"optimizer_state": {"param_groups": [{"lr": 0.1, "mode": _Mode.MIN}]}},
            r"optimizer\['param_groups'\]\[0\]\['mode'\]",
            "_Mode",
            r"the optimizer's state_dict\(\) must hold tensors and plain Python values",
            id="optimizer",
        ),
        pytest.param(
            "scheduler",
            {"scheduler_state": {"started": datetime.date(2024, 1, 2)}},
            r"scheduler\['started'\]",
            "date",
            r"the scheduler's state_dict\(\)",
            id="scheduler",
        ),
        pytest.param(
            "history",
            {"history": [{"epoch": 1, "train_loss": fractions.Fraction(1, 2)}]},
            r"history\[0\]\['train_loss'\]",
            "Fraction",
            "log plain Python numbers",
            id="history",
        ),
        pytest.param(
            "loop",
            {"loop_state": {"order": range(3)}},
            r"loop\['order'\]",
            "range",
            "store plain Python values and tensors there",
            id="loop",
        ),
    ],
)
def test_a_value_no_safe_load_reads_back_is_refused_before_a_byte_is_written(
    tmp_path: Path, field: str, arguments: dict[str, Any], where: str, shown: str, hint: str
) -> None:
    path = save_checkpoint(tmp_path / "best.pt", tiny_cnn(), epoch=1)
    before = path.read_bytes()

    with pytest.raises(ValueError, match=r"^cannot write checkpoint ") as info:
        save_checkpoint(path, tiny_cnn(), epoch=2, **arguments)

    message = str(info.value)
    assert re.fullmatch(
        rf"cannot write checkpoint '.*best\.pt': field '{field}' holds {shown} .* at {where}, "
        rf"which a load with weights_only=True does not read back: .*{hint}.*; nothing was "
        "written",
        message,
    ), message
    assert "\n" not in message
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary file left
    assert load_checkpoint(path).epoch == 1


def test_a_calibrated_checkpoint_of_numpy_values_loads(tmp_path: Path) -> None:
    """set_checkpoint_temperature (TemperatureScaling, ``retinalnet calibrate``) rewrites a
    checkpoint through the same door."""
    path = save_checkpoint(
        tmp_path / "best.pt", tiny_cnn(), callback_states={"A": {"best": np.float64(0.5)}}
    )

    set_checkpoint_temperature(path, np.float32(1.5))

    loaded = load_checkpoint(path)
    assert loaded.temperature == 1.5
    assert loaded.callback_states == {"A": {"best": 0.5}}


# ---------------------------------------------------------------------------------------------
# Through the Trainer: a user callback whose state holds NumPy numbers


class _BestSeen(Callback):
    """Keeps the lowest training loss as a NumPy number, as code built on NumPy does."""

    def __init__(self, *, opaque: bool = False) -> None:
        self.best = np.float64(np.inf)
        self.opaque = opaque
        self.loaded: dict[str, Any] | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        self.best = min(self.best, np.float64(metrics["train_loss"]))

    def state_dict(self) -> dict[str, Any]:
        return {"best": _Opaque() if self.opaque else self.best, "epochs": np.int64(1)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.loaded = dict(state)
        self.best = np.float64(state["best"])


def _fit(out: Path, callback: _BestSeen, *, epochs: int, resume: bool = False) -> Trainer:
    torch.manual_seed(0)
    trainer = Trainer(
        tiny_cnn(),
        max_epochs=epochs,
        batch_size=4,
        callbacks=[callback],
        out_dir=out,
        progress=False,
        seed=0,
        device="cpu",
    )
    data = SyntheticOCT(4, shape=(40, 40), seed=0)
    trainer.fit(data, resume_from=out / "last.pt" if resume else None)
    return trainer


def test_a_fit_with_a_callback_holding_numpy_numbers_leaves_files_that_load_and_resume(
    tmp_path: Path,
) -> None:
    first = _BestSeen()
    _fit(tmp_path, first, epochs=1)

    for name in ("best.pt", "last.pt"):
        state = load_checkpoint(tmp_path / name).callback_states["_BestSeen"]
        assert state == {"best": float(first.best), "epochs": 1}
        assert type(state["best"]) is float

    resumed = _BestSeen()
    trainer = _fit(tmp_path, resumed, epochs=2, resume=True)

    assert resumed.loaded == {"best": float(first.best), "epochs": 1}
    assert len(trainer.history) == 2
    assert load_checkpoint(tmp_path / "last.pt").epoch == 2


def test_a_fit_with_a_callback_state_no_load_reads_keeps_the_files_it_wrote(
    tmp_path: Path,
) -> None:
    _fit(tmp_path, _BestSeen(), epochs=1)
    before = {name: (tmp_path / name).read_bytes() for name in ("best.pt", "last.pt")}

    with pytest.raises(ValueError, match=r"callbacks\['_BestSeen'\]\['best'\]") as info:
        _fit(tmp_path, _BestSeen(opaque=True), epochs=2, resume=True)

    assert "field 'callbacks' holds _Opaque" in str(info.value)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert load_checkpoint(tmp_path / "last.pt").epoch == 1
