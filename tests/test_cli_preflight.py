"""What every command checks before any work (retinalnet.cli._preflight): outputs that would
land among what it reads, replace a model or a scan, or meet each other."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

from _cli_helpers import train_small_cnn
from _training_helpers import tiny_cnn
from retinalnet import cli
from retinalnet.checkpoint import save_checkpoint
from retinalnet.cli import main

_COMMANDS = ("demo", "train", "evaluate", "calibrate", "predict", "export", "audit", "split")


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commands that ran (each replaced by a stand-in that does no work)."""
    commands: list[str] = []
    for command in _COMMANDS:
        monkeypatch.setitem(cli._COMMANDS, command, lambda args: commands.append(args.command) or 0)
    return commands


def _scan(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (40, 40), 90).save(path, format="PNG")
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A Kermany-layout folder with a scan in each split (no val/ folder: it may come)."""
    root = tmp_path / "OCT2017"
    _scan(root / "train" / "DME" / "DME-1-1.jpeg")
    _scan(root / "test" / "CNV" / "CNV-2-1.jpeg")
    return root


def _refused(argv: list[str], said: str, ran: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert said in err, err
    assert len(err.strip().splitlines()) == 1
    assert ran == []  # before any work
    return err


# --- 1. an output folder among the folders a command reads ------------------------------------


@pytest.mark.parametrize(
    ("argv", "flag", "folder"),
    [
        (["evaluate", "--checkpoint", "c.pt", "--plots"], "--plots", "test/CNV"),
        (["evaluate", "--checkpoint", "c.pt", "--plots"], "--plots", "train/DME"),  # not read
        (["evaluate", "--checkpoint", "c.pt", "--plots"], "--plots", "val"),  # not there yet
        (["evaluate", "--checkpoint", "c.pt", "--feature-cache"], "--feature-cache", "test/x"),
        (["train", "--out"], "--out", "train/run"),
        (["train", "--tensorboard"], "--tensorboard", "val/tb"),
        (["train", "--feature-cache"], "--feature-cache", "test/CNV/cache"),
    ],
    ids=["split-read", "other-split", "missing-split", "cache", "train-out", "tb", "cache-train"],
)
def test_an_output_folder_inside_a_split_of_data_is_refused(
    argv: list[str],
    flag: str,
    folder: str,
    data: Path,
    ran: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = data / folder
    full = [*argv, str(target), "--data", str(data)]
    said = (
        f"{flag} {str(target)!r} is inside the --data folder {str(data / folder.split('/')[0])!r}"
        ", which the command reads: its files would be read as scans next time; pass a "
        f"folder outside it for {flag}"
    )
    _refused(full, said, ran, capsys)  # was: PNGs written into the class folder, read next time


def test_with_a_manifest_all_of_data_is_read(
    data: Path, tmp_path: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "split.csv"
    manifest.write_text("path,label,patient,split\n")
    argv = ["evaluate", "--checkpoint", "c.pt", "--data", str(data), "--manifest", str(manifest)]
    _refused([*argv, "--plots", str(data / "figures")], "is inside the --data folder", ran, capsys)


@pytest.mark.parametrize("flag", ["--cam", "--plots"])
def test_predict_writes_no_folder_into_a_folder_it_reads(
    flag: str, tmp_path: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    scans = tmp_path / "inp"
    _scan(scans / "a.png")
    for target in (scans, scans / "overlays"):
        argv = ["predict", str(scans), "--checkpoint", "c.pt", flag, str(target)]
        # was: overlays written among the scans, predicted as scans the next time
        _refused(argv, f"is inside the PATH folder {str(scans)!r}", ran, capsys)


def test_an_output_folder_that_is_a_link_into_the_data_is_refused(
    data: Path, tmp_path: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "figures"
    link.symlink_to(data / "test" / "CNV")
    argv = ["evaluate", "--checkpoint", "c.pt", "--data", str(data), "--plots", str(link)]
    _refused(argv, f"(a link to {str(data / 'test' / 'CNV')!r}) is inside", ran, capsys)


def test_output_folders_beside_the_data_are_written(
    data: Path, tmp_path: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    cams = tmp_path / "cams"
    _scan(cams / "a_cam.png")  # the command's own earlier output
    evaluate = ["evaluate", "--checkpoint", "c.pt", "--data", str(data)]
    assert main([*evaluate, "--plots", str(tmp_path / "plots")]) == 0
    assert main([*evaluate, "--plots", str(data)]) == 0  # its root holds no scans
    scans = tmp_path / "inp"
    _scan(scans / "a.png")
    assert main(["predict", str(scans), "--checkpoint", "c.pt", "--cam", str(cams)]) == 0
    train = ["train", "--data", str(data), "--out", str(tmp_path / "run")]
    assert main([*train, "--tensorboard", str(tmp_path / "run" / "tb")]) == 0
    assert ran == ["evaluate", "evaluate", "predict", "train"]


# --- 3, 4. an output file that would destroy a scan or a model -------------------------------


def test_an_output_file_linked_to_a_scan_of_data_is_refused(
    data: Path, tmp_path: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    scan = data / "test" / "CNV" / "CNV-2-1.jpeg"
    before = scan.read_bytes()
    report = tmp_path / "report.json"
    report.symlink_to(scan)
    argv = ["evaluate", "--checkpoint", "c.pt", "--data", str(data), "--out", str(report)]
    said = f"--out {str(report)!r} (a link to {str(scan)!r}) is a scan in the --data folder"
    _refused(argv, said, ran, capsys)  # was: the scan replaced by the JSON report
    assert scan.read_bytes() == before


def test_an_output_file_linked_to_a_scan_of_a_path_is_refused(
    tmp_path: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    scans = tmp_path / "inp"
    scan = _scan(scans / "deep" / "a.png")
    table = tmp_path / "p.csv"
    table.symlink_to(scan)
    argv = ["predict", str(scans), "--checkpoint", "c.pt", "--csv", str(table)]
    _refused(argv, "is a scan in the PATH folder", ran, capsys)


def test_a_scan_of_a_split_not_read_is_protected_too(
    data: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    scan = data / "train" / "DME" / "DME-1-1.jpeg"
    before = scan.read_bytes()
    argv = ["evaluate", "--checkpoint", "c.pt", "--data", str(data), "--split", "test"]
    _refused([*argv, "--out", str(scan)], "is a scan in the --data folder", ran, capsys)
    assert scan.read_bytes() == before  # was: a training scan replaced by the JSON report


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run folder: last.pt (a checkpoint of epoch 3), and a copy of it without a suffix."""
    folder = tmp_path / "run1c"
    folder.mkdir()
    save_checkpoint(folder / "last.pt", tiny_cnn(), epoch=3)
    (folder / "last").write_bytes((folder / "last.pt").read_bytes())
    (folder / "history.csv").write_text("epoch,loss\n1,0.5\n")
    return folder


@pytest.mark.parametrize(
    ("argv", "name", "said"),
    [
        (["evaluate", "--data", "d", "--out"], "last.pt",
         "names a checkpoint file (.pt), but evaluate writes a JSON file there; pass a name "
         "ending in .json for --out"),
        (["evaluate", "--data", "d", "--out"], "last",
         "is a retinalnet checkpoint (trained for 3 epoch(s)): evaluate would replace it with "
         "a JSON file; choose another name or delete it"),
        (["export", "--out"], "history.csv",
         "names a CSV file (.csv), but export writes an ONNX file there; pass a name ending "
         "in .onnx for --out"),
        (["calibrate", "--data", "d", "--out"], "last",
         "is a retinalnet checkpoint (trained for 3 epoch(s)): calibrate would replace it "
         "with a checkpoint file; choose another name or delete it"),
    ],
    ids=["json-to-pt", "json-over-checkpoint", "onnx-to-csv", "calibrate-over-another"],
)  # fmt: skip
def test_an_output_file_that_would_replace_a_model_or_say_another_kind_is_refused(
    argv: list[str],
    name: str,
    said: str,
    run: Path,
    tmp_path: Path,
    ran: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    save_checkpoint(tmp_path / "c.pt", tiny_cnn(seed=1))
    before = (run / name).read_bytes()
    full = [argv[0], "--checkpoint", str(tmp_path / "c.pt"), *argv[1:], str(run / name)]
    _refused(full, said, ran, capsys)
    assert (run / name).read_bytes() == before


def test_an_output_file_that_would_replace_an_image_is_refused(
    tmp_path: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    photo = _scan(tmp_path / "photos" / "holiday")  # a PNG without a suffix
    argv = ["predict", "x.jpeg", "--checkpoint", "c.pt", "--csv", str(photo)]
    _refused(argv, "is an image: predict would replace it with a CSV file", ran, capsys)


@pytest.mark.parametrize(
    ("command", "flag", "name", "written"),
    [
        ("evaluate", "--report", "r.json", "an HTML"),
        ("predict", "--csv", "p.json", "a CSV"),
        ("audit", "--out", "a.html", "a JSON"),
        ("calibrate", "--out", "c.onnx", "a checkpoint"),
        ("evaluate", "--out", "e.png", "a JSON"),
    ],
)
def test_a_suffix_naming_another_kind_of_file_is_refused(
    command: str,
    flag: str,
    name: str,
    written: str,
    tmp_path: Path,
    ran: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = {
        "evaluate": ["evaluate", "--checkpoint", "c", "--data", "d"],
        "predict": ["predict", "x.jpeg", "--checkpoint", "c"],
        "audit": ["audit", "r"],
        "calibrate": ["calibrate", "--checkpoint", "c", "--data", "d"],
    }[command]
    said = f"but {command} writes {written} file there"
    _refused([*argv, flag, str(tmp_path / name)], said, ran, capsys)


def test_split_refuses_a_manifest_name_before_the_split(
    tmp_path: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # was: refused by write_manifest after the split (hashing every file for duplicates)
    argv = ["split", "r", "--drop-duplicates", "--out", str(tmp_path / "split.txt")]
    _refused(argv, "must end in .csv or .json (the manifest's format), got '.txt'", ran, capsys)


def test_outputs_that_replace_their_own_kind_or_go_through_are_written(
    data: Path, run: Path, tmp_path: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate = ["evaluate", "--checkpoint", "c.pt", "--data", str(data)]
    old = tmp_path / "report.json"
    old.write_text("{}")
    for out in (old, tmp_path / "report.txt", tmp_path / "report", Path("/dev/null"), Path("-")):
        assert main([*evaluate, "--out", str(out)]) == 0
    model = tmp_path / "model.onnx"
    model.write_bytes(b"an earlier export")
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--out", str(model)]) == 0
    # calibrate --out the checkpoint itself: in place, as without --out
    last = str(run / "last.pt")
    assert main(["calibrate", "--checkpoint", last, "--data", str(data), "--out", last]) == 0
    assert ran == ["evaluate"] * 5 + ["export", "calibrate"]


# --- 7. two outputs of one command on one path ------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["predict", "x.jpeg", "--checkpoint", "c", "--csv", "{o}", "--cam", "{o}"],
         "--csv '{o}' and --cam '{o}' name one path, which cannot be both the file of --csv "
         "and the folder of --cam; pass another path for --cam"),
        (["evaluate", "--checkpoint", "c", "--data", "d", "--out", "{o}", "--plots", "{o}"],
         "--out '{o}' and --plots '{o}' name one path"),
        (["evaluate", "--checkpoint", "c", "--data", "d", "--report", "{o}", "--plots", "{o}"],
         "--plots '{o}' and --report '{o}' name one path"),
        (["evaluate", "--checkpoint", "c", "--data", "d", "--out", "{o}", "--report", "{o}"],
         "--out '{o}' and --report '{o}' name one file: --report would replace what --out "
         "writes; pass another path for --report"),
        (["predict", "x.jpeg", "--checkpoint", "c", "--csv", "{o}", "--cam", "{o}/cams"],
         "--cam '{o}/cams' is inside --csv '{o}', which is a file; pass a path for --cam "
         "outside it"),
    ],
    ids=["csv-cam", "out-plots", "report-plots", "out-report", "cam-in-csv"],
)  # fmt: skip
def test_two_outputs_on_one_path_are_refused_before_any_work(
    argv: list[str], said: str, tmp_path: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    o = str(tmp_path / "o1")
    # was: "[Errno 17] File exists", or "is a directory", after all the work; or the JSON
    # report silently replaced by the HTML one
    _refused([part.format(o=o) for part in argv], said.format(o=o), ran, capsys)
    assert not Path(o).exists()


def test_an_output_linked_to_another_output_is_one_path(
    tmp_path: Path, ran: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    report, link = tmp_path / "report.json", tmp_path / "page.html"
    link.symlink_to(report)
    argv = ["evaluate", "--checkpoint", "c", "--data", "d", "--out", str(report)]
    _refused([*argv, "--report", str(link)], "name one file", ran, capsys)


def test_outputs_that_share_a_folder_are_written(tmp_path: Path, ran: list[str]) -> None:
    figures = tmp_path / "figures"
    evaluate = ["evaluate", "--checkpoint", "c", "--data", "d", "--plots", str(figures)]
    assert main([*evaluate, "--report", str(figures / "report.html")]) == 0
    predict = ["predict", "x.jpeg", "--checkpoint", "c", "--cam", str(figures)]
    assert main([*predict, "--plots", str(figures)]) == 0  # each names its files apart
    assert main([*evaluate, "--out", "-", "--report", "/dev/null"]) == 0
    assert ran == ["evaluate", "predict", "evaluate"]


def test_calibrating_into_the_same_copy_twice_needs_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a second `calibrate --out c2.pt` was refused with no way but deleting the copy
    from retinalnet.datasets import make_synthetic_kermany

    data = make_synthetic_kermany(tmp_path / "data", train=3, val=2, test=1, shape=(40, 40))
    assert train_small_cnn(data, tmp_path / "run") == 0
    argv = ["calibrate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--data", str(data)]
    argv += ["--out", str(tmp_path / "c2.pt"), "-q"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 8 images: the fit may be left out
        assert main(argv) == 0
        assert main(argv) == 1
        assert "or allow it (--overwrite)" in capsys.readouterr().err
        assert main([*argv, "--overwrite"]) == 0
