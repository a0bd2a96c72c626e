"""The benchmark scripts end a run they cannot do with one line, never a traceback: a folder
of images that is missing or empty (``--images-from``, through ``benchmarks/image_folder.py``),
a count of nothing to time, a preset that does not exist."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

IMAGES_FROM = (
    "bench_decode",
    "bench_onnx",
    "bench_predict",
    "bench_preprocessing",
    "bench_tensor_preprocessing",
)
"""Every script with ``--images-from``."""


@pytest.fixture
def benchmarks_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scripts import their sibling modules, as when run from their folder."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))


def _run_in_process(name: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> SystemExit:
    """Run ``benchmarks/NAME.py ARGV`` here (torch is imported already: fast); its exit."""
    script = BENCHMARKS / f"{name}.py"
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    return exit_info.value


@pytest.mark.parametrize("folder", ["empty", "missing"])
@pytest.mark.parametrize("name", IMAGES_FROM)
def test_a_folder_without_images_ends_the_script_with_one_line(
    name: str, folder: str, tmp_path: Path
) -> None:
    images = tmp_path / folder
    if folder == "empty":
        images.mkdir()
        (images / "notes.txt").write_text("no scans here")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--images-from", str(images)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=BENCHMARKS.parent,
    )
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert repr(str(images)) in lines[0]
    missing = "does not exist; pass a folder of"
    expected = missing if folder == "missing" else "there is nothing to time; pass a folder"
    assert expected in lines[0]
    assert "e.g. ../shared/data/kermany-sample" in lines[0]


@pytest.mark.usefixtures("benchmarks_importable")
def test_a_file_given_for_the_folder_is_named_as_a_file(tmp_path: Path) -> None:
    from image_folder import images_in_folder

    scan = tmp_path / "scan.jpeg"
    scan.write_bytes(b"not a folder")
    with pytest.raises(SystemExit, match="is a file, not a folder; pass a folder of image"):
        images_in_folder(scan)


@pytest.mark.usefixtures("benchmarks_importable")
@pytest.mark.parametrize(
    ("name", "argv", "message"),
    [
        ("bench_decode", ["--images", "0"], "--images 0: needs at least 1 synthetic scan"),
        ("bench_decode", ["--repeats", "0"], "--repeats 0: needs at least 1 pass"),
        ("bench_preprocessing", ["--images", "0"], "--images 0: needs at least 1 synthetic scan"),
        ("bench_onnx", ["--repeats", "0"], "--repeats 0: needs at least 1 timed pass"),
        ("bench_calibration", ["--seeds", "0"], "--seeds 0: needs at least 1 split"),
    ],
)
def test_nothing_to_time_ends_the_script_with_one_line(
    name: str, argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, a division by zero or the mean of no numbers: a traceback at the end."""
    code = _run_in_process(name, argv, monkeypatch).code
    assert isinstance(code, str)
    assert message in code
    assert "\n" not in code


@pytest.mark.usefixtures("benchmarks_importable")
def test_bench_real_accuracy_names_an_unknown_preset_before_it_trains(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, the typo was a KeyError from the first model built, after the splits."""
    code = _run_in_process("bench_real_accuracy", ["--augment", "octt"], monkeypatch).code
    assert code == 2
    error = capsys.readouterr().err
    assert "argument --augment: invalid choice: 'octt'" in error
    assert "'oct-strong'" in error
    assert "Traceback" not in error
