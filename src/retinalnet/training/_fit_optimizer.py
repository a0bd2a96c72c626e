"""The optimizer and scheduler of each fit, built from what trains when the fit starts.

Every :meth:`Trainer.fit <retinalnet.training.Trainer.fit>` is a fresh run from the
model's current weights, as Lightning calls ``configure_optimizers`` at every fit: the task
builds the optimizer and its scheduler from the parameters trainable at that moment and its
settings then (``task.lr``, say). The one the Trainer built before is kept only while no fit
has used it and nothing it was built from changed, so what was set on it in between
(``lr_find(apply=True)``) reaches the coming fit. An optimizer object of the caller's (given
to the task, or put in ``trainer.optimizer``) cannot be built again: a fit whose trainable
parameters differ from those it was given is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from retinalnet._core.caller_warnings import warn_caller
from retinalnet.training._task import ClassificationTask

__all__ = ["BuiltOptimizer", "build_optimizer", "optimizer_for_run", "trainable_parameters"]

Scheduler = torch.optim.lr_scheduler.LRScheduler


@dataclass
class BuiltOptimizer:
    """An optimizer and scheduler, and what they were built from.

    Attributes
    ----------
    optimizer, scheduler
        What the Trainer exposes as ``trainer.optimizer`` and ``trainer.scheduler``.
    parameters
        The parameters trainable when they were built.
    settings
        The task's settings they were built with (:func:`_task_settings`).
    rates
        Each parameter group's rate as built (to tell when one was set since).
    used
        Whether a fit has run with them (its steps, or a resumed run's state loaded).
    own
        Whether they are objects of the caller's, put in ``trainer.optimizer`` (or
        ``trainer.scheduler``): used as they are, never built again.
    """

    optimizer: torch.optim.Optimizer
    scheduler: Scheduler | None
    parameters: tuple[nn.Parameter, ...]
    settings: tuple[object, ...]
    rates: list[float]
    used: bool = False
    own: bool = False


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model`` that train.

    Raises
    ------
    ValueError
        If none does.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(
            "the model has no trainable parameters (everything is frozen); attach a new "
            "head with retinalnet.models.replace_head or freeze less"
        )
    return trainable


def _task_settings(task: ClassificationTask) -> tuple[object, ...]:
    return (task.optimizer, task.scheduler, task.lr, task.weight_decay, task.scheduler_interval)


def _base_rates(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's rate as set: a scheduler keeps it as ``initial_lr`` and scales ``lr``."""
    return [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]


def build_optimizer(task: ClassificationTask, parameters: list[nn.Parameter]) -> BuiltOptimizer:
    """The task's optimizer and scheduler for ``parameters``."""
    optimizer, scheduler = task.configure_optimizers(parameters)
    return BuiltOptimizer(
        optimizer, scheduler, tuple(parameters), _task_settings(task), _base_rates(optimizer)
    )


def _same(first: tuple[nn.Parameter, ...], second: list[nn.Parameter]) -> bool:
    return len(first) == len(second) and all(a is b for a, b in zip(first, second, strict=True))


def optimizer_for_run(
    model: nn.Module,
    task: ClassificationTask,
    built: BuiltOptimizer,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler | None,
    where: str,
) -> BuiltOptimizer:
    """The optimizer and scheduler ``where`` (a fit, or ``lr_find``) runs with.

    ``built`` is what the Trainer built last; ``optimizer`` and ``scheduler`` are what it
    holds now (the caller may have put their own there). A new pair is built from the task
    when ``built`` was used by a fit, the trainable parameters changed, or the task's
    settings did; else ``built`` is kept, with what was set on it since.

    Raises
    ------
    ValueError
        If the model has no trainable parameters, or the optimizer is an object of the
        caller's (``ClassificationTask(optimizer=instance)``, or put in
        ``trainer.optimizer``) and holds not every parameter trainable now.
    """
    parameters = trainable_parameters(model)
    settings = _task_settings(task)
    replaced = optimizer is not built.optimizer or scheduler is not built.scheduler
    if replaced or built.own or isinstance(task.optimizer, torch.optim.Optimizer):
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [p for p in parameters if id(p) not in held]
        if missing:  # SGD(model.parameters()) holds the frozen ones too: unfreezing is fine
            raise ValueError(
                f"{where}: {len(missing)} of the model's {len(parameters)} trainable "
                "parameter tensors are not in the optimizer object you gave (they became "
                "trainable after it was made for the others), so they would not train; give "
                "the task a function building the optimizer, ClassificationTask(optimizer="
                "lambda params: ...), so each fit builds it for what trains then, build the "
                "optimizer over all of model.parameters(), or build a new Trainer"
            )
        if replaced:  # yours, with your scheduler: used as they are
            rates = _base_rates(optimizer)
            return BuiltOptimizer(optimizer, scheduler, built.parameters, settings, rates, own=True)
        if built.own:
            return built
        if built.used or settings != built.settings:  # the same instance, its schedule anew
            for group in optimizer.param_groups:
                if "initial_lr" in group:
                    group["lr"] = group["initial_lr"]
            return build_optimizer(task, parameters)
        return built
    if not built.used and _same(built.parameters, parameters) and settings == built.settings:
        return built
    fresh = build_optimizer(task, parameters)
    if not built.used:
        before = _base_rates(built.optimizer)
        if before != built.rates and before != fresh.rates:
            changed = "the trainable parameters" if settings == built.settings else "the task"
            warn_caller(
                f"{where} builds the optimizer again ({changed} changed), with the task's "
                f"learning rates {fresh.rates}: those set on trainer.optimizer since it was "
                f"built ({before}, lr_find(apply=True) say) are dropped; to keep a rate, put "
                "it in the task (ClassificationTask(lr=...), or in your optimizer function)",
                UserWarning,
            )
    return fresh
