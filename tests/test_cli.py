"""The retinalnet command line, run in-process through main()."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from _cli_helpers import train_small_cnn
from retinalnet import __version__, cli
from retinalnet.checkpoint import load_checkpoint
from retinalnet.cli import _logging_to_stderr, build_parser, main
from retinalnet.cli._advice import cli_message, cli_text
from retinalnet.cli._image_paths import image_suffixes
from retinalnet.cli._preflight import INPUTS, OUTPUTS
from retinalnet.datasets import make_synthetic_kermany
from retinalnet.training import History


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "data"
    return make_synthetic_kermany(root, train=3, val=2, test=2, shape=(80, 80), seed=5)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"retinalnet {__version__}"


def test_python_dash_m_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "retinalnet", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    for command in ("demo", "train", "evaluate", "predict"):
        assert command in result.stdout


def test_train_evaluate_predict(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out) == 0
    printed = capsys.readouterr().out
    assert "stopped: reached max_epochs=1" in printed
    assert (out / "best.pt").is_file()
    assert (out / "last.pt").is_file()
    assert (out / "history.csv").read_text().count("\n") == 2

    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(data),
                 "--json", "-q"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["num_samples"] == 8
    assert report["classes"] == ["CNV", "DME", "DRUSEN", "NORMAL"]
    assert sum(map(sum, report["confusion_matrix"])) == 8

    assert main(["predict", "--checkpoint", str(out / "best.pt"), str(data / "test"),
                 "-k", "3", "--json", "-q"]) == 0  # fmt: skip
    predictions = json.loads(capsys.readouterr().out)
    assert len(predictions) == 8
    assert all(len(p["top"]) == 3 for p in predictions)
    probabilities = [c["probability"] for c in predictions[0]["top"]]
    assert probabilities == sorted(probabilities, reverse=True)

    one = next((data / "test" / "CNV").iterdir())
    assert main(["predict", "--checkpoint", str(out / "best.pt"), str(one), "-q"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(one))
    assert line.count("%") == 2


def test_a_second_run_does_not_replace_best_and_resume_continues(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out) == 0
    first = (out / "best.pt").read_bytes()
    capsys.readouterr()

    assert train_small_cnn(data, out) == 1
    assert "already exists" in capsys.readouterr().err
    assert (out / "best.pt").read_bytes() == first

    assert train_small_cnn(data, out, "--epochs", "2", "--resume", str(out / "last.pt")) == 0
    assert load_checkpoint(out / "last.pt").epoch == 2
    assert len(load_checkpoint(out / "last.pt").history) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "--checkpoint", "missing.pt", "x.jpeg"], "no checkpoint file 'missing.pt'"),
        (["train", "--data", "no/such/dir", "--arch", "small_cnn"], "does not exist"),
        (["evaluate", "--checkpoint", "missing.pt", "--data", "."], "no checkpoint file"),
    ],
)
def test_errors_are_one_line_without_traceback(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "-q"]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def checkpoint(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a one-epoch small CNN on ``data`` (read only)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert train_small_cnn(data, out) == 0
    return out / "best.pt"


def test_predict_names_an_unreadable_image_and_how_to_skip_it(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.jpeg"
    broken.write_text("not an image")
    assert main(["predict", "--checkpoint", str(checkpoint), str(broken), "-q"]) == 1
    err = capsys.readouterr().err
    assert "broken.jpeg" in err
    assert "--on-error skip leaves unreadable images out" in err
    assert len(err.strip().splitlines()) == 1


def test_predict_of_a_glob_leaves_out_the_notes_beside_the_scans_with_a_warning(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `retinalnet predict scans/*` with a README.md there stopped on it ("cannot read")
    scans = tmp_path / "scans"
    shutil.copytree(data / "test" / "CNV", scans)
    for name in ("README.md", "notes.txt", "labels.csv"):
        (scans / name).write_text("not a scan")
    everything = sorted(scans.iterdir())  # as the shell expands scans/*
    argv = ["predict", "--checkpoint", str(checkpoint), *map(str, everything), "-q"]

    said = (
        f"left out 3 file(s) that are not images: {str(scans / 'README.md')!r}, "
        f"{str(scans / 'labels.csv')!r}, {str(scans / 'notes.txt')!r} "
        f"(images: {image_suffixes()})"
    )
    with pytest.warns(UserWarning, match="not images") as warned:  # one line, outside pytest
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == [
        str(path) for path in everything if path.suffix == ".jpeg"
    ]
    assert [str(warning.message) for warning in warned] == [said]
    # a file that may hold a scan (another raster format) is still read, or refused by name
    (scans / "scan.ppm").write_text("not a scan")
    assert main(["predict", "--checkpoint", str(checkpoint), str(scans / "scan.ppm"), "-q"]) == 1
    assert "scan.ppm" in capsys.readouterr().err


def _folder_with_a_corrupt_jpeg(data: Path, tmp_path: Path) -> Path:
    scans = tmp_path / "scans"
    shutil.copytree(data / "test", scans)
    (scans / "DME" / "DME-999-1.jpeg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return scans


def test_predict_skips_a_corrupt_jpeg_and_lists_it_last(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scans = _folder_with_a_corrupt_jpeg(data, tmp_path)
    argv = ["predict", "--checkpoint", str(checkpoint), str(scans), "-q"]

    assert main([*argv, "--on-error", "skip", "--json"]) == 0

    captured = capsys.readouterr()
    predictions = json.loads(captured.out)
    assert len(predictions) == 8  # every readable scan
    assert all("DME-999-1" not in p["source"] for p in predictions)
    lines = captured.err.strip().splitlines()
    # listed once, by the command (was also the Predictor's "(Predictor.skipped lists them)")
    assert lines == [
        "retinalnet predict: skipped 1 unreadable image:",
        f"  {scans / 'DME' / 'DME-999-1.jpeg'}: {lines[-1].partition(': ')[2]}",
    ]
    assert main(argv) == 1  # raise is the default


def test_evaluate_leaves_unreadable_images_out_with_on_error_skip(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    shutil.copytree(data, root)
    (root / "test" / "DME" / "DME-999-1.jpeg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "-q"]

    assert main(argv) == 1
    assert "--on-error skip" in capsys.readouterr().err

    assert main([*argv, "--on-error", "skip", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["num_samples"] == 8  # the corrupt file is not counted, nor replaced
    assert [s["source"] for s in report["skipped"]] == [
        str(root / "test" / "DME" / "DME-999-1.jpeg")
    ]
    assert "skipped 1 unreadable image:" in captured.err

    assert main([*argv, "--on-error", "skip"]) == 0
    assert "test split of" in capsys.readouterr().out


def test_sigterm_stops_a_command_as_ctrl_c_does_and_exits_143(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, real_save, writes = tmp_path / "run", torch.save, {"n": 0}
    host: list[tuple[bool, bool]] = []

    def unhandled(signum: int, frame: object) -> None:
        # the caller's own handler (the default one would end the process): once, after the
        # command's stop (was: never, the signal swallowed by main(argv))
        host.append(((out / "run.lock").exists(), (out / "history.csv").is_file()))

    before = signal.signal(signal.SIGTERM, unhandled)
    child = signal.getsignal(signal.SIGCHLD)

    def save(obj: object, stream: object, *args: object, **kwargs: object) -> None:
        writes["n"] += 1
        if writes["n"] == 3:  # epoch 2's first checkpoint: `kill`, `timeout` or SLURM
            os.kill(os.getpid(), signal.SIGTERM)
        real_save(obj, stream, *args, **kwargs)  # type: ignore[arg-type]

    real_to_csv = History.to_csv

    def to_csv(self: History, path: Path) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # another (a process group's, a second kill)
        real_to_csv(self, path)  # ignored: the stop runs to its end

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(History, "to_csv", to_csv)
    try:
        status = train_small_cnn(data, out, "--epochs", "3")
        assert signal.getsignal(signal.SIGTERM) is unhandled  # restored after the command
        assert signal.getsignal(signal.SIGCHLD) == child
    finally:
        signal.signal(signal.SIGTERM, before)

    assert status == 143  # was: killed, with no message, its lock and temporary file left
    assert host == [(False, True)]  # the lock removed, the history written
    err = capsys.readouterr().err
    assert "fit interrupted (Terminated) during epoch 2: " in err
    assert f"continue with `retinalnet train --data {data} --resume {out / 'last.pt'}`" in err
    assert err.strip().endswith("retinalnet: terminated")
    assert not (out / "run.lock").exists()
    assert not list(out.glob(".*.tmp"))
    assert (out / "history.csv").is_file()


def test_train_and_calibrate_say_their_results_once(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--arch"]
    argv += ["small_cnn", "--size", "32", "--epochs", "1", "--recipe", "tutorial"]
    assert main(argv) == 0
    said = capsys.readouterr()
    text = said.out + said.err
    # was: the log's "fit finished: ..." and "calibration: temperature ..." on stderr, and
    # the summary's "stopped: ..." and "calibration: temperature ..." on stdout
    assert "fit finished" not in text
    assert text.count("reached max_epochs=1") == 1
    assert text.count("calibration: temperature") == 1
    best = str(tmp_path / "run" / "best.pt")
    argv = ["calibrate", "--checkpoint", best, "--data", str(data), "--out", best + ".c"]
    assert main(argv) == 0
    said = capsys.readouterr()
    assert (said.out + said.err).count("fitted on") == 1


def test_a_file_name_that_is_not_utf_8_is_predicted_reported_and_drawn(
    data: Path, checkpoint: Path, tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    pytest.importorskip("matplotlib")
    root = tmp_path / "data"
    shutil.copytree(data, root)
    scan = next((root / "test" / "CNV").iterdir())
    latin1 = os.fsencode(scan.parent) + b"/CNV-1234567-1 caf\xe9.jpeg"  # from an old zip
    os.rename(os.fsencode(scan), latin1)  # noqa: PTH104 - bytes name
    named = os.fsdecode(latin1)
    csv_file, cams, report = tmp_path / "p.csv", tmp_path / "cams", tmp_path / "r.html"

    argv = ["predict", named, "--checkpoint", str(checkpoint), "-q"]
    assert main([*argv, "--csv", str(csv_file), "--cam", str(cams)]) == 0  # was: exit 1
    assert latin1 in csv_file.read_bytes()  # the file's own bytes: the path to open it again
    assert len(list(cams.iterdir())) == 1
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "-q"]
    assert main([*argv, "--report", str(report)]) == 0  # was: "surrogates not allowed"
    assert "caf\ufffd.jpeg" in report.read_text(encoding="utf-8")
    assert latin1 in capfdbinary.readouterr().out  # printed with its own bytes, as ls does


def test_an_error_about_a_file_name_that_is_not_utf_8_writes_its_bytes_as_ls_does(
    checkpoint: Path, tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    # was: "cannot read image '.../caf\\udce9.png'", the six characters repr() spells the
    # byte with, where the list of skipped images printed the name's own bytes
    latin1 = os.fsencode(tmp_path) + b"/caf\xe9.png"
    Path(os.fsdecode(latin1)).write_bytes(b"not an image")
    argv = ["predict", os.fsdecode(latin1), "--checkpoint", str(checkpoint)]
    assert main(argv) == 1
    said = capfdbinary.readouterr().err
    assert b"cannot read image '" + latin1 + b"'" in said
    assert b"\\udce9" not in said


def test_escaped_name_bytes_become_the_name_again_in_errors_logs_and_warnings() -> None:
    from retinalnet.cli._advice import cli_text
    from retinalnet.cli._guest import one_line_warnings

    assert cli_text(repr("d/caf\udce9.png")) == "'d/caf\udce9.png'"
    assert cli_text(repr("don\udcc3\udca9es")) == "'don\udcc3\udca9es'"
    assert cli_text(repr("own\\udce9")) == repr("own\\udce9")  # the name's own backslash
    code = "`torch.save(load_checkpoint('caf\\udce9.pt'))`"  # pasted, names the file (R14)
    assert cli_text(f"see {code}") == f"see {code}"
    shown = one_line_warnings("predict", None, warnings.formatwarning)
    name = "x/caf\udce9.png"
    line = shown(UserWarning(f"skipped {name!r}; `f({name!r})`"), UserWarning, "f.py", 1)
    assert (
        line == "retinalnet predict: warning: skipped 'x/caf\udce9.png'; `f('x/caf\\udce9.png')`\n"
    )


def test_names_an_output_encoding_lacks_are_escaped_not_fatal(
    data: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows writes redirected output in cp1252: a Chinese file name failed predict after
    # its work ("'charmap' codec can't encode"), and the error then failed to print
    import io

    scans = tmp_path / "扫描"
    scans.mkdir()
    shutil.copy(next((data / "test" / "CNV").iterdir()), scans / "中文_1.jpeg")
    (scans / "坏 scan.jpeg").write_bytes(b"garbage")
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="cp1252") for _ in range(2))
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    argv = ["predict", str(scans), "--checkpoint", str(checkpoint), "--on-error", "skip"]
    assert main(argv) == 0
    assert main([*argv[:-2], "--on-error", "raise"]) == 1
    for stream in (out, err):
        stream.flush()
        assert stream.errors == "strict"  # as it was, once the command is done
    printed = out.buffer.getvalue().decode("cp1252")  # type: ignore[attr-defined]
    said = err.buffer.getvalue().decode("cp1252")  # type: ignore[attr-defined]
    escaped = "扫描/中文_1.jpeg".encode("ascii", "backslashreplace").decode("ascii")
    assert f"{escaped}  " in printed  # one line per image, "\\u626b\\u63cf/\\u4e2d..."
    assert "\\u574f scan.jpeg" in said  # the skipped file, then the error, each one line
    assert said.count("error: cannot read image") == 1
    assert "Traceback" not in said


def test_a_name_with_a_newline_keeps_one_line_per_image(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: "scans/new" and "line.jpeg  DME 25.3% ..." on two lines: a bogus row for awk/cut
    scans = tmp_path / "scans"
    scans.mkdir()
    images = sorted((data / "test" / "CNV").iterdir())[:2]
    shutil.copy(images[0], scans / "new\nline.jpeg")
    shutil.copy(images[1], scans / "plain.jpeg")
    (scans / "bad\tname.jpeg").write_bytes(b"garbage")
    argv = ["predict", str(scans), "--checkpoint", str(checkpoint), "-q", "--on-error", "skip"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(repr(str(scans / "new\nline.jpeg")) + "  ")
    assert lines[1].startswith(f"{scans / 'plain.jpeg'}  ")  # other names as they are
    bad = str(scans / "bad\tname.jpeg")
    assert f"  {bad!r}: " in captured.err  # the skipped list too


def test_a_download_without_val_goes_from_split_to_train_calibrate_and_evaluate(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "CellData" / "OCT"  # the Mendeley layout: train and test only
    for split in ("train", "test"):
        shutil.copytree(data / split, root / split)
    assert train_small_cnn(root, tmp_path / "no-val") == 1  # the error says the way on
    assert "`retinalnet split ROOT --out split.csv`, then --manifest" in capsys.readouterr().err
    manifest = tmp_path / "split.csv"
    assert main(["split", str(root), "--val-fraction", "0.3", "--out", str(manifest), "-q"]) == 0
    run = tmp_path / "run"
    assert train_small_cnn(root, run, "--manifest", str(manifest), "--no-calibrate") == 0
    capsys.readouterr()
    best = str(run / "best.pt")
    with_manifest = ["--data", str(root), "--manifest", str(manifest), "-q"]
    # was: "no split folder 'val'", and no --manifest for calibrate or evaluate
    assert main(["calibrate", "--checkpoint", best, *with_manifest, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == sum(
        1 for line in manifest.read_text().splitlines() if line.endswith(",val")
    )
    for split in ("val", "test"):
        argv = ["evaluate", "--checkpoint", best, *with_manifest, "--split", split, "--json"]
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out)["num_samples"] > 0


def test_evaluate_from_a_manifest_says_what_is_wrong_with_its_rows(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: a row labelled against its folder and file name scored as labelled without a
    # word, and a manifest read under the wrong --data failed at its first image
    from retinalnet.datasets import ManifestRow, write_manifest

    scans = sorted((data / "test").rglob("*.jpeg"))
    rows = [
        ManifestRow(scan.relative_to(data).as_posix(), scan.parent.name, None, "test")
        for scan in scans
    ]
    rows[0] = ManifestRow(rows[0].path, "NORMAL", None, "test")  # a CNV scan, labelled NORMAL
    manifest = write_manifest(rows, tmp_path / "split.csv")
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--manifest", str(manifest), "--split"]
    argv += ["test", "--json", "-q"]
    with pytest.warns(UserWarning, match=r"^1 row\(s\) of split 'test' of manifest .* are named"):
        assert main([*argv, "--data", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == len(scans)
    assert main([*argv, "--data", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert f"error: {len(scans)} of {len(scans)} row(s) of split 'test' of manifest" in error
    assert f"name no file under {str(tmp_path)!r}" in error
    assert "(CLI: --data)" in error
    missing = [ManifestRow("test/CNV/CNV-0-0.jpeg", "CNV", None, "test"), *rows]
    manifest = write_manifest(missing, tmp_path / "missing.csv")
    argv[argv.index(str(tmp_path / "split.csv"))] = str(manifest)
    assert main([*argv, "--data", str(data)]) == 1  # a report on fewer images: asked for
    error = capsys.readouterr().err
    assert f"error: 1 of {len(missing)} row(s) of split 'test'" in error
    assert error.rstrip().endswith("or pass --on-error skip to leave them out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*argv, "--data", str(data), "--on-error", "skip"]) == 0
    said = [str(warning.message) for warning in caught]
    assert len(said) == 2
    assert "name no file" in said[0]
    assert ": they are left out; restore the files, or write the manifest again" in said[0]
    assert said[0].endswith("with `retinalnet split`")
    assert "are named for another class than their label" in said[1]  # rows[0], as above
    assert json.loads(capsys.readouterr().out)["num_samples"] == len(scans)


def test_bad_arguments_exit_2() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("argv", "argument"),
    [
        (["predict", "--checkpoint", "best.pt", ""], "PATH"),
        (["predict", "--checkpoint", "best.pt", "scan.png", ""], "PATH"),
        (["audit", ""], "ROOT"),
        # every path option: `--data "$DATA"` with DATA unset read the current folder
        (["train", "--data", ""], "--data"),
        (["train", "--data", "d", "--out", ""], "--out"),
        (["train", "--data", "d", "--resume", ""], "--resume"),
        (["train", "--data", "d", "--manifest", ""], "--manifest"),
        (["evaluate", "--checkpoint", "", "--data", "d"], "--checkpoint"),
        (["evaluate", "--checkpoint", "b.pt", "--data", "d", "--out", ""], "--out"),
        (["calibrate", "--checkpoint", "b.pt", "--data", ""], "--data"),
        (["split", "", "--out", "s.csv"], "ROOT"),
        (["split", "d", "--out", ""], "--out"),
        (["predict", "--checkpoint", "", "scan.png"], "--checkpoint"),
        (["predict", "--checkpoint", "b.pt", "scan.png", "--csv", ""], "--csv"),
        (["export", "b.pt", "--out", ""], "--out"),
        (["info", ""], "FILE"),
        (["demo", "--out", ""], "--out"),
    ],
)
def test_an_empty_path_is_refused_not_read_as_the_current_folder(
    argv: list[str],
    argument: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == (
        f"retinalnet {argv[0]}: error: argument {argument}: empty path; name a file or folder "
        "(. for the current folder)"
    )


@pytest.mark.parametrize(
    ("argv", "dest"),
    [
        (["predict", "--checkpoint", "b.pt", "~/scans"], "paths"),
        (["audit", "~/OCT"], "root"),
        (["audit", "d", "--out=~/audit.json"], "out"),
        (["train", "--data=~/OCT"], "data"),
        (["train", "--data", "d", "--out=~/run2"], "out"),
        (["train", "--data", "d", "--resume=~/run2/last.pt"], "resume"),
        (["train", "--data", "d", "--manifest=~/split.csv"], "manifest"),
        (["train", "--data", "d", "--tensorboard=~/tb"], "tensorboard"),
        (["evaluate", "--checkpoint=~/run1/best.pt", "--data", "d"], "checkpoint"),
        (["evaluate", "--checkpoint", "b.pt", "--data", "d", "--out=~/e.json"], "out"),
        (["evaluate", "--checkpoint", "b.pt", "--data", "d", "--report=~/r.html"], "report"),
        (["evaluate", "--checkpoint", "b.pt", "--data", "d", "--plots=~/plots"], "plots"),
        (["calibrate", "--checkpoint", "b.pt", "--data", "d", "--out=~/c.pt"], "out"),
        (["split", "~/OCT", "--out", "s.csv"], "root"),
        (["split", "d", "--out=~/s.csv"], "out"),
        (["predict", "--checkpoint=~/run1/best.pt", "scan.png"], "checkpoint"),
        (["predict", "--checkpoint", "b.pt", "scan.png", "--csv=~/p.csv"], "csv"),
        (["predict", "--checkpoint", "b.pt", "scan.png", "--cam=~/cams"], "cam"),
        (["predict", "--checkpoint", "b.pt", "scan.png", "--plots=~/plots"], "plots"),
        (["export", "--checkpoint", "b.pt", "--out=~/m.onnx"], "out"),
        (["export", "--checkpoint", "b.pt", "--out", "m.onnx", "--images", "~/scans"], "images"),
        (["info", "~/run1/best.pt"], "path"),
        (["demo", "--out=~/demo"], "out"),
        (["train", "--data", "d", "--feature-cache=~/cache"], "feature_cache"),
    ],
)
def test_every_path_option_reads_a_leading_tilde_as_the_home_folder(
    argv: list[str], dest: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shell leaves ``~`` as typed after ``--opt=`` and in quotes: ``--data`` expanded
    it, ``--out``, ``--checkpoint`` and the rest made a folder named ``~`` (or found no
    file there)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    value = getattr(build_parser().parse_args(argv), dest)
    given = next(arg for arg in argv if "~" in arg).split("=")[-1]
    expected = tmp_path / "home" / given.removeprefix("~/")
    assert Path(value if not isinstance(value, list) else value[0]) == expected


@pytest.mark.parametrize(
    ("argv", "flag", "suggested"),
    [
        (["predict", "--checkpoint", "b.pt", "s.png", "--csv", "preds/"], "--csv",
         "preds/predictions.csv"),
        (["evaluate", "--checkpoint", "b.pt", "--data", "d", "--out", "results/"], "--out",
         "results/results.json"),
        (["evaluate", "--checkpoint", "b.pt", "--data", "d", "--report", "reports/"],
         "--report", "reports/report.html"),
        (["calibrate", "--checkpoint", "b.pt", "--data", "d", "--out", "runs/"], "--out",
         "runs/calibrated.pt"),
        (["audit", "d", "--out", "out/"], "--out", "out/audit.json"),
        (["split", "d", "--out", "sp/"], "--out", "sp/split.csv"),
        (["export", "--checkpoint", "b.pt", "--out", "models/"], "--out", "models/model.onnx"),
    ],
)  # fmt: skip
def test_a_file_option_ending_in_a_slash_is_refused_not_written_as_a_file(
    argv: list[str],
    flag: str,
    suggested: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--csv preds/`` wrote a file named ``preds``: ``Path`` drops the slash."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    given = argv[argv.index(flag) + 1]
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"retinalnet {argv[0]}: error: argument {flag}: {given!r} names a folder, where a "
        f"file is expected; name a file, e.g. {suggested}"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_path_of_a_home_folder_that_cannot_be_found_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "~no-such-user-here/OCT"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "retinalnet audit: error: argument ROOT: '~no-such-user-here/OCT': no home folder "
        "found for '~no-such-user-here'; give the path in full"
    )


# --- audit and split ------------------------------------------------------------------------


def test_audit_of_the_real_sample_exits_0(
    kermany_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports" / "audit.json"
    assert main(["audit", str(kermany_sample), "-q", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "80 images" in table
    assert table.rstrip().endswith("OK")
    assert json.loads(out.read_text())["total"] == 80


def test_audit_exits_1_on_leakage_and_unreadable_files(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "leaky"
    shutil.copytree(data, root)
    leaked = next((root / "train" / "CNV").iterdir())
    shutil.copy(leaked, root / "test" / "CNV" / leaked.name)
    assert main(["audit", str(root), "--json", "-q"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["has_leakage"] is True
    assert report["unreadable"] == {}
    assert [group["paths"] for group in report["duplicates"]] == [
        [f"test/CNV/{leaked.name}", f"train/CNV/{leaked.name}"]
    ]
    (root / "test" / "CNV" / leaked.name).unlink()
    (root / "val" / "DME" / "DME-broken-1.jpeg").write_text("not a scan")
    assert main(["audit", str(root), "-q"]) == 1
    assert "PROBLEMS: unreadable images" in capsys.readouterr().out


def test_audit_exits_1_and_explains_a_misspelt_class_folder(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "misspelt"
    shutil.copytree(data, root)
    (root / "train" / "CNV").rename(root / "train" / "CNVV")
    assert main(["audit", str(root), "-q"]) == 1
    out = capsys.readouterr().out
    assert "train/CNVV (3 images): rename it to 'CNV' if it holds CNV scans" in out
    assert "train/CNV: no folder" in out
    assert out.rstrip().endswith("PROBLEMS: unknown class folders, empty classes")


def test_split_refuses_names_without_a_patient_id_unless_told(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "renamed"
    shutil.copytree(data, root)
    first = next((root / "train" / "DME").iterdir())
    first.rename(first.with_name("scan_01.jpeg"))
    manifest = tmp_path / "split.csv"
    assert main(["split", str(root), "--out", str(manifest), "-q"]) == 1
    err = capsys.readouterr().err
    assert "1 image(s) under" in err
    assert "'train/DME/scan_01.jpeg'" in err
    assert "--unparsed own-group" in err
    assert not manifest.exists()
    with pytest.warns(UserWarning, match="each is split as a patient of its own"):
        code = main(["split", str(root), "--out", str(manifest), "--unparsed", "own-group",
                     "--val-fraction", "0.4"])  # fmt: skip
    assert code == 0
    assert "train/DME/scan_01.jpeg" in manifest.read_text()


def test_split_then_train_from_the_manifest(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "split.json"
    assert (
        main(["split", str(data), "--val-fraction", "0.4", "--seed", "1", "--out", str(manifest)])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"manifest: {manifest}" in printed
    rows = json.loads(manifest.read_text())
    assert {row["split"] for row in rows} == {"train", "val", "test"}
    out = tmp_path / "run"
    assert train_small_cnn(data, out, "--manifest", str(manifest), "--balance", "weights") == 0
    val_rows = sum(row["split"] == "val" for row in rows)
    assert f"validation ({val_rows} images)" in capsys.readouterr().out


def test_train_with_the_balanced_sampler(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_small_cnn(data, tmp_path / "run", "--balance", "sampler") == 0
    assert "stopped: reached max_epochs=1" in capsys.readouterr().out


def test_evaluate_writes_the_clinical_report_and_plots(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out) == 0
    capsys.readouterr()
    report_file = tmp_path / "reports" / "test.json"
    plots = tmp_path / "plots"

    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(data),
                 "--out", str(report_file), "--plots", str(plots), "--tta",
                 "--bootstrap", "40", "-q"]) == 0  # fmt: skip

    printed = capsys.readouterr().out
    assert "urgent referral (CNV + DME vs the rest)" in printed
    assert (
        "(95% intervals: Wilson score for proportions (accuracy, sensitivity, specificity, "
        "precision); stratified percentile bootstrap (40 resamples) for F1 and AUC"
    ) in printed
    assert "the per-scan intervals treat every scan as independent" in printed
    written = json.loads(report_file.read_text())
    assert written["tta"] is True
    assert written["num_samples"] == 8
    assert written["report"]["bootstrap"] == 40
    assert set(written["report"]["per_class"]) == {"CNV", "DME", "DRUSEN", "NORMAL"}
    assert written["report"]["confusion_matrix"] == written["confusion_matrix"]
    assert {"confusion_matrix.png", "confusion_matrix_normalized.png"} <= {
        p.name for p in plots.iterdir()
    }
    first_two = f"{plots / 'confusion_matrix.png'}, {plots / 'confusion_matrix_normalized.png'}"
    assert printed.rstrip().splitlines()[-1].startswith(f"plots: {first_two}, ")
    # the result's accuracy, then the report's: the same number, the second with its interval
    accuracies = {line.split("accuracy ")[1][:6] for line in printed.splitlines()
                  if line.startswith("images ")}  # fmt: skip
    assert len(accuracies) == 1

    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(data),
                 "--json", "-q"]) == 0  # fmt: skip
    printed_json = json.loads(capsys.readouterr().out)
    assert printed_json["tta"] is False
    assert printed_json["report"]["referral"]["urgent"] == ["CNV", "DME"]

    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(data),
                 "-q"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if line.startswith("images ")]) == 1  # printed once


def test_predict_writes_a_grad_cam_overlay_per_image(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out) == 0
    capsys.readouterr()
    cams = tmp_path / "cams"
    folder = data / "test" / "DME"

    assert main(["predict", "--checkpoint", str(out / "best.pt"), str(folder),
                 "--cam", str(cams), "--tta", "-q"]) == 0  # fmt: skip

    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    expected = sorted(f"{p.stem}_cam.png" for p in folder.iterdir())
    assert sorted(p.name for p in cams.iterdir()) == expected


def test_overlays_of_scans_with_the_longest_names_are_written_each_to_its_own_file(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    scan = next((data / "test" / "DME").iterdir())
    long_names = []
    for letter in "ab":  # the same names but for their last letter
        named = tmp_path / f"{'M' * 249}{letter}.jpeg"  # 255 bytes, the longest
        shutil.copyfile(scan, named)
        long_names.append(str(named))
    cams = tmp_path / "cams"
    argv = ["predict", *long_names, "--checkpoint", str(checkpoint), "--cam", str(cams), "-q"]
    assert main(argv) == 0  # was: "[Errno 36] File name too long", no overlay at all
    written = sorted(p.name for p in cams.iterdir())
    assert len(written) == 2
    assert all(len(name.encode()) <= 255 and name.endswith("_cam.png") for name in written)
    capsys.readouterr()


def test_train_leaves_the_worker_count_to_the_library_by_default() -> None:
    parsed = build_parser().parse_args(["train", "--data", "OCT2017"])
    assert parsed.workers is None  # the Trainer then picks by device (default_num_workers)
    assert build_parser().parse_args(["train", "--data", "x", "--workers", "3"]).workers == 3


@pytest.mark.parametrize(
    "classes", [("NORMAL", "CNV", "DME"), ("healthy", "sick")], ids=["another-order", "other"]
)
def test_evaluate_refuses_a_checkpoint_of_other_classes_in_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], classes: tuple[str, ...]
) -> None:
    # a model of some Kermany classes in their order is a study (test_cli_classes.py);
    # these would compare other classes than the data's
    from retinalnet.checkpoint import save_checkpoint
    from retinalnet.models import small_cnn
    from retinalnet.transforms import Preprocessing

    model = small_cnn(classes=classes, preprocessing=Preprocessing(size=32))
    checkpoint = save_checkpoint(tmp_path / "other.pt", model)
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert f"the model's classes are {list(classes)}" in err[0]
    assert "['CNV', 'DME', 'DRUSEN', 'NORMAL']" in err[0]


def test_train_reaches_the_feature_cache_and_precision_levers(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cached"
    cache = tmp_path / "features"
    args = [
        "train", "--data", str(data), "--out", str(out), "--arch", "resnet18",
        "--weights", "none", "--size", "32", "--epochs", "1", "--batch-size", "8",
        "--feature-cache", str(cache), "--cache-views", "1", "--precision", "fp32", "-q",
    ]  # fmt: skip
    assert main(args) == 0
    assert (out / "best.pt").is_file()
    assert any(cache.iterdir())  # the features were kept for later runs
    assert load_checkpoint(out / "best.pt").arch == "resnet18"
    evaluate = ["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(data)]
    assert main([*evaluate, "--feature-cache", str(cache), "--precision", "fp32", "-q"]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_the_0_1_flags_still_parse() -> None:
    args = build_parser().parse_args(
        ["train", "--data", "d", "--image-size", "64"]  # 0.1 name of --size
    )
    assert args.size == 64
    args = build_parser().parse_args(["predict", "x.jpeg", "--checkpoint", "c", "--topk", "3"])
    assert args.k == 3


@pytest.mark.parametrize(
    ("command", "flag"),
    [("evaluate", "--plots"), ("predict", "--cam")],
)
def test_a_missing_matplotlib_is_said_before_any_work(
    command: str,
    flag: str,
    data: Path,
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    where = ["--data", str(data)] if command == "evaluate" else [str(data / "test")]
    argv = [command, "--checkpoint", str(checkpoint), *where, flag, str(tmp_path / "out")]

    assert main([*argv, "-q"]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""  # stopped before evaluating or predicting
    assert captured.err == (
        f"retinalnet {command}: error: {flag} draws with matplotlib, which is not installed: "
        f"pip install matplotlib (or leave {flag} out)\n"
    )
    assert not (tmp_path / "out").exists()


# --- text for shell users -------------------------------------------------------------------


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_help_describes_every_option_and_its_default(command: str) -> None:
    parser = _subcommands()[command]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"retinalnet {command} {name} has no help"
        text = formatter._expand_help(action)
        default = action.default
        if default not in (None, False) and action.option_strings:
            assert f"(default: {default}" in text or f"default: {default}" in text, (
                f"retinalnet {command} {name}: the help does not give the default {default!r}"
            )


@pytest.mark.parametrize(
    ("python", "shell"),
    [
        (
            "or pass weights='/path/to/vgg16-397923af.pth'; weights=None trains from random "
            "initialisation",
            "or pass --weights /path/to/vgg16-397923af.pth; --weights none trains from random "
            "initialisation",
        ),
        ("use device='auto' or 'cpu'", "use --device auto or --device cpu"),
        (
            "resume that run (fit(..., resume_from=last.pt), or --resume on the command line), "
            "choose another folder, or allow it (overwrite=True, or --overwrite)",
            "resume that run (--resume), choose another folder, or allow it (--overwrite)",
        ),
        (
            "continue with fit(..., resume_from='runs/a/last.pt')",
            "continue with --resume runs/a/last.pt",
        ),
        (
            "(download OCT2017 or write a synthetic set with make_synthetic_kermany)",
            "(download OCT2017 or write a synthetic set with `retinalnet demo --data-only`)",
        ),
        (
            "precision='fp16' needs a GPU; on a CPU use 'bf16' or 'auto'",
            "--precision fp16 needs a GPU; on a CPU use --precision bf16 or auto",
        ),
        (
            "got preprocessing.size=16; pass a larger Preprocessing(size=...)",
            "got --size 16; pass a larger --size",
        ),
        ("pass preprocessing=Preprocessing(size=224)", "pass --size 224"),
        (
            "(epochs: 2 there, 3 now); pass the recipe it was started with, or start a new run",
            "(epochs: 2 there, 3 now); leave those options out (a resumed run takes its own), "
            "or start a new run without --resume",
        ),
    ],
)
def test_library_advice_is_said_with_flags(python: str, shell: str) -> None:
    assert cli_text(python) == shell


@pytest.mark.parametrize("when", ["parsing", "importing the command"])
@pytest.mark.parametrize("caller", ["the program", "a guest"])
def test_ctrl_c_while_a_command_starts_is_one_line_and_status_130(when: str, caller: str) -> None:
    # was a traceback from inside torch's import (or NumPy's "cannot load module more than
    # once per process"): the seconds before the command runs import torch. As the program
    # (no argv) it ends the process at once; called with argv from Python (a notebook) it
    # returned nothing and ended the caller's process (os._exit): it raises KeyboardInterrupt
    # for the caller to handle (it returned 130, and a caller's loop went on)
    hook = "cli.build_parser" if when == "parsing" else "importlib.import_module"
    call = "cli.main()" if caller == "the program" else 'cli.main(["models"])'
    script = f"""
import importlib, os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a terminal, not from `&`
import retinalnet.cli as cli
original = {hook}
def interrupted(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(2)  # the signal arrives while this runs, as while torch imports
    return original(*args, **kwargs)
{hook} = interrupted
sys.argv = ["retinalnet", "models"]
try:
    status = {call}
except KeyboardInterrupt:  # a guest's Ctrl-C is the caller's
    print("the caller's KeyboardInterrupt")
    status = 130
print("the caller goes on")
sys.exit(status)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )  # a lost interrupt sleeps at every import: fail, do not hang
    goes_on = (
        "" if caller == "the program" else "the caller's KeyboardInterrupt\nthe caller goes on\n"
    )
    assert (done.returncode, done.stderr, done.stdout) == (
        130,
        "retinalnet: interrupted\n",
        goes_on,
    )


def test_errors_and_log_lines_reach_the_shell_with_flags(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", str(tmp_path / "nothing"), "--arch", "small_cnn"]) == 1
    err = capsys.readouterr().err
    assert "retinalnet demo --data-only" in err
    assert "make_synthetic_kermany" not in err

    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--device", "cuda"]
    if not torch.cuda.is_available():
        assert main(argv) == 1
        assert "use --device auto or --device cpu" in capsys.readouterr().err

    logger = logging.getLogger("retinalnet.training")
    evaluating = argparse.Namespace(command="evaluate", quiet=False)
    with _logging_to_stderr(evaluating):
        logging.getLogger("retinalnet.demo").warning(
            "training small_cnn; pass weights='/path/to/vgg16-397923af.pth' to use VGG16"
        )
    assert capsys.readouterr().err == (
        "training small_cnn; pass --weights /path/to/vgg16-397923af.pth to use VGG16\n"
    )
    with _logging_to_stderr(evaluating):
        logger.warning("continue with fit(..., resume_from=%r)", "runs/a/last.pt")
    assert capsys.readouterr().err == "continue with --resume runs/a/last.pt\n"


@pytest.mark.parametrize(
    ("args", "advice"),
    [
        (
            {"command": "train", "data": Path("my scans")},
            "continue with `retinalnet train --data 'my scans' --resume 'runs/a b/last.pt'`",
        ),
        (
            {"command": "demo", "out": Path("retinalnet-demo")},
            # train --resume went on at the demo's decayed rate with train's defaults
            "the demo does not resume: run `retinalnet demo --out retinalnet-demo` again, "
            "which starts it over",
        ),
    ],
)
def test_an_interrupted_runs_advice_is_the_whole_command_to_type(
    args: dict[str, object], advice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # was "continue with --resume X": `retinalnet train --resume X` lacks --data, and the
    # demo has no --resume (both refused by argparse); the demo is run again
    with _logging_to_stderr(argparse.Namespace(quiet=False, **args)):
        logging.getLogger("retinalnet.training").warning(
            "continue with fit(..., resume_from=%r)", "runs/a b/last.pt"
        )
    assert capsys.readouterr().err == advice + "\n"


@pytest.mark.parametrize(
    "path", ["o\\b/last.pt", 'it\'s "q"/last.pt', "tab\there/last.pt", "caf\u00e9/last.pt"]
)
def test_the_advised_command_names_the_file_as_it_is(
    path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # the library writes the path with repr() (backslashes doubled, quotes escaped): the
    # advice quoted that text, so pasted it named another file
    with _logging_to_stderr(argparse.Namespace(quiet=False, command="train", data=Path("d"))):
        logging.getLogger("retinalnet.training").warning(
            "continue with fit(..., resume_from=%r)", path
        )
    advice = capsys.readouterr().err.strip()
    command = advice.removeprefix("continue with `").removesuffix("`")
    assert shlex.split(command) == ["retinalnet", "train", "--data", "d", "--resume", path]


def test_demo_data_only_writes_the_scans_and_says_what_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "--data-only", "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    data = tmp_path / "demo" / "data"
    assert out[0] == f"synthetic scans in the Kermany layout: {data}"
    assert out[1].startswith(f"try: retinalnet train --data {data}")
    assert sorted(p.name for p in data.iterdir()) == [".retinalnet-demo", "test", "train", "val"]
    assert not (tmp_path / "demo" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["demo", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
        (["evaluate", "--checkpoint", "c", "--data", "d", "--batch-size", "0"], "at least 1"),
        (["evaluate", "--checkpoint", "c", "--data", "d", "--bootstrap", "-5"], "at least 0"),
        # one resample gave a "95% interval" that left out the point estimate
        (
            ["evaluate", "--checkpoint", "c", "--data", "d", "--bootstrap", "1"],
            "argument --bootstrap: must be 0 (no intervals) or at least 40 for 95% intervals "
            "(each tail of a percentile interval needs a resample; 1000 is usual), got 1",
        ),
        (["evaluate", "--checkpoint", "c", "--data", "d", "--bootstrap", "39"], "usual), got 39"),
        (["evaluate", "--checkpoint", "c", "--data", "d", "--bootstrap", "100001"], "most 100000"),
        (["predict", "x.jpeg", "--checkpoint", "c", "-k", "0"], "argument -k/--topk: must be"),
        (["predict", "x.jpeg", "--checkpoint", "c", "--batch-size", "two"], "a whole number"),
        (["split", "r", "--out", "m.csv", "--val-fraction", "1.5"], "between 0 and 1, got 1.5"),
        # train took plain ints, and stopped with status 1, some of them after work
        (["train", "--data", "d", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["train", "--data", "d", "--batch-size", "0"], "argument --batch-size: must be at least"),
        (["train", "--data", "d", "--patience", "-1"], "argument --patience: must be at least 0"),
        (
            ["train", "--data", "d", "--size", "0"],
            "argument --size/--image-size: must be at least 32",
        ),
        (["train", "--data", "d", "--size", "16"], "must be at least 32, got 16"),
        (["train", "--data", "d", "--workers", "-1"], "argument --workers: must be at least 0"),
        (["train", "--data", "d", "--cache-views", "-1"], "argument --cache-views: must be at"),
        (["train", "--data", "d", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
        (["train", "--data", "d", "--seed", str(2**32)], "must be at most 4294967295"),
        (["train", "--data", "d", "--finetune-blocks", "0"], "--finetune-blocks: must be at least"),
        (["evaluate", "--checkpoint", "c", "--data", "d", "--workers", "-1"], "at least 0, got -1"),
        (["calibrate", "--checkpoint", "c", "--data", "d", "--workers", "-1"], "at least 0"),
        (["predict", "x.jpeg", "--checkpoint", "c", "--workers", "-1"], "at least 0, got -1"),
        (["predict", "x.dcm", "--checkpoint", "c", "--min-scans", "abc"], "a whole number"),
        (["predict", "x.dcm", "--checkpoint", "c", "--min-scans", "0"], "at least 1, got 0"),
        (["predict", "x.dcm", "--checkpoint", "c", "--threshold", "abc"], "expected a number"),
        (["predict", "x.dcm", "--checkpoint", "c", "--threshold", "1.5"], "in (0, 1], got"),
        (
            ["export", "--checkpoint", "c", "--out", "m.onnx", "--tolerance", "0"],
            "argument --tolerance: must be a probability difference in (0, 1), got 0",
        ),
        (  # a tolerance no difference can exceed: the parity check could never fail
            ["export", "--checkpoint", "c", "--out", "m.onnx", "--tolerance", "1"],
            "argument --tolerance: must be a probability difference in (0, 1), got 1; it is a "
            "fraction of 1, not a percentage (the default 1e-4 allows 0.01 percentage points)",
        ),
        (["export", "--checkpoint", "c", "--out", "m.onnx", "--tolerance", "50"], "got 50; it"),
        (["demo", "--seed", str(2**32)], "argument --seed: must be at most 4294967295"),
        (
            ["demo", "--weights", "none"],  # it said "... or none" of --weights none
            "argument --weights: the demo takes a VGG16 state-dict file or weights name, got "
            "'none'; leave --weights out",
        ),
    ],
)
def test_bad_values_are_refused_before_any_work(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "demo")] if argv[0] == "demo" else argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()  # the demo wrote nothing


def test_predict_writes_a_csv_row_per_image(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    table = tmp_path / "out" / "predictions.csv"
    folder = data / "test" / "CNV"
    argv = ["predict", "--checkpoint", str(checkpoint), str(folder), "-k", "3", "--csv", str(table)]

    assert main([*argv, "--json", "-q"]) == 0

    printed = json.loads(capsys.readouterr().out)
    with table.open(newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == [
        "path", "class_1", "probability_1", "class_2", "probability_2", "class_3",
        "probability_3", "precision", "temperature", "tta", "checkpoint", "checkpoint_sha256",
        "cam",
    ]  # fmt: skip
    assert len(rows) == 1 + len(printed) == 3
    for row, prediction in zip(rows[1:], printed, strict=True):
        assert row[0] == prediction["source"]
        assert row[1:7:2] == [c["class"] for c in prediction["top"]]
        assert [float(p) for p in row[2:7:2]] == pytest.approx(
            [c["probability"] for c in prediction["top"]], abs=1e-6
        )
        # what they were computed at: bf16 can turn a near-tie (the JSON says it too)
        assert row[7:9] == [prediction["precision"], f"{prediction['temperature']:.6g}"]
        assert prediction["precision"] in ("fp32", "bf16")


def test_evaluate_plots_the_curves_and_the_history_the_checkpoint_carries(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plots = tmp_path / "plots"
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--json", "-q"]

    assert main([*argv, "--plots", str(plots)]) == 0

    names = ["confusion_matrix.png", "confusion_matrix_normalized.png", "roc_curves.png",
             "precision_recall_curves.png", "reliability_diagram.png", "history.png"]  # fmt: skip
    assert sorted(p.name for p in plots.iterdir()) == sorted(names)
    captured = capsys.readouterr()
    json.loads(captured.out)  # stdout stays JSON; the paths go to stderr
    assert captured.err.strip() == "plots: " + ", ".join(str(plots / name) for name in names)


@pytest.mark.parametrize(
    "argv",
    [["models"], ["evaluate", "--checkpoint", "best.pt", "--data", "OCT2017"], ["demo"]],
)
def test_commands_of_one_process_refuse_to_run_under_torchrun(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")

    assert main(argv) == 1

    err = capsys.readouterr().err.strip()
    assert err == (
        f"retinalnet {argv[0]}: error: it runs in one process, and this is rank 1 of 2 under "
        "torchrun (WORLD_SIZE is set): run it without torchrun; only `retinalnet train` "
        "trains across processes"
    )


def test_a_world_size_that_is_not_a_number_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "two")

    assert main(["models"]) == 1

    assert capsys.readouterr().err.strip() == (
        "retinalnet models: error: environment variable WORLD_SIZE='two' is not a whole "
        "number; torchrun sets it for each process it starts: unset it to run one process"
    )


# --- outputs that cannot be written, packages not installed, one line ------------------------

_REQUIRED = {
    "demo": [],
    "train": ["--data", "d"],
    "evaluate": ["--checkpoint", "c", "--data", "d"],
    "calibrate": ["--checkpoint", "c", "--data", "d"],
    "predict": ["x.jpeg", "--checkpoint", "c"],
    "export": ["--checkpoint", "c"],
    "audit": ["r"],
    "split": ["r"],
}


@pytest.mark.parametrize(
    ("command", "dest", "flag", "kind"),
    [(c, *output) for c, outputs in OUTPUTS.items() for output in outputs],
    ids=[f"{c}-{o[1]}" for c, outputs in OUTPUTS.items() for o in outputs],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_command_runs(
    command: str,
    dest: str,
    flag: str,
    kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = _subcommands()[command]
    assert any(a.dest == dest and flag in a.option_strings for a in parser._actions)
    monkeypatch.setitem(cli._COMMANDS, command, lambda args: pytest.fail("the command ran"))
    if kind == "folder":  # a file where the folder is to be
        path = tmp_path / "notes.txt"
        path.write_text("mine")
        said = "is a file, not a folder; pass a folder that can be written (it is made if missing)"
    else:  # a folder where the file is to be
        path = tmp_path / "folder"
        path.mkdir()
        said = "is a folder, not a file; pass a file path that can be written"

    # each was found when written: after the evaluation, the export, the epoch
    assert main([command, *_REQUIRED[command], flag, str(path)]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"retinalnet {command}: error: {flag} {str(path)!r} {said}"), err
    assert len(err.strip().splitlines()) == 1


def _output_input_pairs() -> list[tuple[str, str, str, str]]:
    """``(command, output flag, input flag, "file" | "folder")`` for every output file of a
    command and every input it reads, as a file and (where it can be one) as a folder."""
    folders_only, either = {"--data", "ROOT"}, {"PATH", "--images"}
    pairs = []
    for command, outputs in OUTPUTS.items():
        for _, output, kind in outputs:
            for _, given in INPUTS[command] if kind == "file" else ():
                if given not in folders_only and (command, output, given) != (
                    "calibrate",
                    "--out",
                    "--checkpoint",  # written in place, by design
                ):
                    pairs.append((command, output, given, "file"))
                if given in folders_only | either:
                    pairs.append((command, output, given, "folder"))
    return pairs


@pytest.mark.parametrize(
    ("command", "output", "given", "as_"),
    _output_input_pairs(),
    ids=[f"{c}{o}-is{i}-{a}" for c, o, i, a in _output_input_pairs()],
)
def test_an_output_file_that_the_command_reads_is_refused_before_it_runs(
    command: str,
    output: str,
    given: str,
    as_: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(cli._COMMANDS, command, lambda args: pytest.fail("the command ran"))
    if as_ == "file":  # evaluate --out best.pt, predict scan.png --csv scan.png
        read = written = tmp_path / "mine.jpeg"
    else:  # a scan in a folder the command reads (of --data: the split it reads)
        split = {"evaluate": "test", "calibrate": "val"}.get(command, "train")
        read, written = tmp_path / "scans", tmp_path / "scans" / split / "CNV" / "CNV-1-1.jpeg"
        written.parent.mkdir(parents=True)
    written.write_bytes(b"the user's file")
    argv = list(_REQUIRED[command])
    if given in argv:
        argv[argv.index(given) + 1] = str(read)
    elif given in ("PATH", "ROOT"):
        argv[0] = str(read)
    else:
        argv += [given, str(read)]

    assert main([command, *argv, output, str(written)]) == 1  # was: overwritten at the end

    err = capsys.readouterr().err
    assert err.startswith(f"retinalnet {command}: error: {output} {str(written)!r} is "), err
    assert f"would destroy what the command reads; pass another file for {output}" in err
    assert written.read_bytes() == b"the user's file"


@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
def test_a_file_beside_the_splits_of_data_is_not_an_input(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --data's splits are read, not its root: a file beside them is not refused as a scan
    monkeypatch.setitem(cli._COMMANDS, command, lambda args: 0)
    data = tmp_path / "OCT2017"
    (data / "test" / "CNV").mkdir(parents=True)
    written = data / {"evaluate": "report.json", "calibrate": "calibrated.pt"}[command]
    written.write_bytes(b"an old output")
    argv = list(_REQUIRED[command])
    argv[argv.index("--data") + 1] = str(data)
    assert main([command, *argv, "--out", str(written)]) == 0


def test_a_scan_reached_through_a_linked_folder_is_an_input_too(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere, scans = tmp_path / "elsewhere", tmp_path / "scans"
    elsewhere.mkdir()
    shutil.copytree(data / "test" / "CNV", scans)
    scan = elsewhere / "DME-1-1.jpeg"
    shutil.copyfile(next((data / "test" / "DME").iterdir()), scan)
    (scans / "linked").symlink_to(elsewhere)  # the search follows it
    (scans / "loop").symlink_to(scans)  # and ends a loop
    before = scan.read_bytes()

    argv = ["predict", str(scans), "--checkpoint", str(checkpoint), "--csv", str(scan)]
    assert main(argv) == 1  # was: predicted, then replaced by the CSV
    assert "is a scan in the PATH folder" in capsys.readouterr().err
    assert scan.read_bytes() == before


def test_an_output_file_beside_the_inputs_is_written(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = data / "report.json"  # in the data folder, but not a scan: not read
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "-q"]
    try:
        assert main([*argv, "--out", str(report)]) == 0
        assert main([*argv, "--out", str(report)]) == 0  # replaced: it is an output
    finally:
        report.unlink(missing_ok=True)
    capsys.readouterr()


def test_a_missing_optional_package_is_one_line_saying_what_to_install(
    data: Path,
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "data"
    shutil.copytree(data, root)
    scan = root / "test" / "CNV" / "CNV-998-1.dcm"
    scan.write_bytes(bytes(128) + b"DICM" + bytes(64))
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom fails

    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "-q"]
    assert main(argv) == 1  # it was an ImportError, shown with its traceback

    err = capsys.readouterr().err
    assert err == (
        f"retinalnet evaluate: error: cannot read image {str(scan)!r}: reading DICOM files needs "
        'pydicom, which is not installed: pip install "retinalnet[dicom]"\n'
    )


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            ValueError(
                "Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most "
                'recent call last):\n  File "w.py", line 3, in read\n    raise ValueError(...)\n'
                "ValueError: the scan is empty"
            ),
            "the scan is empty",
        ),
        (RuntimeError("\x1b[1mthe reason\x1b[0m.\n\tadvice on another line"), "the reason."),
        (
            ModuleNotFoundError("No module named 'onnxscript'", name="onnxscript"),
            "No module named 'onnxscript' (a package this needs is not installed: pip install "
            "onnxscript)",
        ),
    ],
    ids=["dataloader-worker", "several-lines", "module-not-found"],
)
def test_every_error_is_said_in_one_line(error: BaseException, said: str) -> None:
    assert cli_message(argparse.Namespace(command="evaluate"), error) == said


def test_calibrate_leaves_unreadable_images_out_with_on_error_skip(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    shutil.copytree(data, root)
    broken = root / "val" / "DME" / "DME-999-1.jpeg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "calibrated.pt"
    argv = ["calibrate", "--checkpoint", str(checkpoint), "--data", str(root), "--out", str(out)]

    assert main([*argv, "-q"]) == 1  # it had no --on-error, and named no way out
    err = capsys.readouterr().err
    assert str(broken) in err
    assert err.rstrip().endswith("--on-error skip leaves unreadable images out and lists them "
                                 "at the end")  # fmt: skip

    assert main([*argv, "-q", "--on-error", "skip", "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["num_samples"] == 8  # the readable ones: the broken one is not replaced
    assert [s["source"] for s in printed["skipped"]] == [str(broken)]
    lines = captured.err.strip().splitlines()
    assert lines[-2:] == [
        "retinalnet calibrate: skipped 1 unreadable image:",
        f"  {broken}: " + lines[-1].partition(": ")[2],
    ]


def test_evaluate_writes_strict_json_when_a_class_has_no_images(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out) == 0
    missing = make_synthetic_kermany(
        tmp_path / "missing", train=1, val=1, test={"CNV": 2, "DME": 2, "DRUSEN": 2}, seed=6
    )
    report = tmp_path / "eval.json"
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(missing),
                 "--split", "test", "--out", str(report), "--json", "-q"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    for text in (printed, report.read_text()):
        assert "NaN" not in text
        assert json.loads(text)["per_class_accuracy"]["NORMAL"] is None


def test_a_warning_is_one_line_naming_the_command(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out) == 0
    small = tmp_path / "small.png"
    Image.new("L", (100, 20), 128).save(small)
    command = [sys.executable, "-m", "retinalnet", "predict", "--checkpoint", str(out / "best.pt")]
    # --cam reads the scan again for its overlay: the warning was said three times
    cams = ["--cam", str(tmp_path / "cams")]
    done = subprocess.run(
        [*command, str(small), "-q", *cams], capture_output=True, text=True, check=True
    )
    assert done.stderr.splitlines() == [
        f"retinalnet predict: warning: {str(small)!r} is only 100 x 20 pixels, smaller than "
        "the smallest model input (32 pixels): the model sees it upsampled, with little "
        "detail; check that it is a whole B-scan"
    ]
    original = warnings.formatwarning
    with cli._warnings_in_one_line("predict"):
        assert warnings.formatwarning(UserWarning("x"), UserWarning, "f.py", 1) == (
            "retinalnet predict: warning: x\n"
        )
        assert warnings.formatwarning(UserWarning("x"), UserWarning, "g.py", 2) == ""  # said
    assert warnings.formatwarning is original  # restored after the command


def test_a_warning_made_an_error_is_one_error_line_not_a_traceback(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `python -W error`, PYTHONWARNINGS=error (CI), or a host whose warnings filter says
    # "error": the warning is raised, and the command stops on it as on any error
    small = tmp_path / "small.png"
    Image.new("L", (100, 20), 128).save(small)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status = main(["predict", "--checkpoint", str(checkpoint), str(small), "-q"])

    assert status == 1
    assert capsys.readouterr().err.splitlines() == [
        f"retinalnet predict: error: {str(small)!r} is only 100 x 20 pixels, smaller than the "
        "smallest model input (32 pixels): the model sees it upsampled, with little detail; "
        "check that it is a whole B-scan (a UserWarning made an error by -W error or "
        "PYTHONWARNINGS; without that, it is only a warning)"
    ]


def test_predict_leaves_out_appledouble_files_and_system_folders_named_or_found(
    data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `find ... | xargs retinalnet predict` on a folder copied from a Mac stopped on a ._ file
    # ("not a recognised image format"); a NAS's @eaDir thumbnails were scored as scans
    import re

    scans = tmp_path / "scans"
    shutil.copytree(data / "test" / "CNV", scans)
    real = sorted(scans.iterdir())
    (scans / f"._{real[0].name}").write_bytes(b"\x00\x05\x16\x07" + bytes(80))
    thumbs = scans / "@eaDir" / real[0].name
    thumbs.mkdir(parents=True)
    for size in ("M", "S"):
        shutil.copy(real[0], thumbs / f"SYNOFILE_THUMB_{size}.jpg")
    (scans / "__MACOSX").mkdir()
    argv = ["predict", "--checkpoint", str(checkpoint), "-q"]

    def scored(paths: list[Path]) -> list[str]:
        assert main([*argv, *map(str, paths)]) == 0
        return [line.split()[0] for line in capsys.readouterr().out.splitlines()]

    named = [scans / f"._{real[0].name}", *real]  # as `find scans -name '*.jpeg'` lists them
    with pytest.warns(UserWarning, match=r"left out 1 file\(s\) that are not images: '.*/\._"):
        assert scored(named) == list(map(str, real))
    assert scored([scans]) == list(map(str, real))  # the folder searched
    thumbnail = thumbs / "SYNOFILE_THUMB_M.jpg"
    said = (
        rf"^left out 3 path\(s\) in system folders, which hold no scans: "
        rf"{re.escape(repr(str(scans / '@eaDir')))}, .*\(a Synology NAS's thumbnails"
    )
    with pytest.warns(UserWarning, match=said):  # scans/* and a thumbnail `find` listed
        assert scored([scans / "@eaDir", scans / "__MACOSX", *real, thumbnail]) == list(
            map(str, real)
        )
    qnap = scans / ".@__thumb" / f"s100{real[0].name}"  # `find` lists hidden folders too
    qnap.parent.mkdir()
    shutil.copy(real[0], qnap)
    with pytest.warns(UserWarning, match=r"in system folders.*\(a QNAP NAS's thumbnails\)"):
        assert scored([*real, qnap]) == list(map(str, real))


def test_split_names_a_broken_link_in_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: "retinalnet split: error: [Errno 2] No such file or directory: '...'"
    root = tmp_path / "data"
    shutil.copytree(data, root)
    link = root / "train" / "CNV" / "CNV-104-1.jpeg"
    link.symlink_to("/nonexistent/CNV-104-1.jpeg")
    out = tmp_path / "split.csv"
    argv = ["split", str(root), "--out", str(out), "--val-fraction", "0.4", "-q"]
    assert main([*argv, "--drop-duplicates"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"retinalnet split: error: cannot read image {str(link)!r}: no such file (a broken "
        "symbolic link to '/nonexistent/CNV-104-1.jpeg', which does not exist): remove the "
        "link, or restore the file it leads to (finding duplicates reads every file)"
    ]
    assert not out.exists()
    with pytest.warns(UserWarning, match=r"are broken symbolic links \('train/CNV/CNV-104-1"):
        assert main(argv) == 0


def test_a_folder_that_cannot_be_read_stops_audit_and_split_in_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # was: "retinalnet audit: error: [Errno 13] Permission denied: '.../train/DME'"
    import errno

    denied = data / "train" / "DME"
    real = os.scandir

    def scandir(path: str = ".") -> object:
        if os.fspath(path) == str(denied):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)  # root is not stopped by permission bits
    said = (
        f"error: cannot read the folder {str(denied)!r}: permission denied [EACCES]; check its "
        "permissions: the user running this must be able to read and enter it"
    )
    for argv in (["audit", str(data)], ["split", str(data), "--out", str(tmp_path / "s.csv")]):
        assert main([*argv, "-q"]) == 1
        assert capsys.readouterr().err.splitlines() == [f"retinalnet {argv[0]}: {said}"]


# ---------------------------------------------------------------------------------------------
# predict --cam says where its overlays went once they are written, and only then


def _cam_inputs(data: Path, tmp_path: Path, kind: str) -> list[str]:
    """An image, a three-frame TIFF volume of it, or both, as predict's paths."""
    scan = next((data / "test" / "DME").iterdir())
    volume = tmp_path / "volume.tif"
    frame = Image.open(scan).convert("L")
    frame.save(volume, save_all=True, append_images=[frame, frame])
    return {"image": [str(scan)], "volume": [str(volume)], "both": [str(scan), str(volume)]}[kind]


@pytest.mark.parametrize("kind", ["image", "volume", "both"])
def test_predict_cam_logs_its_folder_with_the_overlays_written(
    kind: str, data: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    cams = tmp_path / "cams"
    paths = _cam_inputs(data, tmp_path, kind)
    assert main(["predict", *paths, "--checkpoint", str(checkpoint), "--cam", str(cams)]) == 0
    written = list(cams.glob("*_cam.png"))
    assert written  # the image's overlay, and a volume's B-scans'
    said = [line for line in capsys.readouterr().err.splitlines() if "Grad-CAM overlays" in line]
    assert said == [f"Grad-CAM overlays: {len(written)} in {cams}"]  # once, after all of them


@pytest.mark.parametrize("kind", ["image", "volume"])
def test_predict_cam_refused_says_no_folder_and_leaves_none_of_its_own(
    kind: str, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a model whose Grad-CAM layer is 1 x 1 (resnet18 at 32 px): a volume's run said
    # "Grad-CAM overlays: DIR" before the refusal, with nothing in DIR
    pytest.importorskip("matplotlib")
    from retinalnet.checkpoint import save_checkpoint
    from retinalnet.models import create_model
    from retinalnet.transforms import Preprocessing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights in a frozen backbone: fine here
        model = create_model("resnet18", weights=None, preprocessing=Preprocessing(size=32))
    checkpoint = save_checkpoint(tmp_path / "flat.pt", model)
    cams = tmp_path / "cams"
    paths = _cam_inputs(data, tmp_path, kind)
    assert main(["predict", *paths, "--checkpoint", str(checkpoint), "--cam", str(cams)]) == 1
    err = capsys.readouterr().err
    assert "gives a 1 x 1 map" in err.splitlines()[-1]
    assert "Grad-CAM overlays" not in err
    assert not cams.exists()  # made once a heatmap is computed, for images and volumes


@pytest.mark.parametrize("command", ["predict", "evaluate", "calibrate", "export"])
def test_a_checkpoint_of_a_network_built_by_hand_points_to_python(
    command: str, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch import nn

    from retinalnet.checkpoint import save_checkpoint
    from retinalnet.datasets import KERMANY_CLASSES
    from retinalnet.models import Classifier

    network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    path = save_checkpoint(tmp_path / "hand.pt", Classifier(network, classes=KERMANY_CLASSES))
    image = next((data / "test").glob("*/*"))
    arguments = {
        "predict": [str(image)],
        "evaluate": ["--data", str(data)],
        "calibrate": ["--data", str(data)],
        "export": ["--out", str(tmp_path / "model.onnx")],
    }[command]

    assert main([command, "--checkpoint", str(path), *arguments]) != 0

    err = capsys.readouterr().err
    assert "holds a network built by hand, which the command line cannot rebuild" in err
    assert "Predictor.from_checkpoint(path, model=network)" in err
    assert "as model=" not in err


# ---------------------------------------------------------------------------------------------
# Studies of some classes: no referral view when every class is urgent; one class refused;
# a folder of some classes points to --classes
# ---------------------------------------------------------------------------------------------


def test_evaluate_of_a_cnv_and_dme_study_reports_no_referral_view_in_any_output(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train_small_cnn(data, out, "--classes", "CNV", "DME") == 0
    capsys.readouterr()
    note = (
        "no urgent-referral view: every class is urgent (CNV, DME), so there is no other "
        "class to tell them from (its sensitivity would be 100% by construction)"
    )
    page = tmp_path / "r.html"
    evaluate = ["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(data), "-q"]

    assert main([*evaluate, "--report", str(page)]) == 0
    printed = capsys.readouterr().out
    # was: "urgent referral (CNV + DME vs the rest): sensitivity 100.0%" for any model
    assert "urgent referral (" not in printed
    assert printed.count(f"({note})") == 2  # per scan and per patient
    text = page.read_text(encoding="utf-8")
    assert "urgent-referral sensitivity" not in text  # was the headline's first number
    assert 'id="referral"' not in text

    assert main([*evaluate, "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    for report in (written["report"], written["patient_report"]):
        assert report["referral"] is None
        assert report["notes"][-1] == note


def test_train_refuses_a_folder_of_one_class(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = tmp_path / "one"
    for split in ("train", "val", "test"):
        shutil.copytree(data / split / "NORMAL", one / split / "NORMAL")

    assert train_small_cnn(one, tmp_path / "run") == 1

    err = capsys.readouterr().err.strip()
    assert err == (
        "retinalnet train: error: the training data holds images of NORMAL only (3 images): "
        "a classifier learns from images of at least two classes; add the other classes' "
        "images (check the data's class folders or manifest)"
    )
    assert not (tmp_path / "run" / "best.pt").exists()


def test_train_on_a_folder_of_two_classes_points_to_a_study_of_them(
    data: Path, tmp_path: Path
) -> None:
    two = tmp_path / "two"
    for split in ("train", "val", "test"):
        for name in ("CNV", "NORMAL"):
            shutil.copytree(data / split / name, two / split / name)

    with pytest.warns(UserWarning, match="no image of DME, DRUSEN") as said:
        assert train_small_cnn(two, tmp_path / "run") == 0

    assert (
        "the training data holds no image of DME, DRUSEN (6 images in all): the model cannot "
        "learn to predict them; check the data's class folders or manifest; for a study of "
        "CNV and NORMAL only, pass --classes CNV NORMAL (retinalnet train) or "
        "classes=['CNV', 'NORMAL'] (KermanyOCT and create_model)"
    ) in [str(warning.message) for warning in said]


def test_arguments_given_as_a_generator_are_read_once(capsys: pytest.CaptureFixture[str]) -> None:
    # was: the --version check read the generator, and the parser then found no command
    with pytest.raises(SystemExit) as exit_info:
        main(argument for argument in ["info", "--help"])
    assert exit_info.value.code == 0
    assert "usage: retinalnet info" in capsys.readouterr().out
