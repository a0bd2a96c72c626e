"""Each script in examples/ runs on a small synthetic Kermany-layout folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

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


def test_predict_example_leaves_out_unreadable_files_and_volumes_and_lists_them(
    trained: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """Was: one unreadable file or one volume in the folder ended in a traceback, and no
    image got a prediction."""
    data, out, _ = trained
    scans = shutil.copytree(data / "test", tmp_path / "scans")
    (scans / "zz-bad.jpeg").write_bytes(b"garbage")
    frames = [Image.new("L", (64, 64), value) for value in (10, 20, 30)]
    frames[0].save(scans / "volume.tif", save_all=True, append_images=frames[1:])
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "predict_folder.py"), str(scans),
         "--checkpoint", str(out / "best.pt")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.strip().splitlines()) == 8  # every readable scan
    assert "Traceback" not in result.stderr
    said = [line for line in result.stderr.splitlines() if line.startswith(f"skipped {scans}")]
    assert said[0].startswith(f"skipped {scans / 'volume.tif'}: it holds 3 frames")
    assert "`retinalnet predict` summarises volumes" in said[0]
    assert said[1] == f"skipped {scans / 'zz-bad.jpeg'}: not a recognised image format"


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("empty folder", "no images under "),
        ("no checkpoint", "no checkpoint file "),
        ("-k 7", "k must be "),
    ],
)
def test_predict_example_refuses_in_one_line(
    trained: tuple[Path, Path, str], tmp_path: Path, case: str, said: str
) -> None:
    """Was: an empty folder printed nothing and exited 0; the others, tracebacks."""
    data, out, _ = trained
    folder, checkpoint, k = data / "test", out / "best.pt", "2"
    if case == "empty folder":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif case == "no checkpoint":
        checkpoint = tmp_path / "nope.pt"
    else:
        k = "7"
    stderr = _refused(
        str(EXAMPLES / "predict_folder.py"), str(folder), "--checkpoint", str(checkpoint), "-k", k
    )
    (line,) = stderr.strip().splitlines()
    assert line.startswith(f"predict_folder.py: error: {said}")


def test_train_example_without_the_imagenet_weights_says_why_in_one_line(
    trained: tuple[Path, Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: a traceback of WeightsUnavailableError (a RuntimeError). The library's advice
    names its arguments (an example imports no private module to reword it)."""
    data, _, _ = trained
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no weights there
    for proxy in ("https_proxy", "HTTPS_PROXY"):  # no download: refused at once
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    args = _train_example(data, tmp_path / "run", batch_size=4)
    args[args.index("--weights") + 1] = "IMAGENET1K_V1"
    error = _refused(*args).strip().splitlines()[-1]
    assert error.startswith("train_kermany.py: error: cannot download VGG16 weights")
    assert "weights=None trains from random initialisation" in error


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
