"""OCT volumes: the referral rule, predict_volume, the strip plot and ``retinalnet predict``."""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import re
import sys
import typing
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from _dicom_helpers import MARKER, scans, write
from _training_helpers import tiny_cnn
from retinalnet.checkpoint import save_checkpoint
from retinalnet.cli import build_parser, main
from retinalnet.cli._order import given_order, order_argument, order_refused
from retinalnet.datasets import KERMANY_CLASSES, UnreadableImageError
from retinalnet.models import Classifier, small_cnn
from retinalnet.predictor import Predictor
from retinalnet.transforms import Preprocessing
from retinalnet.volume import (
    DEFAULT_THRESHOLD,
    REFERRAL_ORDER,
    predict_volume,
    read_volume,
    summarise_volume,
)

N, C, D, R = (0.05, 0.05, 0.05, 0.85), (0.6, 0.2, 0.1, 0.1), (0.1, 0.8, 0.05, 0.05), None

# --- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "threshold", "min_scans", "label", "drivers"),
    [
        ([N, N, N], 0.5, 1, "NORMAL", [0, 1, 2]),
        ([N, C, N], 0.5, 1, "CNV", [1]),
        ([D, N, C], 0.5, 1, "CNV", [2]),  # CNV outranks a more probable DME
        ([(0.49, 0.0, 0.0, 0.51), (0.3, 0.0, 0.55, 0.15)], 0.5, 1, "DRUSEN", [1]),
        ([(0.35, 0.0, 0.0, 0.65), N], 0.3, 1, "CNV", [0]),
        ([N, C, D, D], 0.5, 2, "DME", [2, 3]),  # one CNV B-scan is not enough
        ([(0.2, 0.2, 0.2, 0.4)] * 2, 0.5, 1, "NORMAL", []),  # nothing reaches it
        ([(0.7, 0.1, 0.1, 0.1), (0.9, 0, 0, 0.1), (0.7, 0.1, 0.1, 0.1)], 0.5, 1, "CNV", [1, 0, 2]),
    ],
)  # fmt: skip
def test_the_referral_rule(rows, threshold, min_scans, label, drivers) -> None:
    summary = summarise_volume(
        rows, KERMANY_CLASSES, threshold=threshold, min_scans=min_scans, source="v.dcm"
    )
    assert summary.label == label
    assert [scan.index for scan in summary.drivers] == drivers
    assert summary.referred == (label != "NORMAL")
    assert summary.order == REFERRAL_ORDER


def test_the_rule_reads_the_model_class_names_not_their_order() -> None:
    classes = ("NORMAL", "DRUSEN", "DME", "CNV")  # another output order
    summary = summarise_volume([(0.1, 0.1, 0.2, 0.6)], classes)
    assert summary.label == "CNV"
    assert summary.drivers[0].probability == pytest.approx(0.6)


def test_a_study_with_normal_keeps_the_referral_order_of_its_classes() -> None:
    # a CNV-against-NORMAL model needed --order; its classes' referral order is the rule
    assert summarise_volume([(0.7, 0.3)], ("CNV", "NORMAL")).label == "CNV"
    assert summarise_volume([(0.3, 0.7)], ("CNV", "NORMAL")).label == "NORMAL"
    three = ("NORMAL", "DRUSEN", "CNV")  # any output order: the names give the rule
    assert summarise_volume([(0.1, 0.6, 0.3)], three).label == "DRUSEN"
    # without NORMAL there is no fallback to assume
    with pytest.raises(ValueError, match=r"or some of them with NORMAL.*pass order=\[\.\.\.\]"):
        summarise_volume([(0.2, 0.7, 0.1)], ("CNV", "DME", "DRUSEN"))


def test_other_classes_need_an_explicit_order() -> None:
    classes = ("healthy", "amd", "glaucoma")
    with pytest.raises(ValueError, match=r"not the Kermany ones.*pass order=\[\.\.\.\]"):
        summarise_volume([(0.2, 0.7, 0.1)], classes)
    summary = summarise_volume([(0.2, 0.7, 0.1)], classes, order=["amd", "glaucoma", "healthy"])
    assert summary.label == "amd"
    for order, error in [
        (["amd", "healthy"], ValueError),
        (["amd", "amd", "healthy"], ValueError),
        ("amd", TypeError),
    ]:
        with pytest.raises(error, match="order"):
            summarise_volume([(0.2, 0.7, 0.1)], classes, order=order)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"threshold": 0}, "threshold must be in"),
        ({"threshold": 1.5}, "threshold must be in"),
        ({"threshold": math.nan}, "threshold must be in"),
        ({"threshold": True}, "threshold must be a probability"),
        ({"min_scans": 0}, "min_scans must be an int >= 1"),
    ],
)
def test_bad_settings_are_refused(options, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        summarise_volume([N], KERMANY_CLASSES, **options)


@pytest.mark.parametrize(
    "rows", [[], [(0.5, 0.5)], [(0.5, 0.5, 0.5, math.nan)], [(2.0, 0.0, 0.0, 0.0)]]
)
def test_bad_probabilities_are_refused(rows) -> None:
    with pytest.raises(ValueError, match="probabilities must"):
        summarise_volume(rows, KERMANY_CLASSES)


def test_the_summary_says_itself_and_gives_everything_as_json() -> None:
    summary = summarise_volume([N, C, N], KERMANY_CLASSES, source="v.dcm")
    assert str(summary) == "v.dcm  CNV  (3 B-scans; 1 of 3 B-scans at CNV >= 50%)"
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["kind"] == "volume"
    assert data["label"] == "CNV"
    assert data["drivers"] == [{"index": 1, "probability": 0.6}]
    assert data["peaks"]["DME"] == {"index": 1, "probability": 0.2}
    assert [scan["label"] for scan in data["scans"]] == ["NORMAL", "CNV", "NORMAL"]
    assert data["scans"][1]["probabilities"] == dict(zip(KERMANY_CLASSES, C, strict=True))
    normal = summarise_volume([N, (0.3, 0.1, 0.1, 0.5)], KERMANY_CLASSES, source="w.dcm")
    assert normal.reason == (
        "no class of CNV, DME, DRUSEN reached 50% on a B-scan; highest: CNV 30.0% at B-scan 1"
    )


def test_the_reason_is_a_read_only_text_attribute_like_every_other_reason() -> None:
    summary = summarise_volume([N, C, N], KERMANY_CLASSES, source="v.dcm")
    assert isinstance(summary.reason, str)
    assert summary.reason == summary.to_dict()["reason"] == "1 of 3 B-scans at CNV >= 50%"
    assert json.loads(json.dumps({"reason": summary.reason})) == {"reason": summary.reason}
    with pytest.raises(AttributeError):
        summary.reason = "edited"  # type: ignore[misc]


def test_the_reason_quotes_class_names_that_would_read_as_more_classes() -> None:
    classes = ("3", "normal", "wet AMD", "Ödem, diabetic")
    order = ("wet AMD", "Ödem, diabetic", "3", "normal")
    rows = [(0.265, 0.6, 0.1, 0.035), (0.1, 0.7, 0.1, 0.1)]
    normal = summarise_volume(rows, classes, order=order, source="v.tif")
    expected = (
        "no class of 'wet AMD', 'Ödem, diabetic', '3' reached 50% on a B-scan; highest: "
        "'3' 26.5% at B-scan 0"
    )
    assert normal.reason == expected
    assert normal.to_dict()["reason"] == expected
    referred = summarise_volume([(0.1, 0.1, 0.1, 0.7)], classes, order=order, source="v.tif")
    assert referred.reason == "1 of 1 B-scans at 'Ödem, diabetic' >= 50%"
    plain = summarise_volume([N], KERMANY_CLASSES)  # plain names stay unquoted
    assert plain.reason.startswith("no class of CNV, DME, DRUSEN reached")


def test_the_cli_default_threshold_is_the_library_one() -> None:
    from retinalnet.cli._volume import min_scans, threshold

    args = build_parser().parse_args(["predict", "--checkpoint", "x.pt", "v.dcm"])
    defaults = inspect.signature(predict_volume).parameters
    assert threshold(args) == DEFAULT_THRESHOLD == defaults["threshold"].default
    assert min_scans(args) == defaults["min_scans"].default == 1


# --- predict_volume -------------------------------------------------------------------------


class _Brightness(nn.Module):
    """CNV for a bright B-scan, NORMAL for a dark one: the mean of the normalised input."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(8.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3))
        low = torch.full_like(mean, -4.0)
        logits = torch.stack([self.gain * mean, low, low, torch.zeros_like(mean)], dim=1)
        return logits.log_softmax(dim=1)


@pytest.fixture(scope="module")
def brightness() -> Predictor:
    model = Classifier(_Brightness(), classes=KERMANY_CLASSES, preprocessing=Preprocessing(size=32))
    return Predictor(model, device="cpu", precision="fp32")


@pytest.fixture
def bright_volume() -> np.ndarray:
    volume = scans(5)
    volume[3] = 250  # one bright B-scan among dark ones
    return volume


def test_a_volume_file_and_its_b_scans_give_the_same_summary(
    tmp_path: Path, brightness: Predictor, bright_volume: np.ndarray
) -> None:
    path = write(tmp_path / "volume.dcm", bright_volume)
    summary = predict_volume(brightness, path)
    assert summary.source == str(path)
    assert summary.num_scans == 5
    assert summary.label == "CNV"
    assert [scan.index for scan in summary.drivers] == [3]
    assert summary.drivers[0].probability > 0.99
    frames = [Image.fromarray(frame) for frame in bright_volume]
    in_memory = predict_volume(brightness, frames)
    assert in_memory.source == "<volume>"
    assert in_memory.probabilities == summary.probabilities
    assert [np.asarray(f).tolist() for f in read_volume(path)] == bright_volume.tolist()


def test_a_dark_volume_is_normal(tmp_path: Path, brightness: Predictor) -> None:
    summary = predict_volume(brightness, write(tmp_path / "volume.dcm", scans(4)))
    assert summary.label == "NORMAL"
    assert len(summary.drivers) == 4


def test_predict_volume_checks_the_rule_before_any_work(tmp_path: Path) -> None:
    three = Classifier(
        nn.Sequential(nn.Flatten(), nn.LazyLinear(3), nn.LogSoftmax(dim=1)),
        classes=("a", "b", "c"),
    )
    predictor = Predictor(three, device="cpu")
    with pytest.raises(ValueError, match="not the Kermany ones"):
        predict_volume(predictor, tmp_path / "missing.dcm")
    with pytest.raises(ValueError, match="threshold"):
        predict_volume(predictor, tmp_path / "missing.dcm", threshold=2, order=["a", "b", "c"])


def test_a_volume_with_an_unreadable_b_scan_is_not_summarised(
    tmp_path: Path, brightness: Predictor
) -> None:
    good = tmp_path / "0.png"
    Image.fromarray(scans(1)[0]).save(good)
    skipping = Predictor(brightness.model, device="cpu", on_error="skip")
    with pytest.raises(UnreadableImageError, match=r"B-scan of the volume <volume>"):
        predict_volume(skipping, [good, tmp_path / "1.png", good])


def test_predict_volume_is_typed_to_take_an_onnx_predictor_too() -> None:
    """deploying.rst's ``predict_volume(Predictor.from_onnx(...), ...)`` type-checks."""
    from retinalnet.export import OnnxPredictor

    names = {"Predictor": Predictor, "OnnxPredictor": OnnxPredictor, "ImageInput": object}
    hints = typing.get_type_hints(predict_volume, localns=names)
    assert set(typing.get_args(hints["predictor"])) == {Predictor, OnnxPredictor}


class _SharedPredictor:
    """A predictor shared with another thread, whose call has ended since this one: this
    call left a B-scan out, but ``skipped`` is already the other call's (none)."""

    def __init__(self, predictor: Predictor) -> None:
        self.inner = predictor
        self.classes = predictor.classes
        self.preprocessing = predictor.preprocessing
        self.skipped: list[object] = []

    def predict_proba(self, images: list[object]) -> torch.Tensor:
        return self.inner.predict_proba(images[1:])  # type: ignore[arg-type]


def test_a_b_scan_left_out_is_told_by_the_rows_not_by_skipped(brightness: Predictor) -> None:
    shared = _SharedPredictor(brightness)
    with pytest.raises(UnreadableImageError, match=r"1 of its 3 B-scans could not be read"):
        predict_volume(shared, list(torch.rand(3, 32, 32)))  # type: ignore[arg-type]


def test_the_strip_plot_marks_the_drivers(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from retinalnet.plots_volume import plot_volume

    summary = summarise_volume([N, C, C, N], KERMANY_CLASSES, source="v.dcm")
    figure = plot_volume(summary, save=tmp_path / "strip.png")
    heat = figure.axes[0]
    assert [t.get_text() for t in heat.get_yticklabels()] == list(REFERRAL_ORDER)
    assert heat.collections[0].get_offsets().tolist() == [[1, 0], [2, 0]]
    assert figure.get_suptitle() == "v.dcm: CNV (4 B-scans; 2 of 4 B-scans at CNV >= 50%)"
    assert Image.open(tmp_path / "strip.png").size[0] > 100


# --- retinalnet predict ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("volume-cli") / "best.pt", tiny_cnn())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(scans(1, seed=1)[0]).save(folder / "a.jpeg")
    write(folder / "b.dcm", scans(1, seed=2)[0])
    write(folder / "volume.dcm", scans(4))
    return folder


def _predict(*argv: str) -> int:
    return main(["predict", "-q", *argv])


def test_predict_summarises_a_volume_among_images(
    checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _predict("--checkpoint", str(checkpoint), str(folder), "--threshold", "0.3") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(str(folder / "a.jpeg"))
    assert lines[1].startswith(str(folder / "b.dcm"))
    assert lines[2].startswith(f"{folder / 'volume.dcm'}  ")
    assert "(4 B-scans; " in lines[2]
    assert all(line.startswith("  B-scans at ") for line in lines[3:])
    assert len(lines) <= 4

    assert _predict("--checkpoint", str(checkpoint), str(folder), "--json") == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in results] == [
        str(folder / n) for n in ("a.jpeg", "b.dcm", "volume.dcm")
    ]
    volume = results[2]
    assert volume["kind"] == "volume"
    assert volume["threshold"] == 0.5
    assert len(volume["scans"]) == 4
    assert all(
        sum(s["probabilities"].values()) == pytest.approx(1, abs=1e-5) for s in volume["scans"]
    )


def test_predict_draws_volumes_and_their_driving_b_scans(
    checkpoint: Path, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    plots, cams = tmp_path / "plots", tmp_path / "cams"
    code = _predict(
        "--checkpoint", str(checkpoint), str(folder / "volume.dcm"), "--plots", str(plots),
        "--cam", str(cams), "--threshold", "0.01",
    )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in plots.iterdir()) == ["volume_volume.png"]
    names = sorted(p.name for p in cams.iterdir())
    assert len(names) == 3  # the three most probable of the four drivers
    assert all(n.startswith("volume_scan") and n.endswith("_cam.png") for n in names)
    assert f"plots: {plots / 'volume_volume.png'}" in capsys.readouterr().out


def test_plots_and_cams_in_one_folder_are_listed_apart(
    checkpoint: Path,
    folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # was: "plots:" listed the overlays too when --plots and --cam named one folder
    pytest.importorskip("matplotlib")
    out = tmp_path / "figures"
    code = main([
        "predict", "--checkpoint", str(checkpoint), str(folder / "volume.dcm"),
        "--plots", str(out), "--cam", str(out), "--threshold", "0.01",
    ])  # fmt: skip
    assert code == 0
    assert len(list(out.iterdir())) == 4  # the strip figure and three overlays
    captured = capsys.readouterr()
    printed = [line for line in captured.out.splitlines() if line.startswith("plots:")]
    assert printed == [f"plots: {out / 'volume_volume.png'}"]
    assert f"Grad-CAM overlays: 3 in {out}" in captured.err


@pytest.mark.parametrize(
    ("extra", "status", "match"),
    [
        (["--csv", "out.csv"], 1, "--csv writes one row per image, and .*volume.dcm is a volume"),
        # a value that does not fit the model, as -k 5 for 4 classes: a bad argument
        (["--order", "CNV,DME"], 2, r"--order: 'CNV,DME' names \['CNV', 'DME'\], not every"),
    ],
)
def test_predict_refuses_what_does_not_fit_a_volume_in_one_line(
    checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture[str], extra, status, match
) -> None:
    assert _predict("--checkpoint", str(checkpoint), str(folder), *extra) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert re.search(match, err[0])


def test_plots_without_a_volume_and_a_model_of_other_classes_are_refused(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    three = save_checkpoint(
        tmp_path / "three.pt",
        small_cnn(num_classes=3, classes=("a", "b", "c"), preprocessing=Preprocessing(size=32)),
    )
    assert _predict("--checkpoint", str(three), str(folder / "a.jpeg"), "--plots", "p") == 1
    assert "no volume was given" in capsys.readouterr().err
    assert _predict("--checkpoint", str(three), str(folder / "volume.dcm")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "not the Kermany ones" in err[0]
    assert "pass --order A,B,..." in err[0]
    assert _predict("--checkpoint", str(three), str(folder / "volume.dcm"), "--order", "b,c,a") == 0


def test_predict_without_pydicom_says_what_to_install(
    checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "pydicom", None)
    assert _predict("--checkpoint", str(checkpoint), str(folder / "b.dcm")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"retinalnet predict: error: cannot read image {str(folder / 'b.dcm')!r}: reading DICOM "
        'files needs pydicom, which is not installed: pip install "retinalnet[dicom]"'
    ]


def test_predict_never_shows_a_patient_tag(
    checkpoint: Path,
    folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    write(tmp_path / "nopixels.dcm", None)
    write(tmp_path / "sr.dcm", scans(1)[0], sop_class="1.2.840.10008.5.1.4.1.1.88.11")
    outputs: list[str] = []
    runs = [
        [str(folder), "--json"],
        [str(folder)],
        [str(folder), str(tmp_path / "nopixels.dcm"), str(tmp_path / "sr.dcm"), "--on-error",
         "skip", "--json"],
        [str(tmp_path / "nopixels.dcm")],
        [str(tmp_path / "sr.dcm")],
    ]  # fmt: skip
    codes = []
    for argv in runs:
        codes.append(main(["predict", "--checkpoint", str(checkpoint), *argv]))
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
    assert codes == [0, 0, 0, 1, 1]
    assert "holds no pixel data" in outputs[7]  # the errors are there, on stderr
    assert "its SOP class is Basic Text SR Storage" in outputs[9]
    outputs += [record.getMessage() for record in caplog.records]
    assert all(MARKER not in text for text in outputs)


def _tiff_volume(path: Path, volume: np.ndarray) -> Path:
    frames = [Image.fromarray(frame) for frame in volume]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


def test_a_multi_page_tiff_is_a_volume_like_a_dicom_one(
    tmp_path: Path, brightness: Predictor, bright_volume: np.ndarray
) -> None:
    tiff = _tiff_volume(tmp_path / "volume.tif", bright_volume)
    dicom = write(tmp_path / "volume.dcm", bright_volume)
    assert [np.asarray(f).tolist() for f in read_volume(tiff)] == bright_volume.tolist()
    from_tiff, from_dicom = predict_volume(brightness, tiff), predict_volume(brightness, dicom)
    assert from_tiff.probabilities == from_dicom.probabilities
    assert from_tiff.label == "CNV"


def test_predict_summarises_a_multi_page_tiff_and_never_overwrites_an_overlay(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    for name in ("a/scan.jpeg", "a/scan_2.png", "b/scan.jpeg", "b/scan_scan0.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(scans(1, seed=len(name))[0]).save(tmp_path / name)
    volume = _tiff_volume(tmp_path / "b" / "scan.tif", scans(3))
    cams = tmp_path / "cams"
    code = _predict(
        "--checkpoint", str(checkpoint), str(tmp_path / "a"), str(tmp_path / "b"),
        "--cam", str(cams), "--threshold", "0.01", "--min-scans", "3",
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert f"{volume}  " in out
    assert "(3 B-scans; " in out
    # 4 image overlays and the volume's 3 driving B-scans, each its own file
    assert len(list(cams.iterdir())) == 7


# --- a volume shorter than min_scans, a bad --order without a volume ------------------------


@pytest.mark.parametrize(
    ("rows", "min_scans"),
    [([C, C, C], 4), ([C, C, C], 99), ([N], 2), ([D, N], 3)],
)
def test_a_volume_with_fewer_b_scans_than_min_scans_is_refused_not_labelled(
    rows, min_scans
) -> None:
    # every B-scan may be CNV: with fewer B-scans than min_scans no class can meet the rule,
    # and the fallback it would get is no answer
    with pytest.raises(ValueError, match="fewer than min_scans") as caught:
        summarise_volume(rows, KERMANY_CLASSES, min_scans=min_scans, source="v.tif")
    message = str(caught.value)
    assert "\n" not in message
    count = len(rows)
    assert message.startswith(
        f"the volume v.tif has {count} B-scan{'s' if count > 1 else ''}, fewer than "
        f"min_scans={min_scans}"
    )
    assert f"pass min_scans={count} or less" in message
    # as many B-scans as min_scans is a volume the rule can answer
    assert summarise_volume(rows, KERMANY_CLASSES, min_scans=count).min_scans == count


def test_predict_volume_refuses_a_volume_shorter_than_min_scans_before_predicting(
    tmp_path: Path, brightness: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _tiff_volume(tmp_path / "vol.tif", np.full((3, 32, 32), 250, dtype=np.uint8))
    frames = read_volume(path)

    def no_work(*_: object, **__: object) -> None:
        raise AssertionError("predicted a volume the rule cannot answer")

    with monkeypatch.context() as patched:
        patched.setattr(brightness, "predict_proba", no_work)
        for volume, name in [(path, str(path)), (frames, "<volume>")]:
            with pytest.raises(ValueError, match=rf"^the volume {re.escape(name)} has 3 B-scans"):
                predict_volume(brightness, volume, min_scans=5)
    assert predict_volume(brightness, path, min_scans=3).label == "CNV"


def test_predict_refuses_a_volume_shorter_than_min_scans_in_one_line(
    checkpoint: Path, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    volume = _tiff_volume(tmp_path / "vol.tif", scans(3))
    argv = ["--checkpoint", str(checkpoint), "--threshold", "0.2", "--min-scans", "99"]
    for extra in ([], ["--on-error", "skip"], ["--json"]):
        assert _predict(*argv, *extra, str(volume)) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.splitlines() == [
            f"retinalnet predict: error: the volume {volume} has 3 B-scans, fewer than "
            "--min-scans 99, so no class can reach the referral rule and its label would be "
            "the fallback class whatever its B-scans show; pass --min-scans 3 or less, or "
            "leave the volume out"
        ]
    # among images and other volumes, before any of them is predicted: the shortest is named
    short = _tiff_volume(tmp_path / "short.tif", scans(2))
    assert _predict(*argv[:4], "--min-scans", "4", str(folder), str(volume), str(short)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(
        f"retinalnet predict: error: 2 volumes have fewer B-scans than --min-scans 4: "
        f"{volume} (3), {short} (2), so"
    )
    assert line.endswith("pass --min-scans 2 or less, or leave those volumes out")
    assert _predict(*argv[:4], "--min-scans", "4", str(folder)) == 0  # volume.dcm has 4


@pytest.mark.parametrize("order", ["CNV", "CNV,DME,DRUSEN,NORMAL,AMD", "CNV,DME,DRUSEN,normal"])
def test_predict_checks_order_without_a_volume(
    checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture[str], order
) -> None:
    # was status 1: a value that does not fit the model is a bad argument, as -k 5 is
    image = str(folder / "a.jpeg")
    assert _predict("--checkpoint", str(checkpoint), image, "--order", order) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing printed for the image: the flag is refused first
    (line,) = captured.err.splitlines()
    assert line.startswith(f"retinalnet predict: error: argument --order: {order!r} names")
    assert line.endswith("the fallback class last: --order CNV,DME,DRUSEN,NORMAL")


@pytest.mark.parametrize(
    ("order", "match"),
    [
        ("", "argument --order: is empty"),
        (",", "argument --order: names an empty class"),
        ("CNV,DME,CNV,NORMAL", "argument --order: names CNV twice"),
    ],
)
def test_an_order_no_model_takes_is_refused_by_the_parser(
    checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture[str], order, match
) -> None:
    # was status 1 after the paths were read: refused as argparse refuses -k 0, before any work
    image = str(folder / "a.jpeg")
    with pytest.raises(SystemExit) as stopped:
        _predict("--checkpoint", str(checkpoint), image, "--order", order)
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: retinalnet predict")
    assert f"retinalnet predict: error: {match}" in captured.err


def test_predict_takes_a_good_order_without_a_volume(
    checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = str(folder / "a.jpeg")
    order = "DME, CNV,DRUSEN,NORMAL"
    with pytest.warns(UserWarning, match=r"^--order sets the referral rule of volumes"):
        assert _predict("--checkpoint", str(checkpoint), image, "--order", order) == 0
    assert capsys.readouterr().out.startswith(image)


@pytest.mark.parametrize(
    "flags",
    [
        ["--threshold", "0.9"],
        ["--min-scans", "2"],
        ["--threshold", "0.5", "--min-scans", "1", "--order", "CNV,DME,DRUSEN,NORMAL"],
    ],
)
def test_volume_rule_flags_without_a_volume_are_said_to_change_nothing(
    checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    # `--threshold 0.9` on images reads as "only confident predictions": it is not, and the
    # run says so (even when the value given is the default)
    image = str(folder / "a.jpeg")
    named = [flag for flag in flags if flag.startswith("--")]
    verb = "sets" if len(named) == 1 else "set"
    with pytest.warns(UserWarning, match="referral rule") as said:
        assert _predict("--checkpoint", str(checkpoint), image, *flags) == 0
    (warning,) = [w for w in said if "referral rule" in str(w.message)]
    assert str(warning.message).startswith(f"{', '.join(named)} {verb} the referral rule")
    assert "change nothing for single images" in str(warning.message)
    assert capsys.readouterr().out.startswith(image)


def test_volume_rule_flags_with_a_volume_or_left_out_say_nothing(
    checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = str(folder / "a.jpeg")
        assert _predict("--checkpoint", str(checkpoint), image) == 0
        volume = str(folder / "volume.dcm")
        assert _predict("--checkpoint", str(checkpoint), volume, "--threshold", "0.9") == 0
    capsys.readouterr()


def test_a_bad_order_is_refused_before_any_image_is_predicted(
    checkpoint: Path,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def predicted(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image was predicted before --order was checked")

    monkeypatch.setattr(Predictor, "topk", predicted)
    assert _predict("--checkpoint", str(checkpoint), str(folder / "a.jpeg"), "--order", "CNV") == 2
    assert "not every class of the model in" in capsys.readouterr().err


def test_an_order_of_plain_class_names_that_misses_one_names_the_flag_and_the_fix(
    checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: for class names that need no quotes, the generic "order must list every class of
    # the model once ..." of summarise_volume, naming neither --order nor what to pass
    image = str(folder / "a.jpeg")
    assert _predict("--checkpoint", str(checkpoint), image, "--order", "CNV,DME") == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "retinalnet predict: error: argument --order: 'CNV,DME' names ['CNV', 'DME'], not "
        f"every class of the model in {str(checkpoint)!r} once (['CNV', 'DME', 'DRUSEN', "
        "'NORMAL']): this model's classes, to put in order, highest concern first and the "
        "fallback class last: --order CNV,DME,DRUSEN,NORMAL"
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "is empty; give every class of the model once"),
        (" ", "is empty; give every class of the model once"),
        ("CNV,,DME", "names an empty class ('CNV,,DME'); give every class"),
        ("CNV,DME,CNV", "names CNV twice ('CNV,DME,CNV'); give every class"),
        ('CNV,D"ME', "'CNV,D\"ME' has a double quote out of place; commas separate the names"),
    ],
)
def test_the_order_type_refuses_what_no_model_takes_in_argparse_words(text: str, said: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        order_argument(text)
    assert str(refused.value).startswith(said)  # after "argument --order: "
    with pytest.raises(ValueError, match="^--order " + re.escape(said)):  # the same words
        given_order(argparse.Namespace(order=text))


def test_the_order_type_keeps_a_good_order_as_written_for_the_model_check() -> None:
    text = ' DME,"CNV", DRUSEN ,NORMAL'
    assert order_argument(text) == text
    args = argparse.Namespace(order=text, checkpoint=Path("best.pt"))
    assert order_refused(args, KERMANY_CLASSES) is None
    assert order_refused(argparse.Namespace(order=None), KERMANY_CLASSES) is None
    three = argparse.Namespace(order="CNV,DME,NORMAL", checkpoint=Path("best.pt"))
    assert order_refused(three, KERMANY_CLASSES) == (
        "argument --order: 'CNV,DME,NORMAL' names ['CNV', 'DME', 'NORMAL'], not every class "
        "of the model in 'best.pt' once (['CNV', 'DME', 'DRUSEN', 'NORMAL']): this model's "
        "classes, to put in order, highest concern first and the fallback class last: "
        "--order CNV,DME,DRUSEN,NORMAL"
    )


# --- one rule for every B-scan of a volume file ---------------------------------------------


def _frames_volume(path: Path, frames: list[np.ndarray]) -> Path:
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:])
    return path


def _sixteen(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.int64) * 255 + 32767) // 65535


_SCAN = scans(1)[0].astype(np.int64)  # grey levels 0..255
_HALF = _SCAN.astype(np.float32) / 255


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        # a float volume no bit depth explains (negative values) whose second B-scan is half
        # as bright: stretched by the range of both
        ([_HALF * 3000 - 700, _HALF * 1500 - 700],
         lambda v: np.rint((v - v.min()) * 255 / (v.max() - v.min()))),
        # 32-bit integers of 16-bit data with a dim B-scan (max 200): both on the 16-bit scale
        ([(_SCAN * 257).astype(np.int32), (_SCAN * 200 // 255).astype(np.int32)], _sixteen),
        # float grey levels (whole numbers) with a dim B-scan: both read as 8-bit grey levels
        ([_SCAN.astype(np.float32), (_SCAN // 2).astype(np.float32)], lambda v: v),
    ],
    ids=["float", "int32", "float-whole"],
)  # fmt: skip
def test_every_b_scan_of_a_volume_is_read_by_one_scale(tmp_path: Path, frames, expected) -> None:
    """They were scaled one by one: a dim B-scan stretched as bright as the others, or read
    on the 8-bit scale next to B-scans read on the 16-bit one."""
    path = _frames_volume(tmp_path / "volume.tif", frames)
    values = np.stack([frame.astype(np.float64) for frame in frames])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read = read_volume(path)
    assert [np.asarray(f).tolist() for f in read] == expected(values).tolist()
    assert len(caught) == (frames[0].min() < 0)  # a stretch, and only a stretch, is warned of


def test_a_16_bit_tiff_volume_with_a_dim_b_scan_is_read_like_its_dicom(tmp_path: Path) -> None:
    """A blink B-scan (brightest 3060 of 65535) made the whole TIFF volume refused as 12-bit
    data; DICOM checks the whole volume, and reads it."""
    volume = np.stack([_SCAN * 257, _SCAN * 257, _SCAN * 12]).astype(np.uint16)
    tiff = _frames_volume(tmp_path / "volume.tif", list(volume))
    dicom = write(tmp_path / "volume.dcm", volume)
    from_tiff = [np.asarray(f).tolist() for f in read_volume(tiff)]
    assert from_tiff == [np.asarray(f).tolist() for f in read_volume(dicom)]
    assert from_tiff == _sixteen(volume).tolist()


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([_SCAN * 12, _SCAN * 10], r"a 16-bit volume of 2 B-scans whose brightest pixel is 3060 "
         r"of 65535 \(12-bit data\?\): rescaled by the 16-bit range it would be nearly black"),
        ([_HALF, np.where(np.equal(_SCAN, _SCAN.max()), np.nan, _HALF)],
         r"B-scan 1 \(of 2, numbered from 0\): \d+ of its 3072 pixels are NaN or infinite"),
        ([_SCAN.astype(np.uint8), np.zeros((4, 64), np.uint8)],
         r"B-scan 1 \(of 2, numbered from 0\): it is 64 x 4 pixels"),
    ],
    ids=["dark-volume", "nan-b-scan", "tiny-b-scan"],
)  # fmt: skip
def test_a_refused_volume_says_whether_the_volume_or_which_b_scan(
    tmp_path: Path, frames, message
) -> None:
    frames = [f.astype(np.uint16) if f.dtype == np.int64 else f for f in frames]
    path = _frames_volume(tmp_path / "volume.tif", frames)
    with pytest.raises(UnreadableImageError, match=rf"^cannot read image '[^']+': {message}"):
        read_volume(path)


# --- B-scans given in order: the one rule of a volume file ----------------------------------

_BLINK = (_SCAN * 3 // 10).astype(np.int64)  # a blink: the same B-scan, dim
BLINK_VOLUMES: dict[str, list[np.ndarray]] = {
    # grey levels with fractions (averaged frames), one dim: as the auditor's t16
    "float-grey-levels": [(_SCAN + 0.5).astype(np.float32), (_BLINK + 0.5).astype(np.float32)],
    # floats no bit depth explains: stretched by the range of the whole volume
    "float-stretched": [
        (_SCAN * 10 - 700.5).astype(np.float32),
        (_BLINK * 10 - 700.5).astype(np.float32),
    ],
    # 32-bit integers of 16-bit data: the dim B-scan (max 76) is on the volume's 16-bit scale
    "int32-16-bit": [(_SCAN * 257).astype(np.int32), _BLINK.astype(np.int32)],
    # 16-bit data whose blink holds no value of 4096: the volume is not 12-bit data
    "16-bit": [(_SCAN * 257).astype(np.uint16), (_BLINK * 50).astype(np.uint16)],
    # 16-bit data as floats: the same
    "float-16-bit": [(_SCAN * 257 + 0.25).astype(np.float32), (_BLINK * 50).astype(np.float32)],
}


@pytest.mark.parametrize("given", ["PIL images", "paths"])
@pytest.mark.parametrize("kind", list(BLINK_VOLUMES))
def test_b_scans_in_order_are_read_by_the_one_scale_of_their_volume_file(
    tmp_path: Path, brightness: Predictor, kind: str, given: str
) -> None:
    """They were scaled one by one: the blink stretched as bright as the others (its referral
    changed), read on the 8-bit scale, or refused as 12-bit data, where the same frames as
    one multi-page file kept one scale."""
    frames = [*BLINK_VOLUMES[kind], BLINK_VOLUMES[kind][0]]
    file = _frames_volume(tmp_path / "volume.tif", frames)
    scans: list[object] = [Image.fromarray(frame) for frame in frames]
    if given == "paths":  # one file per B-scan: a TIFF keeps float and 32-bit pixels
        scans = [tmp_path / f"{index}.tif" for index in range(len(frames))]
        for image, path in zip([Image.fromarray(f) for f in frames], scans, strict=True):
            image.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from_file = predict_volume(brightness, file)
        from_list = predict_volume(brightness, scans)
    assert from_list.probabilities == from_file.probabilities
    assert from_list.label == from_file.label
    said = [str(warning.message) for warning in caught]
    stretched = [text for text in said if "stretched from their own minimum" in text]
    if kind == "float-stretched":  # once for the file, once for the list
        assert stretched == [
            f"the volume {str(file)!r} (its 3 B-scans together) has values from -700.5 to "
            + stretched[0].split(" to ", 1)[1],
            "the volume (its 3 B-scans together) has values from -700.5 to "
            + stretched[0].split(" to ", 1)[1],
        ]
    else:
        assert stretched == []


def test_a_16_bit_list_with_a_dim_b_scan_is_accepted_like_its_file(
    tmp_path: Path, brightness: Predictor
) -> None:
    volume = [(_SCAN * 257).astype(np.uint16), (_SCAN * 12).astype(np.uint16)]
    file = _frames_volume(tmp_path / "volume.tif", volume)
    pngs = [tmp_path / "0.png", tmp_path / "1.png"]
    for frame, path in zip(volume, pngs, strict=True):
        Image.fromarray(frame).save(path)
    expected = predict_volume(brightness, file).probabilities
    assert predict_volume(brightness, pngs).probabilities == expected
    assert predict_volume(brightness, [Image.open(path) for path in pngs]).probabilities == expected


def test_dicom_files_with_a_dim_b_scan_are_read_like_their_multi_frame_file(
    tmp_path: Path, brightness: Predictor
) -> None:
    """One file per B-scan, the usual DICOM export: a blink B-scan without a window (its
    brightest 3060 of 65535) had the list refused ("correct BitsStored"), where the same
    frames as one multi-frame file, or as 16-bit PNGs, were read."""
    volume = np.stack([_SCAN * 257, _SCAN * 12, _SCAN * 257]).astype(np.uint16)
    files = [write(tmp_path / f"{index}.dcm", frame) for index, frame in enumerate(volume)]
    pngs = [tmp_path / f"{index}.png" for index in range(len(volume))]
    for frame, path in zip(volume, pngs, strict=True):
        Image.fromarray(frame).save(path)
    from_file = predict_volume(brightness, write(tmp_path / "volume.dcm", volume))
    from_files = predict_volume(brightness, files)
    assert from_files.probabilities == from_file.probabilities
    assert from_files.probabilities == predict_volume(brightness, pngs).probabilities
    assert from_files.probabilities[1] != from_files.probabilities[0]  # the blink stays dim


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (3, r"cannot use the volume: none of its 3 DICOM files without a window "
            r"\(WindowCenter/WindowWidth\) reaches 1/16 of the range its BitsStored allows "
            r"\(the brightest holds 3060 with BitsStored=16\).* nearly black \(at most 12 of "
            r"255\)\. The data look like 12-bit data: correct BitsStored in the files, or give "
            r"them a window"),
        (1, r"cannot use B-scan 0 \('[^']*0\.dcm'\): it has no window \(WindowCenter/"
            r"WindowWidth\) and its brightest stored value is 3060, under 1/16 of the range its "
            r"BitsStored=16 allows.* correct BitsStored, or give the file a window"),
    ],
    ids=["volume", "one-file"],
)  # fmt: skip
def test_dicom_files_holding_12_bit_data_as_16_are_still_refused(
    tmp_path: Path, brightness: Predictor, count: int, message: str
) -> None:
    """Checked together, DICOM files that would all be nearly black (a wrong BitsStored)
    are refused, as their multi-frame file is."""
    volume = np.stack([_SCAN * 12, _SCAN * 10, _SCAN * 12][:count]).astype(np.uint16)
    files = [write(tmp_path / f"{index}.dcm", frame) for index, frame in enumerate(volume)]
    with pytest.raises(ValueError, match=rf"^{message}$"):
        predict_volume(brightness, files)
    with pytest.raises(UnreadableImageError, match=r"BitsStored=16 allows.*12-bit data"):
        read_volume(write(tmp_path / "volume.dcm", volume))


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (torch.full((40, 40), float("nan")), ValueError, r"^B-scan 1 has 1600 NaN or infinite"),
        (np.zeros((3, 40, 48), np.uint8), ValueError, r"^B-scan 1 has shape \(3, 40, 48\), chann"),
        (Image.new("L", (64, 4)), ValueError, r"^cannot use B-scan 1: it is 64 x 4 pixels"),
        ("missing.png", UnreadableImageError,
         r"missing\.png': no such file.* \(B-scan of the volume <volume>; a volume is summar"),
    ],
    ids=["nan-tensor", "channels-first-array", "tiny-PIL", "missing-file"],
)  # fmt: skip
def test_a_bad_b_scan_in_order_is_named(
    tmp_path: Path, brightness: Predictor, bad: object, error: type[Exception], message: str
) -> None:
    good = Image.fromarray(_SCAN.astype(np.uint8))
    bad = tmp_path / bad if isinstance(bad, str) else bad
    with pytest.raises(error, match=message):
        predict_volume(brightness, [good, bad, good])


def test_b_scans_as_arrays_and_tensors_are_a_volume(brightness: Predictor) -> None:
    frames = [_SCAN.astype(np.uint8), (_SCAN / 255).astype(np.float32)]
    from_arrays = predict_volume(brightness, frames)
    from_tensors = predict_volume(brightness, [torch.from_numpy(f) for f in frames])
    assert from_arrays.probabilities == from_tensors.probabilities
    assert from_arrays.num_scans == 2


def test_files_in_order_are_not_warned_of_as_images_in_memory(tmp_path: Path) -> None:
    """The B-scans of a list of files are decoded before they are predicted (one scale for
    the volume): a model decoding JPEG files at reduced scale must not take them for images
    given in memory."""
    model = Classifier(
        _Brightness(),
        classes=KERMANY_CLASSES,
        preprocessing=Preprocessing(size=32, reduced_decode=True),
    )
    predictor = Predictor(model, device="cpu", precision="fp32")
    big = scans(2, shape=(128, 160))
    paths = [tmp_path / "0.png", tmp_path / "1.jpeg"]
    for frame, path in zip(big, paths, strict=True):
        Image.fromarray(frame).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = predict_volume(predictor, paths)
    assert summary.num_scans == 2


# --- class names holding commas: --order takes them in double quotes, as a CSV row ---------


@pytest.fixture(scope="module")
def comma_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    classes = ("wet AMD", "Ödem, diabetic", 'say "ah"', "normal")
    model = small_cnn(num_classes=4, classes=classes, preprocessing=Preprocessing(size=32))
    return save_checkpoint(tmp_path_factory.mktemp("comma-classes") / "best.pt", model)


def test_order_takes_class_names_with_commas_in_double_quotes(
    comma_checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: split at every comma, so a model with such a class could never be given an order
    order = '"Ödem, diabetic", wet AMD , "say ""ah""",normal'
    volume = str(folder / "volume.dcm")
    assert _predict("--checkpoint", str(comma_checkpoint), volume, "--order", order, "--json") == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["kind"] == "volume"
    assert entry["order"] == ["Ödem, diabetic", "wet AMD", 'say "ah"', "normal"]


@pytest.mark.parametrize(
    ("order", "said"),
    [
        ('wet AMD,Ödem, diabetic,say "ah",normal', "has a double quote out of place"),
        ("wet AMD,Ödem, diabetic,normal,x", "not every class of the model in"),
    ],
)
def test_an_order_split_inside_a_class_name_says_how_to_quote_it(
    comma_checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture[str], order: str, said: str
) -> None:
    # was: "order must list every class of the model once ...; got ['wet AMD', 'Ödem',
    # 'diabetic', ...]", not saying that commas split names nor how to give one
    volume = str(folder / "volume.dcm")
    if "not every class" in said:  # against the model: one line, as -k 5 for 4 classes
        assert _predict("--checkpoint", str(comma_checkpoint), volume, "--order", order) == 2
        (line,) = capsys.readouterr().err.splitlines()
    else:  # refused by the parser, with the usage
        with pytest.raises(SystemExit) as stopped:
            _predict("--checkpoint", str(comma_checkpoint), volume, "--order", order)
        assert stopped.value.code == 2
        line = capsys.readouterr().err.splitlines()[-1]
    assert said in line
    assert "commas separate the names of --order: write a name that holds a comma" in line
    if "not every class" in said:
        assert line.endswith(
            'the fallback class last: --order \'wet AMD,"Ödem, diabetic","say ""ah""",normal\''
        )


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_missing_b_scan_keeps_its_error_class(
    tmp_path: Path, brightness: Predictor, on_error: str
) -> None:
    # was: a plain UnreadableImageError, which `except FileNotFoundError` did not catch
    from retinalnet.datasets import ImageNotFoundError

    good = tmp_path / "0.png"
    Image.fromarray(scans(1)[0]).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    predictor = Predictor(brightness.model, device="cpu", on_error=on_error)
    with pytest.raises(ImageNotFoundError, match=r"gone\.png.*B-scan of the volume <volume>"):
        predict_volume(predictor, [good, tmp_path / "gone.png"])
    with pytest.raises(UnreadableImageError) as caught:
        predict_volume(predictor, [good, broken])
    assert not isinstance(caught.value, FileNotFoundError)


def test_read_volume_refuses_a_list_in_one_line(tmp_path: Path) -> None:
    # was: os.fspath's "expected str, bytes or os.PathLike object, not list"
    with pytest.raises(TypeError, match=r"^read_volume takes one volume file, got list; pass a "):
        read_volume([tmp_path / "a.jpeg"])  # type: ignore[arg-type]


def test_a_threshold_reads_as_given_and_the_highest_below_it_never_as_it() -> None:
    # was: threshold 0.525 read "52%" beside a highest of 52.4% ("no class reached 52%");
    # 0.999 read "100%"; a highest of 0.9985 read "99.9%", the threshold itself
    classes = ("CNV", "DME", "DRUSEN", "NORMAL")
    below = summarise_volume([(0.524, 0.2, 0.2, 0.076)], classes, threshold=0.525)
    assert "reached 52.5% on a B-scan; highest: CNV 52.4%" in below.reason
    referred = summarise_volume([(0.9995, 0.0002, 0.0002, 0.0001)], classes, threshold=0.999)
    assert referred.reason == "1 of 1 B-scans at CNV >= 99.9%"
    close = summarise_volume([(0.9985, 0.0005, 0.0005, 0.0005)], classes, threshold=0.999)
    assert "reached 99.9% on a B-scan; highest: CNV 99.85%" in close.reason
    default = summarise_volume([(0.4996, 0.2, 0.2, 0.1004)], classes)  # threshold 0.5
    assert "reached 50% on a B-scan; highest: CNV 49.96%" in default.reason


def test_numpy_settings_are_kept_as_python_numbers_for_json() -> None:
    # min_scans=np.int64(2) was stored as given: json.dumps(summary.to_dict()) then raised
    # "Object of type int64 is not JSON serializable"
    summary = summarise_volume(
        [C, C, N], KERMANY_CLASSES, threshold=np.float32(0.5), min_scans=np.int64(2)
    )
    assert type(summary.min_scans) is int
    assert type(summary.threshold) is float
    assert json.loads(json.dumps(summary.to_dict()))["min_scans"] == 2


def test_predict_volume_passes_on_its_checked_settings(brightness: Predictor) -> None:
    frames = [Image.fromarray(frame) for frame in scans(3)]
    summary = predict_volume(
        brightness,
        frames,
        threshold=np.float32(0.5),
        min_scans=np.int64(2),
        order=(name for name in REFERRAL_ORDER),  # type: ignore[arg-type]  # read once
    )
    assert (type(summary.min_scans), summary.order) == (int, REFERRAL_ORDER)
    assert json.loads(json.dumps(summary.to_dict()))["min_scans"] == 2
