"""What the commands' outputs hold: stdout carries one output (a file written there with
``-`` or ``/dev/stdout``, or the results), the JSON and CSV say what they were computed
from, and each image's Grad-CAM overlay is named in its result."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from _cli_helpers import train_small_cnn
from retinalnet._core.files import file_digest
from retinalnet.cli import main
from retinalnet.datasets import make_synthetic_kermany

STDOUT = ["-", "/dev/stdout"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("outputs") / "data"
    return make_synthetic_kermany(root, train=3, val=2, test=2, shape=(80, 80), seed=5)


@pytest.fixture(scope="module")
def checkpoint(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a one-epoch small CNN on ``data`` (read only)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert train_small_cnn(data, out) == 0
    return out / "best.pt"


def _images(data: Path) -> list[str]:
    return sorted(str(p) for p in (data / "test" / "CNV").iterdir())


# ---------------------------------------------------------------------------------------------
# stdout carries one output


@pytest.mark.parametrize("stdout", STDOUT)
def test_predict_csv_to_stdout_is_the_csv_alone(
    stdout: str, data: Path, checkpoint: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The auditor's case: `--csv - | pandas.read_csv` read the result lines as rows."""
    images = _images(data)
    assert main(["predict", *images, "--checkpoint", str(checkpoint), "--csv", stdout]) == 0
    out, err = capfd.readouterr()
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["path", "class_1", "probability_1"]
    assert [row[0] for row in rows[1:]] == images  # one row per image, nothing else
    assert all(image in err for image in images)  # the result lines, on stderr


def test_predict_refuses_csv_and_json_both_on_stdout_before_any_work(
    data: Path, checkpoint: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["predict", *_images(data), "--checkpoint", str(checkpoint), "--csv", "-", "--json"]
    assert main(argv) == 1
    out, err = capfd.readouterr()
    assert out == ""
    assert err == (
        "retinalnet predict: error: --csv - and --json both write to stdout, which can carry "
        "one of them: write the CSV to a file (--csv predictions.csv)\n"
    )


@pytest.mark.parametrize("stdout", STDOUT)
@pytest.mark.parametrize("as_json", [True, False])
def test_evaluate_out_to_stdout_is_one_json_document(
    stdout: str, as_json: bool, data: Path, checkpoint: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--out", stdout]
    assert main([*argv, *(["--json"] if as_json else []), "-q"]) == 0
    out, err = capfd.readouterr()
    report = json.loads(out)  # one document: not two copies, not the tables
    assert report["num_samples"] == 8
    if not as_json:
        assert f"test split of {data}:" in err  # the tables, on stderr


def test_evaluate_refuses_the_json_and_the_report_both_on_stdout(
    data: Path, checkpoint: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--json"]
    assert main([*argv, "--report", "-"]) == 1
    assert capfd.readouterr().err == (
        "retinalnet evaluate: error: the JSON (--json or --out -) and --report - both write to "
        "stdout, which can carry one of them: write the HTML report to a file "
        "(--report report.html)\n"
    )


@pytest.mark.parametrize("stdout", STDOUT)
@pytest.mark.parametrize("as_json", [True, False])
def test_audit_out_to_stdout_is_one_json_document(
    stdout: str, as_json: bool, data: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["audit", str(data), "--out", stdout, "-q", *(["--json"] if as_json else [])]
    main(argv)
    out, err = capfd.readouterr()
    assert json.loads(out)["total"] == 28
    if not as_json:
        assert "train" in err  # the table, on stderr


def test_calibrate_out_to_stdout_is_the_checkpoint_alone(
    checkpoint: Path, data: Path, tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    from retinalnet.checkpoint import load_checkpoint

    argv = ["calibrate", "--checkpoint", str(checkpoint), "--data", str(data), "--out", "-"]
    assert main([*argv, "-q"]) == 0
    out, err = capfdbinary.readouterr()
    written = tmp_path / "calibrated.pt"
    written.write_bytes(out)
    load_checkpoint(written)
    assert not out.rstrip().endswith(b"wrote -")  # the result line is not in its bytes
    assert b"wrote -" in err
    assert main([*argv, "--json"]) == 1
    assert b"--out - and --json both write to stdout" in capfdbinary.readouterr().err


# ---------------------------------------------------------------------------------------------
# what the numbers were computed from


def test_evaluate_json_says_which_split_data_and_checkpoint(
    data: Path, checkpoint: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "test.json"
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--json", "-q"]
    assert main([*argv, "--out", str(file)]) == 0
    printed = json.loads(capfd.readouterr().out)
    expected = {
        "split": "test",
        "data": str(data),
        "manifest": None,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_digest(checkpoint).hex(),
    }
    for report in (printed, json.loads(file.read_text())):
        assert {key: report[key] for key in expected} == expected
        assert report["num_samples"] == 8  # the keys there before stay


@pytest.mark.parametrize("tta", [True, False])
def test_predict_json_and_csv_say_tta_and_the_checkpoint(
    tta: bool, data: Path, checkpoint: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "predictions.csv"
    argv = ["predict", *_images(data), "--checkpoint", str(checkpoint), "--csv", str(table)]
    assert main([*argv, "--json", "-q", *(["--tta"] if tta else [])]) == 0
    printed: list[dict[str, Any]] = json.loads(capfd.readouterr().out)
    with table.open(newline="") as file:
        rows = list(csv.DictReader(file))
    sha = file_digest(checkpoint).hex()
    for entry, row in zip(printed, rows, strict=True):
        assert entry["tta"] is tta
        assert (entry["checkpoint"], entry["checkpoint_sha256"]) == (str(checkpoint), sha)
        assert entry["cam"] is None  # no --cam
        assert row["tta"] == ("true" if tta else "false")
        assert (row["checkpoint"], row["checkpoint_sha256"]) == (str(checkpoint), sha)
        assert row["cam"] == ""
        assert row["precision"] == entry["precision"]


# ---------------------------------------------------------------------------------------------
# each overlay is named in its image's result, and says which image it shows


@pytest.mark.parametrize(
    ("names", "cams"),
    [
        (("ok.jpeg", "ok.jpeg"), ("ok_cam.png", "ok_2_cam.png")),
        # one file on a macOS or Windows disk: the second replaced the first's overlay there
        (("IMG_0001.jpeg", "img_0001.jpeg"), ("IMG_0001_cam.png", "img_0001_2_cam.png")),
        (("caf\u00e9.jpeg", "cafe\u0301.jpeg"), ("caf\u00e9_cam.png", "cafe\u0301_2_cam.png")),
    ],
    ids=["same name", "names differing in case", "NFC and NFD"],
)
def test_overlays_of_two_images_of_one_name_are_told_apart(
    names: tuple[str, str],
    cams: tuple[str, str],
    data: Path,
    checkpoint: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("matplotlib")
    import retinalnet.plots

    scan = next((data / "test" / "DME").iterdir())
    inputs = []
    for folder, name in zip(("a", "b"), names, strict=True):
        (tmp_path / folder).mkdir()
        inputs.append(str(shutil.copy(scan, tmp_path / folder / name)))
    other = str(shutil.copy(scan, tmp_path / "single.jpeg"))
    titles: dict[str, str] = {}  # by file name: drawn aside, then renamed into the folder
    draw = retinalnet.plots.plot_gradcam

    def recorded(image: Any, heatmap: Any, *, title: str, save: Path, **kwargs: Any) -> Any:
        titles[Path(save).name] = title
        return draw(image, heatmap, title=title, save=save, **kwargs)

    monkeypatch.setattr(retinalnet.plots, "plot_gradcam", recorded)
    folder, table = tmp_path / "cams", tmp_path / "p.csv"
    argv = ["predict", *inputs, other, "--checkpoint", str(checkpoint), "--cam", str(folder)]
    assert main([*argv, "--json", "--csv", str(table), "-q"]) == 0
    printed = json.loads(capfd.readouterr().out)
    with table.open(newline="") as file:
        rows = list(csv.DictReader(file))

    by_source = {entry["source"]: Path(entry["cam"]) for entry in printed}
    assert {row["path"]: Path(row["cam"]) for row in rows} == by_source
    assert by_source == {
        inputs[0]: folder / cams[0],
        inputs[1]: folder / cams[1],
        other: folder / "single_cam.png",
    }
    assert all(path.is_file() for path in by_source.values())
    for source, path in by_source.items():  # the path as given where names repeat
        shown = Path(source).name if source == other else source
        assert titles[path.name].startswith(f"{shown}: ")


def test_predict_text_output_is_unchanged_without_stdout_outputs(
    data: Path, checkpoint: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Without an output on stdout the result lines stay on stdout (the rule's other side)."""
    images = _images(data)
    assert main(["predict", *images, "--checkpoint", str(checkpoint), "-q"]) == 0
    out = capfd.readouterr().out
    assert [line.split("  ")[0] for line in out.splitlines()] == images


def test_evaluate_out_to_a_file_keeps_the_tables_on_stdout(
    data: Path, checkpoint: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "-q"]
    assert main([*argv, "--out", str(tmp_path / "e.json")]) == 0
    assert f"test split of {data}:" in capfd.readouterr().out


@pytest.mark.parametrize("names", [("eye.tif", "eye.tif"), ("eye.tif", "EYE.tif")])
def test_overlays_of_two_volumes_of_one_name_are_titled_with_their_paths(
    names: tuple[str, str],
    data: Path,
    checkpoint: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    import retinalnet.plots

    frame = Image.open(next((data / "test" / "DME").iterdir())).convert("L")
    volumes = []
    for folder, name in zip(("a", "b"), names, strict=True):
        (tmp_path / folder).mkdir()
        volume = tmp_path / folder / name
        frame.save(volume, save_all=True, append_images=[frame, frame])
        volumes.append(str(volume))
    titles: list[str] = []
    draw = retinalnet.plots.plot_gradcam

    def recorded(image: Any, heatmap: Any, *, title: str, **kwargs: Any) -> Any:
        titles.append(title)
        return draw(image, heatmap, title=title, **kwargs)

    monkeypatch.setattr(retinalnet.plots, "plot_gradcam", recorded)
    argv = ["predict", *volumes, "--checkpoint", str(checkpoint), "--cam", str(tmp_path / "c")]
    assert main([*argv, "-q"]) == 0
    capfd.readouterr()
    assert titles
    for title in titles:  # was "eye.tif B-scan ...", the same for both
        assert title.split(" B-scan ")[0] in volumes
    assert {title.split(" B-scan ")[0] for title in titles} == set(volumes)
    written = [path.name.casefold() for path in (tmp_path / "c").iterdir()]
    assert len(set(written)) == len(titles)  # one file each, also where case is not told
