"""Each script in examples/ runs on a small synthetic Kermany-layout folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retinalnet.datasets import make_synthetic_kermany, patient_split, write_manifest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _refused(*args: str) -> str:
    """The stderr of a run that must fail: exit status 1, its reason, no traceback."""
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr


def _train_example(data: Path, out: Path, batch_size: int) -> list[str]:
    """examples/train_kermany.py on ``data`` into ``out``: random weights, one epoch, 32 px."""
    return [
        str(EXAMPLES / "train_kermany.py"),
        "--data", str(data),
        "--out", str(out),
        "--weights", "none",
        "--epochs", "1",
        "--size", "32",
        "--batch-size", str(batch_size),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("examples")
    data = make_synthetic_kermany(root / "data", train=3, val=1, test=2, shape=(96, 96), seed=3)
    out = root / "run"
    return data, out, _run(*_train_example(data, out, batch_size=4))


def test_train_example_writes_a_checkpoint(trained: tuple[Path, Path, str]) -> None:
    _, out, stdout = trained
    assert "135,310,404 parameters, 1,049,860 trainable" in stdout
    assert "reached max_epochs=1" in stdout
    assert (out / "best.pt").is_file()
    assert (out / "history.csv").read_text().startswith("epoch,train_loss")


def test_predict_example_prints_every_image(trained: tuple[Path, Path, str]) -> None:
    data, out, _ = trained
    stdout = _run(
        str(EXAMPLES / "predict_folder.py"), str(data / "test"),
        "--checkpoint", str(out / "best.pt"), "-k", "2",
    )  # fmt: skip
    lines = stdout.strip().splitlines()
    assert len(lines) == 8  # 2 test images per class
    for line in lines:
        path, ranked = line.split(": ")
        assert Path(path).is_file()
        assert len(ranked.split(", ")) == 2


def test_train_example_runs_under_torchrun_and_rank_0_reports(
    trained: tuple[Path, Path, str], tmp_path: Path
) -> None:
    data, _, _ = trained
    out = tmp_path / "run"
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    stdout = _run(*torchrun, *_train_example(data, out, batch_size=2))
    assert stdout.count("135,310,404 parameters, 1,049,860 trainable") == 1
    assert stdout.count("reached max_epochs=1") == 1
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "history.csv", "last.pt"]


def test_train_example_says_it_validates_on_the_folders_val(
    trained: tuple[Path, Path, str],
) -> None:
    _, _, stdout = trained
    assert "validating on the folders' val/ (4 images)" in stdout
    assert "--manifest" in stdout


def test_a_second_train_example_run_is_refused_naming_flags_it_has(
    trained: tuple[Path, Path, str],
) -> None:
    data, out, _ = trained
    before = (out / "best.pt").read_bytes()
    stderr = _refused(*_train_example(data, out, batch_size=4))
    error = stderr.strip().splitlines()[-1]
    assert error.startswith("train_kermany.py: error: ")
    assert "best.pt already exists" in error
    assert (out / "best.pt").read_bytes() == before  # refused before training
    usage = _run(str(EXAMPLES / "train_kermany.py"), "--help")
    for flag in ("--resume", "--overwrite"):  # the ways out the message names
        assert flag in error
        assert flag in usage


def test_train_example_resumes_its_run(trained: tuple[Path, Path, str], tmp_path: Path) -> None:
    data, out, _ = trained
    copy = shutil.copytree(out, tmp_path / "run")
    args = _train_example(data, copy, batch_size=4)
    args[args.index("--epochs") + 1] = "2"
    stdout = _run(*args, "--resume", str(copy / "last.pt"))
    assert "reached max_epochs=2" in stdout
    epochs = [line.split(",")[0] for line in (copy / "history.csv").read_text().splitlines()]
    assert epochs == ["epoch", "1", "2"]


def test_train_example_overwrites_with_a_patient_aware_manifest(
    trained: tuple[Path, Path, str], tmp_path: Path
) -> None:
    data, out, _ = trained
    copy = shutil.copytree(out, tmp_path / "run")
    manifest = write_manifest(patient_split(data, val_fraction=0.3, seed=0), tmp_path / "s.csv")
    args = _train_example(data, copy, batch_size=4)
    stdout = _run(*args, "--manifest", str(manifest), "--overwrite")
    assert "validating on the folders' val/" not in stdout
    assert "reached max_epochs=1" in stdout
    assert (copy / "history.csv").read_text().count("\n") == 2  # the new run's one epoch
