"""A checkpoint trained on a --manifest split is not scored or calibrated on the images of
that manifest's train rows (retinalnet.cli._trained_on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from _cli_helpers import train_small_cnn
from retinalnet.cli import main
from retinalnet.datasets import ManifestRow, make_synthetic_kermany, write_manifest

# a run of one epoch on 8 scans ranks no better than chance: its calibration is left out
pytestmark = pytest.mark.filterwarnings("ignore:temperature scaling left out:UserWarning")


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Data, a pooled re-split whose train rows hold two of the folders' test/ images, and
    a run trained on it."""
    folder = tmp_path_factory.mktemp("pooled")
    data = make_synthetic_kermany(folder / "data", train=3, val=2, test=2, shape=(40, 40), seed=1)
    rows = []
    for split in ("train", "val", "test"):
        for path in sorted((data / split).rglob("*.jpeg")):
            relative = path.relative_to(data).as_posix()
            label = path.parent.name
            number = path.name.split("-")[1]
            # test/*-first images train; train/ images are the manifest's test rows
            moved = {"train": "test", "val": "val"}.get(split)
            if split == "test":
                moved = "train" if path.name.endswith("-1.jpeg") else "test"
            rows.append(ManifestRow(relative, label, number, moved))
    manifest = write_manifest(rows, folder / "pooled.csv")
    run = folder / "run"
    assert train_small_cnn(data, run, "--manifest", str(manifest)) == 0
    return data, manifest, run / "best.pt"


def _evaluate(data: Path, checkpoint: Path, *extra: str) -> int:
    return main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "-q", *extra])


def test_the_folders_test_split_of_a_pooled_run_is_refused(
    pooled: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # was: scored without a word, the run's own training images among the "test" images
    data, manifest, checkpoint = pooled
    assert _evaluate(data, checkpoint, "--split", "test") == 1
    error = capsys.readouterr().err
    assert (
        "images to evaluate were trained on by this checkpoint's run (train rows of its " in error
    )
    assert f"--manifest {str(manifest)!r} --split test" in error
    assert _evaluate(data, checkpoint, "--split", "test", "--manifest", str(manifest)) == 0


def test_calibrating_on_images_the_run_trained_on_is_refused(
    pooled: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, manifest, checkpoint = pooled
    out = tmp_path / "calibrated.pt"
    argv = ["calibrate", "--checkpoint", str(checkpoint), "--data", str(data), "-q"]
    with pytest.warns(UserWarning, match="flatters the calibration"):
        assert main([*argv, "--split", "test", "--out", str(out)]) == 1
    assert "images to calibrate were trained on" in capsys.readouterr().err
    assert main([*argv, "--manifest", str(manifest), "--split", "val", "--out", str(out)]) == 0


def test_a_run_on_the_folders_split_is_scored_on_test_as_ever(tmp_path: Path) -> None:
    data = make_synthetic_kermany(tmp_path / "data", train=3, val=2, test=2, shape=(40, 40))
    assert train_small_cnn(data, tmp_path / "run") == 0
    assert _evaluate(data, tmp_path / "run" / "best.pt", "--split", "test") == 0


def test_training_accuracy_and_another_data_folder_are_not_refused(
    pooled: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    data, _, checkpoint = pooled
    assert _evaluate(data, checkpoint, "--split", "train") == 0  # asked for as such
    # the same file names in another data folder are other images
    other = make_synthetic_kermany(
        tmp_path / "other", train=3, val=2, test=2, shape=(40, 40), seed=1
    )
    assert _evaluate(other, checkpoint, "--split", "test") == 0
