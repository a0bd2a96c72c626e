"""A checkpoint trained on a --manifest split is not scored or calibrated on the images of
that manifest's train rows (retinalnet.cli._trained_on)."""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from _cli_helpers import run_under_lang_c, train_small_cnn
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


def test_training_accuracy_is_not_refused(pooled: tuple[Path, Path, Path]) -> None:
    data, _, checkpoint = pooled
    assert _evaluate(data, checkpoint, "--split", "train") == 0  # asked for as such


def test_a_copy_of_the_data_folder_elsewhere_is_checked_as_the_run_s(
    pooled: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: another path than the one recorded read as other images, and scored without a
    # word; the same manifest (same SHA-256) names the same images by the same names
    data, _, checkpoint = pooled
    copy = shutil.copytree(data, tmp_path / "elsewhere")
    assert _evaluate(copy, checkpoint, "--split", "test") == 1
    error = capsys.readouterr().err
    assert "images to evaluate were trained on by this checkpoint's run" in error
    assert str(copy / "test") in error


def test_a_manifest_in_a_folder_named_in_utf_8_is_found_under_lang_c(
    pooled: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    # was, under LANG=C: "the run's --manifest 'donn\xe9es/pooled.csv' is not found ...; put
    # it back there", and the run's training images scored: the path recorded as 'données'
    # (UTF-8 text) was looked up as such, which an ASCII file-system encoding cannot name
    data, manifest, _ = pooled
    folder = tmp_path / "données"
    moved = shutil.copytree(data, folder / "data")
    shutil.copy(manifest, folder / "pooled.csv")
    assert train_small_cnn(moved, folder / "run", "--manifest", str(folder / "pooled.csv")) == 0

    checkpoint = str(folder / "run" / "best.pt")
    argv = ["--checkpoint", checkpoint, "--data", str(moved), "--split", "test", "-q"]
    statuses, err = run_under_lang_c(
        ["evaluate", *argv], ["calibrate", *argv, "--out", str(tmp_path / "calibrated.pt")]
    )

    assert statuses == [1, 1], err
    assert "images to evaluate were trained on by this checkpoint's run" in err
    assert "images to calibrate were trained on by this checkpoint's run" in err
    assert "is not found" not in err


@pytest.fixture(scope="module")
def relative(pooled: tuple[Path, Path, Path]) -> Path:
    """A run trained from the manifest's folder with ``--manifest pooled.csv`` (relative)."""
    data, manifest, _ = pooled
    before = Path.cwd()
    os.chdir(manifest.parent)
    try:
        assert train_small_cnn(data, manifest.parent / "relative", "--manifest", "pooled.csv") == 0
    finally:
        os.chdir(before)
    return manifest.parent / "relative" / "best.pt"


def test_a_relative_manifest_is_found_from_another_working_directory(
    pooled: tuple[Path, Path, Path],
    relative: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # was: 'pooled.csv' read against the cwd of evaluate, not found, an INFO line (none
    # under -q), and the run's training images scored
    data, manifest, _ = pooled
    monkeypatch.chdir(tmp_path)
    assert _evaluate(data, relative, "--split", "test") == 1
    error = capsys.readouterr().err
    assert f"train rows of its --manifest {str(manifest)!r}" in error


def _checkpoint_of(run: Path, folder: Path) -> Path:
    """A copy of the run's best.pt in ``folder`` (whose manifest the test then changes)."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(run, folder / "best.pt"))


@pytest.mark.parametrize(
    ("change", "said"),
    [
        pytest.param(
            lambda manifest: manifest.write_text(manifest.read_text() + "\n"),
            r"the run's --manifest '.*pooled\.csv' has changed since \(SHA-256 [0-9a-f]{12}\.\.\., "
            r"the run's [0-9a-f]{12}\.\.\.\); put the run's manifest back there",
            id="changed",
        ),
        pytest.param(
            lambda manifest: manifest.unlink(),
            r"the run's --manifest 'pooled\.csv' is not found \(not at '.*pooled\.csv'\); put "
            "it back there",
            id="gone",
        ),
    ],
)
def test_a_manifest_not_there_as_it_was_is_a_warning_naming_why(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[Path], object],
    said: str,
) -> None:
    # was: an INFO line, silent under -q, which said "not there as it was" of a file there
    data = make_synthetic_kermany(tmp_path / "data", train=2, val=1, test=1, shape=(40, 40))
    rows = [
        ManifestRow(path.relative_to(data).as_posix(), path.parent.name, path.stem, split)
        for split in ("train", "val", "test")
        for path in sorted((data / split).rglob("*.jpeg"))
    ]
    write_manifest(rows, tmp_path / "pooled.csv")
    monkeypatch.chdir(tmp_path)
    assert train_small_cnn(data, tmp_path / "run", "--manifest", "pooled.csv") == 0
    capsys.readouterr()
    change(tmp_path / "pooled.csv")
    assert _evaluate(data, tmp_path / "run" / "best.pt", "--split", "test") == 0
    error = capsys.readouterr().err
    assert re.search(
        "evaluate did not check whether its images were trained on by this checkpoint's "
        f"run: {said}",
        error,
    ), error


@pytest.fixture(scope="module")
def folders_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Data, a manifest whose test rows are the folders' train/ images, and a run trained
    on the folders' split."""
    folder = tmp_path_factory.mktemp("folders")
    data = make_synthetic_kermany(folder / "data", train=2, val=1, test=1, shape=(40, 40))
    rows = [
        ManifestRow(
            path.relative_to(data).as_posix(),
            path.parent.name,
            path.stem,
            {"train": "test", "test": "train"}.get(split, split),
        )
        for split in ("train", "val", "test")
        for path in sorted((data / split).rglob("*.jpeg"))
    ]
    manifest = write_manifest(rows, folder / "swapped.csv")
    assert train_small_cnn(data, folder / "run") == 0
    return data, manifest, folder / "run" / "best.pt"


def test_a_folders_run_is_not_scored_on_its_train_folder_through_a_manifest(
    folders_run: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: a run on the folders' split had "nothing to check", and a manifest's test rows
    # under train/ were scored without a word
    data, manifest, checkpoint = folders_run
    for root in (data, shutil.copytree(data, tmp_path / "copy")):  # a copy: the same names
        assert _evaluate(root, checkpoint, "--split", "test", "--manifest", str(manifest)) == 1
        error = capsys.readouterr().err
        assert "images to evaluate were trained on by this checkpoint's run (it trained on " in (
            error
        )
        assert f"{str(root / 'train')!r}" in error
    assert _evaluate(data, checkpoint, "--split", "test") == 0  # the folders' test/, as ever


def test_a_run_on_a_relative_manifest_resumes_from_another_working_directory(
    pooled: tuple[Path, Path, Path],
    relative: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # was: refused, "--manifest 'pooled.csv' ... which is not there as it was", the file
    # being there, unchanged, beside the run
    data, _, _ = pooled
    run = shutil.copytree(relative.parent, tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--data", str(data), "--resume", str(run / "last.pt"), "--out", str(run)]
    assert main([*argv, "--epochs", "2", "-q"]) == 0


def _spelled(path: str, label: str) -> str:
    """A train row's path as training still finds its file: ``\\`` separators (saved on
    Windows), spaces around (a spreadsheet's), NFD (copied from macOS), or two at once."""
    return {
        "CNV": path.replace("/", "\\"),
        "DME": f" {path} ",
        "DRUSEN": unicodedata.normalize("NFD", path),
        "NORMAL": path.replace("/", "\\") + " ",
    }[label]


@pytest.mark.skipif(os.sep != "/", reason="a backslash separates folders on Windows")
def test_train_rows_spelled_as_training_reads_them_are_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: the guard took each row as written, so a pooled re-split saved on Windows (or
    # with spaces around a path, or an NFD name) trained on test/ images that
    # `evaluate --split test` and `calibrate --split test` then used without a word
    data = make_synthetic_kermany(tmp_path / "data", train=3, val=2, test=2, shape=(40, 40))
    drusen = sorted((data / "test" / "DRUSEN").glob("*.jpeg"))[0]
    drusen.rename(drusen.with_name(f"{drusen.stem}-caf\u00e9.jpeg"))  # NFC on disk
    rows = []
    for split in ("train", "val", "test"):
        for label in ("CNV", "DME", "DRUSEN", "NORMAL"):
            for number, path in enumerate(sorted((data / split / label).glob("*.jpeg"))):
                relative, patient = path.relative_to(data).as_posix(), path.name.split("-")[1]
                if split == "test" and number == 0:  # a pooled re-split trains on it
                    rows.append(ManifestRow(_spelled(relative, label), label, patient, "train"))
                else:  # the folders' train/ images are its test rows
                    moved = {"train": "test", "val": "val", "test": "test"}[split]
                    rows.append(ManifestRow(relative, label, patient, moved))
    manifest = write_manifest(rows, tmp_path / "pooled.csv")
    assert train_small_cnn(data, tmp_path / "run", "--manifest", str(manifest)) == 0
    checkpoint = tmp_path / "run" / "best.pt"
    monkeypatch.chdir(tmp_path)  # --data relative too: the images are listed as 'data/...'
    assert _evaluate(Path("data"), checkpoint, "--split", "test") == 1
    error = capsys.readouterr().err
    assert "4 of the 8 images to evaluate were trained on by this checkpoint's run" in error
    argv = ["calibrate", "--checkpoint", str(checkpoint), "--data", "data", "-q"]
    with pytest.warns(UserWarning, match="flatters the calibration"):
        assert main([*argv, "--split", "test", "--out", str(tmp_path / "c.pt")]) == 1
    assert "4 of the 8 images to calibrate were trained on" in capsys.readouterr().err
