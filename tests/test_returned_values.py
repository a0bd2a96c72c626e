"""What a task's functions and ``Trainer.log`` give a fit: one number per metric, a torch
optimizer, a scheduler of that optimizer; anything else refused in one line naming the fix."""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from retinalnet.training._returned_values import (
    checked_optimizer,
    checked_scheduler,
    metric_number,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, 0.5),
        (1, 1.0),
        (float("nan"), float("nan")),
        (Fraction(1, 4), 0.25),
        (np.float32(0.5), 0.5),
        (np.int64(3), 3.0),
        (np.array(0.25), 0.25),  # np.mean(...) of a 0-d array
        (np.array([0.25]), 0.25),
        (torch.tensor(0.75), 0.75),  # loss.mean()
        (torch.tensor([2]), 2.0),
        (torch.tensor(0.5, requires_grad=True), 0.5),
    ],
)
def test_one_real_number_is_a_metric(value: object, expected: float) -> None:
    number = metric_number("val_auc", value)
    assert type(number) is float
    assert number == pytest.approx(expected, nan_ok=True)


MANY = "; for per-class values, give one metric per class, e.g. metrics="


@pytest.mark.parametrize(
    ("value", "shown", "fix"),
    [
        (None, "None (a missing `return`?)", ", e.g. return float(...)"),
        ("0.5", "'0.5' (str)", ", e.g. return float(...)"),  # was read as 0.5
        (True, "True (bool)", ", e.g. return float(...)"),
        (np.bool_(True), "(numpy.bool", ", e.g. return float(...)"),
        (0.5j, "0.5j (complex)", ", e.g. return float(...)"),
        (torch.tensor(True), "tensor(True) (torch.Tensor of shape ())", ", e.g. return"),
        (np.array("0.5"), "array('0.5', dtype='<U3') (numpy.ndarray of shape ())", ", e.g."),
        (np.array([0.5, 0.25, 1.0, 0.0]), "(numpy.ndarray of shape (4,))", MANY),  # average=None
        (torch.tensor([0.5, 0.25]), "tensor([0.5000, 0.2500]) (torch.Tensor of shape (2,))", MANY),
        (np.zeros((0,)), "(numpy.ndarray of shape (0,))", MANY),
        ([0.5, 0.25], "[0.5, 0.25] (list of 2)", MANY),
        ({"CNV": 0.5}, "{'CNV': 0.5} (dict)", MANY),
    ],
)
def test_what_is_not_one_number_is_refused_naming_the_metric_and_the_fix(
    value: object, shown: str, fix: str
) -> None:
    with pytest.raises(TypeError) as refused:
        metric_number("val_recall", value)

    message = str(refused.value)
    assert message.startswith("metric 'val_recall' returned ")
    assert shown in message
    assert ": a metric returns one number per validation" + fix in message
    assert "\n" not in message


def test_a_logged_value_is_told_how_to_log() -> None:
    with pytest.raises(TypeError) as many:
        metric_number("val_recall", np.ones(2), logged=True)
    with pytest.raises(TypeError) as text:
        metric_number("val_recall", "0.5", logged=True)

    assert str(many.value) == (
        "Trainer.log('val_recall', value) got array([1., 1.]) (numpy.ndarray of shape (2,)): "
        "log one number; for per-class values, log one metric per class, e.g. "
        'trainer.log(f"val_recall_{class_name}", value)'
    )
    assert str(text.value) == (
        "Trainer.log('val_recall', value) got '0.5' (str): log one number, e.g. "
        "trainer.log('val_recall', float(value))"
    )


def test_a_long_value_is_shown_short() -> None:
    with pytest.raises(TypeError) as refused:
        metric_number("val_recall", np.arange(1000.0))
    assert len(str(refused.value)) < 300


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)


def test_an_optimizer_and_a_scheduler_of_it_are_what_the_factories_return() -> None:
    optimizer = _optimizer()
    step = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)

    assert checked_optimizer(optimizer, "ClassificationTask") is optimizer
    assert checked_scheduler(step, optimizer, "ClassificationTask") is step
    assert checked_scheduler(plateau, optimizer, "ClassificationTask") is plateau


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (
            [{"params": [], "lr": 0.1}],  # discriminative_param_groups(...), not wrapped
            "ClassificationTask(optimizer=...) returned [{'lr': 0.1, 'params': []}] (list of "
            "1), not a torch optimizer: put the parameter groups in one, e.g. optimizer="
            "lambda params: torch.optim.AdamW(discriminative_param_groups(model, 2, lr=1e-4, "
            "head_lr=1e-3))",
        ),
        (
            None,
            "ClassificationTask(optimizer=...) returned None, not a torch optimizer: return "
            "one built from the parameters it is given, e.g. optimizer=lambda params: "
            "torch.optim.SGD(params, lr=0.01)",
        ),
    ],
)
def test_an_optimizer_factory_returning_no_optimizer_is_refused(
    returned: object, message: str
) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        checked_optimizer(returned, "ClassificationTask")


def _rule(epoch: int) -> float:
    return 0.9**epoch


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (
            _rule,  # LambdaLR's rule, not LambdaLR
            "FineTuneTask(scheduler=...) returned the function _rule, not a learning-rate "
            "scheduler: a rule of the epoch goes into a LambdaLR, e.g. scheduler=lambda "
            "optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.9**epoch)",
        ),
        (
            None,  # a function missing its return: was a constant rate, said nowhere
            "FineTuneTask(scheduler=...) returned None, not a learning-rate scheduler: return "
            "one built from the optimizer it is given, e.g. scheduler=lambda optimizer: "
            "torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20); for a constant "
            "rate, leave scheduler out",
        ),
    ],
)
def test_a_scheduler_factory_returning_no_scheduler_is_refused(
    returned: object, message: str
) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        checked_scheduler(returned, _optimizer(), "FineTuneTask")


def test_a_scheduler_of_another_optimizer_is_refused() -> None:
    other = torch.optim.lr_scheduler.StepLR(_optimizer(), 1)

    with pytest.raises(ValueError, match=r"returned a StepLR of another optimizer than the one"):
        checked_scheduler(other, _optimizer(), "ClassificationTask")
