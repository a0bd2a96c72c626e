"""The learning-rate range test: what it records, when it stops, what it suggests, that it
leaves the model, optimizer and random generators as they were, and ``train --lr auto``."""

from __future__ import annotations

import logging
import math
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _training_helpers import (
    CLASSES,
    FEATURES,
    linear_classifier,
    one_thread,
    quiet_trainer,
    separable_data,
    snapshot,
    tiny_cnn,
)
from retinalnet.cli import main
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.models import Classifier
from retinalnet.training import ClassificationTask, LRFinderResult
from retinalnet.training._feature_cache import FeatureCache

LRS = tuple(float(x) for x in np.logspace(-7, 1, 100))


def _curve(start: float, stop: float) -> tuple[float, ...]:
    """Flat at 2.0 below ``start``, falling linearly in log-rate to 0.5 at ``stop``, then
    rising fast."""
    losses = []
    for lr in LRS:
        if lr < start:
            losses.append(2.0)
        elif lr <= stop:
            losses.append(2.0 - 1.5 * math.log(lr / start) / math.log(stop / start))
        else:
            losses.append(0.5 + 4 * math.log(lr / stop))
    return tuple(losses)


@pytest.mark.parametrize("rule", ["valley", "steepest"])
@pytest.mark.parametrize(("start", "stop"), [(1e-5, 1e-2), (1e-4, 1e-1), (1e-3, 3e-1)])
def test_each_rule_picks_a_rate_where_the_loss_falls(rule: str, start: float, stop: float) -> None:
    result = LRFinderResult(LRS, _curve(start, stop), _curve(start, stop), rule=rule)
    suggestion = result.suggestion
    assert suggestion is not None
    assert start <= suggestion <= stop


def test_valley_lies_about_halfway_into_the_fall() -> None:
    result = LRFinderResult(LRS, _curve(1e-5, 1e-1), _curve(1e-5, 1e-1))
    suggestion = result.suggest("valley")
    assert suggestion is not None
    assert 1e-4 < suggestion < 1e-2  # fastai's rule: the middle of the falling stretch (log)


def test_too_short_a_curve_suggests_nothing() -> None:
    result = LRFinderResult(LRS[:7], (1.0,) * 7, (1.0,) * 7)
    assert result.suggestion is None
    assert "none (too few steps)" in str(result)


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match=r"rule must be one of 'steepest', 'valley', got 'min'"):
        LRFinderResult(LRS, (1.0,) * 100, (1.0,) * 100).suggest("min")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_lr": 0.0}, r"min_lr must be a finite number > 0, got 0.0"),
        ({"max_lr": math.inf}, r"max_lr must be a finite number > 0, got inf"),
        ({"min_lr": 1e-2, "max_lr": 1e-3}, r"max_lr must be greater than min_lr"),
        ({"num_steps": 5}, r"num_steps must be an int >= 8 .*got 5"),
        ({"rule": "lowest"}, r"rule must be one of"),
    ],
)
def test_bad_settings_are_refused_before_any_step(
    settings: dict[str, object], message: str
) -> None:
    trainer = quiet_trainer(linear_classifier())
    before = snapshot(trainer.model)
    with pytest.raises(ValueError, match=message):
        trainer.lr_find(separable_data(16), **settings)  # type: ignore[arg-type]
    assert all(torch.equal(before[k], v) for k, v in snapshot(trainer.model).items())


def _optimizer_tensors(state: dict[str, object]) -> list[object]:
    values: list[object] = []
    for per_parameter in state["state"].values():  # type: ignore[attr-defined]
        values += [per_parameter[key] for key in sorted(per_parameter)]
    return values


def test_everything_is_bit_identical_afterwards() -> None:
    """After a fit epoch (Adam has state), with BatchNorm and dropout, in eval mode. An
    optimizer object of yours is kept across fits (the task's own is built anew, with no
    state): its state is what the test must leave as it was."""
    with one_thread():
        model = tiny_cnn()
        images = torch.randn(24, 3, 32, 32)
        targets = torch.arange(24) % 4
        train = torch.utils.data.TensorDataset(images, targets)
        task = ClassificationTask(optimizer=torch.optim.Adam(model.parameters()))
        trainer = quiet_trainer(model, task, max_epochs=1, batch_size=8, seed=0)
        trainer.fit(train)
        model.eval()
        model.network.features.train()  # a mix of modes, as after enter_train_mode
        modes = [m.training for m in model.modules()]
        weights = snapshot(model)
        optimizer = trainer.optimizer.state_dict()
        saved_tensors = [
            v.clone() if isinstance(v, torch.Tensor) else v for v in _optimizer_tensors(optimizer)
        ]
        saved_lrs = [group["lr"] for group in trainer.optimizer.param_groups]
        torch_state, python_state = torch.get_rng_state(), random.getstate()
        numpy_state = np.random.get_state()[1].copy()

        result = trainer.lr_find(train, num_steps=20, max_lr=1.0)

        assert len(result.lrs) > 1
        after = snapshot(model)
        assert all(torch.equal(weights[k], after[k]) for k in weights)
        assert [m.training for m in model.modules()] == modes
        now = _optimizer_tensors(trainer.optimizer.state_dict())
        assert len(now) == len(saved_tensors)
        for old, new in zip(saved_tensors, now, strict=True):
            assert torch.equal(old, new) if isinstance(old, torch.Tensor) else old == new
        assert [group["lr"] for group in trainer.optimizer.param_groups] == saved_lrs
        assert torch.equal(torch.get_rng_state(), torch_state)
        assert random.getstate() == python_state
        assert np.array_equal(np.random.get_state()[1], numpy_state)


def test_the_rates_grow_exponentially_and_the_loss_is_smoothed() -> None:
    with one_thread():
        trainer = quiet_trainer(linear_classifier(), batch_size=8, seed=0)
        result = trainer.lr_find(separable_data(32), min_lr=1e-6, max_lr=1e-1, num_steps=30)
    assert result.stop_reason == "ran all 30 steps"
    assert len(result.lrs) == len(result.losses) == len(result.raw_losses) == 30
    assert result.lrs[0] == pytest.approx(1e-6)
    assert result.lrs[-1] == pytest.approx(1e-1)
    ratios = np.diff(np.log(result.lrs))
    assert np.allclose(ratios, ratios[0])
    assert result.losses[0] == pytest.approx(result.raw_losses[0])  # bias-corrected average
    assert np.std(np.diff(result.losses)) < np.std(np.diff(result.raw_losses))


def test_it_stops_when_the_loss_diverges() -> None:
    task = ClassificationTask(optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    with one_thread():
        trainer = quiet_trainer(linear_classifier(), task, batch_size=8, seed=0)
        result = trainer.lr_find(separable_data(32), min_lr=1e-3, max_lr=1e5, num_steps=100)
    assert len(result.lrs) < 100
    assert result.stop_reason.startswith("the loss")
    assert all(math.isfinite(loss) for loss in result.losses)


def test_apply_sets_the_rate_of_the_default_adam_and_the_scheduler() -> None:
    task = ClassificationTask(
        scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    )
    with one_thread():
        trainer = quiet_trainer(linear_classifier(), task, batch_size=8, seed=0)
        result = trainer.lr_find(separable_data(64), apply=True)
    suggestion = result.suggestion
    assert suggestion is not None
    assert trainer.task.lr == suggestion
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(suggestion)
    assert trainer.optimizer.param_groups[0]["initial_lr"] == pytest.approx(suggestion)
    assert trainer.scheduler is not None
    assert trainer.scheduler.base_lrs == [pytest.approx(suggestion)]


class _RecordingSGD(torch.optim.SGD):
    seen: list[tuple[float, ...]]

    def step(self, closure=None):  # type: ignore[no-untyped-def,override]
        self.seen.append(tuple(group["lr"] for group in self.param_groups))
        return super().step(closure)


def test_parameter_groups_are_scaled_together() -> None:
    def two_groups(params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        weight, bias = params
        optimizer = _RecordingSGD([{"params": [weight]}, {"params": [bias], "lr": 1e-3}], lr=1e-2)
        optimizer.seen = []
        return optimizer

    with one_thread():
        trainer = quiet_trainer(
            linear_classifier(), ClassificationTask(optimizer=two_groups), batch_size=8
        )
        result = trainer.lr_find(separable_data(32), min_lr=1e-5, max_lr=1e-1, num_steps=12)
        seen = trainer.optimizer.seen  # type: ignore[attr-defined]
        assert [first for first, _ in seen] == pytest.approx(list(result.lrs))
        assert all(second == pytest.approx(first / 10) for first, second in seen)
        assert [g["lr"] for g in trainer.optimizer.param_groups] == [1e-2, 1e-3]
        trainer.lr_find(separable_data(32), min_lr=1e-5, max_lr=1e-1, num_steps=12, apply=True)
    first, second = (g["lr"] for g in trainer.optimizer.param_groups)
    assert second == pytest.approx(first / 10)
    assert trainer.task.lr == 1e-3  # a factory of your own: the task is left alone


def test_apply_without_a_suggestion_raises_and_changes_nothing() -> None:
    task = ClassificationTask(optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    with one_thread():
        trainer = quiet_trainer(linear_classifier(), task, batch_size=8, seed=0)
        before = snapshot(trainer.model)
        with pytest.raises(ValueError, match=r"lr_find suggests no rate .*set the rate yourself"):
            trainer.lr_find(separable_data(32), min_lr=1e4, max_lr=1e8, num_steps=50, apply=True)
    assert trainer.optimizer.param_groups[0]["lr"] == 0.1
    assert all(torch.equal(before[k], v) for k, v in snapshot(trainer.model).items())


def test_with_the_feature_cache_it_trains_the_head_on_cached_features(tmp_path: Path) -> None:
    root = make_synthetic_kermany(tmp_path / "data", train=3, val=1, test=0, shape=(48, 48))
    with one_thread():
        model = tiny_cnn()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for parameter in model.head_module()[1].parameters():
            parameter.requires_grad_(True)
        trainer = quiet_trainer(model, batch_size=4, feature_cache=True, seed=0)
        before = snapshot(model)
        result = trainer.lr_find(KermanyOCT(root, "train"), num_steps=10)
    assert len(result.lrs) >= 2
    assert trainer._head is model.head_module()[1]  # the steps ran on the head alone
    assert all(torch.equal(before[k], v) for k, v in snapshot(model).items())


def test_plot_draws_the_curve(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = LRFinderResult(LRS, _curve(1e-4, 1e-1), _curve(1e-4, 1e-1))
    figure = result.plot(save=tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 0
    (axes,) = figure.axes
    assert axes.get_xscale() == "log"


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = LRFinderResult(LRS, _curve(1e-4, 1e-1), _curve(1e-4, 1e-1))
    with pytest.raises(ImportError, match=r'pip install "retinalnet\[plot\]"'):
        result.plot()


# ---------------------------------------------------------------------------------------------
# retinalnet train --lr auto


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lr-auto") / "data"
    return make_synthetic_kermany(root, train=3, val=2, test=1, shape=(48, 48), seed=5)


def _train(data: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "train", "--data", str(data), "--out", str(out), "--arch", "small_cnn",
            "--weights", "none", "--size", "32", "--epochs", "1", "--batch-size", "4",
            "--seed", "0", "-q", "--recipe", "tutorial", *extra,
        ]
    )  # fmt: skip


def test_train_lr_auto_prints_the_rate_and_trains_with_it(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with one_thread():
        assert _train(data, tmp_path / "run", "--lr", "auto") == 0
    printed = capsys.readouterr().out
    (line,) = [line for line in printed.splitlines() if line.startswith("learning rate: ")]
    rate = float(line.split()[2])
    assert "lr_find, steepest rule" in line
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    assert float(history[1].split(",")[header.index("lr")]) == pytest.approx(rate, rel=1e-2)


def test_train_lr_auto_with_finetune_extracts_the_features_once(
    data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    loads: list[bool] = []  # per feature-cache build: found on disk?
    real_load = FeatureCache.load.__func__  # type: ignore[attr-defined]

    def load(cls: type[FeatureCache], folder: Path, **options: Any) -> FeatureCache | None:
        found: FeatureCache | None = real_load(cls, folder, **options)
        loads.append(found is not None)
        return found

    monkeypatch.setattr(FeatureCache, "load", classmethod(load))
    frozen = ("--arch", "resnet18", "--finetune-blocks", "1")  # a frozen backbone to cache
    with one_thread():
        code = _train(data, tmp_path / "run", "--lr", "auto", "--recipe", "finetune", *frozen)
    assert code == 0
    assert "learning rate: " in capsys.readouterr().out
    # the range test builds the training features, the probe reads them back (then val)
    assert loads == [False, True, False]
    assert list(scratch.iterdir()) == []  # the scratch features are gone after the run


def test_train_lr_auto_with_resume_is_refused(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _train(data, tmp_path / "run", "--lr", "auto", "--resume", str(tmp_path / "last.pt"))
    assert code != 0
    assert "--lr auto finds a rate for a new run" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "message"), [("fast", "or auto, got 'fast'"), ("-1", "> 0")])
def test_train_lr_refuses_what_is_neither_a_rate_nor_auto(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    with pytest.raises(SystemExit):
        _train(data, tmp_path / "run", "--lr", value)
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The optimizer it tests is the one the coming fit starts with


def test_it_uses_the_parameters_trainable_when_it_is_called() -> None:
    model = linear_classifier()
    model.network[1].bias.requires_grad_(False)
    with one_thread():
        trainer = quiet_trainer(model, batch_size=8, seed=0)
        model.requires_grad_(True)  # unfrozen after the Trainer was built
        trainer.lr_find(separable_data(32), num_steps=10)
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.parameters()}


def test_after_a_fit_it_starts_from_a_new_optimizer_that_the_next_fit_uses() -> None:
    with one_thread():
        trainer = quiet_trainer(linear_classifier(), max_epochs=1, batch_size=8, seed=0)
        trainer.fit(separable_data(32))
        result = trainer.lr_find(separable_data(64), apply=True)
        assert trainer.optimizer.state_dict()["state"] == {}  # not the fit's Adam moments
        history = trainer.fit(separable_data(32))
    assert result.suggestion is not None
    assert history[0].lr == pytest.approx(result.suggestion)
    assert trainer.task.lr == result.suggestion


def test_a_rate_applied_to_your_optimizer_reaches_the_next_fit_then_drops_with_a_warning() -> None:
    model = linear_classifier()
    model.network[1].bias.requires_grad_(False)
    task = ClassificationTask(optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    with one_thread():
        trainer = quiet_trainer(model, task, max_epochs=1, batch_size=8, seed=0)
        result = trainer.lr_find(separable_data(64), apply=True)
        assert result.suggestion is not None
        assert trainer.fit(separable_data(32))[0].lr == pytest.approx(result.suggestion)
        trainer.lr_find(separable_data(64), apply=True)
        model.requires_grad_(True)  # the optimizer is built again, by the function
        with pytest.warns(UserWarning, match=r"builds the optimizer again \(the trainable"):
            history = trainer.fit(separable_data(32))
    assert history[0].lr == 0.1


class _Pair(torch.nn.Module):
    """A linear network returning ``(logits, logits)``, as networks with an aux head do."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(FEATURES, len(CLASSES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.linear(x)
        return logits, logits


def test_its_errors_name_the_network_as_the_fits_do() -> None:
    # lr_find said "the model returned a tuple", where fit names the network
    trainer = quiet_trainer(Classifier(_Pair(), classes=CLASSES), batch_size=8)
    with pytest.raises(TypeError, match=r"^_Pair returned a tuple of 2"):
        trainer.lr_find(separable_data(16), num_steps=8)


def test_a_batch_of_uint8_images_is_refused_before_the_first_step() -> None:
    images = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, torch.arange(8) % 4),
        batch_size=4,
        collate_fn=lambda rows: tuple(torch.stack(column) for column in zip(*rows, strict=True)),
    )
    trainer = quiet_trainer(tiny_cnn(size=32), batch_size=4)
    with pytest.raises(ValueError, match=r"inputs are a uint8 tensor \(4, 3, 32, 32\)"):
        trainer.lr_find(loader, num_steps=8)
    assert not trainer.model._forward_pre_hooks  # no check left on the model


class _InterruptedAt(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``data``, with Ctrl-C pressed when the sample ``index`` is read."""

    def __init__(self, data: torch.utils.data.TensorDataset, index: int) -> None:
        self.data, self.index = data, index

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index == self.index:
            raise KeyboardInterrupt
        return self.data[index]


def test_a_test_interrupted_before_its_first_step_leaves_no_hook_on_the_model() -> None:
    # the first batch's check stayed on the model, to refuse the user's next forward
    trainer = quiet_trainer(linear_classifier(), batch_size=8)
    with pytest.raises(KeyboardInterrupt):
        trainer.lr_find(_InterruptedAt(separable_data(16), 2), num_steps=8)
    assert not any(module._forward_pre_hooks for module in trainer.model.modules())


def test_a_last_batch_of_one_image_a_batch_norm_cannot_take_is_left_out_as_in_a_fit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # was: torch's "Expected more than 1 value per channel when training" at the 2nd step
    torch.manual_seed(0)
    network = torch.nn.Sequential(
        torch.nn.BatchNorm1d(FEATURES), torch.nn.Linear(FEATURES, len(CLASSES))
    )
    model = Classifier(torch.nn.Sequential(network, torch.nn.LogSoftmax(dim=1)), classes=CLASSES)
    seen: list[int] = []
    model.network.register_forward_pre_hook(lambda _, args: seen.append(len(args[0])))
    trainer = quiet_trainer(model, batch_size=4)

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        result = trainer.lr_find(separable_data(5), num_steps=8, max_lr=1e-3)

    assert len(result.lrs) == 8
    assert seen == [4] * 8  # the image left over is left out of each pass, as in a fit
    assert any("last batch" in record.getMessage() for record in caplog.records)
    assert not any(module._forward_pre_hooks for module in network.modules())


def test_it_runs_on_float64_batches_made_under_a_float64_default() -> None:
    # was: "mat1 and mat2 must have the same dtype, but got Double and Float": a fit's
    # steps make the inputs float32, lr_find's did not
    trainer = quiet_trainer(linear_classifier(), batch_size=4)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        data = separable_data(8)
        assert data[0][0].dtype == torch.float64
        result = trainer.lr_find(data, num_steps=8, max_lr=1e-3)
    finally:
        torch.set_default_dtype(before)
    assert len(result.lrs) == 8
    assert all(math.isfinite(loss) for loss in result.losses)
