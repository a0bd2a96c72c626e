"""``retinalnet predict``: which files it reads (a DICOM file named by its UID), and ``-k``
checked against the model's classes. Run in-process through main()."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from _cli_helpers import train_small_cnn
from retinalnet.cli import main
from retinalnet.cli._image_paths import image_paths
from retinalnet.datasets import make_synthetic_kermany

UID_NAME = "1.2.826.0.1.3680043.8.498.10254657"  # how PACS and scanner exports name files


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a one-epoch small CNN of the 4 Kermany classes (read only)."""
    root = tmp_path_factory.mktemp("cli-predict")
    data = make_synthetic_kermany(root / "data", train=3, val=2, test=1, shape=(48, 48), seed=5)
    assert train_small_cnn(data, root / "run", "--no-calibrate") == 0
    return root / "run" / "best.pt"


@pytest.fixture(scope="module")
def scan(checkpoint: Path) -> Path:
    path = checkpoint.parent.parent / "data" / "test" / "CNV"
    return next(path.iterdir())


def _volume(path: Path) -> Path:
    """A 3-page TIFF: a volume of 3 B-scans."""
    frame = Image.new("L", (48, 48), 90)
    frame.save(path, save_all=True, append_images=[frame, frame])
    return path


# ---------------------------------------------------------------------------------------------
# -k against the model's classes


@pytest.mark.parametrize("given", ["image", "volume"])
def test_k_above_the_models_classes_is_refused_as_a_bad_option_value(
    given: str,
    checkpoint: Path,
    scan: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # was: "k must be an int from 1 to 4, got 5" (the library's words, status 1) for an image,
    # and with only a volume given, -k 9 was accepted without a word
    path = scan if given == "image" else _volume(tmp_path / "volume.tif")
    argv = ["predict", "--checkpoint", str(checkpoint), str(path), "-k", "9", "-q"]

    assert main(argv) == 2  # docs/cli.rst: a value out of range

    captured = capsys.readouterr()
    assert captured.out == ""  # refused before any prediction
    assert captured.err == (
        "retinalnet predict: error: argument -k/--topk: must be at most 4, the number of "
        f"classes of the model in {str(checkpoint)!r}, got 9; pass -k 4 to list them all\n"
    )


def test_k_of_every_class_lists_them_all(
    checkpoint: Path, scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--checkpoint", str(checkpoint), str(scan), "-k", "4", "-q"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(scan))
    assert sorted(line.split()[1::2]) == ["CNV", "DME", "DRUSEN", "NORMAL"]


# ---------------------------------------------------------------------------------------------
# A file given by name is read when it starts like an image, whatever its name


def test_a_dicom_file_named_by_its_uid_or_bin_is_predicted_when_given_by_name(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from _dicom_helpers import scans, write

    # was: "left out 2 file(s) that are not images", then "no images found" (status 1),
    # while Predictor read the same files (docs/dicom.rst: read when given by name)
    uid = write(tmp_path / UID_NAME, scans(1)[0])
    binary = write(tmp_path / "IM0001.bin", scans(1, seed=1)[0])

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        assert main(["predict", "--checkpoint", str(checkpoint), str(uid), str(binary), "-q"]) == 0

    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == [str(uid), str(binary)]
    assert not [w for w in warned if "not images" in str(w.message)]


def test_named_files_are_kept_by_their_first_bytes_unless_the_name_is_an_images(
    tmp_path: Path,
) -> None:
    dicom = tmp_path / UID_NAME
    dicom.write_bytes(bytes(128) + b"DICM" + bytes(16))
    png = tmp_path / "scan.bin"
    Image.new("L", (8, 8)).save(png, format="PNG")
    notes = tmp_path / "notes.42"  # a suffix of digits, and not an image's first bytes
    notes.write_text("not a scan")

    with pytest.warns(UserWarning, match=r"left out 1 file\(s\) that are not images: .*notes"):
        assert image_paths([dicom, png, notes]) == [dicom, png]


# ---------------------------------------------------------------------------------------------
# What is printed, and printed to no stdout


def test_a_probability_short_of_1_is_never_printed_as_100_percent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # was "CNV 100.0%  DME   0.0%" for 0.9996 and 0.0004: the line of a certain model
    from retinalnet.cli._predict import print_predictions
    from retinalnet.predictor import ClassProbability, Prediction

    sure = (ClassProbability("CNV", 0, 0.9996), ClassProbability("DME", 1, 0.0004))
    print_predictions([Prediction("scan.jpeg", sure), Prediction("b.jpeg", sure[:1])])

    assert capsys.readouterr().out.splitlines() == [
        "scan.jpeg  CNV >99.9%  DME  <0.1%",
        "b.jpeg  CNV >99.9%",
    ]


def test_the_csv_never_writes_a_probability_short_of_1_as_1(tmp_path: Path) -> None:
    # was "1.000000" and "0.000000" (6 decimals) for 0.99999964 and 3.6e-07: a program
    # reading the file took the model for certain, and log(p) of the runner-up was -inf
    import csv

    from retinalnet.cli._predict import _write_csv
    from retinalnet.predictor import ClassProbability, Prediction

    sure = (ClassProbability("CNV", 0, 0.99999964), ClassProbability("DME", 1, 3.6e-07))
    usual = (ClassProbability("DME", 1, 0.8123456789), ClassProbability("CNV", 0, 1.0))
    table = tmp_path / "p.csv"
    _write_csv(table, [Prediction("a.jpeg", sure), Prediction("b.jpeg", usual)], 2, {}, [None] * 2)

    with table.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [float(rows[0][f"probability_{k}"]) for k in (1, 2)] == [0.99999964, 3.6e-07]
    assert [rows[1][f"probability_{k}"] for k in (1, 2)] == ["0.812346", "1.000000"]


def test_with_no_stdout_predict_still_writes_its_csv_and_overlays(
    checkpoint: Path, scan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started with stdout closed (``>&-``, pythonw), Python has ``sys.stdout = None``: was a
    raw AttributeError from ``sys.stdout.flush()`` after the results, before the Grad-CAM
    overlays were drawn."""
    pytest.importorskip("matplotlib")
    monkeypatch.setattr("sys.stdout", None)

    code = main(["predict", "--checkpoint", str(checkpoint), str(scan), "-q",
                 "--csv", str(tmp_path / "p.csv"), "--cam", str(tmp_path / "cams")])  # fmt: skip

    monkeypatch.undo()
    assert code == 0
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 2  # the header and the scan
    assert [p.name for p in (tmp_path / "cams").iterdir()] == [f"{scan.stem}_cam.png"]


# ---------------------------------------------------------------------------------------------
# The CSV and the JSON name overlays only once every overlay is in place


def _stopped_at_draw(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    call: int,
    error: BaseException | Callable[[Path], BaseException],
    module: str = "retinalnet.plots",
) -> None:
    """``MODULE.NAME`` raising ``error`` at its ``call``-th call (Ctrl-C, or a full disk,
    while the figures are drawn), the calls before drawn as usual; ``error`` may be made of
    the path the figure is saved to."""
    import importlib

    plots = importlib.import_module(module)
    real = getattr(plots, name)
    calls: list[int] = []

    def draw(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == call:
            raise error if isinstance(error, BaseException) else error(Path(kwargs["save"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(plots, name, draw)


def _status(argv: list[str]) -> int:
    """``main(argv)``'s status; 130 for a Ctrl-C it passes on to its caller."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        return 130


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture
def images_and_model_b(checkpoint: Path, tmp_path: Path) -> tuple[list[str], Path]:
    """Three test scans, and another model than ``checkpoint``'s."""
    from _checkpoint_swap import two_checkpoints

    data = checkpoint.parent.parent / "data" / "test"
    images = sorted(str(next((data / name).iterdir())) for name in ("CNV", "DME", "DRUSEN"))
    return images, two_checkpoints(tmp_path / "epochs")[1]


def test_predict_stopped_while_drawing_overlays_leaves_the_earlier_csv_and_overlays(
    checkpoint: Path,
    images_and_model_b: tuple[list[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Was: the CSV was written first, naming model B and its sha256 beside overlays that
    model A drew (Ctrl-C while B's were drawn): three heatmaps credited to the wrong model."""
    pytest.importorskip("matplotlib")
    images, model_b = images_and_model_b
    cams, table = tmp_path / "cams", tmp_path / "p.csv"
    outputs = ["--cam", str(cams), "--csv", str(table), "-q"]
    assert main(["predict", *images, "--checkpoint", str(checkpoint), *outputs]) == 0
    before = table.read_bytes(), _folder_bytes(cams)
    _stopped_at_draw(monkeypatch, "plot_gradcam", 2, KeyboardInterrupt())

    assert _status(["predict", *images, "--checkpoint", str(model_b), *outputs]) == 130

    capsys.readouterr()
    assert (table.read_bytes(), _folder_bytes(cams)) == before  # model A's set, whole
    assert sorted(_folder_bytes(cams)) == sorted(f"{Path(i).stem}_cam.png" for i in images)


def test_predict_failing_to_write_an_overlay_writes_no_csv_and_says_so_truly(
    checkpoint: Path,
    images_and_model_b: tuple[list[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Was: "cannot write '.../X_cam.png': no space left on device [ENOSPC]; nothing was
    written", after the CSV naming four overlays (none on disk) was written."""
    import errno

    from retinalnet._core.files import FileWriteError

    pytest.importorskip("matplotlib")
    images, _ = images_and_model_b
    cams, table = tmp_path / "cams", tmp_path / "p.csv"

    def full(path: Path) -> FileWriteError:  # as atomic_write says it
        return FileWriteError(path, "no space left on device [ENOSPC]", errno.ENOSPC)

    _stopped_at_draw(monkeypatch, "plot_gradcam", 2, full)
    argv = ["predict", *images, "--checkpoint", str(checkpoint), "--cam", str(cams)]

    assert main([*argv, "--csv", str(table), "-q"]) == 1

    err = capsys.readouterr().err
    second = cams / f"{Path(images[1]).stem}_cam.png"
    assert f"cannot write {str(second)!r}: no space left on device [ENOSPC]" in err
    assert not table.exists()  # "nothing was written" is true
    assert not cams.exists()  # nor an overlay: the set comes whole or not at all


@pytest.mark.parametrize("output", [["--json"], ["--csv", "-"]], ids=["json", "csv-stdout"])
def test_results_on_stdout_are_out_before_the_overlays_are_drawn(
    checkpoint: Path,
    images_and_model_b: tuple[list[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    output: list[str],
) -> None:
    """R16: with the CSV/JSON written after the overlays, a failed or stopped overlay lost
    every prediction from stdout; stdout has no earlier file to keep, so it comes first, as
    the text results and ``evaluate --out -`` do."""
    pytest.importorskip("matplotlib")
    images, _ = images_and_model_b
    _stopped_at_draw(monkeypatch, "plot_gradcam", 3, KeyboardInterrupt())
    argv = ["predict", *images, "--checkpoint", str(checkpoint), *output, "-q"]

    assert _status([*argv, "--cam", str(tmp_path / "cams")]) == 130

    shown = capfd.readouterr()  # --csv - is written to the descriptor
    assert all(Path(image).name in shown.out for image in images), shown


def test_volume_plots_stopped_while_drawn_leave_the_earlier_ones(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    volumes = [str(_volume(tmp_path / f"{name}.tif")) for name in ("left", "right")]
    plots = tmp_path / "plots"
    argv = ["predict", *volumes, "--checkpoint", str(checkpoint), "--plots", str(plots), "-q"]
    assert main(argv) == 0
    for figure in plots.iterdir():
        figure.write_bytes(b"the earlier run's figure")
    _stopped_at_draw(monkeypatch, "plot_volume", 2, KeyboardInterrupt(), "retinalnet.plots_volume")

    assert _status(argv) == 130

    assert _folder_bytes(plots) == {  # was: left_volume.png of this run beside right's
        "left_volume.png": b"the earlier run's figure",
        "right_volume.png": b"the earlier run's figure",
    }
