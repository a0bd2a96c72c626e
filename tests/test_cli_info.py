"""``retinalnet info``: what a checkpoint is, in lines or JSON, and one line for a bad file."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from _checkpoint_swap import rename_over, replaced_after_load, sha256, two_checkpoints
from retinalnet._core.files import file_digest
from retinalnet._version import __version__
from retinalnet.checkpoint import save_checkpoint
from retinalnet.cli import main
from retinalnet.cli._info import format_info
from retinalnet.export import describe
from retinalnet.models import Classifier, create_model, parameter_summary
from retinalnet.transforms import Preprocessing

HISTORY = [
    {"epoch": 1, "train_loss": 1.2, "train_accuracy": 0.4, "val_loss": 0.9,
     "val_accuracy": 0.5, "seconds": 10.0, "lr": 1e-3},
    {"epoch": 2, "train_loss": 0.8, "train_accuracy": 0.7, "val_loss": 0.6,
     "val_accuracy": 0.75, "seconds": 11.0, "lr": 1e-3},
    {"epoch": 3, "train_loss": 0.6, "train_accuracy": 0.8, "val_loss": 0.7,
     "val_accuracy": 0.8125, "seconds": 12.5, "lr": 1e-4},
]  # fmt: skip


@pytest.fixture
def model() -> Classifier:
    torch.manual_seed(0)
    return create_model(
        "small_cnn", weights=None, preprocessing=Preprocessing(size=32, reduced_decode=True)
    )


@pytest.fixture
def checkpoint(tmp_path: Path, model: Classifier) -> Path:
    return save_checkpoint(
        tmp_path / "best.pt",
        model,
        epoch=3,
        history=HISTORY,
        optimizer_state={"state": {}, "param_groups": []},
        loop_state={"seed": 7},
    )


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["info", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_says_what_the_checkpoint_is(
    checkpoint: Path, model: Classifier, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, str(checkpoint), "--json")
    assert status == 0
    info: dict[str, Any] = json.loads(out)
    summary = parameter_summary(model)
    assert info["kind"] == "checkpoint"
    assert info["arch"] == "small_cnn"
    assert info["classes"] == ["CNV", "DME", "DRUSEN", "NORMAL"]
    assert info["preprocessing"] == model.preprocessing.to_dict()
    assert info["parameters"] == {"total": summary.total, "trainable": summary.trainable}
    assert info["sha256"] == file_digest(checkpoint).hex()
    assert info["retinalnet_version"] == __version__
    assert info["temperature"] is None  # not calibrated
    training = info["training"]
    assert training["epochs"] == 3
    assert training["seed"] == 7
    assert training["best_val_loss"] == {"epoch": 2, "value": 0.6}
    assert training["best_val_accuracy"] == {"epoch": 3, "value": 0.8125}
    assert training["seconds"] == pytest.approx(33.5)
    assert training["resumable"] is True
    assert training["last_epoch"]["train_loss"] == 0.6


def test_lines_for_a_person(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, str(checkpoint))
    assert status == 0
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert lines["architecture"] == "small_cnn"
    assert lines["classes"] == "CNV, DME, DRUSEN, NORMAL"  # quoted only when one holds ', '
    assert "resize 37, centre crop 32" in lines["preprocessing"]
    assert "reduced JPEG decode" in lines["preprocessing"]
    assert lines["best val loss"] == "0.6000 (epoch 2)"
    assert lines["best val acc"] == "81.2% (epoch 3)"
    assert lines["temperature"] == "none (not calibrated)"
    assert lines["sha256"] == file_digest(checkpoint).hex()


def test_a_calibrated_model_shows_its_temperature(tmp_path: Path, model: Classifier) -> None:
    model.temperature = 1.5  # what calibration (TemperatureScaling, calibrate) leaves
    path = save_checkpoint(tmp_path / "calibrated.pt", model)
    assert describe(path)["temperature"] == 1.5


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no checkpoint file"),
        (b"not a checkpoint", "is not a PyTorch checkpoint file"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(
    tmp_path: Path, content: bytes | None, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    status, out, err = _run(capsys, str(path))
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("retinalnet info: error: ")
    assert expected in err
    assert str(path) in err


def test_a_file_that_is_not_a_checkpoint_dict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    status, _, err = _run(capsys, str(path))
    assert status == 1
    assert "is not a retinalnet checkpoint" in err


def test_a_missing_onnx_package_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "onnx" else real(name)
    )
    status, _, err = _run(capsys, str(tmp_path / "model.onnx"))
    assert status == 1
    assert err == (
        "retinalnet info: error: reading an ONNX file needs onnx, not installed: pip install "
        "'retinalnet[onnx]'\n"
    )


# ---------------------------------------------------------------------------------------------
# "trainable" is what trained in the run that wrote the checkpoint


def _fine_tuned(tmp_path: Path, blocks: int | None) -> tuple[Path, int, str]:
    """A real one-epoch fine-tune of small_cnn; its best.pt, the values that trained (the
    head and the last blocks, counted on the model as it trained) and those words."""
    from retinalnet.datasets import SyntheticOCT
    from retinalnet.training import FineTune, fine_tune

    torch.manual_seed(0)
    model = create_model("small_cnn", weights=None, preprocessing=Preprocessing(size=32))
    recipe = FineTune(blocks=blocks, epochs=1, probe_epochs=0)
    data = SyntheticOCT(2, shape=(40, 44), seed=1), SyntheticOCT(1, shape=(40, 44), seed=2)
    fine_tune(model, *data, recipe, out_dir=tmp_path, batch_size=4, progress=False, seed=0)
    trained = parameter_summary(model).trainable  # as the fit left it
    unfrozen = recipe.blocks_for(model)
    words = f"the head and the last {unfrozen} of 4 feature blocks, fine-tuned"
    return tmp_path / "best.pt", trained, words


@pytest.mark.filterwarnings("ignore:fine_tune. small_cnn has no pretrained weights")
@pytest.mark.parametrize("blocks", [None, 1])
def test_trainable_counts_what_a_fine_tune_trained_in_every_door(
    tmp_path: Path, blocks: int | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The auditor's case: the head alone (or everything) was counted, as the model is
    rebuilt from its architecture settings, not what the recipe unfroze."""
    path, trained, words = _fine_tuned(tmp_path, blocks)
    total = parameter_summary(create_model("small_cnn", weights=None)).total
    assert 0 < trained < total

    assert describe(path)["parameters"] == {"total": total, "trainable": trained}
    assert describe(path)["training"]["trained"] == words
    status, out, _ = _run(capsys, str(path), "--json")
    assert status == 0
    info = json.loads(out)
    assert info["parameters"] == {"total": total, "trainable": trained}
    assert info["training"]["trained"] == words
    status, out, _ = _run(capsys, str(path))
    assert status == 0
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert lines["parameters"] == f"{total:,} ({trained:,} trainable: {words})"


def test_trainable_of_another_run_is_what_its_settings_leave(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A frozen backbone (random weights, as the settings freeze it): the head trained."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights in a frozen backbone: fine here
        frozen = create_model(
            "mobilenet_v3_small", weights=None, preprocessing=Preprocessing(size=32)
        )
    summary = parameter_summary(frozen)
    assert 0 < summary.trainable < summary.total
    checkpoint = save_checkpoint(tmp_path / "best.pt", frozen)
    info = describe(checkpoint)
    assert info["parameters"] == {"total": summary.total, "trainable": summary.trainable}
    assert info["training"]["trained"] == "as its architecture settings freeze it"
    _, out, _ = _run(capsys, str(checkpoint))
    assert f"({summary.trainable:,} trainable: as its architecture settings freeze it)" in out


def test_trainable_of_an_architecture_that_freezes_nothing_says_all_of_them(
    checkpoint: Path, model: Classifier, capsys: pytest.CaptureFixture[str]
) -> None:
    """small_cnn freezes nothing: "as its architecture settings freeze it" said otherwise."""
    summary = parameter_summary(model)
    assert summary.trainable == summary.total
    info = describe(checkpoint)
    assert info["parameters"] == {"total": summary.total, "trainable": summary.total}
    words = "all of them, none frozen by its architecture settings"
    assert info["training"]["trained"] == words
    _, out, _ = _run(capsys, str(checkpoint))
    assert f"({summary.total:,} trainable: {words})" in out


def test_trainable_that_cannot_be_known_is_said_so(
    tmp_path: Path, model: Classifier, capsys: pytest.CaptureFixture[str]
) -> None:
    """Frozen otherwise than the settings say (by hand, before the fit): the optimizer
    state, which updated 2 tensors, shows that the count from the settings would be wrong."""
    groups = [{"params": [0, 1], "lr": 1e-3}]
    path = save_checkpoint(
        tmp_path / "best.pt", model, optimizer_state={"state": {}, "param_groups": groups}
    )
    info = describe(path)
    assert info["parameters"]["trainable"] is None
    assert info["training"]["trained"].startswith(
        "not known: the optimizer state updates 2 parameter tensors, and "
    )
    _, out, _ = _run(capsys, str(path))
    assert "(trainable not known: the optimizer state updates 2 parameter tensors" in out


# ---------------------------------------------------------------------------------------------
# A file torch.save did not write: the same one line from every command that reads one


def _doors(path: Path, tmp_path: Path) -> list[list[str]]:
    from retinalnet.datasets import make_synthetic_kermany

    data = tmp_path / "data"
    make_synthetic_kermany(data, train=1, val=1, test=1, shape=(32, 32), seed=0)
    image = next((data / "test").rglob("*.jpeg"))
    return [
        ["info", str(path)],
        ["evaluate", "--checkpoint", str(path), "--data", str(data)],
        ["calibrate", "--checkpoint", str(path), "--data", str(data)],
        ["predict", "--checkpoint", str(path), str(image)],
        ["export", "--checkpoint", str(path), "--out", str(tmp_path / "m.onnx")],
        ["train", "--data", str(data), "--resume", str(path), "--out", str(tmp_path / "run")],
    ]


def test_a_file_torch_did_not_write_is_one_line_from_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The auditor's case: ``KeyError: 105`` (the unpickler's memo key) was the reason."""
    path = tmp_path / "notck.pt"
    path.write_bytes(b"hi\n")
    expected = (
        f"cannot read checkpoint {str(path)!r}: it is not a PyTorch checkpoint file "
        "(torch.save writes a zip archive; this file starts with b'hi\\n'); pass a checkpoint "
        "written by retinalnet (best.pt or last.pt)\n"
    )
    for argv in _doors(path, tmp_path):
        capsys.readouterr()
        assert main(argv) != 0, argv
        err = capsys.readouterr().err
        assert err == f"retinalnet {argv[0]}: error: {expected}", argv


# ---------------------------------------------------------------------------------------------
# A file that is no checkpoint, or a checkpoint given as weights: the way on, said with flags


def test_a_bare_state_dict_is_answered_with_the_command_that_uses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: ``to load backbone weights use vgg16_transfer(--weights path)``, from every door."""
    with torch.device("meta"):
        import torchvision

        state = torchvision.models.resnet18(weights=None, num_classes=4).state_dict()
    path = tmp_path / "my_oct_resnet18.pth"
    torch.save({k: torch.zeros(()).expand(v.shape) for k, v in state.items()}, path)
    for argv in _doors(path, tmp_path):
        capsys.readouterr()
        assert main(argv) != 0, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1, argv
        assert (
            "but a bare resnet18 state dict (its fc has 4 outputs): weights only, with no "
            "class names or preprocessing. For its backbone weights use retinalnet train "
            f"--arch resnet18 --weights {path}; to use the whole trained network, load the file "
            "into that network and wrap it in Python: Classifier(net, classes=[...])"
        ) in err, argv
        assert "vgg16_transfer" not in err
        assert "create_model" not in err


def test_a_checkpoint_given_as_weights_is_answered_with_resume_and_checkpoint(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retinalnet.datasets import make_synthetic_kermany

    data = tmp_path / "data"
    make_synthetic_kermany(data, train=1, val=1, test=1, shape=(32, 32), seed=0)
    argv = ["train", "--data", str(data), "--arch", "small_cnn", "--weights", str(checkpoint)]
    assert main([*argv, "--out", str(tmp_path / "run")]) != 0
    err = capsys.readouterr().err
    network = checkpoint.with_name("best_network.pth")
    assert err == (
        f"retinalnet train: error: {str(checkpoint)!r} is a retinalnet checkpoint, not "
        f"backbone weights: to continue its run (same data and settings) use --resume "
        f"{checkpoint}; to predict with it use retinalnet predict --checkpoint {checkpoint}; "
        "to start a new run from its weights (other data or classes), write its network's "
        "weights as a state-dict file in Python, `torch.save(load_checkpoint("
        f"{str(checkpoint)!r}).build_model().network.state_dict(), {str(network)!r})`, and use "
        f"retinalnet train --arch small_cnn --weights {network}\n"
    )


def test_an_onnx_export_given_as_a_checkpoint_is_named_by_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.pt"  # an export under another name: its bytes say what it is
    path.write_bytes(b"\x08\t\x12\x07pytorch\x1a\x062.14.1:\xc1" + bytes(64))
    expected = (
        f"cannot read checkpoint {str(path)!r}: it is not a PyTorch checkpoint file (it is an "
        "ONNX model, as retinalnet export writes: Predictor.from_onnx(path) predicts with it "
        "in Python; the commands take the checkpoint it was exported from); pass a checkpoint "
        "written by retinalnet (best.pt or last.pt)\n"
    )
    for argv in _doors(path, tmp_path)[1:]:  # info reads ONNX models: see the end of the file
        capsys.readouterr()
        assert main(argv) != 0, argv
        assert capsys.readouterr().err == f"retinalnet {argv[0]}: error: {expected}", argv


def test_class_names_holding_commas_are_quoted_one_by_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: "classes  3, normal, wet AMD, Ödem, diabetic", which reads as five classes
    classes = ["3", "normal", "wet AMD", "Ödem, diabetic"]
    model = create_model(
        "small_cnn", classes=classes, weights=None, preprocessing=Preprocessing(size=32)
    )
    path = save_checkpoint(tmp_path / "best.pt", model)
    status, out, _ = _run(capsys, str(path))
    assert status == 0
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert lines["classes"] == "'3', 'normal', 'wet AMD', 'Ödem, diabetic'"


# ---------------------------------------------------------------------------------------------
# What a lab needs a year later: the seed as recorded, the training inputs, the torch version


def _lines(out: str) -> dict[str, str]:
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())


@pytest.mark.parametrize(
    ("loop_state", "shown", "recorded"),
    [
        ({}, "not recorded (retinalnet before 0.2, or saved outside a fit)", False),
        ({"seed": None}, "none (unseeded)", True),
        ({"seed": 7}, "7", True),
    ],
    ids=["not-recorded", "unseeded", "seeded"],
)
def test_the_seed_is_not_recorded_rather_than_none(
    tmp_path: Path,
    model: Classifier,
    capsys: pytest.CaptureFixture[str],
    loop_state: dict[str, Any],
    shown: str,
    recorded: bool,
) -> None:
    """Was: ``seed None`` for a 0.1 checkpoint trained with --seed 0, as for an unseeded run."""
    path = save_checkpoint(tmp_path / "best.pt", model, loop_state=loop_state)
    status, out, _ = _run(capsys, str(path))
    assert status == 0
    assert _lines(out)["seed"] == shown
    assert _lines(out)["ran with"].startswith("not recorded")
    info = describe(path)["training"]
    assert (info["seed"], info["seed_recorded"]) == (loop_state.get("seed"), recorded)


def test_info_shows_the_recorded_training_inputs_and_torch_version(
    tmp_path: Path, model: Classifier, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: only the callbacks' names; the data folder, manifest and options were in the file
    but shown nowhere."""
    options = {
        "epochs": 5, "batch_size": 16, "lr": 0.0003, "balance": "weights", "patience": None,
        "augment": "oct", "cache_views": 0, "feature_cache": "off", "precision": "bf16",
        "seed": 3, "calibrate": False, "data": "/labs/oct/kermany",
        "manifest": {"path": "split.csv", "real_path": "/labs/oct/split.csv", "sha256": "ab" * 32},
        "train_images": {"CNV": 3, "DME": 3, "DRUSEN": 3, "NORMAL": 3},
    }  # fmt: skip
    path = save_checkpoint(
        tmp_path / "best.pt",
        model,
        callback_states={"TrainOptions": options},
        loop_state={"seed": 3, "threads": 2, "num_workers": 4},
    )
    status, out, _ = _run(capsys, str(path))
    assert status == 0
    lines = _lines(out)
    assert lines["data"] == "/labs/oct/kermany"
    assert lines["manifest"] == f"/labs/oct/split.csv (sha256 {'ab' * 32})"
    assert lines["train options"] == (
        "--epochs 5, --batch-size 16, --lr 0.0003, --balance weights, no --patience, "
        "--augment oct, --cache-views 0, --no-feature-cache, --precision bf16, --no-calibrate"
    )
    assert lines["torch"] == torch.__version__
    assert lines["ran with"] == "torch threads: 2, DataLoader workers: 4"
    status, out, _ = _run(capsys, str(path), "--json")
    info = json.loads(out)
    assert info["training"]["options"] == options
    assert info["training"]["recipe"] is None
    assert (info["training"]["threads"], info["training"]["num_workers"]) == (2, 4)
    assert info["torch_version"] == torch.__version__


def test_info_shows_recorded_paths_as_this_process_names_their_files(
    tmp_path: Path, model: Classifier
) -> None:
    # the paths are recorded as UTF-8 text; a run of an earlier version under LANG=C
    # recorded them as decoded there, 'donn\udcc3\udca9es', which is the same folder
    options = {
        "data": "/labs/donn\udcc3\udca9es",
        "manifest": {"path": "split.csv", "real_path": "/labs/données/split.csv", "sha256": "ab"},
    }
    path = save_checkpoint(tmp_path / "best.pt", model, callback_states={"TrainOptions": options})

    lines = _lines("\n".join(format_info(describe(path))))
    here = os.fsdecode("/labs/données".encode())  # as this process names that folder
    assert lines["data"] == here
    assert lines["manifest"] == f"{here}/split.csv (sha256 ab)"


def test_info_says_when_the_training_inputs_are_not_recorded(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, str(checkpoint))
    assert status == 0
    said = (
        "not recorded (only `retinalnet train` records them: trained with the Python API, "
        "by `retinalnet demo`, or by retinalnet before 0.2)"
    )
    assert _lines(out)["train options"] == said
    assert "data" not in _lines(out)
    _, out, _ = _run(capsys, str(checkpoint), "--json")
    assert json.loads(out)["training"]["options"] is None


def test_info_reads_an_onnx_file_named_pt_as_onnx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """info takes ONNX models: one named .pt is read as one (this one is cut short), not
    answered with "the commands take the checkpoint it was exported from"."""
    pytest.importorskip("onnx")
    path = tmp_path / "model.pt"
    path.write_bytes(b"\x08\t\x12\x07pytorch\x1a\x062.14.1:\xc1" + bytes(64))
    status, _, err = _run(capsys, str(path))
    assert status != 0
    assert err == (
        f"retinalnet info: error: ONNX model {str(path)!r} is damaged or incomplete: it starts "
        "as an ONNX model but cannot be parsed (85 bytes; a copy or download cut short?). Copy "
        "it again from where it came from, or export it again (retinalnet export)\n"
    )


def test_a_checkpoint_rewritten_by_another_version_names_the_first(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 0.1 checkpoint calibrated by this version: it was told as this version's alone."""
    from retinalnet.checkpoint import set_checkpoint_temperature

    data = torch.load(checkpoint, weights_only=True)
    data["retinalnet_version"], data["format_version"] = "0.1.0", 1
    data.pop("written_by", None)
    torch.save(data, checkpoint)
    set_checkpoint_temperature(checkpoint, 2.0)

    assert main(["info", str(checkpoint), "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["written_by"] == ["0.1.0", __version__]
    assert main(["info", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"written by +retinalnet {re.escape(__version__)} \(first 0\.1\.0\)", out)


def test_the_sha256_is_of_the_checkpoint_described_when_a_run_replaced_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: the sha256 of the file after the load (the run's next best.pt) beside the epoch,
    classes and temperature of the one described."""
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "best.pt"
    rename_over(first, best)
    replaced_after_load(monkeypatch, "retinalnet.export._describe.load_checkpoint", best, newer)

    status, out, _ = _run(capsys, str(best), "--json")

    assert status == 0
    info = json.loads(out)
    assert (info["sha256"], info["training"]["epochs"]) == (sha256(first), 1)
