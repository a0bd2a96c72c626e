"""``retinalnet info``: what a checkpoint is, in lines or JSON, and one line for a bad file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from retinalnet._core.files import file_digest
from retinalnet._version import __version__
from retinalnet.checkpoint import save_checkpoint
from retinalnet.cli import main
from retinalnet.export import describe
from retinalnet.models import Classifier, create_model, parameter_summary
from retinalnet.transforms import Preprocessing

HISTORY = [
    {"epoch": 1, "train_loss": 1.2, "train_accuracy": 0.4, "val_loss": 0.9,
     "val_accuracy": 0.5, "seconds": 10.0, "lr": 1e-3},
    {"epoch": 2, "train_loss": 0.8, "train_accuracy": 0.7, "val_loss": 0.6,
     "val_accuracy": 0.75, "seconds": 11.0, "lr": 1e-3},
    {"epoch": 3, "train_loss": 0.6, "train_accuracy": 0.8, "val_loss": 0.7,
     "val_accuracy": 0.8125, "seconds": 12.5, "lr": 1e-4},
]  # fmt: skip


@pytest.fixture
def model() -> Classifier:
    torch.manual_seed(0)
    return create_model(
        "small_cnn", weights=None, preprocessing=Preprocessing(size=32, reduced_decode=True)
    )


@pytest.fixture
def checkpoint(tmp_path: Path, model: Classifier) -> Path:
    return save_checkpoint(
        tmp_path / "best.pt",
        model,
        epoch=3,
        history=HISTORY,
        optimizer_state={"state": {}, "param_groups": []},
        loop_state={"seed": 7},
    )


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["info", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_says_what_the_checkpoint_is(
    checkpoint: Path, model: Classifier, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, str(checkpoint), "--json")
    assert status == 0
    info: dict[str, Any] = json.loads(out)
    summary = parameter_summary(model)
    assert info["kind"] == "checkpoint"
    assert info["arch"] == "small_cnn"
    assert info["classes"] == ["CNV", "DME", "DRUSEN", "NORMAL"]
    assert info["preprocessing"] == model.preprocessing.to_dict()
    assert info["parameters"] == {"total": summary.total, "trainable": summary.trainable}
    assert info["sha256"] == file_digest(checkpoint).hex()
    assert info["retinalnet_version"] == __version__
    assert info["temperature"] is None  # not calibrated
    training = info["training"]
    assert training["epochs"] == 3
    assert training["seed"] == 7
    assert training["best_val_loss"] == {"epoch": 2, "value": 0.6}
    assert training["best_val_accuracy"] == {"epoch": 3, "value": 0.8125}
    assert training["seconds"] == pytest.approx(33.5)
    assert training["resumable"] is True
    assert training["last_epoch"]["train_loss"] == 0.6


def test_lines_for_a_person(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, str(checkpoint))
    assert status == 0
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert lines["architecture"] == "small_cnn"
    assert lines["classes"] == "CNV, DME, DRUSEN, NORMAL"
    assert "resize 37, centre crop 32" in lines["preprocessing"]
    assert "reduced JPEG decode" in lines["preprocessing"]
    assert lines["best val loss"] == "0.6000 (epoch 2)"
    assert lines["best val acc"] == "81.2% (epoch 3)"
    assert lines["temperature"] == "none (not calibrated)"
    assert lines["sha256"] == file_digest(checkpoint).hex()


def test_a_calibrated_model_shows_its_temperature(tmp_path: Path, model: Classifier) -> None:
    model.temperature = 1.5  # what calibration (TemperatureScaling, calibrate) leaves
    path = save_checkpoint(tmp_path / "calibrated.pt", model)
    assert describe(path)["temperature"] == 1.5


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no checkpoint file"),
        (b"not a checkpoint", "is not a PyTorch checkpoint file"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(
    tmp_path: Path, content: bytes | None, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    status, out, err = _run(capsys, str(path))
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("retinalnet info: error: ")
    assert expected in err
    assert str(path) in err


def test_a_file_that_is_not_a_checkpoint_dict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    status, _, err = _run(capsys, str(path))
    assert status == 1
    assert "is not a retinalnet checkpoint" in err


def test_a_missing_onnx_package_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "onnx" else real(name)
    )
    status, _, err = _run(capsys, str(tmp_path / "model.onnx"))
    assert status == 1
    assert err == (
        "retinalnet info: error: reading an ONNX file needs onnx, not installed: pip install "
        "'retinalnet[onnx]'\n"
    )
