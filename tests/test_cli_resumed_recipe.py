"""``retinalnet train --resume`` of a fine-tune started in Python: the run's own recipe,
settings no option sets included, and an option given with another value refused."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from retinalnet.checkpoint import checkpoint_epoch, load_checkpoint
from retinalnet.cli import main
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.models import create_model
from retinalnet.training import Callback, FineTune, fine_tune
from retinalnet.training._finetune import saved_recipe
from retinalnet.transforms import Preprocessing

# small_cnn has no pretrained weights, which fine_tune says; a tiny network is what is tested
pytestmark = pytest.mark.filterwarnings("ignore:fine_tune. small_cnn has no pretrained weights")

# settings no option of `retinalnet train` sets, and rates whose ratio is not its 1/5
PYTHON_RECIPE = FineTune(
    epochs=3,
    probe_epochs=1,
    lr=1e-4,
    head_lr=1e-3,
    lr_decay=0.5,
    weight_decay=0.05,
    warmup_epochs=0.5,
    schedule="epoch",
    freeze_bn=False,
    augment=None,  # the model's own: Preprocessing's default, the "tutorial" preset
)


class _CtrlC(Callback):
    """Ctrl-C as epoch 2 starts: ``last.pt`` holds epoch 1."""

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        if epoch == 2:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resumed-recipe") / "data"
    return make_synthetic_kermany(root, train=3, val=2, test=2, shape=(40, 40), seed=5)


def _interrupted(data: Path, out: Path, preprocessing: Preprocessing) -> Path:
    """The ``last.pt`` of a Python fine-tune of :data:`PYTHON_RECIPE`, stopped by Ctrl-C."""
    model = create_model("small_cnn", weights=None, preprocessing=preprocessing)
    train, val = KermanyOCT(data, "train"), KermanyOCT(data, "val")
    with pytest.raises(KeyboardInterrupt):
        fine_tune(
            model, train, val, PYTHON_RECIPE, out_dir=out, callbacks=[_CtrlC()], seed=0,
            progress=False,
        )  # fmt: skip
    assert checkpoint_epoch(out / "last.pt") == 1
    return out


@pytest.fixture(scope="module")
def python_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("python-run") / "run"
    return _interrupted(data, out, Preprocessing(size=32))


def _resume(data: Path, run: Path, *given: str) -> int:
    return main(["train", "--data", str(data), "--resume", str(run / "last.pt"), "-q", *given])


@pytest.mark.parametrize(
    "given",
    [
        pytest.param((), id="options-left-out"),
        # given as the run's: its --lr is the head's rate, its --augment the model's own
        pytest.param(
            ("--epochs", "3", "--lr", "0.001", "--augment", "tutorial", "--balance", "weights"),
            id="options-given-as-the-run-s",
        ),
    ],
)
def test_a_python_fine_tune_resumed_on_the_command_line_goes_on_with_its_recipe(
    data: Path,
    python_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    given: tuple[str, ...],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(python_run, run)

    # was: refused, "another recipe (lr: 0.0001 there, 0.0002 now, lr_decay: 0.5 there,
    # 1.0 now, ...)": the command line built its recipe from its options alone
    assert _resume(data, run, *given) == 0, capsys.readouterr().err

    assert checkpoint_epoch(run / "last.pt") == 3
    assert saved_recipe(load_checkpoint(run / "last.pt")) == PYTHON_RECIPE.to_dict()


@pytest.mark.parametrize(
    ("given", "named"),
    [
        pytest.param(("--epochs", "4"), "epochs: 3 there, 4 now", id="epochs"),
        pytest.param(("--lr", "0.01"), "head_lr: 0.001 there, 0.01 now", id="lr"),
        pytest.param(("--augment", "oct"), "augment: None there, 'oct' now", id="augment"),
        pytest.param(("--finetune-blocks", "1"), "blocks: None there, 1 now", id="blocks"),
        pytest.param(("--balance", "none"), "balance: 'weights' there, None now", id="balance"),
    ],
)
def test_an_option_given_with_another_value_than_the_run_s_is_refused(
    data: Path,
    python_run: Path,
    capsys: pytest.CaptureFixture[str],
    given: tuple[str, ...],
    named: str,
) -> None:
    before = (python_run / "last.pt").read_bytes()
    capsys.readouterr()

    assert _resume(data, python_run, *given) == 1

    err = capsys.readouterr().err
    assert named in err
    assert "lr_decay" not in err  # the settings no option sets are the run's
    assert "leave those options out (a resumed run takes its own)" in err
    assert (python_run / "last.pt").read_bytes() == before


def test_a_fine_tune_of_an_augmentation_no_preset_is_cannot_resume_without_augment(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _interrupted(data, tmp_path / "run", Preprocessing(size=32, rotation=3.0))
    capsys.readouterr()

    assert _resume(data, run) == 1

    err = capsys.readouterr().err
    assert "continues a fine-tune of the model's own augmentation (FineTune(augment=None)), " in (
        err
    )
    assert "which no --augment preset is" in err
