"""The demo: synthetic data -> train -> evaluate -> predict, offline."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.models import vgg16

import retinalnet.demo
from retinalnet.cli import main
from retinalnet.demo import run_demo, write_demo_data
from retinalnet.models import cached_weights_path
from retinalnet.training import EarlyStopping, RunLockedError, Trainer


@pytest.fixture
def no_cached_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    assert not cached_weights_path().exists()


@pytest.mark.usefixtures("no_cached_weights")
def test_demo_falls_back_to_small_cnn_and_says_so_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        result = run_demo(tmp_path / "demo", epochs=1, train_per_class=3, eval_per_class=2, size=32)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "weights not found" in warnings[0]
    assert "small_cnn" in warnings[0]
    assert result.model_name.startswith("small_cnn")
    assert result.checkpoint.is_file()
    assert result.test.num_samples == 8
    assert len(result.history) == 1
    assert 0 <= result.best_val_accuracy <= 1
    assert result.predictions
    assert all(len(p.top) == 2 for p in result.predictions)
    assert {Path(p.source).parent.name for p in result.predictions} <= set(result.test.classes)


@pytest.mark.usefixtures("no_cached_weights")
def test_demo_uses_vgg16_from_a_local_weights_file(tmp_path: Path) -> None:
    weights = tmp_path / "vgg16-397923af.pth"
    torch.manual_seed(0)
    torch.save(vgg16(weights=None).state_dict(), weights)
    result = run_demo(
        tmp_path / "demo",
        weights=weights,
        epochs=1,
        train_per_class=2,
        eval_per_class=1,
        size=32,
    )
    assert result.model_name.startswith("vgg16_transfer")
    assert result.checkpoint.is_file()


@pytest.mark.usefixtures("no_cached_weights")
def test_default_demo_reaches_90_percent_validation_accuracy_offline(tmp_path: Path) -> None:
    # The acceptance check of `retinalnet demo`: default settings, no weights, no network.
    result = run_demo(tmp_path / "demo", progress=False)
    assert result.model_name.startswith("small_cnn")
    assert result.best_val_accuracy >= 0.90
    assert result.test.accuracy >= 0.85
    scan = next((result.data_dir / "train" / "CNV").iterdir())
    with Image.open(scan) as image:
        assert image.size == (256, 248)  # half a real scan: a quarter of the writing time


def test_demo_never_writes_into_a_data_folder_it_did_not_create(tmp_path: Path) -> None:
    user_data = tmp_path / "demo" / "data"
    user_data.mkdir(parents=True)
    (user_data / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="was not written by the demo"):
        run_demo(tmp_path / "demo", epochs=1, train_per_class=1, eval_per_class=1)
    assert (user_data / "mine.txt").read_text() == "precious"


@pytest.mark.usefixtures("no_cached_weights")
def test_demo_replaces_its_own_earlier_output(tmp_path: Path) -> None:
    settings = {"epochs": 1, "train_per_class": 2, "eval_per_class": 1, "size": 32}
    run_demo(tmp_path / "demo", seed=1, **settings)
    result = run_demo(tmp_path / "demo", seed=2, **settings)
    assert len(list((result.data_dir / "train").rglob("*.jpeg"))) == 8


@pytest.mark.usefixtures("no_cached_weights")
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"epochs": 0}, ValueError, r"epochs must be an int >= 1, got 0"),
        ({"train_per_class": 0}, ValueError, r"train_per_class must be an int >= 1, got 0"),
        ({"eval_per_class": -1}, ValueError, r"eval_per_class must be an int >= 1, got -1"),
        ({"seed": -2}, ValueError, r"seed must be an int >= 0, got -2"),
        ({"size": 16}, ValueError, r"size must be an int from 32 to 2048"),
        (
            {"weights": "missing/vgg16.pth"},
            FileNotFoundError,
            r"'missing/vgg16.pth' does not exist",
        ),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        run_demo(tmp_path / "demo", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "demo").exists()


@pytest.mark.usefixtures("no_cached_weights")
@pytest.mark.parametrize(
    "start",
    [
        lambda out: run_demo(out, epochs=1, train_per_class=1, eval_per_class=1, size=32),
        lambda out: write_demo_data(out, train_per_class=1, eval_per_class=1),
    ],
    ids=["run_demo", "write_demo_data"],
)
def test_a_second_demo_into_the_same_folder_leaves_the_first_ones_data_alone(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], start: Callable[[Path], object]
) -> None:
    out = tmp_path / "demo"
    data = write_demo_data(out, train_per_class=1, eval_per_class=1, shape=(32, 32))
    (data / "read-by-the-first-demo.txt").write_text("in use")
    owner = {
        "pid": sleeper.pid,
        "host": socket.gethostname(),
        "started": "2026-01-02T03:04:05+01:00",
        "time": time.time(),
        "program": f"retinalnet demo --out {out}",
        "token": "0" * 32,
    }
    (out / "run.lock").write_text(json.dumps(owner))

    # it used to delete the first demo's data, which then failed mid-epoch
    with pytest.raises(RunLockedError, match=rf"^{re.escape(repr(str(out)))} is in use by another"):
        start(out)

    assert (data / "read-by-the-first-demo.txt").read_text() == "in use"
    assert not (out / "checkpoints").exists()


# ---------------------------------------------------------------------------------------------
# Writing the demo's data again deletes only what the demo wrote


def test_writing_the_demo_data_again_never_deletes_a_file_added_to_it(tmp_path: Path) -> None:
    data = write_demo_data(tmp_path, train_per_class=1, eval_per_class=1, shape=(32, 32))
    added = data / "train" / "CNV" / "CNV-my-own-scan.jpeg"
    added.write_bytes(b"the user's scan")

    with pytest.raises(
        FileExistsError,
        match=rf"^{re.escape(repr(str(data)))} holds 1 file\(s\) the demo did not write \(e\.g\. "
        r"'train/CNV/CNV-my-own-scan\.jpeg'\), which writing its scans again would delete; "
        r"move them out of it, or choose another output folder \(--out\)$",
    ):
        write_demo_data(tmp_path, train_per_class=1, eval_per_class=1, shape=(32, 32))

    assert added.read_bytes() == b"the user's scan"
    added.unlink()
    again = write_demo_data(tmp_path, train_per_class=2, eval_per_class=1, shape=(32, 32))
    assert len(list((again / "train" / "CNV").iterdir())) == 2


def test_the_data_of_a_demo_whose_marker_lists_no_files_is_written_again(tmp_path: Path) -> None:
    data = write_demo_data(tmp_path, train_per_class=1, eval_per_class=1, shape=(32, 32))
    marker = data / ".retinalnet-demo"
    marker.write_text("synthetic scans written by `retinalnet demo`\n")  # as 0.1 wrote it

    write_demo_data(tmp_path, train_per_class=1, eval_per_class=1, shape=(32, 32))

    assert len(marker.read_text().splitlines()) == 1 + 3 * 4  # its header, then its files


@pytest.mark.usefixtures("no_cached_weights")
def test_two_demos_with_the_same_seed_give_the_same_model(tmp_path: Path) -> None:
    # was: the model was built before seeding, so each run started from other weights
    settings = {"epochs": 1, "train_per_class": 2, "eval_per_class": 1, "size": 32, "seed": 0}
    torch.manual_seed(1)
    first = run_demo(tmp_path / "a", progress=False, **settings)
    torch.manual_seed(2)  # what the host drew before must not matter
    second = run_demo(tmp_path / "b", progress=False, **settings)
    weights = [
        torch.load(r.checkpoint, weights_only=True)["model"]["state_dict"] for r in (first, second)
    ]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=0, atol=0)
    losses = [[(e.train_loss, e.val_loss) for e in r.history] for r in (first, second)]
    assert losses[0] == losses[1]


# ---------------------------------------------------------------------------------------------
# A demo stopped while it replaces its data never blocks the next one


def _rmtree_stopped_after_the_marker(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """``shutil.rmtree`` removing the ``.retinalnet-demo`` marker of the folder it is given
    and then a few scans (ext4 lists the marker first), then Ctrl-C; the folders given."""
    import shutil

    real = shutil.rmtree
    given: list[Path] = []

    def stopped(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        given.append(Path(path))
        (Path(path) / ".retinalnet-demo").unlink(missing_ok=True)
        for scan in sorted(Path(path).rglob("*.jpeg"))[:3]:
            scan.unlink()
        monkeypatch.setattr(shutil, "rmtree", real)  # once
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", stopped)
    return given


def test_a_demo_stopped_while_removing_its_old_data_does_not_block_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the marker went first, and every later demo refused the folder as "not written
    by the demo" (its own scans, unmarked)."""
    settings = {"train_per_class": 1, "eval_per_class": 1, "shape": (32, 32)}
    data = write_demo_data(tmp_path, **settings)  # type: ignore[arg-type]
    given = _rmtree_stopped_after_the_marker(monkeypatch)

    with pytest.raises(KeyboardInterrupt):
        write_demo_data(tmp_path, **settings)  # type: ignore[arg-type]
    assert given

    again = write_demo_data(tmp_path, train_per_class=2, eval_per_class=1, shape=(32, 32))
    assert again == data
    assert len(list((data / "train" / "CNV").iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing left aside


def test_a_demo_stopped_before_its_marker_is_written_does_not_block_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: ``data/`` was made, then its marker written: stopped between, an empty folder
    without a marker that every later demo refused."""
    import retinalnet._core.files

    written: list[str] = []

    def stopped(path: object, *args: object, **kwargs: object) -> None:
        written.append(Path(str(path)).name)
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(Path, "write_text", stopped)  # how the marker was written
        patched.setattr(retinalnet._core.files, "atomic_write", stopped)  # how it is now
        with pytest.raises(KeyboardInterrupt):
            write_demo_data(tmp_path, train_per_class=1, eval_per_class=1, shape=(32, 32))
    assert written == [".retinalnet-demo"]  # stopped there

    data = write_demo_data(tmp_path, train_per_class=1, eval_per_class=1, shape=(32, 32))
    assert len(list((data / "train").rglob("*.jpeg"))) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_temporary_files_a_killed_demo_left_in_its_data_do_not_block_the_next(
    tmp_path: Path,
) -> None:
    """``kill -9`` while a scan or the marker was written leaves the temporary file it was
    written through (``.NAME.XXXXXXXX.tmp``): was refused as "1 file(s) the demo did not
    write"."""
    data = write_demo_data(tmp_path, train_per_class=1, eval_per_class=1, shape=(32, 32))
    scan = next((data / "train" / "CNV").iterdir())
    (scan.parent / f".{scan.name}.k3j9x2a1.tmp").write_bytes(b"half a scan")
    (data / "..retinalnet-demo.abc_1234.tmp").write_text("synthetic scans written by")
    mine = data / ".notes.txt.k3j9x2a1.tmp"  # a name the demo never writes: the user's

    write_demo_data(tmp_path, train_per_class=1, eval_per_class=1, shape=(32, 32))
    assert not list(data.rglob("*.tmp"))

    mine.write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds 1 file\(s\) the demo did not write"):
        write_demo_data(tmp_path, train_per_class=1, eval_per_class=1, shape=(32, 32))
    assert mine.read_text() == "mine"


@pytest.mark.parametrize("target", ["missing", "elsewhere"], ids=["dangling", "to-a-folder"])
def test_a_data_folder_that_is_a_link_is_refused_in_one_line(tmp_path: Path, target: str) -> None:
    # R16: a dangling link gave NotADirectoryError naming a hidden folder, left behind
    if target == "elsewhere":
        (tmp_path / target).mkdir()
    (tmp_path / "data").symlink_to(tmp_path / target)
    with pytest.raises(FileExistsError, match=r"'.*data' is a symbolic link; .*remove the link"):
        write_demo_data(tmp_path, train_per_class=1, eval_per_class=1, shape=(32, 32))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"data", target} - {"missing"})


# ---------------------------------------------------------------------------------------------
# An interrupted demo says to run it again: `train --resume` does not continue it


class _InterruptedAtEpoch2(EarlyStopping):
    """The demo's early stopping, interrupted (as by Ctrl-C) as epoch 2 starts."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if epoch == 2:
            raise KeyboardInterrupt
        super().on_epoch_start(trainer, epoch)


@pytest.fixture
def demo_interrupted_at_epoch_2(monkeypatch: pytest.MonkeyPatch, no_cached_weights: None) -> None:
    tiny = functools.partial(run_demo, train_per_class=2, eval_per_class=1, size=32, shape=(32, 32))
    monkeypatch.setattr(retinalnet.demo, "run_demo", tiny)  # what `retinalnet demo` runs
    monkeypatch.setattr(retinalnet.demo, "EarlyStopping", _InterruptedAtEpoch2)


@pytest.mark.usefixtures("demo_interrupted_at_epoch_2")
def test_an_interrupted_demo_command_advises_running_it_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was "continue with `retinalnet train --data OUT/data --resume OUT/checkpoints/last.pt`",
    # which trained on with train's defaults at the rate the demo's cosine had decayed to
    out = tmp_path / "my demo"
    with pytest.raises(KeyboardInterrupt):
        main(["demo", "--out", str(out), "--epochs", "3", "--seed", "1"])

    err = capsys.readouterr().err
    command = shlex.join(["retinalnet", "demo", "--out", str(out), "--epochs", "3", "--seed", "1"])
    assert f"epoch 1; the demo does not resume: run `{command}` again, which starts it over\n" in (
        err
    )
    assert "retinalnet train" not in err
    assert "run_demo" not in err  # the Python advice, said by the command line as above
    last = out / "checkpoints" / "last.pt"
    assert main(["train", "--data", str(out / "data"), "--resume", str(last), "-q"]) == 1
    assert "its run stepped a CosineAnnealingLR; this fit has no scheduler" in (
        capsys.readouterr().err
    )


@pytest.mark.usefixtures("demo_interrupted_at_epoch_2")
def test_an_interrupted_run_demo_says_it_does_not_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="retinalnet"), pytest.raises(KeyboardInterrupt):
        retinalnet.demo.run_demo(tmp_path, epochs=3)

    assert caplog.messages[-1] == (
        "run_demo was interrupted, and does not resume: the resume_from above needs the "
        "demo's own Trainer (a cosine learning-rate decay over epochs=3), which run_demo does "
        f"not give you; call run_demo({str(tmp_path)!r}, ...) again with the same arguments, "
        "which starts it over"
    )
    assert "continue with fit(..., resume_from=" in caplog.messages[-2]  # the one "above"
