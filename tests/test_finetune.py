"""The fine-tuning recipe: FineTune, fine_tune, FineTuneTask, and ``train --recipe``.

Tiny on purpose: ``small_cnn`` (4 declared blocks, BatchNorm in each) at 32 px on a few
synthetic scans, so the whole file runs in seconds on one CPU thread.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from retinalnet.checkpoint import load_checkpoint, save_checkpoint
from retinalnet.cli import main
from retinalnet.cli._parser import build_parser
from retinalnet.cli._recipe import recipe_defaults
from retinalnet.datasets import SyntheticOCT, make_synthetic_kermany
from retinalnet.models import Classifier, create_model
from retinalnet.training import (
    Callback,
    ClassificationTask,
    FineTune,
    FineTuneTask,
    Trainer,
    WarmupCosine,
    discriminative_param_groups,
    fine_tune,
    fine_tune_trainer,
)
from retinalnet.training._epoch import enter_train_mode
from retinalnet.transforms import AUGMENTATION_PRESETS, Preprocessing

FAST = {"batch_size": 4, "device": "cpu", "progress": False, "seed": 0}


def _model() -> Classifier:
    torch.manual_seed(0)
    return create_model("small_cnn", weights=None, preprocessing=Preprocessing(size=32))


@pytest.fixture(scope="module")
def data() -> tuple[SyntheticOCT, SyntheticOCT]:
    return SyntheticOCT(2, shape=(40, 44), seed=1), SyntheticOCT(1, shape=(40, 44), seed=2)


def _bn_stats(module: nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.clone()
        for k, v in module.state_dict().items()
        if "running_" in k or "num_batches" in k
    }


# -- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"blocks": 0}, "blocks must be an int >= 1"),
        ({"epochs": 0}, "epochs must be an int >= 1"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"lr_decay": 1.5}, r"lr_decay must be in \(0, 1\]"),
        ({"schedule": "batch"}, "schedule must be 'step' or 'epoch'"),
        ({"augment": "strong"}, "augment must be None or one of"),
        ({"balance": "oversample"}, "balance must be None or one of"),
        ({"patience": -1}, "patience must be an int >= 0"),
        ({"lr_decay": 0}, r"lr_decay must be in \(0, 1\] .*, got 0"),
        ({"lr_decay": math.nan}, r"lr_decay must be in \(0, 1\] .*, got nan"),
        ({"head_lr": math.nan}, "head_lr must be a finite number, got nan"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
        ({"warmup_epochs": math.inf}, "warmup_epochs must be a finite number"),
        (
            {"epochs": 2, "warmup_epochs": 5},
            r"warmup_epochs \(5\) must be <= epochs \(2\): the warm-up would take longer "
            "than the whole run; pass fewer warm-up epochs",
        ),
    ],
)
def test_bad_settings_are_refused_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FineTune(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"freeze_bn": "no"}, r"freeze_bn must be True or False, got 'no'"),
        ({"augment": ["oct"]}, r"augment must be None or a preset name \(a str\), got list"),
    ],
)
def test_settings_of_the_wrong_type_are_refused_with_a_type_error(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        FineTune(**kwargs)


def test_a_warm_up_as_long_as_the_run_is_still_allowed() -> None:
    assert FineTune(epochs=1).warmup_epochs == 1.0  # the default recipe with one epoch


def test_blocks_beyond_the_declared_ones_are_refused(data: Any) -> None:
    with pytest.raises(ValueError, match=r"blocks=5\) but SmallCNN declares only 4"):
        fine_tune(_model(), *data, FineTune(blocks=5), **FAST)


@pytest.mark.parametrize(
    ("callbacks", "message"),
    [
        ([1], r"callbacks\[0\] must be a retinalnet Callback, got int \(1\)"),
        (Callback(), r"callbacks must be a list of Callbacks, got Callback"),
    ],
)
def test_bad_callbacks_are_refused_before_the_probe(
    data: Any, callbacks: Any, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fit(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a phase was trained")

    monkeypatch.setattr(Trainer, "fit", no_fit)
    with pytest.raises(TypeError, match=message):
        fine_tune(_model(), *data, FineTune(blocks=1, epochs=1), callbacks=callbacks, **FAST)


def test_a_bad_batch_size_is_refused_without_a_probe(data: Any) -> None:
    recipe = FineTune(blocks=1, epochs=1, probe_epochs=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        fine_tune_trainer(_model(), *data, recipe, **{**FAST, "batch_size": 0})


def test_a_plain_module_and_unknown_settings_are_refused(data: Any) -> None:
    with pytest.raises(TypeError, match="needs a retinalnet Classifier"):
        fine_tune(nn.Linear(2, 2), *data)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"unknown setting\(s\) \['max_epochs'\]"):
        fine_tune(_model(), *data, max_epochs=3)


# -- the pieces ---------------------------------------------------------------------------


def test_param_groups_give_earlier_blocks_lower_rates_and_the_head_the_highest() -> None:
    model = _model()
    model.requires_grad_(True)
    groups = discriminative_param_groups(
        model, 3, lr=1e-4, head_lr=1e-3, lr_decay=0.5, weight_decay=0.01
    )
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates == {"head": 1e-3, "block -1": 1e-4, "block -2": 5e-5, "block -3": 2.5e-5}
    assert groups[0]["name"] == "head"  # the Trainer logs the first group's rate
    for group in groups:  # weights decay, biases and BatchNorm parameters do not
        assert all((p.ndim > 1) == (group["weight_decay"] == 0.01) for p in group["params"])
    blocks = model.feature_block_modules()
    listed = {id(p) for g in groups for p in g["params"]}
    assert not any(id(p) in listed for p in blocks[0].parameters())  # the first block: no
    assert all(id(p) in listed for b in blocks[1:] for p in b.parameters())


@pytest.mark.parametrize(
    ("total", "warmup", "expected"),
    [
        (10, 2, [0.01, 0.505, 1.0, 0.5, 0.0]),  # steps 0, 1, 2, 6, 10
        (4, 0, [1.0, 0.5, 0.0, 0.0, 0.0]),  # steps 0, 2, 4, ...: no warm-up
    ],
)
def test_warmup_cosine_values(total: int, warmup: int, expected: list[float]) -> None:
    schedule = WarmupCosine(total, warmup)
    steps = [0, 1, 2, 6, 10] if warmup else [0, 2, 4, 6, 10]
    assert [round(schedule(s), 6) for s in steps] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("warmup_epochs", "schedule", "steps_per_epoch", "warmup"),
    [
        pytest.param(0.5, "epoch", 5, 1, id="half-an-epoch-per-epoch"),  # was: none
        pytest.param(0.5, "step", 1, 1, id="half-of-one-step"),  # was: none
        pytest.param(2.5, "epoch", 5, 3, id="halves-up"),  # was: 2 (to even)
        pytest.param(1.5, "epoch", 5, 2, id="one-and-a-half"),
        pytest.param(0.25, "step", 10, 3, id="part-of-a-step-up"),  # was: 2
        pytest.param(0.3, "step", 10, 3, id="float-error-no-step-more"),  # 3.0000000000000004
        pytest.param(1e-6, "epoch", 5, 1, id="tiny-but-asked-for"),
        pytest.param(0.0, "epoch", 5, 0, id="none-asked"),
        pytest.param(0.0, "step", 10, 0, id="none-asked-per-step"),
        pytest.param(2.0, "epoch", 5, 2, id="whole-epochs-as-they-are"),
        # rounded up to the whole run: one fewer (the cut halved it, shorter than asked)
        pytest.param(3.5, "epoch", 5, 3, id="up-to-one-fewer-than-the-run"),
        pytest.param(3.2, "step", 1, 3, id="up-to-one-fewer-per-step"),
        # asked to last the whole run: the cut rule halves it (rounded down)
        pytest.param(4.0, "epoch", 5, 2, id="the-whole-run-is-cut"),
    ],
)
@pytest.mark.parametrize("door", ["built", "sized-by-the-fit"])
def test_a_warm_up_asked_for_lasts_at_least_one_unit_rounded_up(
    warmup_epochs: float, schedule: str, steps_per_epoch: int, warmup: int, door: str
) -> None:
    recipe = FineTune(blocks=1, epochs=4, warmup_epochs=warmup_epochs, schedule=schedule)
    if door == "built":
        task = FineTuneTask(_model(), recipe, steps_per_epoch=steps_per_epoch)
    else:  # as the fit's first epoch starts, from its training loader's steps
        task = FineTuneTask(_model(), recipe, steps_per_epoch=7)
        task._size_schedule(steps_per_epoch, None)
    assert task.schedule.warmup == warmup
    assert task.schedule.total == 4 * (steps_per_epoch if schedule == "step" else 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "lr must be > 0, got -1.0"),
        ({"lr": math.nan}, "lr must be a finite number, got nan"),
        ({"head_lr": 0.0}, "head_lr must be > 0, got 0.0"),
        ({"lr_decay": 0.0}, r"lr_decay must be in \(0, 1\] .*, got 0.0"),
        ({"lr_decay": 2.0}, r"lr_decay must be in \(0, 1\] .*, got 2.0"),
        ({"weight_decay": -0.01}, "weight_decay must be >= 0, got -0.01"),
    ],
)
def test_bad_rates_of_the_param_groups_are_refused(kwargs: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"lr": 1e-4, "head_lr": 1e-3, **kwargs}
    with pytest.raises(ValueError, match=message):
        discriminative_param_groups(_model(), 1, **settings)


def test_param_groups_need_a_classifier() -> None:
    with pytest.raises(
        TypeError, match=r"discriminative_param_groups needs a retinalnet Classifier"
    ):
        discriminative_param_groups(nn.Linear(2, 2), 1, lr=1e-4, head_lr=1e-3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0,), {}, "total must be an int >= 1, got 0"),
        ((1.5,), {}, "total must be an int >= 1, got 1.5"),
        ((True,), {}, "total must be an int >= 1, got True"),
        ((5, -1), {}, r"warmup must be an int in \[0, total\) = \[0, 5\), got -1"),
        ((5, 5), {}, r"warmup must be an int in \[0, total\) = \[0, 5\), got 5"),
        ((5, 1.5), {}, r"warmup must be an int in \[0, total\) = \[0, 5\), got 1.5"),
        ((5,), {"start": -1}, r"start must be a finite number in \[0, 1\].*, got -1"),
        ((5,), {"start": math.nan}, r"start must be a finite number in \[0, 1\].*, got nan"),
        ((5,), {"start": "0.1"}, r"start must be a finite number in \[0, 1\].*, got '0.1'"),
        ((5,), {"end": 2}, r"end must be a finite number in \[0, 1\].*, got 2"),
        ((5,), {"end": math.inf}, r"end must be a finite number in \[0, 1\].*, got inf"),
    ],
)
def test_bad_warmup_cosine_arguments_are_refused(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        WarmupCosine(*args, **kwargs)


def test_warmup_cosine_takes_numpy_counts_and_the_ends_of_the_range() -> None:
    import numpy as np

    schedule = WarmupCosine(np.int64(4), np.int64(1), start=0, end=1)
    assert schedule.total == 4
    assert type(schedule.total) is int
    assert [schedule(s) for s in (0, 1, 4)] == [0.0, 1.0, 1.0]


def test_the_fine_tune_task_needs_a_classifier_and_a_recipe() -> None:
    with pytest.raises(
        TypeError, match=r"FineTuneTask needs a retinalnet Classifier .*, got Linear"
    ):
        FineTuneTask(nn.Linear(2, 2), FineTune(), steps_per_epoch=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"recipe must be a FineTune, got dict; pass FineTune"):
        FineTuneTask(_model(), {"epochs": 2}, steps_per_epoch=1)  # type: ignore[arg-type]


def test_a_step_scheduler_steps_after_every_optimizer_step(data: Any) -> None:
    model = _model()
    task = ClassificationTask(
        scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step),
        scheduler_interval="step",
    )
    trainer = Trainer(model, task, max_epochs=2, **FAST)
    trainer.fit(data[0])  # 8 images, batches of 4: 2 steps per epoch
    # each epoch's rate at its first step (was: after its last, the next epoch's)
    assert trainer.history.column("lr") == pytest.approx([1e-3, 1e-3 * 0.5**2])
    with pytest.raises(ValueError, match="scheduler_interval must be one of"):
        ClassificationTask(scheduler_interval="batch")


def test_the_fine_tune_schedule_warms_up_then_decays_to_zero_per_step(data: Any) -> None:
    model = _model()
    recipe = FineTune(blocks=2, epochs=3, probe_epochs=0, warmup_epochs=1, head_lr=1e-3)
    history = fine_tune(model, data[0], data[1], recipe, **FAST)
    schedule = WarmupCosine(total=6, warmup=2)  # 2 steps per epoch
    # each epoch's rate at its first step: was the rate after its last step (the warm-up
    # epoch read as the peak, the last one, which trained at up to half of it, as 0)
    expected = [1e-3 * schedule(step) for step in (0, 2, 4)]
    assert history.column("lr") == pytest.approx(expected)
    assert history.column("lr")[0] == pytest.approx(1e-5)
    assert history.column("lr")[-1] > 0


def test_a_second_fit_of_the_fine_tuning_trainer_warms_up_and_trains_again(data: Any) -> None:
    model = _model()
    recipe = FineTune(blocks=2, epochs=2, probe_epochs=0, warmup_epochs=1, head_lr=1e-3)
    trainer = fine_tune_trainer(model, *data, recipe, **FAST)
    first = trainer.fit(*data)
    last_block = model.feature_block_modules()[-1]
    before = [p.detach().clone() for p in last_block.parameters()]

    second = trainer.fit(*data)  # a new run from the weights the first one left

    schedule = WarmupCosine(total=4, warmup=2)  # 2 steps per epoch
    expected = [1e-3 * schedule(step) for step in (0, 2)]  # each epoch's first step
    assert first.column("lr") == pytest.approx(expected)
    assert second.column("lr") == pytest.approx(expected)
    groups = [group["name"] for group in trainer.optimizer.param_groups]
    assert groups[0] == "head"  # the recipe's groups, built again
    assert "block -2" in groups
    changed = [not torch.equal(p, q) for p, q in zip(last_block.parameters(), before, strict=True)]
    assert any(changed)


def test_fine_tune_refuses_a_model_already_nan_before_changing_it(data: Any) -> None:
    model = _model()
    with torch.no_grad():
        next(model.head_module()[1].parameters()).fill_(math.nan)
    preprocessing = model.preprocessing

    with pytest.raises(ValueError, match=r"^fine_tune: the model's weight .* is already NaN "):
        fine_tune(model, *data, FineTune(blocks=1, epochs=1, probe_epochs=1), **FAST)
    assert model.preprocessing == preprocessing  # no augmentation set


def test_frozen_modules_run_in_eval_mode_while_the_last_blocks_train() -> None:
    model = _model()
    model.requires_grad_(False)
    blocks = model.feature_block_modules()
    blocks[-1].requires_grad_(True)
    model.head_module()[1].requires_grad_(True)
    enter_train_mode(model)
    # a block may be a view (a new Sequential of the network's layers): check its layers
    assert not any(m.training for m in list(blocks[0].modules())[1:])
    assert all(m.training for m in list(blocks[-1].modules())[1:])
    assert model.head_module()[1].training


@pytest.mark.parametrize("arch", ["vgg16_transfer", "mobilenet_v3_small"])
def test_frozen_dropouts_stay_off_while_the_last_blocks_fine_tune(data: Any, arch: str) -> None:
    # VGG16's dropouts after its frozen fc6/fc7 and MobileNetV3's after its frozen
    # classifier.0 are off in the probe; fine-tuning the last block must not switch them on
    torch.manual_seed(0)
    model = create_model(arch, weights=None, preprocessing=Preprocessing(size=32))
    head = model.head_module()[0]
    modes: dict[str, list[bool]] = {}

    def record(module: nn.Module, _: Any) -> None:
        if torch.is_grad_enabled():  # a training step, not validation
            modes[names[module]].append(module.training)

    names: dict[nn.Module, str] = {}
    for name, module in model.network.named_modules():
        if isinstance(module, nn.Dropout) and not name.startswith(f"{head}."):
            names[module], modes[name] = name, []
            module.register_forward_pre_hook(record)
    recipe = FineTune(blocks=1, epochs=1, probe_epochs=0, augment=None)
    fine_tune_trainer(model, *data, recipe, **FAST).fit(*data)
    assert modes  # the architecture has dropouts outside its head
    assert {name: set(seen) for name, seen in modes.items()} == {name: {False} for name in modes}


def test_stochastic_depth_drops_paths_in_the_trained_blocks_only() -> None:
    torch.manual_seed(0)
    model = create_model("efficientnet_b0", weights=None, trainable_blocks=1)
    enter_train_mode(model)
    trained = {id(m) for m in model.feature_block_modules()[-1].modules()}
    drops = [m for m in model.network.modules() if type(m).__name__ == "StochasticDepth"]
    assert {m.training for m in drops if id(m) in trained} == {True}
    assert {m.training for m in drops if id(m) not in trained} == {False}


# -- fine_tune --------------------------------------------------------------------------


def test_fine_tune_unfreezes_exactly_the_declared_last_blocks_and_the_head(data: Any) -> None:
    model = _model()
    fine_tune(model, *data, FineTune(blocks=2, epochs=1, probe_epochs=1), **FAST)
    blocks = model.feature_block_modules()
    trainable = [all(p.requires_grad for p in b.parameters()) for b in blocks]
    assert trainable == [False, False, True, True]
    assert all(p.requires_grad for p in model.head_module()[1].parameters())
    assert not any(any(p.requires_grad for p in b.parameters()) for b in blocks[:2])


@pytest.mark.parametrize("freeze_bn", [True, False])
def test_batch_norm_statistics_stay_unless_told_to_update(data: Any, freeze_bn: bool) -> None:
    model = _model()
    before = _bn_stats(model)
    fine_tune(
        model, *data, FineTune(blocks=2, epochs=1, probe_epochs=0, freeze_bn=freeze_bn), **FAST
    )
    after = _bn_stats(model)
    blocks = model.feature_block_modules()
    last = {id(v) for v in blocks[-1].state_dict(keep_vars=True).values()}
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if freeze_bn:
        assert changed == []
    else:  # only the unfrozen blocks' statistics move; the frozen blocks' never do
        assert changed
        named = dict(model.state_dict(keep_vars=True))
        assert all(k.startswith("network.features.") for k in changed)
        assert any(id(named[k]) in last for k in changed)
        frozen_keys = {
            k
            for k, v in named.items()
            if id(v) in {id(t) for t in blocks[0].state_dict(keep_vars=True).values()}
        }
        assert not frozen_keys & set(changed)


def test_the_probe_runs_on_cached_features_then_the_best_weights_are_kept(data: Any) -> None:
    model = _model()
    seen: list[str] = []

    class Record(Callback):
        def on_epoch_end(self, trainer: Any, epoch: int, metrics: Any) -> None:
            seen.append(type(trainer.task).__name__)
            weights[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    weights: dict[int, dict[str, torch.Tensor]] = {}
    recipe = FineTune(blocks=1, epochs=3, probe_epochs=2, head_lr=0.05, lr=0.05)
    trainer = fine_tune_trainer(model, *data, recipe, callbacks=[Record()], **FAST)
    assert trainer._head is None  # the fine-tuning phase trains on images, not features
    head = model.head_module()[1]
    assert any(p.requires_grad for p in model.feature_block_modules()[-1].parameters())
    history = trainer.fit(*data)
    assert seen == ["FineTuneTask"] * 3  # the user's callbacks see the fine-tuning phase
    best = min(history, key=lambda r: r.val_loss)
    assert history.restored_epoch == best.epoch
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, weights[best.epoch][key], rtol=0, atol=0)
    assert head is model.head_module()[1]


def test_the_probe_trains_the_head_alone(data: Any) -> None:
    model = _model()
    blocks_before = {k: v.clone() for k, v in model.state_dict().items() if "classifier" not in k}
    head_before = {k: v.clone() for k, v in model.state_dict().items() if "classifier" in k}
    trainer = fine_tune_trainer(model, *data, FineTune(blocks=1, epochs=1, probe_epochs=2), **FAST)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in blocks_before.items())
    assert any(not torch.equal(state[k], v) for k, v in head_before.items())
    assert isinstance(trainer.task, FineTuneTask)


def test_checkpoints_are_written_and_rebuild(data: Any, tmp_path: Path) -> None:
    model = _model()
    recipe = FineTune(blocks=2, epochs=2, probe_epochs=1)
    fine_tune(model, *data, recipe, out_dir=tmp_path, **FAST)
    checkpoint = load_checkpoint(tmp_path / "best.pt")
    rebuilt = checkpoint.build_model()
    assert rebuilt.preprocessing == model.preprocessing  # the augmentation preset travels
    model.eval()
    rebuilt.eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), model(images))


class _Interrupt(Callback):
    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        if epoch == 2:  # epoch 1 is checkpointed
            raise KeyboardInterrupt


def test_an_interrupted_fine_tune_resumes_and_repeats_the_whole_run(
    data: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = FineTune(blocks=2, epochs=3, probe_epochs=1)
    whole = fine_tune(_model(), *data, recipe, out_dir=tmp_path / "whole", **FAST)
    with pytest.raises(KeyboardInterrupt):
        fine_tune(
            _model(), *data, recipe, out_dir=tmp_path / "cut", callbacks=[_Interrupt()], **FAST
        )
    # a new model: the checkpoint brings back everything, the probe's head included
    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        resumed = fine_tune(
            _model(),
            *data,
            recipe,
            out_dir=tmp_path / "cut",
            resume_from=tmp_path / "cut" / "last.pt",
            **FAST,
        )
    assert not [m for m in caplog.messages if "learning rate" in m]  # the same rates: no word
    assert len(resumed) == 3
    assert resumed.column("lr") == pytest.approx(whole.column("lr"))
    assert resumed.column("val_loss") == pytest.approx(whole.column("val_loss"), rel=1e-5)


def test_resuming_with_another_recipe_or_a_foreign_checkpoint_is_refused(
    data: Any, tmp_path: Path
) -> None:
    recipe = FineTune(blocks=2, epochs=2, probe_epochs=0)
    fine_tune(_model(), *data, recipe, out_dir=tmp_path / "a", **FAST)
    with pytest.raises(ValueError, match=r"another recipe \(blocks: 2 there, 3 now\)"):
        fine_tune(
            _model(),
            *data,
            FineTune(blocks=3, epochs=2),
            resume_from=tmp_path / "a" / "last.pt",
            **FAST,
        )
    plain = save_checkpoint(tmp_path / "plain.pt", _model())
    with pytest.raises(ValueError, match="not written by fine_tune"):
        fine_tune(_model(), *data, recipe, resume_from=plain, **FAST)


def test_fine_tune_runs_without_validation_data(data: Any) -> None:
    history = fine_tune(
        _model(), data[0], None, FineTune(blocks=1, epochs=2, probe_epochs=1), **FAST
    )
    assert len(history) == 2
    assert history.restored_epoch is not None
    assert all(math.isfinite(v) for v in history.column("train_loss"))


# -- the command line ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def kermany(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-finetune") / "data"
    return make_synthetic_kermany(root, train=2, val=1, test=1, shape=(48, 48), seed=5)


_NOT_PRETRAINED = "fine_tune: small_cnn has no pretrained weights"
# small_cnn is here for speed; the warning it gets is tested once, below
pytestmark = pytest.mark.filterwarnings(  # its ":" would end the message field
    f"ignore:{_NOT_PRETRAINED.replace(':', '.')}:UserWarning"
)


def _train(data: Path, out: Path, *extra: str) -> int:
    """``retinalnet train`` of the fine-tuning recipe on small_cnn, fast (its own default is
    the tutorial's: it has no pretrained weights; the warning saying so is silenced)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NOT_PRETRAINED)
        return main(
            [
                "train", "--data", str(data), "--out", str(out), "--arch", "small_cnn",
                "--weights", "none", "--size", "32", "--epochs", "2", "--batch-size", "4",
                "--seed", "0", "-q", "--recipe", "finetune", *extra,
            ]
        )  # fmt: skip


@pytest.mark.parametrize(
    ("arch", "extra", "recipe"),
    [
        ("resnet18", [], "finetune"),
        ("small_cnn", [], "tutorial"),  # no pretrained weights: trained whole
        ("small_cnn", ["--finetune-blocks", "2"], "finetune"),
        ("small_cnn", ["--recipe", "finetune"], "finetune"),
        ("resnet18", ["--recipe", "tutorial"], "tutorial"),
    ],
)
def test_the_default_recipe_follows_the_architectures_weights(
    arch: str, extra: list[str], recipe: str
) -> None:
    # small_cnn fine-tuned by default: a probe on random features, batch norms frozen at
    # their initial statistics; the demo's suggested command scored 51% instead of 95%
    args = build_parser().parse_args(["train", "--data", "d", "--arch", arch, *extra])
    recipe_defaults(args)
    assert args.recipe == recipe


def test_fine_tuning_a_network_without_pretrained_weights_is_warned_about() -> None:
    data = SyntheticOCT(1, shape=(40, 36), seed=0)
    model = create_model("small_cnn", preprocessing=Preprocessing(size=32))
    with pytest.warns(UserWarning, match=rf"^{_NOT_PRETRAINED}, and the recipe assumes some"):
        fine_tune(model, data, data, FineTune(epochs=1, probe_epochs=1), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # weights exist (random here for speed): nothing said
        model = create_model("resnet18", weights=None, preprocessing=Preprocessing(size=32))
        fine_tune_trainer(model, data, data, FineTune(epochs=1, probe_epochs=0), progress=False)


def test_train_fine_tunes_by_default(kermany: Path, tmp_path: Path) -> None:
    assert _train(kermany, tmp_path, "--finetune-blocks", "3") == 0
    checkpoint = load_checkpoint(tmp_path / "best.pt")
    states = checkpoint.callback_states
    assert states["FineTune"]["recipe"]["blocks"] == 3
    assert states["FineTune"]["recipe"]["augment"] == "oct"
    preprocessing = checkpoint.build_model().preprocessing
    assert preprocessing == replace(preprocessing, **AUGMENTATION_PRESETS["oct"])


def test_train_recipe_tutorial_trains_the_head_alone(kermany: Path, tmp_path: Path) -> None:
    assert _train(kermany, tmp_path, "--recipe", "tutorial", "--augment", "none") == 0
    checkpoint = load_checkpoint(tmp_path / "best.pt")
    assert "FineTune" not in checkpoint.callback_states
    assert checkpoint.build_model().preprocessing.augments is False


def test_train_refuses_finetune_blocks_out_of_range_or_with_the_tutorial(
    kermany: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(kermany, tmp_path / "a", "--finetune-blocks", "9") != 0
    assert "--finetune-blocks must be in [1, 4] for --arch small_cnn" in capsys.readouterr().err
    assert _train(kermany, tmp_path / "b", "--recipe", "tutorial", "--finetune-blocks", "2") != 0
    assert "needs --recipe finetune" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "size"),
    [
        pytest.param([], 256, id="finetune"),
        pytest.param(["--recipe", "tutorial"], 224, id="tutorial"),
        pytest.param(["--arch", "vit_b_16"], 224, id="one-size-architecture"),
        pytest.param(["--size", "300"], 300, id="given"),
        pytest.param(["--image-size", "300", "--recipe", "tutorial"], 300, id="0.1-name"),
    ],
)
def test_the_image_size_defaults_to_the_recipes(extra: list[str], size: int) -> None:
    args = build_parser().parse_args(["train", "--data", "OCT2017", *extra])
    recipe_defaults(args)
    assert args.size == size


@pytest.mark.filterwarnings("ignore:temperature scaling left out")  # 4 validation scans
def test_a_resumed_run_keeps_its_image_size_and_refuses_another(
    kermany: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def train(*extra: str) -> int:
        return main(
            [
                "train", "--data", str(kermany), "--out", str(tmp_path), "--arch", "small_cnn",
                "--weights", "none", "--batch-size", "4", "--seed", "0", "-q",
                "--recipe", "tutorial", *extra,  # its epochs may grow on resume
            ]
        )  # fmt: skip

    assert train("--size", "40", "--epochs", "1") == 0
    assert train("--epochs", "2", "--resume", str(tmp_path / "last.pt")) == 0  # 40, not 256
    assert load_checkpoint(tmp_path / "last.pt").epoch == 2
    assert load_checkpoint(tmp_path / "last.pt").preprocessing.size == 40
    capsys.readouterr()
    assert train("--size", "32", "--epochs", "3", "--resume", str(tmp_path / "last.pt")) == 1
    error = capsys.readouterr().err
    assert "size=40 there, 32 now" in error
    assert "pass the --size (and --reduced-decode) the run was started with" in error
    assert "Traceback" not in error


@pytest.mark.parametrize(
    ("name", "expected"), [("small_cnn", 2), ("efficientnet_b0", 2), ("vit_b_16", 6)]
)
def test_by_default_the_last_half_of_the_declared_blocks_is_unfrozen(
    name: str, expected: int
) -> None:
    model = create_model(name, weights=None)
    assert FineTune().blocks_for(model) == expected
    assert FineTune(blocks=1).blocks_for(model) == 1


def test_train_fine_tune_caches_probe_features_and_resumes_only_the_same_recipe(
    kermany: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, out = tmp_path / "features", tmp_path / "run"
    assert _train(kermany, out, "--feature-cache", str(cache)) == 0
    assert any(cache.iterdir())  # the probe's features, kept for later runs
    assert _train(kermany, out, "--resume", str(out / "last.pt")) == 0  # done: nothing to do
    capsys.readouterr()
    assert _train(kermany, out, "--epochs", "3", "--resume", str(out / "last.pt")) == 1
    assert "another recipe (epochs: 2 there, 3 now)" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", ["finetune", "tutorial"])
def test_resume_takes_the_architecture_recipe_and_epochs_of_the_run(
    kermany: Path, tmp_path: Path, recipe: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    options = ["--finetune-blocks", "3"] if recipe == "finetune" else ["--recipe", "tutorial"]
    assert _train(kermany, out, *options) == 0
    capsys.readouterr()
    # only what says where: the architecture, recipe, size, epochs and blocks come from the run
    code = main(["train", "--data", str(kermany), "--out", str(out), "--weights", "none",
                 "--seed", "0", "--resume", str(out / "last.pt"), "-q"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert load_checkpoint(out / "last.pt").arch == "small_cnn"


def test_resume_goes_on_in_the_runs_folder_and_never_replaces_another_runs_best_pt(
    kermany: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, other = tmp_path / "run", tmp_path / "other"
    options = ["--recipe", "tutorial", "--epochs", "1"]
    assert _train(kermany, run, *options) == 0
    assert _train(kermany, other, *options) == 0
    kept = (other / "best.pt").read_bytes()
    capsys.readouterr()
    resume = ["train", "--data", str(kermany), "--weights", "none", "--seed", "0", "-q",
              "--epochs", "2", "--resume", str(run / "last.pt")]  # fmt: skip
    assert main([*resume, "--out", str(other)]) == 1
    assert "holds another run's best.pt, which resuming" in capsys.readouterr().err
    assert (other / "best.pt").read_bytes() == kept
    assert main(resume) == 0  # no --out: the run goes on in its own folder
    assert load_checkpoint(run / "last.pt").epoch == 2


def test_resume_with_another_architecture_or_recipe_is_refused_naming_the_runs(
    kermany: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert _train(kermany, run, "--recipe", "tutorial", "--epochs", "1") == 0
    capsys.readouterr()
    resume = ["train", "--data", str(kermany), "--weights", "none", "-q", "--resume",
              str(run / "last.pt")]  # fmt: skip
    assert main([*resume, "--arch", "resnet18"]) == 1
    assert "continues a small_cnn run, not --arch resnet18" in capsys.readouterr().err
    assert main([*resume, "--recipe", "finetune"]) == 1
    assert "continues a --recipe tutorial run, not --recipe finetune" in capsys.readouterr().err


# -- resuming: a stopped fine-tune, another epoch size, a caller's grad mode ---------------------


def test_resuming_an_early_stopped_fine_tune_trains_nothing(
    data: tuple[SyntheticOCT, SyntheticOCT], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = FineTune(blocks=2, epochs=8, probe_epochs=1, patience=1, lr=1e-2, head_lr=1e-2)
    model = _model()
    whole = fine_tune(model, *data, recipe, out_dir=tmp_path, **FAST)
    assert len(whole) < recipe.epochs, "the recipe must stop early for this test"
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    best = (tmp_path / "best.pt").read_bytes()
    resumed = _model()

    with caplog.at_level(logging.WARNING):
        history = fine_tune(
            resumed, *data, recipe, out_dir=tmp_path, resume_from=tmp_path / "last.pt", **FAST
        )

    assert history.to_records() == whole.to_records()
    assert (history.stop_reason, history.restored_epoch) == (
        whole.stop_reason,
        whole.restored_epoch,
    )
    assert all(torch.equal(v, weights[k]) for k, v in resumed.state_dict().items())
    assert (tmp_path / "best.pt").read_bytes() == best
    assert any(f"stopped early at epoch {len(whole)}" in m for m in caplog.messages)


def _cut_fine_tune(data: tuple[SyntheticOCT, SyntheticOCT], out: Path) -> Path:
    """A 3-epoch fine-tune (batch size 4) interrupted as its epoch 3 starts."""

    class Interrupt(Callback):
        def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
            if epoch == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fine_tune(_model(), *data, _RESUMED, out_dir=out, callbacks=[Interrupt()], **FAST)
    return out / "last.pt"


_RESUMED = FineTune(blocks=2, epochs=3, probe_epochs=1, warmup_epochs=1)


@pytest.mark.parametrize(
    ("train", "batch_size", "now"),
    [
        pytest.param(2, 2, "4 steps per epoch (8 images / batch size 2)", id="batch-size"),
        pytest.param(4, 4, "4 steps per epoch (16 images / batch size 4)", id="more-images"),
    ],
)
def test_resuming_a_fine_tune_over_another_epoch_size_is_refused(
    data: tuple[SyntheticOCT, SyntheticOCT],
    tmp_path: Path,
    train: int,
    batch_size: int,
    now: str,
) -> None:
    last = _cut_fine_tune(data, tmp_path)
    before = last.read_bytes()
    images = SyntheticOCT(train, shape=(40, 44), seed=1)

    with pytest.raises(ValueError, match="learning-rate schedule is per step") as info:
        fine_tune(
            _model(),
            images,
            data[1],
            _RESUMED,
            out_dir=tmp_path,
            resume_from=last,
            **{**FAST, "batch_size": batch_size},
        )

    message = str(info.value)
    assert "its run took 2 steps per epoch (8 images / batch size 4)" in message
    assert f"this fit takes {now}" in message
    assert "resume with the same training data, batch size and feature cache (each" in message
    assert "\n" not in message
    assert last.read_bytes() == before


def test_a_fine_tune_resumed_with_its_epoch_size_follows_its_schedule(
    data: tuple[SyntheticOCT, SyntheticOCT], tmp_path: Path
) -> None:
    whole = fine_tune(_model(), *data, _RESUMED, out_dir=tmp_path / "whole", **FAST)
    last = _cut_fine_tune(data, tmp_path / "cut")

    history = fine_tune(
        _model(), *data, _RESUMED, out_dir=tmp_path / "cut", resume_from=last, **FAST
    )

    assert history.column("lr") == whole.column("lr")


GRAD_MODES = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}


@pytest.mark.parametrize("mode", GRAD_MODES)
def test_fine_tune_inside_no_grad_or_inference_mode_trains_as_outside(
    data: tuple[SyntheticOCT, SyntheticOCT], mode: str
) -> None:
    recipe = FineTune(blocks=1, epochs=1, probe_epochs=1)
    expected = fine_tune(_model(), *data, recipe, **FAST).column("val_loss")
    model = _model()

    with GRAD_MODES[mode]():
        history = fine_tune(model, *data, recipe, **FAST)
        assert not torch.is_grad_enabled()
        assert torch.is_inference_mode_enabled() == (mode == "inference_mode")

    assert history.column("val_loss") == expected


class _Staged(nn.Module):
    """A network built by hand: a stem, two stages (``norm`` in each) and a linear head."""

    def __init__(self, norm: str = "bn", *, functional_log_softmax: bool = False) -> None:
        super().__init__()

        def layer(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels) if norm == "bn" else nn.GroupNorm(2, channels)

        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), layer(4), nn.ReLU())
        self.stage1 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), layer(4), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), layer(8), nn.ReLU())
        self.fc = nn.Linear(8, 4)
        self.functional_log_softmax = functional_log_softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.fc(self.stage2(self.stage1(self.stem(x))).mean((2, 3)))
        return torch.log_softmax(output, dim=1) if self.functional_log_softmax else output


def _hand_built(network: nn.Module | None = None, **declared: Any) -> Classifier:
    declared.setdefault("feature_blocks", ["stage1", "stage2"])
    return Classifier(
        network if network is not None else _Staged(),
        classes=("CNV", "DME", "DRUSEN", "NORMAL"),
        preprocessing=Preprocessing(size=32),
        head="fc",
        **declared,
    )


_ONE_BLOCK = FineTune(blocks=1, epochs=1, probe_epochs=1, augment=None, freeze_bn=False)


def test_a_head_inside_a_block_is_refused_before_the_probe_trains(
    data: tuple[SyntheticOCT, SyntheticOCT],
) -> None:
    model = _hand_built(feature_blocks=["stage1", "stage2", "fc"])
    before = model.network.fc.weight.detach().clone()

    with pytest.raises(ValueError, match=r"the head 'fc' is inside feature block 'block -1'"):
        fine_tune(model, *data, _ONE_BLOCK, **FAST)
    assert torch.equal(model.network.fc.weight, before)  # the probe never ran


def test_a_head_followed_by_a_functional_log_softmax_is_told_how_to_fine_tune(
    data: tuple[SyntheticOCT, SyntheticOCT],
) -> None:
    model = _hand_built(_Staged(functional_log_softmax=True))

    with pytest.raises(ValueError, match=r"linear probe trains the head 'fc'.*probe_epochs=0"):
        fine_tune(model, *data, _ONE_BLOCK, **FAST)
    fine_tune(model, *data, replace(_ONE_BLOCK, probe_epochs=0), **FAST)  # the way out works


def test_parameters_frozen_inside_the_unfrozen_blocks_are_said_to_train_now(
    data: tuple[SyntheticOCT, SyntheticOCT], caplog: pytest.LogCaptureFixture
) -> None:
    network = _Staged()
    network.stage2[1].requires_grad_(False)  # the user's choice inside the last block
    model = _hand_built(network)

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        fine_tune_trainer(model, *data, replace(_ONE_BLOCK, probe_epochs=0), **FAST)

    assert network.stage2[1].weight.requires_grad  # unfrozen, as fastai does
    assert (
        "fine_tune: 2 parameter(s) frozen before in the last 1 feature block(s) train now "
        "(stage2.1.weight, stage2.1.bias)"
    ) in caplog.text


def test_a_backbone_frozen_whole_is_unfrozen_without_a_word(
    data: tuple[SyntheticOCT, SyntheticOCT], caplog: pytest.LogCaptureFixture
) -> None:
    network = _Staged()
    network.requires_grad_(False)
    network.fc.requires_grad_(True)

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        fine_tune_trainer(_hand_built(network), *data, replace(_ONE_BLOCK, probe_epochs=0), **FAST)

    assert "frozen before" not in caplog.text


def test_batch_norm_statistics_never_estimated_are_warned_about_with_freeze_bn(
    data: tuple[SyntheticOCT, SyntheticOCT],
) -> None:
    recipe = replace(_ONE_BLOCK, probe_epochs=0, freeze_bn=True)

    with pytest.warns(
        UserWarning,
        match=r"3 batch-norm layer\(s\) of _Staged \(first 'stem.1'\) "
        r"hold their initial statistics.*FineTune\(freeze_bn=False\)",
    ):
        fine_tune_trainer(_hand_built(), *data, recipe, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine_tune_trainer(_hand_built(_Staged("gn")), *data, recipe, **FAST)  # no statistics
        fine_tune_trainer(_hand_built(), *data, replace(recipe, freeze_bn=False), **FAST)


def test_validation_without_a_class_is_said_once_for_both_phases(data: Any) -> None:
    # was: the same warning from the probe's fit and again from the fine-tune's
    val = SyntheticOCT({"CNV": 1, "DME": 1, "NORMAL": 1}, shape=(40, 44), seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fine_tune(_model(), data[0], val, FineTune(blocks=1, epochs=1, probe_epochs=1), **FAST)
    said = [w for w in caught if "validation data holds no image of DRUSEN" in str(w.message)]
    assert len(said) == 1


def test_a_fine_tune_trainer_checks_the_classes_of_other_data_it_is_given(data: Any) -> None:
    # was: after its probe, every later fit skipped the check (one class trained silently)
    trainer = fine_tune_trainer(_model(), *data, FineTune(blocks=1, epochs=1), **FAST)
    trainer.fit(*data)
    one_class = SyntheticOCT({"CNV": 4}, shape=(40, 44), seed=4)
    with pytest.raises(ValueError, match=r"^the training data holds images of CNV only"):
        trainer.fit(one_class, data[1])


def test_a_left_out_last_batch_of_one_keeps_the_schedule_s_epochs(data: Any) -> None:
    # was: 8 images in batches of 7 train 1 step an epoch (the batch of one image is left
    # out: resnet18's last batch norm sees 1x1 maps at 32 px), but the schedule was sized
    # for 2: the warm-up lasted two epochs and the last step trained at 93% of the peak
    torch.manual_seed(0)
    model = create_model("resnet18", weights=None, preprocessing=Preprocessing(size=32))
    recipe = FineTune(blocks=1, epochs=4, probe_epochs=0, warmup_epochs=1, freeze_bn=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the left-out batch and the random weights
        history = fine_tune(model, *data, recipe, **{**FAST, "batch_size": 7})
    schedule = WarmupCosine(total=4, warmup=1)  # one step an epoch, as trained
    assert history.column("lr") == pytest.approx([1e-3 * schedule(k) for k in range(4)])


def test_a_resumed_fine_tune_keeps_the_warm_up_it_started_with(data: Any, tmp_path: Path) -> None:
    # a run whose warm-up came from another rule (0.5 epoch was rounded to none before
    # 0.2): its resume sized the schedule again by today's rule, and the rate jumped back up
    from _training_helpers import InterruptAt

    recipe = FineTune(blocks=1, epochs=4, probe_epochs=0, warmup_epochs=0.5, schedule="epoch")
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fine_tune(_model(), *data, recipe, out_dir=out, callbacks=[InterruptAt(2)], **FAST)
    checkpoint = torch.load(out / "last.pt", weights_only=True)
    for schedule in checkpoint["scheduler"]["lr_lambdas"]:  # one per parameter group
        assert schedule["warmup"] == 1  # today's rule
        schedule["warmup"] = 0  # as the run's own rule gave it
    torch.save(checkpoint, out / "last.pt")

    trainer = fine_tune_trainer(_model(), *data, recipe, resume_from=out / "last.pt", **FAST)
    history = trainer.fit(*data, resume_from=out / "last.pt")

    task = trainer.task
    assert isinstance(task, FineTuneTask)
    assert (task.schedule.total, task.schedule.warmup) == (4, 0)
    # epoch 2 runs at the rate the checkpoint's optimizer holds; epochs 3 and 4 at the
    # run's own schedule (today's would give 0.00075 and 0.00025)
    rates = history.column("lr")[2:]
    assert rates == pytest.approx([1e-3 * WarmupCosine(4, 0)(epoch) for epoch in (2, 3)])
