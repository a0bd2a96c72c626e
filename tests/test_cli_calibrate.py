"""``retinalnet calibrate`` beside a training run writing the checkpoint: the temperature goes
on the weights it was fitted on or nowhere, a run's newer checkpoint is never replaced, and a
live run in the checkpoint's folder is named before any work."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

import retinalnet.training
from _checkpoint_swap import rename_over, replaced_after_load, sha256, two_checkpoints
from retinalnet.checkpoint import load_checkpoint
from retinalnet.cli import main
from retinalnet.datasets import make_synthetic_kermany
from retinalnet.models import Classifier
from retinalnet.training import CalibrationResult

FITTED = CalibrationResult(1.5, True, 8, 0.2, 0.1, 1.3, 1.2)
LEFT_OUT = CalibrationResult(1000.0, False, 8, 0.1, 0.1, 0.5, 0.5)  # every image right


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("calibrate") / "data"
    return make_synthetic_kermany(root, train=1, val=2, test=1, shape=(40, 40), seed=0)


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``run/best.pt`` holding epoch 1 (``A.pt``), and the run's next epoch ``B.pt``."""
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "run" / "best.pt"
    best.parent.mkdir()
    rename_over(first, best)
    return best, first, newer


def _fit_gives(monkeypatch: pytest.MonkeyPatch, result: CalibrationResult) -> list[float]:
    """Make the fit give ``result`` at once; the temperatures of the models it fits."""
    fitted: list[float] = []

    def fit(model: Classifier, *args: object, **kwargs: object) -> object:
        fitted.append(model.temperature)
        return result

    monkeypatch.setattr(retinalnet.training, "calibrate", fit)
    return fitted


@pytest.mark.parametrize("out", [None, "calibrated.pt"])
def test_a_temperature_never_goes_on_weights_a_run_wrote_after_they_were_loaded(
    data: Path,
    run: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    out: str | None,
) -> None:
    """Was: the digest compared before writing was taken from the path after the load, so
    epoch 2's weights (written meanwhile) got the temperature fitted on epoch 1's."""
    best, _, newer = run
    _fit_gives(monkeypatch, FITTED)
    replaced_after_load(monkeypatch, "retinalnet.checkpoint.load_checkpoint", best, newer)
    target = best.parent.parent / out if out else None
    argv = ["calibrate", "--checkpoint", str(best), "--data", str(data), "-q"]

    assert main([*argv, *(["--out", str(target)] if target else [])]) == 1

    error = capsys.readouterr().err
    assert "changed after the temperature was fitted on it (now epoch 2" in error
    assert best.read_bytes() == newer.read_bytes()  # the run's file, untouched
    assert target is None or not target.exists()


def test_calibrate_out_copies_the_checkpoint_it_loaded_or_nothing(
    data: Path,
    run: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The fit left out, --out gets the checkpoint as it was: was, the file as it was at the
    end (the run's next epoch), beside a result printed for the one loaded."""
    best, first, newer = run
    _fit_gives(monkeypatch, LEFT_OUT)
    out = best.parent.parent / "calibrated.pt"
    argv = ["calibrate", "--checkpoint", str(best), "--data", str(data), "--out", str(out), "-q"]

    assert main(argv) == 0
    assert out.read_bytes() == first.read_bytes()

    out.unlink()
    replaced_after_load(monkeypatch, "retinalnet.checkpoint.load_checkpoint", best, newer)
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "best.pt' changed after it was loaded (did a training run write it?); nothing" in error
    assert not out.exists()


def _lock_of(folder: Path, pid: int) -> None:
    owner = {
        "pid": pid,
        "host": socket.gethostname(),
        "started": "2026-01-02T03:04:05+00:00",
        "time": time.time() + 60,
        "program": "retinalnet train --out run",
        "token": "0" * 32,
    }
    (folder / "run.lock").write_text(json.dumps(owner))


def test_calibrate_in_place_is_refused_while_a_run_holds_the_folder(
    data: Path,
    run: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sleeper: subprocess.Popen[bytes],
) -> None:
    """A live run writes best.pt whenever validation improves: was, calibrate wrote into it
    regardless, and could put back an older best.pt over the run's newer one."""
    best, first, _ = run
    fitted = _fit_gives(monkeypatch, FITTED)
    pid = sleeper.pid
    _lock_of(best.parent, pid)
    argv = ["calibrate", "--checkpoint", str(best), "--data", str(data), "-q"]

    assert main(argv) == 1

    error = capsys.readouterr().err
    assert error.startswith(
        f"retinalnet calibrate: error: {str(best.parent)!r} is in use by another run: process "
        f"{pid} on this host"
    )
    assert error.count("\n") == 1  # one line
    assert fitted == []  # refused before any work
    assert best.read_bytes() == first.read_bytes()

    out = best.parent.parent / "calibrated.pt"  # a copy elsewhere: the run's files untouched
    assert main([*argv, "--out", str(out)]) == 0
    assert load_checkpoint(out).temperature == 1.5


def test_calibrate_in_place_holds_the_run_lock_while_it_works(
    data: Path, run: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that no run starts writing best.pt between the read and the write."""
    best, first, _ = run
    holders: list[int] = []

    def fit(*args: object, **kwargs: object) -> object:
        holders.append(json.loads((best.parent / "run.lock").read_text())["pid"])
        return FITTED

    monkeypatch.setattr(retinalnet.training, "calibrate", fit)
    argv = ["calibrate", "--checkpoint", str(best), "--data", str(data), "-q"]

    assert main(argv) == 0

    assert holders == [os.getpid()]
    assert sorted(p.name for p in best.parent.iterdir()) == ["best.pt"]  # released
    written = load_checkpoint(best)
    assert (written.temperature, written.epoch) == (1.5, 1)
    assert sha256(best) != sha256(first)
