"""``retinalnet train --classes``: a study of some of the Kermany classes (CNV against
NORMAL), from training to evaluation, calibration and resuming. Run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _cli_helpers import train_small_cnn
from retinalnet.checkpoint import load_checkpoint
from retinalnet.cli import main
from retinalnet.datasets import make_synthetic_kermany

_COUNTS = {"train": 3, "val": 2, "test": 2}  # images per class in each split


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-classes") / "data"
    return make_synthetic_kermany(root, **_COUNTS, shape=(48, 48), seed=3)


@pytest.fixture(scope="module")
def study(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNV-against-NORMAL run (the classes given in another order than Kermany's)."""
    out = tmp_path_factory.mktemp("study") / "run"
    assert train_small_cnn(data, out, "--classes", "NORMAL", "CNV") == 0
    return out


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in err
    return lines[0]


def test_a_study_trains_a_model_of_its_classes_in_the_kermany_order(study: Path) -> None:
    for name in ("best.pt", "last.pt"):
        checkpoint = load_checkpoint(study / name)
        assert checkpoint.classes == ("CNV", "NORMAL")
        model = checkpoint.build_model().eval()
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 2)


def test_evaluate_and_calibrate_read_only_the_studys_classes(
    data: Path, study: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--data", str(data), "--checkpoint", str(study / "best.pt"),
                 "--split", "test", "--out", str(out), "-q"]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["classes"] == ["CNV", "NORMAL"]
    assert result["num_samples"] == 2 * _COUNTS["test"]  # DME and DRUSEN scans not read
    assert [sum(row) for row in result["confusion_matrix"]] == [_COUNTS["test"]] * 2
    calibrated = tmp_path / "calibrated.pt"
    assert main(["calibrate", "--data", str(data), "--checkpoint", str(study / "best.pt"),
                 "--out", str(calibrated), "-q"]) == 0  # fmt: skip
    assert load_checkpoint(calibrated).classes == ("CNV", "NORMAL")


def test_a_resumed_study_keeps_its_classes_and_refuses_others(
    data: Path, study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (study / "last.pt").read_bytes()
    capsys.readouterr()
    resume = ["train", "--data", str(data), "--resume", str(study / "last.pt"), "-q"]
    assert main([*resume, "--classes", "CNV", "DME"]) == 1
    assert _one_line(capsys.readouterr().err) == (
        f"retinalnet train: error: --resume {str(study / 'last.pt')!r} continues a run of the "
        "classes CNV NORMAL, not --classes CNV DME: its network has one output per class of "
        "the run; leave --classes out, or start a new run without --resume"
    )
    assert (study / "last.pt").read_bytes() == before
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("best.pt", "last.pt"):
        (copy / name).write_bytes((study / name).read_bytes())
    args = ["train", "--data", str(data), "--resume", str(copy / "last.pt"), "--epochs", "2"]
    assert main([*args, "-q"]) == 0  # left out: the run's two classes, not four
    assert load_checkpoint(copy / "last.pt").classes == ("CNV", "NORMAL")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["CNV"], "--classes CNV keeps 1 class(es); a classifier needs at least two, e.g. "
         "CNV NORMAL"),
        (["cnv", "NORMAL"], "class 'cnv' is not one of CNV, DME, DRUSEN, NORMAL (names as "
         "written, upper case)"),
        (["CNV", "CNV"], "class 'CNV' is given twice in --classes CNV CNV"),
    ],
)  # fmt: skip
def test_classes_that_are_not_a_study_are_one_line_before_any_work(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], given: list[str], message: str
) -> None:
    assert train_small_cnn(data, tmp_path / "run", "--classes", *given) == 1
    assert _one_line(capsys.readouterr().err) == f"retinalnet train: error: {message}"
    assert not (tmp_path / "run").exists()


# --- other class sets: what the command line reads, and where the rest is done ----------


@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
@pytest.mark.parametrize(
    ("classes", "said"),
    [
        (["3", "normal", "wet AMD", "Ödem, diabetic"], "not the Kermany classes ['CNV', "),
        (["AMD", "CNV", "DME", "DRUSEN", "NORMAL"], "not the Kermany classes ['CNV', "),
        (["NORMAL", "CNV"], "Kermany classes out of the Kermany order"),
    ],
)
def test_a_checkpoint_of_other_classes_is_said_first_with_command_line_advice(
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    classes: list[str],
    said: str,
) -> None:
    # was: the four classes read, then the Python API's refusal: "... Use data with the
    # model's classes in its order (KermanyOCT(root, split, classes=model.classes) ...)"
    from retinalnet.checkpoint import save_checkpoint
    from retinalnet.models import small_cnn
    from retinalnet.transforms import Preprocessing

    model = small_cnn(
        num_classes=len(classes), classes=classes, preprocessing=Preprocessing(size=32)
    )
    path = save_checkpoint(tmp_path / "best.pt", model)
    before = path.read_bytes()
    capsys.readouterr()
    assert main([command, "--data", str(data), "--checkpoint", str(path), "-q"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(
        f"retinalnet {command}: error: the model's classes are {classes}, {said}"
    )
    assert "model.classes" not in line
    assert "data.classes" not in line
    if said.startswith("Kermany"):
        assert "retinalnet train --classes NORMAL CNV" in line
    else:
        assert "retinalnet.training.evaluate(model, data)" in line
        assert "while predict, export and info take any checkpoint" in line
    assert path.read_bytes() == before


def test_a_folder_of_another_class_is_not_sent_into_the_kermany_folders(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: "move its images into the class folders (CNV, DME, DRUSEN, NORMAL) or out of the
    # data root": AMD scans labelled as Kermany classes
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data, root)
    (root / "train" / "AMD").mkdir()
    shutil.copy(next((root / "train" / "CNV").iterdir()), root / "train" / "AMD" / "AMD-1-1.jpeg")
    assert train_small_cnn(root, tmp_path / "run", "--classes", "CNV", "NORMAL") == 1
    line = _one_line(capsys.readouterr().err)
    assert "class folder 'AMD' is not one of CNV, DME, DRUSEN, NORMAL" in line
    assert "move its images into the class folders" not in line
    assert (
        "KermanyOCT and retinalnet's commands read only the Kermany classes (some of them with "
        "classes=, --classes on the command line): a data set of other classes is trained and "
        "evaluated in Python (torchvision's ImageFolder, create_model(arch, classes=...), "
        "retinalnet.training.evaluate); otherwise move the folder out of the data root"
    ) in line
