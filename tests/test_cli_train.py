"""``retinalnet train`` when things go wrong: divergence, a locked --out, a full disk, Ctrl-C,
and seeds that make runs (and resumed runs) repeat. Run in-process through main()."""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from _cli_helpers import run_under_lang_c, train_small_cnn
from _distributed_helpers import as_torchrun_starts, free_port
from _training_helpers import BuildSpy, same_state
from retinalnet._core import files
from retinalnet.checkpoint import checkpoint_epoch, load_checkpoint
from retinalnet.cli import main
from retinalnet.datasets import make_synthetic_kermany


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-train") / "data"
    return make_synthetic_kermany(root, train=3, val=2, test=2, shape=(80, 80), seed=5)


def _history(path: Path) -> list[dict[str, str]]:
    """history.csv without the seconds column."""
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in err
    return lines[0]


def test_the_best_model_printed_is_the_file_written_with_its_epoch(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out, "--epochs", "2") == 0
    printed = capsys.readouterr().out
    epoch = checkpoint_epoch(out / "best.pt")
    assert epoch in (1, 2)
    assert f"best model: {out / 'best.pt'} (epoch {epoch})  history: {out / 'history.csv'}" in (
        printed
    )
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "history.csv", "last.pt"]


# ---------------------------------------------------------------------------------------------
# Divergence


def test_a_diverging_learning_rate_exits_1_and_names_no_file_it_did_not_write(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"

    assert train_small_cnn(data, out, "--lr", "1e30", "--epochs", "3") == 1

    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert re.match(
        r"retinalnet train: error: the training loss became nan at epoch 1, step \d of 2: "
        r"training diverged\. The fit stopped, and nothing of epoch 1 was saved: no checkpoint "
        r"in '.*run'; .*Lower the learning rate \(it is 1e\+30: .*--lr\)",
        line,
    ), line
    assert "best model" not in captured.out
    assert not out.exists()  # nothing written: not even the folder is left


# ---------------------------------------------------------------------------------------------
# One run at a time in --out


def _lock(out: Path, pid: int) -> Path:
    out.mkdir(parents=True)
    path = out / "run.lock"
    owner = {
        "pid": pid,
        "host": socket.gethostname(),
        "started": "2026-01-02T03:04:05+01:00",
        "time": time.time(),
        "program": "retinalnet train --out runs/x",
        "token": "0" * 32,
    }
    path.write_text(json.dumps(owner))
    return path


def test_a_second_run_into_a_locked_out_refuses_naming_the_holder(
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sleeper: subprocess.Popen[bytes],
) -> None:
    out = tmp_path / "run"
    lock = _lock(out, sleeper.pid)
    before = lock.read_bytes()

    assert train_small_cnn(data, out) == 1

    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert line.startswith(
        f"retinalnet train: error: {str(out)!r} is in use by another run: process "
        f"{sleeper.pid} on this host has held it since 2026-01-02 03:04:05+01:00 (retinalnet "
        "train --out runs/x). Wait for that run to end or choose another out_dir (--out)"
    ), line
    assert "best model" not in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["run.lock"]
    assert lock.read_bytes() == before


def test_a_lock_left_by_a_crashed_run_is_taken_over_with_a_warning(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crashed = subprocess.Popen([sys.executable, "-c", "pass"])
    crashed.wait()
    out = tmp_path / "run"
    _lock(out, crashed.pid)

    assert train_small_cnn(data, out) == 0

    err = capsys.readouterr().err
    assert f"took over the stale lock {out / 'run.lock'} of process {crashed.pid}" in err
    assert f"process {crashed.pid} is no longer running" in err
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "history.csv", "last.pt"]


# ---------------------------------------------------------------------------------------------
# A full disk, Ctrl-C


def _refuse_last_pt_from_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int, code: int) -> None:
    real = tempfile.mkstemp
    seen = {"last.pt": 0}

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        if kwargs.get("prefix") == ".last.pt.":
            seen["last.pt"] += 1
            if seen["last.pt"] >= epoch:
                raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, r"no space left on device \[ENOSPC\]"),
     (errno.EACCES, r"permission denied \[EACCES\]")],
    ids=["full-disk", "permission"],
)  # fmt: skip
def test_a_refused_checkpoint_write_is_one_line_naming_the_epoch_on_disk(
    data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    code: int,
    words: str,
) -> None:
    out = tmp_path / "run"
    _refuse_last_pt_from_epoch(monkeypatch, 2, code)

    assert train_small_cnn(data, out, "--epochs", "3") == 1

    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert re.fullmatch(
        rf"retinalnet train: error: cannot write checkpoint '.*last\.pt' \(epoch 2\): {words}; "
        r"the checkpoint there before is untouched and holds epoch 1\. .*",
        line,
    ), line
    assert "best model" not in captured.out
    monkeypatch.undo()
    assert load_checkpoint(out / "last.pt").epoch == 1
    assert not (out / "run.lock").exists()
    # the history of the epochs that a checkpoint holds is beside them (best.pt may hold 2)
    held = max(checkpoint_epoch(out / "best.pt") or 0, 1)
    assert [row["epoch"] for row in _history(out / "history.csv")] == [
        str(epoch) for epoch in range(1, held + 1)
    ]


def _refuse_checkpoints_from_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """A full disk from ``epoch`` on: neither best.pt nor last.pt can be written."""
    real = tempfile.mkstemp
    written = {"last.pt": 0}  # the epochs whose last.pt was written

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        prefix = kwargs.get("prefix")
        if prefix in (".best.pt.", ".last.pt.") and written["last.pt"] + 1 >= epoch:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if prefix == ".last.pt.":
            written["last.pt"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)


def test_a_full_disk_at_the_first_checkpoint_leaves_no_history_and_the_command_runs_again(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    _refuse_checkpoints_from_epoch(monkeypatch, 1)

    assert train_small_cnn(data, out, "--epochs", "2") == 1

    line = _one_line(capsys.readouterr().err)
    assert "cannot write checkpoint" in line
    assert "(epoch 1): no space left on device [ENOSPC]; there was no checkpoint there" in line
    monkeypatch.undo()
    # was: a history.csv of epoch 1, which no checkpoint holds, alone in the folder
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []
    # space freed, the same command runs (was: refused, and told to --resume a run that had
    # no last.pt)
    assert train_small_cnn(data, out, "--epochs", "2") == 0, capsys.readouterr().err
    assert [row["epoch"] for row in _history(out / "history.csv")] == ["1", "2"]


def test_a_full_disk_at_a_later_epoch_keeps_the_history_of_the_epochs_saved_and_resumes(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    _refuse_checkpoints_from_epoch(monkeypatch, 2)

    assert train_small_cnn(data, out, "--epochs", "3") == 1

    assert "(epoch 2): no space left on device" in _one_line(capsys.readouterr().err)
    monkeypatch.undo()
    assert (checkpoint_epoch(out / "best.pt"), checkpoint_epoch(out / "last.pt")) == (1, 1)
    # was: epochs 1 and 2, and no checkpoint holds epoch 2
    assert [row["epoch"] for row in _history(out / "history.csv")] == ["1"]
    assert _resume_as_advised(data, out) == 0, capsys.readouterr().err
    assert [row["epoch"] for row in _history(out / "history.csv")] == ["1", "2", "3"]


def test_an_overwriting_run_stopped_by_a_full_disk_leaves_the_earlier_run_s_history(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out, "--epochs", "2") == 0
    before = {name: (out / name).read_bytes() for name in ("best.pt", "last.pt", "history.csv")}
    _refuse_checkpoints_from_epoch(monkeypatch, 1)

    assert train_small_cnn(data, out, "--epochs", "2", "--overwrite") == 1

    monkeypatch.undo()
    # the earlier run's files, all of them: was this run's epoch 1 in history.csv, beside the
    # earlier run's checkpoints of epoch 2
    assert {name: (out / name).read_bytes() for name in before} == before


@pytest.mark.parametrize(
    ("left", "advice"),
    [
        (["history.csv"], "; the run that wrote it saved no checkpoint"),
        (["best.pt", "history.csv"], "; that run left no last.pt: resume it from its best.pt"),
    ],
    ids=["history-alone", "best-pt-without-last-pt"],
)
def test_a_new_run_into_a_folder_without_last_pt_is_not_told_to_resume_it(
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    left: list[str],
    advice: str,
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    for name in left:
        (out / name).write_bytes(b"a run's")

    assert train_small_cnn(data, out, "--weights", "none") == 1

    line = _one_line(capsys.readouterr().err)
    assert line.startswith(
        f"retinalnet train: error: {out / left[0]} already exists and would be replaced by "
        f"this new run{advice}"
    ), line
    assert line.endswith("(--overwrite)"), line
    if left == ["history.csv"]:
        assert "so there is nothing to resume; free some space if the disk was full" in line
        assert "--resume" not in line
    else:
        assert f"(--resume {out / 'best.pt'})" in line


def test_an_interrupted_train_names_the_epoch_last_saved(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    _interrupt_at_epoch(monkeypatch, 2)  # Ctrl-C while last.pt of epoch 2 is written

    with pytest.raises(KeyboardInterrupt):  # from Python, Ctrl-C is the caller's
        train_small_cnn(data, out, "--epochs", "3")

    err = capsys.readouterr().err
    monkeypatch.undo()
    best = checkpoint_epoch(out / "best.pt")
    advised = re.search(
        rf"fit interrupted \(KeyboardInterrupt\) during epoch 2: '.*best\.pt' holds epoch {best}, "
        r"'.*last\.pt' epoch 1; continue with `(retinalnet train --data .* --resume .*last\.pt)`$",
        err,
        re.MULTILINE,
    )  # the whole command, said with the CLI's flags
    assert advised, err
    assert err.strip().endswith("retinalnet: interrupted")
    assert checkpoint_epoch(out / "last.pt") == 1
    assert not (out / "run.lock").exists()
    # the command as advised continues the run (its options from the checkpoint) to its end
    assert main(shlex.split(advised[1])[1:]) == 0
    assert checkpoint_epoch(out / "last.pt") == 3


# ---------------------------------------------------------------------------------------------
# Seeds


def test_the_same_seed_twice_gives_the_same_run_and_a_resumed_run_repeats_it(
    data: Path, tmp_path: Path
) -> None:
    assert train_small_cnn(data, tmp_path / "a", "--epochs", "3") == 0
    assert train_small_cnn(data, tmp_path / "b", "--epochs", "3") == 0
    assert train_small_cnn(data, tmp_path / "c", "--epochs", "2") == 0
    resume = ["--epochs", "3", "--resume", str(tmp_path / "c" / "last.pt")]
    assert train_small_cnn(data, tmp_path / "c", *resume) == 0

    first = _history(tmp_path / "a" / "history.csv")
    assert len(first) == 3
    assert _history(tmp_path / "b" / "history.csv") == first
    assert _history(tmp_path / "c" / "history.csv") == first
    states = [load_checkpoint(tmp_path / run / "last.pt").state_dict for run in "abc"]
    assert same_state(states[0], states[1])
    assert same_state(states[0], states[2])
    assert train_small_cnn(data, tmp_path / "d", "--epochs", "3", "--seed", "1") == 0
    assert _history(tmp_path / "d" / "history.csv") != first


# ---------------------------------------------------------------------------------------------
# A resumed run repeats the run: the options left out are the run's, another value is refused


def _interrupt_at_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Ctrl-C while ``last.pt`` of ``epoch`` is written (``last.pt`` keeps ``epoch - 1``)."""
    real_save, real_mkstemp = torch.save, tempfile.mkstemp
    writes = {"last.pt": 0, "now": ""}

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        writes["now"] = str(kwargs.get("prefix"))
        return real_mkstemp(*args, **kwargs)

    def save(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        if writes["now"] == ".last.pt.":
            writes["last.pt"] += 1
            if writes["last.pt"] == epoch:
                raise KeyboardInterrupt
        real_save(obj, stream, *args, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(torch, "save", save)


def _resume_as_advised(data: Path, out: Path, *extra: str) -> int:
    """``retinalnet train --data DATA --resume OUT/last.pt``, as the Ctrl-C line advises:
    every other option left out but ``extra``."""
    return main(["train", "--data", str(data), "--resume", str(out / "last.pt"), "-q", *extra])


def _same_run(first: Path, second: Path) -> None:
    """The two runs' histories, last.pt and best.pt (its epoch, weights, temperature) match."""
    assert _history(second / "history.csv") == _history(first / "history.csv")
    for name in ("last.pt", "best.pt"):
        one, other = load_checkpoint(first / name), load_checkpoint(second / name)
        assert (other.epoch, other.temperature) == (one.epoch, one.temperature), name
        assert same_state(one.state_dict, other.state_dict), name


def test_a_tutorial_run_resumed_without_its_epochs_stops_at_them_and_repeats_the_run(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_small_cnn(data, tmp_path / "whole", "--epochs", "3", "--patience", "5") == 0
    _interrupt_at_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train_small_cnn(data, tmp_path / "cut", "--epochs", "3", "--patience", "5")
    monkeypatch.undo()
    assert checkpoint_epoch(tmp_path / "cut" / "last.pt") == 1
    capsys.readouterr()

    # was: 20 epochs (the tutorial's default), batch size 32, no seed, patience 3
    assert _resume_as_advised(data, tmp_path / "cut") == 0, capsys.readouterr().err

    assert "reached max_epochs=3" in capsys.readouterr().out
    _same_run(tmp_path / "whole", tmp_path / "cut")


def test_a_fine_tune_resumed_without_its_batch_size_repeats_the_run(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fine_tune = ["--recipe", "finetune", "--epochs", "2", "--batch-size", "4", "--weights", "none"]
    assert train_small_cnn(data, tmp_path / "whole", *fine_tune) == 0
    _interrupt_at_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train_small_cnn(data, tmp_path / "cut", *fine_tune)
    monkeypatch.undo()
    capsys.readouterr()

    # was: --batch-size 32, silently: other weights
    assert _resume_as_advised(data, tmp_path / "cut", "--seed", "0") == 0, capsys.readouterr().err

    _same_run(tmp_path / "whole", tmp_path / "cut")


def _no_work_on_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the model, new or resumed (the first work of a run), fails the test."""
    import retinalnet.models

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the run started working: it built the model")

    monkeypatch.setattr(retinalnet.models, "create_model", refused)
    monkeypatch.setattr(retinalnet.models, "build_model", refused)


@pytest.fixture(scope="module")
def batch_8_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a two-epoch tutorial run of --batch-size 8, seed 0, --patience 5."""
    out = tmp_path_factory.mktemp("batch-8") / "run"
    assert train_small_cnn(data, out, "--epochs", "2", "--patience", "5") == 0
    return out


def test_a_run_resumed_without_its_batch_size_takes_it_from_the_checkpoint(
    data: Path, batch_8_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(batch_8_run, run)
    assert train_small_cnn(data, tmp_path / "whole", "--epochs", "3", "--patience", "5") == 0
    capsys.readouterr()

    # was: --batch-size 32; the seed, epochs and patience given as the run's
    code = _resume_as_advised(data, run, "--seed", "0", "--epochs", "3", "--patience", "5")

    assert code == 0, capsys.readouterr().err
    _same_run(tmp_path / "whole", run)


@pytest.mark.parametrize(
    ("given", "run", "named"),
    [
        pytest.param(("--batch-size", "16"), "--batch-size 8", "--batch-size 16", id="batch"),
        pytest.param(("--seed", "1"), "--seed 0", "--seed 1", id="seed"),
        pytest.param(("--patience", "2"), "--patience 5", "--patience 2", id="patience"),
        pytest.param(("--lr", "0.01"), "--lr 0.001", "--lr 0.01", id="lr"),
        pytest.param(("--balance", "sampler"), "--balance none", "--balance sampler", id="bal"),
        pytest.param(("--augment", "oct"), "--augment tutorial", "--augment oct", id="augment"),
        pytest.param(("--cache-views", "2"), "--cache-views 0", "--cache-views 2", id="views"),
        pytest.param(("--no-calibrate",), "--calibrate", "--no-calibrate", id="calibrate"),
        pytest.param(("--precision", "fp32"), "--precision auto", "--precision fp32", id="fp32"),
        # more epochs may be given, to train longer (test_the_same_seed_twice_...)
        pytest.param(("--epochs", "1"), "--epochs 2", "--epochs 1", id="fewer-epochs"),
    ],
)
def test_a_resumed_run_given_another_value_than_its_own_is_refused_naming_both(
    data: Path,
    batch_8_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given: tuple[str, ...],
    run: str,
    named: str,
) -> None:
    before = (batch_8_run / "last.pt").read_bytes()
    capsys.readouterr()
    _no_work_on_resume(monkeypatch)

    assert _resume_as_advised(data, batch_8_run, *given) == 1

    flag = given[0].replace("--no-", "--")
    assert _one_line(capsys.readouterr().err) == (
        f"retinalnet train: error: --resume {str(batch_8_run / 'last.pt')!r} continues a run "
        f"of {run}, not {named}: a resumed run keeps the settings it was started with"
        f"{' (or more epochs, to train longer)' if flag == '--epochs' else ''}; leave {flag} "
        "out, or start a new run without --resume"
    )
    assert (batch_8_run / "last.pt").read_bytes() == before
    assert not (batch_8_run / "run.lock").exists()


def test_a_run_resumed_with_its_own_feature_cache_as_a_flag_is_taken(
    data: Path, batch_8_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # small_cnn trains every layer: the default cache ("auto") was off; saying so with
    # --no-feature-cache was refused as "another value" than the run's "auto"
    run = tmp_path / "run"
    shutil.copytree(batch_8_run, run)
    capsys.readouterr()

    assert _resume_as_advised(data, run, "--no-feature-cache", "--epochs", "3") == 0, (
        capsys.readouterr().err
    )
    assert checkpoint_epoch(run / "last.pt") == 3
    assert _resume_as_advised(data, run, "--feature-cache", "--epochs", "4") == 1
    assert "continues a run of --no-feature-cache, not --feature-cache" in capsys.readouterr().err


def test_a_checkpoint_without_the_runs_options_names_those_it_cannot_restore(
    data: Path, batch_8_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(batch_8_run, run)
    saved = torch.load(run / "last.pt", weights_only=True)
    del saved["callbacks"]["TrainOptions"]  # as written before the options were kept
    torch.save(saved, run / "last.pt")
    capsys.readouterr()

    assert _resume_as_advised(data, run, "--epochs", "3", "--patience", "5") == 0

    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "does not record" in line]
    assert "--batch-size" in line
    assert "--seed" not in line  # the loop state holds it: the run's seed 0
    assert "--lr" not in line  # the optimizer holds it
    assert "--augment" not in line  # the preprocessing holds its settings
    assert "give the values the run was started with to repeat it" in line
    assert "written by the Python API, or by a retinalnet before 0.2" in line
    assert "used seed=" not in err


# ---------------------------------------------------------------------------------------------
# The feature cache: on by default for a frozen backbone, and never built for a refused run


def _train_frozen(data: Path, out: Path, *extra: str) -> int:
    """``retinalnet train --recipe tutorial`` of ResNet-18 (random weights, frozen but for its
    head) at 32 px."""
    return main(
        [
            "train", "--data", str(data), "--out", str(out), "--arch", "resnet18",
            "--weights", "none", "--size", "32", "--epochs", "1", "--batch-size", "8",
            "--seed", "0", "--recipe", "tutorial", *extra,
        ]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "builds", "said"),
    [
        ((), 2, "feature cache: on (the backbone is frozen and only the head 'fc' trains"),
        (("--no-feature-cache",), 0, None),
    ],
    ids=["default", "no-feature-cache"],
)
def test_a_frozen_backbone_trains_on_cached_features_unless_told_not_to(
    data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: tuple[str, ...],
    builds: int,
    said: str | None,
) -> None:
    spy = BuildSpy(monkeypatch)

    assert _train_frozen(data, tmp_path / "run", *flags) == 0

    err = capsys.readouterr().err
    assert spy.calls == builds  # train and val; the final report reuses val's features
    lines = [line for line in err.splitlines() if line.startswith("feature cache")]
    if said is None:
        assert lines == []
    else:
        assert len(lines) == 1
        assert lines[0].startswith(said)
        # the tutorial preset reaches no cached training image: said, with the two flags
        assert lines[0].endswith(
            "from the training images without their augmentation: --cache-views N also caches "
            "N augmented views of each, --no-feature-cache turns the cache off and augments "
            "every epoch)"
        )
    assert checkpoint_epoch(tmp_path / "run" / "best.pt") == 1


_CACHED_AWAY = (
    "--augment oct-strong does not reach the training images: the feature cache computes "
    "their features once, without augmentation; --cache-views N also caches N augmented views "
    "of each image, --no-feature-cache augments every epoch"
)


@pytest.mark.parametrize(
    ("flags", "warned"),
    [
        (("--augment", "oct-strong"), True),
        (("--augment", "oct-strong", "--feature-cache"), True),
        ((), False),  # asked for nothing: the feature cache's line says it
        (("--augment", "none"), False),
        (("--augment", "oct-strong", "--cache-views", "1"), False),
        (("--augment", "oct-strong", "--no-feature-cache"), False),
    ],
    ids=["augment", "augment-feature-cache", "default", "none", "views", "no-cache"],
)
def test_an_augmentation_given_that_the_feature_cache_keeps_from_the_images_is_warned_of(
    data: Path, tmp_path: Path, flags: tuple[str, ...], warned: bool
) -> None:
    # was: --augment oct-strong and --augment none trained bit-identical runs without a word
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _train_frozen(data, tmp_path / "run", "-q", "--no-calibrate", *flags) == 0
    said = [str(w.message) for w in caught if "does not reach" in str(w.message)]
    assert said == ([_CACHED_AWAY] if warned else [])


@pytest.mark.parametrize(
    ("flags", "asked"),
    [
        (("--feature-cache",), "--feature-cache asks"),
        (("--cache-views", "2"), "--cache-views asks"),
        (("--feature-cache", "DIR", "--lr", "auto"), "--feature-cache asks"),
        (("--feature-cache", "--cache-views", "2"), "--feature-cache and --cache-views ask"),
    ],
    ids=["feature-cache", "cache-views", "lr-auto", "both"],
)
def test_the_feature_cache_of_a_model_that_trains_whole_is_refused_with_flags(
    data: Path,
    tmp_path: Path,
    flags: tuple[str, ...],
    asked: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # was: "... (e.g. except_last_blocks > 0 or freeze=False); train without the cache, or
    # freeze the backbone": Python advice, naming neither --arch nor the flag
    flags = tuple(str(tmp_path / "features") if flag == "DIR" else flag for flag in flags)
    assert train_small_cnn(data, tmp_path / "run", *flags) == 1
    flag_list = asked.rpartition(" ")[0]
    assert _one_line(capsys.readouterr().err) == (
        "retinalnet train: error: --arch small_cnn trains the whole network, and the feature "
        f"cache that {asked} for serves a frozen backbone only (its features computed once, "
        f"for the head to train on): leave out {flag_list}"
    )
    assert not (tmp_path / "run" / "best.pt").exists()


def test_an_existing_best_pt_is_refused_before_the_feature_cache_is_built(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.pt").write_bytes(b"an earlier run's model")
    spy = BuildSpy(monkeypatch, refuse=True)

    assert _train_frozen(data, out, "-q") == 1

    err = capsys.readouterr().err  # a warning about the random weights, then the error
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"retinalnet train: error: {out / 'best.pt'} already exists and would be replaced by "
        f"this new run; that run left no last.pt: resume it from its best.pt (--resume "
        f"{out / 'best.pt'}), choose another folder, or allow it (--overwrite)"
    )
    assert spy.calls == 0
    assert (out / "best.pt").read_bytes() == b"an earlier run's model"


# ---------------------------------------------------------------------------------------------
# Whatever can refuse a run refuses it before any work, in every path


def _no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the model, the first work of a run (then the image check, --lr auto's range
    test, the linear probe, the feature cache, the epochs), fails the test."""
    import retinalnet.models

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the run started working: it built the model")

    monkeypatch.setattr(retinalnet.models, "create_model", refused)


@pytest.mark.parametrize(
    "flags",
    [
        ("--recipe", "finetune"),  # it ran the whole linear probe first
        ("--recipe", "finetune", "--lr", "auto"),
        ("--lr", "auto"),  # it ran the range test and built the feature cache first
        (),
    ],
    ids=["finetune", "finetune-lr-auto", "tutorial-lr-auto", "tutorial"],
)
def test_an_existing_best_pt_is_refused_before_any_work(
    data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: tuple[str, ...],
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.pt").write_bytes(b"an earlier run's model")
    _no_work(monkeypatch)

    assert train_small_cnn(data, out, "--weights", "none", *flags) == 1

    assert _one_line(capsys.readouterr().err) == (
        f"retinalnet train: error: {out / 'best.pt'} already exists and would be replaced by "
        f"this new run; that run left no last.pt: resume it from its best.pt (--resume "
        f"{out / 'best.pt'}), choose another folder, or allow it (--overwrite)"
    )
    assert sorted(p.name for p in out.iterdir()) == ["best.pt"]  # nor the lock is left


def test_a_missing_resume_file_is_refused_before_any_work(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_work(monkeypatch)
    missing = tmp_path / "run" / "last.pt"

    assert train_small_cnn(data, tmp_path / "run", "--resume", str(missing)) == 1

    assert _one_line(capsys.readouterr().err) == (
        f"retinalnet train: error: --resume {str(missing)!r}: no checkpoint file there; pass "
        "the last.pt of the run to continue (OUT/last.pt), or leave --resume out to start a "
        "new run"
    )


def test_a_run_of_pretrained_weights_resumes_without_the_network(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torchvision

    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--arch", "resnet18", "--size", "32", "-q"]
    assert (
        main(
            [*argv, "--out", str(out), "--weights", "none", "--epochs", "1", "--recipe", "tutorial"]
        )
        == 0
    )

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise OSError(f"no network: {url}")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    capsys.readouterr()
    # --weights left out means the ImageNet ones; the checkpoint holds every weight
    resume = ["train", "--data", str(data), "--resume", str(out / "last.pt"), "--epochs", "2"]
    assert main([*resume, "-q"]) == 0, capsys.readouterr().err  # was: "cannot download
    # ResNet18 weights IMAGENET1K_V1"
    assert checkpoint_epoch(out / "last.pt") == 2


@pytest.mark.parametrize(
    ("flag", "inside", "said"),
    [
        ("--out", "", "is a file, not a folder"),
        ("--out", "run", "cannot be made: {file} is a file, not a folder"),
        ("--tensorboard", "", "is a file, not a folder"),  # said after the first epoch
        ("--tensorboard", "tb", "cannot be made: {file} is a file, not a folder"),
        ("--feature-cache", "", "is a file, not a folder"),  # said after the backbone's pass
    ],
    ids=["out", "out-inside-a-file", "tensorboard", "tensorboard-inside-a-file", "feature-cache"],
)
def test_an_output_folder_that_is_a_file_is_refused_naming_the_option_before_any_work(
    data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    inside: str,
    said: str,
) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    path = file / inside if inside else file
    _no_work(monkeypatch)
    given = [flag, str(path)] if flag != "--out" else []
    out = path if flag == "--out" else tmp_path / "run"

    assert train_small_cnn(data, out, *given) == 1

    # --out used to say "cannot write 'notes.txt/run.lock': file exists [EEXIST]"
    assert _one_line(capsys.readouterr().err) == (
        f"retinalnet train: error: {flag} {str(path)!r} {said.format(file=repr(str(file)))}; "
        "pass a folder that can be written (it is made if missing)"
    )
    assert file.read_text() == "mine"
    assert not (tmp_path / "run").exists()


def test_an_output_folder_that_cannot_be_written_is_refused_naming_the_option(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from retinalnet._core import folders

    locked = tmp_path / "read-only"
    locked.mkdir()
    real = folders.tempfile.mkstemp

    def refused(*args: Any, **kwargs: Any) -> tuple[int, str]:  # as a folder without write access
        if Path(kwargs["dir"]) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(*args, **kwargs)

    monkeypatch.setattr(folders.tempfile, "mkstemp", refused)
    _no_work(monkeypatch)
    tensorboard = locked / "tb"

    assert train_small_cnn(data, tmp_path / "run", "--tensorboard", str(tensorboard)) == 1

    assert _one_line(capsys.readouterr().err) == (
        f"retinalnet train: error: --tensorboard {str(tensorboard)!r} cannot be written (in "
        f"{str(locked)!r}, where it would be made): permission denied [EACCES]; pass a folder "
        "that can be written (it is made if missing)"
    )
    assert not (tmp_path / "run").exists()


def test_tensorboard_not_installed_is_one_line_before_any_work(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard fails
    _no_work(monkeypatch)

    # it was an ImportError, shown with its traceback
    assert train_small_cnn(data, tmp_path / "run", "--tensorboard", str(tmp_path / "tb")) == 1

    assert _one_line(capsys.readouterr().err) == (
        "retinalnet train: error: --tensorboard writes with the tensorboard package, which is "
        'not installed: pip install "retinalnet[tensorboard]" (or leave --tensorboard out)'
    )
    assert not (tmp_path / "run").exists()


def test_a_weights_file_of_pickled_objects_is_one_line_without_torchs_unsafe_advice(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), weights)  # a whole model, as torch.save(model) writes

    assert train_small_cnn(data, tmp_path / "run", "--weights", str(weights)) == 1

    line = _one_line(capsys.readouterr().err)  # it was 6 lines, with colour codes
    assert line.startswith(
        f"retinalnet train: error: weights file {str(weights)!r} holds pickled Python objects "
        "(torch.nn.modules.linear.Linear), as a whole model saved with torch.save(model) does, "
        "which retinalnet does not load because unpickling can run arbitrary code; pass a "
        "small_cnn network's state dict"
    ), line
    assert "weights_only" not in line
    assert "\x1b" not in line


# ---------------------------------------------------------------------------------------------
# An unreadable image: --on-error, as evaluate and predict have it


def test_an_unreadable_image_names_the_way_out_and_on_error_skip_leaves_it_out(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    shutil.copytree(data, root)
    broken = [root / "train" / "DME" / "DME-999-1.jpeg", root / "val" / "CNV" / "CNV-999-1.jpeg"]
    for path in broken:
        path.write_bytes(b"\xff\xd8\xff\xe0 truncated")

    assert train_small_cnn(root, tmp_path / "run") == 1

    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the fit's warning
    assert last.startswith("retinalnet train: error: cannot read image "), last
    assert any(str(path) in last for path in broken), last
    assert last.endswith("; --on-error skip leaves unreadable images out and lists them at the end")

    assert train_small_cnn(root, tmp_path / "run", "--on-error", "skip") == 0

    captured = capsys.readouterr()
    assert "validation (8 images):" in captured.out  # 8 readable: the 9th is not replaced
    lines = captured.err.strip().splitlines()
    assert lines[-3] == "retinalnet train: skipped 2 unreadable images:"
    assert sorted(line.partition(": ")[0] for line in lines[-2:]) == sorted(
        f"  {path}" for path in broken
    )
    assert checkpoint_epoch(tmp_path / "run" / "best.pt") == 1


def test_cache_views_need_the_cache(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out, "--cache-views", "2", "--no-feature-cache") == 1
    assert "--cache-views N caches augmented copies, but --no-feature-cache" in _one_line(
        capsys.readouterr().err
    )
    # small_cnn trains every layer: there is no frozen part to cache views of
    assert train_small_cnn(data, out, "--cache-views", "2") == 1
    assert "--arch small_cnn trains the whole network" in _one_line(capsys.readouterr().err)
    with pytest.raises(SystemExit):
        train_small_cnn(data, out, "--feature-cache", "--no-feature-cache")
    assert "not allowed with argument" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Under torchrun


def _train_as_rank(rank: int, port: int, data: str, out: str) -> None:
    """One process of ``torchrun --nproc_per_node=2 -m retinalnet train ...``: its exit
    status and what it printed go to files."""
    as_torchrun_starts(rank, 2, port)
    printed = Path(out).parent / f"rank{rank}.out"
    with open(printed, "w") as stdout:
        sys.stdout = stdout
        status = train_small_cnn(Path(data), Path(out), "--epochs", "2")
        sys.stdout = sys.__stdout__
    (Path(out).parent / f"rank{rank}.status").write_text(str(status))
    if status:  # as `python -m retinalnet` exits: torchrun then stops the other ranks
        raise SystemExit(status)


def test_train_under_torchrun_trains_on_every_rank_and_rank_0_writes_and_prints(
    data: Path, tmp_path: Path
) -> None:
    import torch.multiprocessing as mp

    out = tmp_path / "run"
    # rank 1 used to take --out's lock too, and stop with "in use by another run" (rank 0)
    mp.spawn(_train_as_rank, args=(free_port(), str(data), str(out)), nprocs=2, join=True)

    assert [(tmp_path / f"rank{r}.status").read_text() for r in range(2)] == ["0", "0"]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "history.csv", "last.pt"]
    assert len(_history(out / "history.csv")) == 2
    assert "best model:" in (tmp_path / "rank0.out").read_text()
    assert (tmp_path / "rank1.out").read_text() == ""


def test_a_manifest_run_resumes_on_its_own_split_and_refuses_another(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "split.csv"
    assert main(["split", str(data), "--val-fraction", "0.3", "--out", str(manifest), "-q"]) == 0
    run = tmp_path / "run"
    assert train_small_cnn(data, run, "--manifest", str(manifest), "--epochs", "2") == 0
    shutil.copyfile(run / "last.pt", tmp_path / "epoch-2.pt")
    capsys.readouterr()

    # left out: the run's manifest again (was: the folders' split, validating on images the
    # run had trained on, without a word)
    assert _resume_as_advised(data, run, "--epochs", "3") == 0, capsys.readouterr().err
    validated = {row["epoch"]: row for row in _history(run / "history.csv")}
    assert set(validated) == {"1", "2", "3"}

    folders = tmp_path / "folders"
    assert train_small_cnn(data, folders, "--epochs", "1") == 0
    edited = tmp_path / "edited.csv"
    edited.write_text(manifest.read_text().replace(",val,", ",train,", 1))
    for resumed, given, said in (
        (tmp_path / "epoch-2.pt", edited, "not on --manifest"),
        (folders / "last.pt", manifest, "was trained on the folders' train/val split"),
    ):
        capsys.readouterr()
        argv = ["train", "--data", str(data), "--resume", str(resumed), "--manifest", str(given)]
        assert main([*argv, "--epochs", "3", "-q"]) == 1
        assert said in capsys.readouterr().err
    moved = tmp_path / "moved.csv"
    manifest.rename(moved)
    assert main(["train", "--data", str(data), "--resume", str(tmp_path / "epoch-2.pt"),
                 "--epochs", "3", "-q"]) == 1  # fmt: skip
    assert "which is not there as it was: give that manifest again" in capsys.readouterr().err


def test_a_run_s_paths_are_recorded_as_utf_8_text_and_found_under_either_locale(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "données"
    moved = shutil.copytree(data, folder / "data")
    manifest = folder / "split.csv"
    assert main(["split", str(moved), "--val-fraction", "0.3", "--out", str(manifest), "-q"]) == 0
    assert train_small_cnn(moved, folder / "utf-8", "--manifest", str(manifest)) == 0
    resumed = str(folder / "utf-8" / "last.pt")
    statuses, err = run_under_lang_c(
        # was: "--resume ... was trained on the split of --manifest '.../donn\xe9es/split.csv'
        # ..., which is not there as it was": its path looked up as the text 'données'
        ["train", "--data", str(moved), "--resume", resumed, "--epochs", "2", "-q"],
        ["train", "--data", str(moved), "--out", str(folder / "c"), "--manifest", str(manifest),
         "--arch", "small_cnn", "--size", "32", "--epochs", "1", "--batch-size", "8", "--seed",
         "0", "-q", "--recipe", "tutorial"],
    )  # fmt: skip
    assert statuses == [0, 0], err
    assert checkpoint_epoch(resumed) == 2

    # was: recorded as LANG=C decoded them, 'donn\udcc3\udca9es' (not valid Unicode: JSON
    # readers refuse it, and it differs from the same run's under UTF-8)
    record = load_checkpoint(folder / "c" / "best.pt").callback_states["TrainOptions"]
    assert record["data"] == os.path.realpath(moved)
    assert record["manifest"]["path"] == str(manifest)
    assert record["manifest"]["real_path"] == os.path.realpath(manifest)
    capsys.readouterr()
    assert main(["info", str(folder / "c" / "best.pt"), "--json"]) == 0
    options = json.loads(capsys.readouterr().out)["training"]["options"]
    assert (options["data"], options["manifest"]["path"]) == (record["data"], str(manifest))


# ---------------------------------------------------------------------------------------------
# --resume of a finished run, of other training images, of an earlier epoch


def test_resuming_an_early_stopped_run_trains_no_more_epochs(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out, "--epochs", "4", "--lr", "0.01", "--patience", "1") == 0
    assert len(_history(out / "history.csv")) < 4, "the run must stop early for this test"
    shutil.copytree(out, tmp_path / "stopped")
    capsys.readouterr()

    assert _resume_as_advised(data, out) == 0, capsys.readouterr().err

    _same_run(tmp_path / "stopped", out)
    captured = capsys.readouterr()
    assert "stopped: early stopping" in captured.out
    assert "had stopped early at epoch 2" in captured.err


def test_resuming_on_other_training_images_is_refused_in_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out, "--epochs", "2") == 0
    more = make_synthetic_kermany(tmp_path / "more", train=4, val=2, test=1, shape=(80, 80))
    last = (out / "last.pt").read_bytes()
    capsys.readouterr()

    assert _resume_as_advised(more, out, "--epochs", "3") == 1

    line = _one_line(capsys.readouterr().err)
    assert "continues a run trained on 12 images (CNV 3, DME 3, DRUSEN 3, NORMAL 3)" in line
    assert f"not on the 16 images (CNV 4, DME 4, DRUSEN 4, NORMAL 4) of --data {str(more)!r}" in (
        line
    )
    assert "give the run's --data" in line
    assert (out / "last.pt").read_bytes() == last


def test_resuming_on_as_many_other_training_images_is_refused_and_a_moved_folder_taken(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out, "--epochs", "2") == 0
    moved, other = tmp_path / "moved", tmp_path / "other"
    shutil.copytree(data, moved)
    shutil.copytree(data, other)
    first = sorted((other / "train" / "DME").iterdir())[0]  # as many DME images, one other
    first.rename(first.with_name("DME-999999-1" + first.suffix))
    last = (out / "last.pt").read_bytes()
    capsys.readouterr()

    # was: taken, as the counts per class are the run's
    assert _resume_as_advised(other, out, "--epochs", "3") == 1

    line = _one_line(capsys.readouterr().err)
    assert "continues a run trained on other images than those of --data" in line
    assert "as many per class, 12 images (CNV 3, DME 3, DRUSEN 3, NORMAL 3)" in line
    assert (out / "last.pt").read_bytes() == last
    # the run's images in another place: the same names under the data folder
    assert _resume_as_advised(moved, out, "--epochs", "3") == 0, capsys.readouterr().err
    assert load_checkpoint(out / "last.pt").epoch == 3


def test_resuming_best_pt_over_the_run_s_later_last_pt_is_refused(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out, "--epochs", "2", "--lr", "0.01", "--patience", "5") == 0
    best, last = load_checkpoint(out / "best.pt").epoch, load_checkpoint(out / "last.pt").epoch
    assert best < last, "best.pt must hold an earlier epoch for this test"
    before = (out / "last.pt").read_bytes()
    capsys.readouterr()

    code = main(["train", "--data", str(data), "--resume", str(out / "best.pt"), "-q"])

    assert code == 1
    line = _one_line(capsys.readouterr().err)
    assert f"holds epoch {best}, and last.pt beside it holds epoch {last} of this run" in line
    assert f"resume from {str(out / 'last.pt')!r}" in line
    assert (out / "last.pt").read_bytes() == before


def test_a_new_run_refuses_another_runs_last_pt_and_history_without_best_pt(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run2"  # best.pt moved out of it: its last.pt and history are left
    out.mkdir()
    (out / "last.pt").write_bytes(b"run2's resumable state")
    (out / "history.csv").write_text("epoch,train_loss\n1,0.5\n")

    assert train_small_cnn(data, out, "--weights", "none") == 1

    assert _one_line(capsys.readouterr().err) == (
        f"retinalnet train: error: {out / 'last.pt'} already exists and would be replaced by "
        "this new run; resume that run (--resume), choose another folder, or allow it "
        "(--overwrite)"
    )
    assert (out / "last.pt").read_bytes() == b"run2's resumable state"


def test_an_overwriting_run_writes_its_history_beside_a_linked_one_not_into_it(
    data: Path, tmp_path: Path
) -> None:
    kept = tmp_path / "deployed" / "history.csv"
    kept.parent.mkdir()
    kept.write_text("epoch\n1\n")
    out = tmp_path / "run5"
    out.mkdir()
    (out / "history.csv").symlink_to(kept)

    assert train_small_cnn(data, out, "--weights", "none", "--overwrite") == 0

    assert kept.read_text() == "epoch\n1\n"
    assert not (out / "history.csv").is_symlink()
    assert len(_history(out / "history.csv")) == 1
