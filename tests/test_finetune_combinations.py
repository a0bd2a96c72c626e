"""The fine-tuning recipe where its settings meet others: the schedule under several
processes, a warm-up as long as the run, ``patience=0`` and the probe's ``feature_cache``.

Tiny on purpose, as ``test_finetune.py``: ``small_cnn`` at 32 px on a few synthetic scans.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from retinalnet.checkpoint import load_checkpoint
from retinalnet.cli import main
from retinalnet.datasets import SyntheticOCT, make_synthetic_kermany
from retinalnet.models import Classifier, create_model
from retinalnet.training import (
    Callback,
    EarlyStopping,
    FeatureCacheConfig,
    FineTune,
    FineTuneTask,
    WarmupCosine,
    fine_tune,
    fine_tune_trainer,
)
from retinalnet.training import _trainer as trainer_module
from retinalnet.training._distributed import DistributedContext
from retinalnet.transforms import Preprocessing

FAST = {"batch_size": 4, "device": "cpu", "progress": False, "seed": 0}
_NOT_PRETRAINED = "fine_tune: small_cnn has no pretrained weights"
pytestmark = pytest.mark.filterwarnings(f"ignore:{_NOT_PRETRAINED.replace(':', '.')}:UserWarning")


def _model() -> Classifier:
    torch.manual_seed(0)
    return create_model("small_cnn", weights=None, preprocessing=Preprocessing(size=32))


@pytest.fixture(scope="module")
def data() -> tuple[SyntheticOCT, SyntheticOCT]:
    # 8 training images (2 per class), 4 validation images
    return SyntheticOCT(2, shape=(40, 44), seed=1), SyntheticOCT(1, shape=(40, 44), seed=2)


# -- the schedule under torchrun: sized from the steps each process runs ------------------------


def test_the_schedule_follows_the_steps_of_the_fits_own_loader_on_each_process(
    data: tuple[SyntheticOCT, SyntheticOCT], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the fit's training loader made as on rank 0 of 2 (torchrun): a DistributedSampler
    # share of 4 of the 8 images, 1 step of batch size 4 an epoch, not 2
    made = trainer_module.fit_loader

    def as_rank_0_of_2(source: Any, **kwargs: Any) -> Any:
        if kwargs["train"]:
            kwargs["dist"] = DistributedContext(rank=0, world_size=2)
        return made(source, **kwargs)

    monkeypatch.setattr(trainer_module, "fit_loader", as_rank_0_of_2)
    recipe = FineTune(blocks=2, epochs=2, probe_epochs=0, warmup_epochs=1, head_lr=1e-3)
    trainer = fine_tune_trainer(_model(), *data, recipe, **FAST)

    history = trainer.fit(*data)

    assert trainer._loop is not None
    assert trainer._loop.train_loader is not None
    assert len(trainer._loop.train_loader) == 1
    schedule = WarmupCosine(total=2, warmup=1)  # 1 step an epoch: warm-up, then decay to 0
    # each epoch's rate at its first step, as one process's run
    assert history.column("lr") == pytest.approx([1e-3 * schedule(0), 1e-3 * schedule(1)])
    assert history.column("lr") == pytest.approx([1e-5, 1e-3])
    assert trainer.optimizer.param_groups[0]["lr"] == 0.0  # decayed to 0 at the end
    assert isinstance(trainer.task, FineTuneTask)
    assert (trainer.task.schedule.total, trainer.task.schedule.warmup) == (2, 1)


def test_a_schedule_resized_before_its_first_step_starts_at_the_rate_of_its_warm_up(
    data: tuple[SyntheticOCT, SyntheticOCT], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a warm-up of 0.2 epoch: one step in 2 steps an epoch (0.4 rounded up), one in 4
    made = trainer_module.fit_loader

    def smaller_batches(source: Any, **kwargs: Any) -> Any:
        if kwargs["train"]:
            kwargs["batch_size"] = 2  # 4 steps an epoch, where fine_tune_trainer reckoned 2
        return made(source, **kwargs)

    monkeypatch.setattr(trainer_module, "fit_loader", smaller_batches)
    seen: list[float] = []

    class FirstRate(Callback):  # the rate the first step runs at (after the recipe's own)
        def on_epoch_start(self, trainer: Any, epoch: int) -> None:
            seen.append(trainer.optimizer.param_groups[0]["lr"])

    recipe = FineTune(blocks=2, epochs=1, probe_epochs=0, warmup_epochs=0.2, head_lr=1e-3)
    trainer = fine_tune_trainer(_model(), *data, recipe, callbacks=[FirstRate()], **FAST)
    task = trainer.task
    assert isinstance(task, FineTuneTask)
    assert (task.schedule.total, task.schedule.warmup) == (2, 1)  # reckoned: 8 / 4

    trainer.fit(*data)

    assert (task.schedule.total, task.schedule.warmup) == (4, 1)  # the loader's 4 steps
    assert seen == pytest.approx([1e-3 * 0.01])  # the warm-up's first rate, not the peak


# -- a warm-up as long as the run ---------------------------------------------------------


@pytest.mark.parametrize(
    ("recipe", "steps", "total", "warmup"),
    [
        pytest.param(FineTune(epochs=1), 5, 5, 2, id="default-one-epoch-per-step"),
        pytest.param(FineTune(epochs=2, warmup_epochs=2), 5, 10, 5, id="two-of-two"),
        # 19.5 steps of 20, rounded up to one fewer than the run (was cut to 10: shorter
        # than asked)
        pytest.param(FineTune(epochs=2, warmup_epochs=1.95), 10, 20, 19, id="rounds-to-all"),
        pytest.param(FineTune(epochs=1, schedule="epoch"), 5, 1, 0, id="one-epoch-per-epoch"),
        pytest.param(FineTune(epochs=4, warmup_epochs=4, schedule="epoch"), 5, 4, 2, id="epochs"),
        pytest.param(FineTune(epochs=3), 5, 15, 5, id="shorter-kept"),
        pytest.param(FineTune(epochs=2, warmup_epochs=1.8), 10, 20, 18, id="shorter-kept-too"),
        # a one-epoch run per epoch has no room for any warm-up (said, as for a whole one)
        pytest.param(
            FineTune(epochs=1, warmup_epochs=0.5, schedule="epoch"), 5, 1, 0, id="one-unit"
        ),
    ],
)
def test_a_warm_up_of_the_whole_run_is_cut_to_half_of_it(
    recipe: FineTune, steps: int, total: int, warmup: int
) -> None:
    schedule = FineTuneTask(_model(), recipe, steps_per_epoch=steps).schedule
    assert (schedule.total, schedule.warmup) == (total, warmup)


def test_a_warm_up_cut_short_is_said_once_when_the_fit_starts(
    data: tuple[SyntheticOCT, SyntheticOCT], caplog: pytest.LogCaptureFixture
) -> None:
    recipe = FineTune(blocks=2, epochs=2, probe_epochs=0, warmup_epochs=2, head_lr=1e-3)
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        history = fine_tune(_model(), *data, recipe, **FAST)

    said = [m for m in caplog.messages if "would last the whole" in m]
    assert said == [
        "fine-tuning: a warm-up of 2 epoch(s) would last the whole 2-epoch run (4 steps), so it "
        "is cut to half of it (2 steps), then the rates decay"
    ]
    schedule = WarmupCosine(total=4, warmup=2)  # 2 steps an epoch
    # each epoch's rate at its first step: the second starts at the peak, after 2 steps
    assert history.column("lr") == pytest.approx([1e-3 * schedule(0), 1e-3 * schedule(2)])
    assert history.column("lr")[-1] == pytest.approx(1e-3)


def test_a_one_epoch_run_per_epoch_says_it_has_no_warm_up(
    data: tuple[SyntheticOCT, SyntheticOCT], caplog: pytest.LogCaptureFixture
) -> None:
    recipe = FineTune(blocks=2, epochs=1, probe_epochs=0, schedule="epoch")
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        fine_tune(_model(), *data, recipe, **FAST)
    assert any(
        m.endswith("so there is none: the run trains at the full rates") for m in caplog.messages
    )


def test_a_shorter_warm_up_is_not_said(
    data: tuple[SyntheticOCT, SyntheticOCT], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        fine_tune(_model(), *data, FineTune(blocks=2, epochs=2, probe_epochs=0), **FAST)
    assert not [m for m in caplog.messages if "warm-up" in m]


# -- patience 0, and the probe's feature cache ------------------------------------------------


def test_patience_0_stops_at_the_first_epoch_without_a_lower_loss_as_early_stopping_does(
    data: tuple[SyntheticOCT, SyntheticOCT],
) -> None:
    recipe = FineTune(blocks=2, epochs=3, probe_epochs=0, patience=0)
    assert recipe.patience == 0
    trainer = fine_tune_trainer(_model(), *data, recipe, **FAST)
    stopping = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    assert [c.patience for c in stopping] == [0]


@pytest.mark.parametrize("option", ["auto", True, False])
def test_the_probes_feature_cache_is_in_memory_for_auto_true_and_false(
    data: tuple[SyntheticOCT, SyntheticOCT], option: object
) -> None:
    recipe = FineTune(blocks=2, epochs=1, probe_epochs=1)
    history = fine_tune(_model(), *data, recipe, feature_cache=option, **FAST)
    assert len(history) == 1


@pytest.mark.parametrize("option", [0, None, 1.0, ["features"]])
def test_a_feature_cache_fine_tune_does_not_take_is_refused_listing_what_it_takes(
    data: tuple[SyntheticOCT, SyntheticOCT], option: object
) -> None:
    with pytest.raises(TypeError) as info:
        fine_tune_trainer(_model(), *data, FineTune(epochs=1), feature_cache=option, **FAST)
    assert str(info.value) == (
        "fine_tune's feature_cache must be 'auto', True or False (its linear probe caches the "
        "features in memory), a folder path or a FeatureCacheConfig (it keeps them there, on "
        f"disk), got {option!r}"
    )


def test_a_feature_cache_of_other_views_than_the_probes_is_refused(
    data: tuple[SyntheticOCT, SyntheticOCT],
) -> None:
    with pytest.raises(ValueError, match=r"pass FineTune\(probe_views=2\)"):
        fine_tune_trainer(
            _model(), *data, FineTune(epochs=1), feature_cache=FeatureCacheConfig(views=2), **FAST
        )
    recipe = FineTune(blocks=2, epochs=1, probe_epochs=1, probe_views=2)  # the same: taken
    fine_tune_trainer(_model(), *data, recipe, feature_cache=FeatureCacheConfig(views=2), **FAST)


# -- the command line ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def kermany(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-finetune-combinations") / "data"
    return make_synthetic_kermany(root, train=2, val=1, test=1, shape=(48, 48), seed=5)


def _train(data: Path, out: Path, *extra: str) -> int:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NOT_PRETRAINED)
        return main(
            [
                "train", "--data", str(data), "--out", str(out), "--arch", "small_cnn",
                "--weights", "none", "--size", "32", "--batch-size", "4", "--seed", "0",
                "-q", "--recipe", "finetune", "--no-calibrate", *extra,
            ]
        )  # fmt: skip


@pytest.mark.parametrize("recipe", ["finetune", "tutorial"])
def test_train_takes_patience_0_with_either_recipe(
    kermany: Path, tmp_path: Path, recipe: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _train(kermany, tmp_path, "--epochs", "2", "--patience", "0", "--recipe", recipe)
    assert code == 0, capsys.readouterr().err
    if recipe == "finetune":
        states = load_checkpoint(tmp_path / "last.pt").callback_states
        assert states["FineTune"]["recipe"]["patience"] == 0


def test_a_fine_tune_without_patience_records_none_not_its_epochs(
    kermany: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``retinalnet info`` showed ``--patience 2`` (the epochs) for a run never given one."""
    assert _train(kermany, tmp_path, "--epochs", "2") == 0, capsys.readouterr().err
    states = load_checkpoint(tmp_path / "last.pt").callback_states
    assert states["TrainOptions"]["patience"] is None
    assert states["FineTune"]["recipe"]["patience"] is None
    assert "EarlyStopping" not in states or states["EarlyStopping"].get("patience") != 2


def test_train_for_one_epoch_still_fine_tunes_with_a_warm_up_then_a_decay(
    kermany: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(kermany, tmp_path, "--epochs", "1") == 0, capsys.readouterr().err
    last = load_checkpoint(tmp_path / "last.pt")
    # 2 steps, 1 warm-up and 1 decay: the epoch starts at a hundredth of the rate and ends at 0
    assert [record["lr"] for record in last.history] == pytest.approx([1e-5])
    assert last.optimizer_state is not None
    assert {group["lr"] for group in last.optimizer_state["param_groups"]} == {0.0}


def test_a_warm_up_asked_in_a_one_unit_run_is_said_to_be_none() -> None:
    # was none without a word after warm-ups were rounded up to one unit fewer than the run
    from retinalnet.training._finetune import _schedule_length

    recipe = FineTune(epochs=1, warmup_epochs=0.5, schedule="epoch")
    total, warmup, said = _schedule_length(recipe, 5)

    assert (total, warmup) == (1, 0)
    assert said is not None
    assert said.endswith("there is none: the run trains at the full rates")
