"""ClassificationTask: what the Trainer trains (loss, balance, optimizer, scheduler, metrics)."""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from _training_helpers import CLASSES, linear_classifier, quiet_trainer, separable_data, tiny_cnn
from retinalnet.checkpoint import load_checkpoint
from retinalnet.models import Classifier
from retinalnet.training import (
    ClassificationTask,
    EarlyStopping,
    EvaluationResult,
    ModelCheckpoint,
    Trainer,
    discriminative_param_groups,
)


def _parameters() -> list[nn.Parameter]:
    return list(nn.Linear(4, 2).parameters())


def test_the_default_task_is_the_tutorial_recipe() -> None:
    task = ClassificationTask()

    optimizer, scheduler = task.configure_optimizers(_parameters())

    assert type(task.loss) is nn.CrossEntropyLoss
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.param_groups[0]["lr"] == 1e-3
    assert optimizer.param_groups[0]["weight_decay"] == 0.0
    assert scheduler is None
    assert task.metric_names(validation=False) == ("train_loss", "train_accuracy")
    assert task.metric_names(validation=True) == (
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
    )
    assert repr(task) == "ClassificationTask(loss=CrossEntropyLoss(), lr=0.001)"


def test_lr_weight_decay_and_a_scheduler_factory() -> None:
    def cosine(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5)

    task = ClassificationTask(lr=0.1, weight_decay=1e-4, scheduler=cosine)

    optimizer, scheduler = task.configure_optimizers(_parameters())

    assert (optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["weight_decay"]) == (
        0.1,
        1e-4,
    )
    assert isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert scheduler.optimizer is optimizer


def test_one_task_builds_a_new_optimizer_for_each_model() -> None:
    task = ClassificationTask(optimizer=lambda params: torch.optim.SGD(params, lr=0.05))
    first, _ = task.configure_optimizers(_parameters())
    second, _ = task.configure_optimizers(_parameters())

    assert type(first) is torch.optim.SGD
    assert first is not second


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"balance": "x"}, ValueError, "balance must be None or one of 'weights', 'sampler'"),
        ({"lr": 0}, ValueError, "lr must be a finite number > 0, got 0"),
        ({"lr": math.nan}, ValueError, "lr must be a finite number > 0, got nan"),
        ({"lr": "0.1"}, ValueError, "lr must be a number, got '0.1'"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay must be a finite number >= 0"),
        (
            {"optimizer": lambda p: torch.optim.SGD(p, lr=0.1), "lr": 0.1},
            ValueError,
            "lr and weight_decay set the default Adam optimizer; with your own optimizer",
        ),
        ({"optimizer": "adam"}, TypeError, "optimizer must be a torch optimizer or a function"),
        ({"scheduler": 3}, TypeError, "scheduler must be a function building a scheduler"),
        ({"metrics": {"val_loss": lambda r: 0.0}}, ValueError, "metric name 'val_loss' is taken"),
        ({"metrics": {"lr": lambda r: 0.0}}, ValueError, "metric name 'lr' is taken"),
        ({"metrics": {"val_x": 1.0}}, TypeError, "metric 'val_x' must be a function"),
    ],
)
def test_bad_task_settings_fail_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        ClassificationTask(**kwargs)


def test_balance_weights_weights_the_training_loss_only() -> None:
    task = ClassificationTask(balance="weights")

    task.setup([0, 0, 0, 1], num_classes=2, device=torch.device("cpu"))

    assert task.needs_targets
    assert type(task.criterion) is nn.CrossEntropyLoss
    assert task.criterion.weight is not None
    assert task.criterion.weight.tolist() == pytest.approx([2 / 3, 2.0])
    assert task.loss.weight is None
    with pytest.raises(ValueError, match="needs the training targets"):
        task.train_loss(None)


def test_balance_sampler_gives_a_seeded_sampler() -> None:
    task = ClassificationTask(balance="sampler")
    targets = [0] * 9 + [1]

    sampler = task.sampler(targets, seed=0)

    assert sampler is not None
    assert list(sampler) == list(task.sampler(targets, seed=0) or [])
    assert ClassificationTask().sampler(targets, seed=0) is None


# ---------------------------------------------------------------------------------------------
# In a fit: the loop calls the task, and the task's metrics are monitorable by name


def _error_rate(result: EvaluationResult) -> float:
    return 1.0 - result.accuracy


def test_task_metrics_are_recorded_logged_and_monitorable(tmp_path: Any) -> None:
    task = ClassificationTask(lr=0.1, metrics={"val_error": _error_rate})
    stopping = EarlyStopping(monitor="val_error", mode="min", patience=5)
    checkpoint = ModelCheckpoint(tmp_path, monitor="val_error", mode="min")
    trainer = quiet_trainer(
        linear_classifier(), task, max_epochs=3, callbacks=[stopping, checkpoint]
    )

    history = trainer.fit(separable_data(32), separable_data(16, seed=1))

    assert trainer.available_metrics == (
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "val_error",
        "lr",
    )
    errors = history.column("val_error")
    accuracies = history.column("val_accuracy")
    assert errors == pytest.approx([1 - a for a in accuracies])  # type: ignore[operator]
    assert stopping.best_score == min(errors)  # type: ignore[type-var]
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.history[-1]["val_error"] == checkpoint.best_score


def test_task_metrics_need_validation_data() -> None:
    task = ClassificationTask(metrics={"val_error": _error_rate})
    trainer = quiet_trainer(
        linear_classifier(), task, max_epochs=1, callbacks=[EarlyStopping(monitor="val_error")]
    )

    with pytest.raises(ValueError, match=r"'val_error'.*\(pass validation data to fit\)"):
        trainer.fit(separable_data(8))
    assert len(trainer.history) == 0


def test_the_loop_trains_what_the_task_says() -> None:
    class HalfLoss(ClassificationTask):
        """A subclass changing one step: the loss of every training batch halved."""

        def training_step(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return super().training_step(outputs, targets) / 2

    plain = quiet_trainer(linear_classifier(), ClassificationTask(), max_epochs=1, seed=0)
    halved = quiet_trainer(linear_classifier(), HalfLoss(), max_epochs=1, seed=0)

    first = plain.fit(separable_data(16))[0].train_loss
    second = halved.fit(separable_data(16))[0].train_loss

    assert second == pytest.approx(first / 2)


def _targets() -> torch.Tensor:
    return torch.tensor([0, 1, 2, 3, 3, 0])


def _logits() -> torch.Tensor:
    return torch.randn(6, 4, generator=torch.Generator().manual_seed(0)) * 3


def test_the_default_loss_is_the_cross_entropy_of_logits() -> None:
    task = ClassificationTask()
    task.setup(None, num_classes=4, device=torch.device("cpu"))

    loss = task.training_step(_logits(), _targets())

    assert loss.item() == pytest.approx(nn.functional.cross_entropy(_logits(), _targets()).item())
    assert loss.item() > 0


def test_balance_weights_weights_the_cross_entropy_of_logits() -> None:
    task = ClassificationTask(balance="weights")
    targets = [0, 0, 0, 1, 2, 3]
    task.setup(targets, num_classes=4, device=torch.device("cpu"))

    loss = task.training_step(_logits(), _targets())

    weights = torch.tensor([0.5, 1.5, 1.5, 1.5])
    expected = nn.functional.cross_entropy(_logits(), _targets(), weight=weights)
    assert loss.item() == pytest.approx(expected.item())


@pytest.mark.parametrize("balance", [None, "weights"])
def test_log_probabilities_get_the_nll_loss_bit_for_bit(balance: str | None) -> None:
    """A network ending in LogSoftmax trains exactly as with 0.1's NLLLoss."""
    task = ClassificationTask(balance=balance)
    task.setup([0, 0, 0, 1, 2, 3], num_classes=4, device=torch.device("cpu"))
    log_probabilities = torch.log_softmax(_logits(), dim=1)

    loss = task.training_step(log_probabilities, _targets())

    weight = task.criterion.weight
    assert torch.equal(loss, nn.NLLLoss(weight=weight)(log_probabilities, _targets()))


def test_a_fit_of_a_log_softmax_model_is_the_fit_with_nll_loss() -> None:
    default = quiet_trainer(linear_classifier(), ClassificationTask(), max_epochs=2, seed=0)
    nll = quiet_trainer(
        linear_classifier(), ClassificationTask(loss=nn.NLLLoss()), max_epochs=2, seed=0
    )

    first = default.fit(separable_data(16), separable_data(8, seed=1))
    second = nll.fit(separable_data(16), separable_data(8, seed=1))

    assert [e.metrics() for e in first] == [e.metrics() for e in second]


def test_a_network_returning_logits_trains_on_a_bounded_loss() -> None:
    torch.manual_seed(0)
    network = nn.Sequential(nn.Flatten(), nn.Linear(8, 4))  # no LogSoftmax: logits
    model = Classifier(network, classes=CLASSES)

    history = quiet_trainer(model, ClassificationTask(lr=0.1), max_epochs=3, seed=0).fit(
        separable_data(32)
    )

    losses = [epoch.train_loss for epoch in history]
    assert all(loss > 0 for loss in losses)
    assert losses[-1] < losses[0]


def _ending_in(last: nn.Module) -> Classifier:
    torch.manual_seed(0)
    return Classifier(nn.Sequential(nn.Flatten(), nn.Linear(8, 4), last), classes=CLASSES)


class _Pair(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


@pytest.mark.parametrize(
    ("last", "error", "match"),
    [
        (nn.Softmax(dim=1), ValueError, r"returned probabilities.*remove the Softmax"),
        (nn.Linear(4, 3), ValueError, r"3 scores per image for 4 classes"),
        (_Pair(), TypeError, r"returned a tuple of 2"),
    ],
    ids=["softmax", "3 outputs", "tuple"],
)
@pytest.mark.parametrize("door", ["fit", "lr_find"])
def test_outputs_that_are_no_class_scores_are_refused_at_the_first_batch(
    last: nn.Module, error: type[Exception], match: str, door: str
) -> None:
    trainer = quiet_trainer(_ending_in(last), ClassificationTask(), max_epochs=1, seed=0)

    run = trainer.fit if door == "fit" else functools.partial(trainer.lr_find, num_steps=8)

    with pytest.raises(error, match=match):
        run(separable_data(16))


def _own_collate_loader(images: torch.Tensor) -> torch.utils.data.DataLoader[Any]:
    data = torch.utils.data.TensorDataset(images, torch.arange(len(images)) % 4)
    return torch.utils.data.DataLoader(
        data, batch_size=4, collate_fn=lambda rows: tuple(map(torch.stack, zip(*rows, strict=True)))
    )


def test_the_first_training_batch_is_checked_as_a_models_input_and_no_check_is_left() -> None:
    # a DataLoader's own collate_fn of uint8 images ended in torch's "expected scalar type
    # Byte but found Float" inside the first convolution
    from _training_helpers import tiny_cnn

    model = tiny_cnn(size=32)
    trainer = quiet_trainer(model, max_epochs=1)
    with pytest.raises(ValueError, match=r"inputs are a uint8 tensor \(4, 3, 32, 32\), not pre"):
        trainer.fit(_own_collate_loader(torch.zeros(8, 3, 32, 32, dtype=torch.uint8)))
    assert not model._forward_pre_hooks
    trainer.fit(_own_collate_loader(torch.randn(8, 3, 32, 32)))
    assert not model._forward_pre_hooks


def test_a_loaders_own_collate_fn_gets_the_data_sets_rule_in_training() -> None:
    # the first training batch of a loader with its own collate_fn was checked without the
    # warnings (and refusals) its samples get through make_loader; only its val pass warned
    from torch.utils.data import DataLoader, TensorDataset

    from _training_helpers import quiet_trainer, tiny_cnn

    def stack(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        return [torch.stack([item[0] for item in batch]), torch.stack([item[1] for item in batch])]

    targets = torch.tensor([0, 1, 2, 3])
    images = DataLoader(TensorDataset(torch.rand(4, 3, 40, 48), targets), 2, collate_fn=stack)
    with pytest.raises(ValueError, match=r"images in \[0, 1\] at another size"):
        quiet_trainer(tiny_cnn(size=32), max_epochs=1).fit(images)
    unnormalised = DataLoader(TensorDataset(torch.rand(4, 3, 32, 32), targets), 2, collate_fn=stack)
    with pytest.warns(UserWarning, match="no negative value"):
        quiet_trainer(tiny_cnn(size=32), max_epochs=1).fit(unnormalised)


# ---------------------------------------------------------------------------------------------
# What the task's functions return: one number per metric, an optimizer, a scheduler of it


def _recall_per_class(result: EvaluationResult) -> Any:
    """sklearn's ``recall_score(average=None)``: one value per class, not one number."""
    matrix = result.confusion_matrix
    return np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)


def _missing_return(result: EvaluationResult) -> Any:  # noqa: RET503 (the bug tested)
    if result.accuracy > 2:
        return result.accuracy


@pytest.mark.parametrize(
    ("metric", "shown"),
    [
        (_missing_return, "returned None (a missing `return`?): a metric returns one number"),
        (_recall_per_class, "(numpy.ndarray of shape (4,)): a metric returns one number per "),
        (lambda result: "0.5", "returned '0.5' (str): "),  # was recorded as 0.5
    ],
)
def test_a_metric_returning_other_than_one_number_stops_the_fit_naming_it(
    metric: Any, shown: str
) -> None:
    task = ClassificationTask(metrics={"val_recall": metric})
    trainer = quiet_trainer(linear_classifier(), task, max_epochs=1)

    with pytest.raises(TypeError, match=r"^metric 'val_recall' returned ") as refused:
        trainer.fit(separable_data(8), separable_data(4, seed=1))

    assert shown in str(refused.value)
    assert "\n" not in str(refused.value)
    assert len(trainer.history) == 0


def test_a_metric_of_a_tensor_or_a_numpy_number_is_recorded_as_a_float() -> None:
    task = ClassificationTask(
        metrics={
            "val_tensor": lambda result: torch.tensor(result.accuracy),
            "val_numpy": lambda result: np.float32(0.5),
        }
    )
    history = quiet_trainer(linear_classifier(), task, max_epochs=1).fit(
        separable_data(8), separable_data(4, seed=1)
    )

    assert history[0].extra == {
        "val_tensor": pytest.approx(history[0].val_accuracy),
        "val_numpy": 0.5,
    }
    assert all(type(value) is float for value in history[0].extra.values())


def test_a_metric_failing_at_a_later_epoch_keeps_the_checkpoints_of_the_epochs_before(
    tmp_path: Any,
) -> None:
    calls: list[EvaluationResult] = []

    def flaky(result: EvaluationResult) -> Any:
        calls.append(result)
        return None if len(calls) == 2 else result.accuracy

    task = ClassificationTask(metrics={"val_flaky": flaky})
    trainer = quiet_trainer(linear_classifier(), task, max_epochs=3, out_dir=tmp_path)

    with pytest.raises(TypeError, match=r"^metric 'val_flaky' returned None"):
        trainer.fit(separable_data(8), separable_data(4, seed=1))

    assert trainer.epoch == 1
    assert load_checkpoint(tmp_path / "last.pt").epoch == 1


def test_an_optimizer_factory_returning_parameter_groups_fails_when_the_trainer_is_built() -> None:
    model = tiny_cnn()
    task = ClassificationTask(
        optimizer=lambda params: discriminative_param_groups(model, 1, lr=1e-4, head_lr=1e-3)
    )

    with pytest.raises(
        TypeError,
        match=r"^ClassificationTask\(optimizer=\.\.\.\) returned \[.* \(list of \d+\), not a "
        r"torch optimizer: put the parameter groups in one, e\.g\. optimizer=lambda params: "
        r"torch\.optim\.AdamW\(discriminative_param_groups\(",
    ):
        Trainer(model, task, device="cpu", progress=False)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda optimizer: lambda epoch: 0.9**epoch, "a rule of the epoch goes into a LambdaLR"),
        (lambda optimizer: None, "for a constant rate, leave scheduler out"),
    ],
)
def test_a_scheduler_factory_returning_no_scheduler_fails_before_any_training(
    factory: Any, message: str
) -> None:
    task = ClassificationTask(scheduler=factory)

    with pytest.raises(TypeError, match=r"^ClassificationTask\(scheduler=\.\.\.\) returned "):
        Trainer(linear_classifier(), task, device="cpu", progress=False)
    with pytest.raises(TypeError, match=re.escape(message)):
        task.configure_optimizers(_parameters())


def test_a_scheduler_of_another_optimizer_is_refused() -> None:
    other = torch.optim.SGD(_parameters(), lr=0.1)
    task = ClassificationTask(scheduler=lambda optimizer: torch.optim.lr_scheduler.StepLR(other, 1))

    with pytest.raises(ValueError, match="returned a StepLR of another optimizer than the one"):
        task.configure_optimizers(_parameters())


def test_a_reduce_on_plateau_scheduler_is_a_scheduler() -> None:
    task = ClassificationTask(
        scheduler=lambda optimizer: torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    )
    optimizer, scheduler = task.configure_optimizers(_parameters())
    assert isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert scheduler.optimizer is optimizer


class _WarmUp:
    """A scheduler of a class of its own, as a hand-written warm-up is: no LRScheduler."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer, self.steps = optimizer, 0

    def step(self) -> None:
        self.steps += 1
        for group in self.optimizer.param_groups:
            group["lr"] = 0.1 * min(1.0, self.steps / 2)

    def state_dict(self) -> dict[str, int]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.steps = state["steps"]


def test_a_scheduler_of_a_class_of_its_own_that_steps_and_saves_is_taken(tmp_path: Any) -> None:
    # R15: the check of what the factory returns refused it, where it trained before
    task = ClassificationTask(lr=0.1, scheduler=_WarmUp)  # type: ignore[arg-type]
    trainer = quiet_trainer(linear_classifier(), task, max_epochs=2, out_dir=tmp_path)

    history = trainer.fit(separable_data(16), separable_data(8, seed=1))

    assert history.column("lr") == [0.1, 0.05]  # each epoch at its start, then a step
    assert load_checkpoint(tmp_path / "last.pt").scheduler_state == {"steps": 2}


@pytest.mark.parametrize(
    "factory",
    [lambda optimizer: optimizer, lambda optimizer: torch.optim.SGD(_parameters(), lr=0.1)],
    ids=["its-optimizer", "another-optimizer"],
)
def test_an_optimizer_returned_as_the_scheduler_is_refused(factory: Any) -> None:
    # R16: it steps and saves as a scheduler does, but each step would update the weights
    task = ClassificationTask(scheduler=factory)
    with pytest.raises(TypeError, match=r"returned .*SGD.*|returned .*Adam.*, not a learning-rate"):
        task.configure_optimizers(_parameters())
