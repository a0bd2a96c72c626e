"""The learning-rate range test: a few training steps at exponentially growing rates, the
smoothed loss of each, and a suggested rate; the model and optimizer are restored afterwards.

The test comes from Leslie Smith ("Cyclical Learning Rates for Training Neural Networks",
WACV 2017) and is what fastai's ``Learner.lr_find`` and Lightning's ``Tuner.lr_find`` run:
the rate grows from ``min_lr`` to ``max_lr`` over ``num_steps`` optimizer steps, the loss
of each batch is smoothed with a bias-corrected exponential moving average, and the test
stops once the smoothed loss exceeds four times its lowest value (it diverged).
:meth:`Trainer.lr_find <retinalnet.training.Trainer.lr_find>` runs it with the Trainer's
task, device, precision and feature cache.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from retinalnet._core.bool_options import check_bool
from retinalnet._core.classes import check_same_classes
from retinalnet._core.counts import as_integer, as_number
from retinalnet._core.device_copies import copy_to
from retinalnet._core.loaders import DataSource, shut_down_workers, unchecked_samples
from retinalnet._core.model_use import modes_restored
from retinalnet.models import Classifier
from retinalnet.precision import autocast
from retinalnet.training._data import train_targets, warn_of_missing_classes
from retinalnet.training._distributed import DistributedContext, distributed_context
from retinalnet.training._epoch import enter_train_mode
from retinalnet.training._last_batch import TrainingBatches
from retinalnet.training._lr_result import DEFAULT_RULE, SUGGESTION_RULES, LRFinderResult
from retinalnet.training._seed import random_state, set_random_state

if TYPE_CHECKING:
    from retinalnet.training._trainer import Trainer

__all__ = ["apply_lr", "find_lr", "lr_range_test", "restored_afterwards"]

logger = logging.getLogger(__name__)


def _check_range(
    min_lr: float, max_lr: float, num_steps: int, rule: str
) -> tuple[float, float, int]:
    """``min_lr``, ``max_lr`` and ``num_steps`` as Python numbers, or a one-line error."""
    for name, value in (("min_lr", min_lr), ("max_lr", max_lr)):
        number = as_number(value)
        if number is None:
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not (number > 0 and math.isfinite(number)):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if not max_lr > min_lr:
        raise ValueError(
            f"max_lr must be greater than min_lr, got min_lr={min_lr!r} and max_lr={max_lr!r}"
        )
    steps = as_integer(num_steps)
    if steps is None or steps < 8:
        raise ValueError(
            f"num_steps must be an int >= 8 (the rules skip the first and last steps), got "
            f"{num_steps!r}; 100 is usual"
        )
    if rule not in SUGGESTION_RULES:
        raise ValueError(
            f"rule must be one of {', '.join(map(repr, SUGGESTION_RULES))}, got {rule!r}"
        )
    return float(min_lr), float(max_lr), steps


def _cycle(batches: Iterable[Any]) -> Iterator[Any]:
    """The batches again and again (a short data set gives as many steps as asked for)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training loader produced no batches")


def _base_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's own rate: the scheduler's starting rate if one set it, else ``lr``."""
    return [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]


def _ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    bases = _base_lrs(optimizer)
    if not bases[0] > 0:
        raise ValueError(
            f"the optimizer's first parameter group has lr={bases[0]!r}; the other groups' "
            "rates are scaled with it, so it must be > 0"
        )
    return [base / bases[0] for base in bases]


def lr_range_test(
    forward: nn.Module,
    batches: Iterable[Any],
    *,
    optimizer: torch.optim.Optimizer,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    num_steps: int = 100,
    smoothing: float = 0.98,
    diverge: float = 4.0,
    rule: str = DEFAULT_RULE,
    dist: DistributedContext | None = None,
) -> LRFinderResult:
    """Run the range test's steps; the model and optimizer are left as the steps made them.

    :func:`find_lr` (and :meth:`Trainer.lr_find <retinalnet.training.Trainer.lr_find>`)
    wrap this with the restoring of everything it changes.

    Parameters
    ----------
    forward
        What a batch goes through (the model, or its head on cached features).
    batches
        ``(inputs, targets)`` batches, repeated if there are fewer than ``num_steps``.
    optimizer
        Its parameter groups' rates are set at each step: the first group's to the test's
        rate, the others in the same proportion to it as before.
    loss
        The loss of a batch's outputs and targets.
    device, dtype, scaler
        Where batches go (floating-point inputs as float32, as a fit's steps take them),
        the autocast dtype (``None``: fp32) and the fp16 loss scaler.
    min_lr, max_lr, num_steps
        The rates, exponentially spaced from ``min_lr`` to ``max_lr`` over ``num_steps``.
    smoothing
        Weight of the past in the moving average of the loss (0.98, as fastai and
        Lightning).
    diverge
        Stop once the smoothed loss exceeds ``diverge`` times its lowest value.
    rule
        The rule of the result's :attr:`~LRFinderResult.suggestion`.
    dist
        In a distributed run the loss of each step is averaged over the processes, so every
        process gets the same curve and suggestion.

    Returns
    -------
    LRFinderResult

    Raises
    ------
    ValueError
        If a setting is out of range or the batches are empty.
    """
    min_lr, max_lr, num_steps = _check_range(min_lr, max_lr, num_steps, rule)
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    if not diverge > 1:
        raise ValueError(f"diverge must be a number > 1, got {diverge!r}")
    dist = dist if dist is not None else DistributedContext()
    scaler = scaler if scaler is not None else torch.amp.GradScaler("cuda", enabled=False)
    ratios = _ratios(optimizer)
    lrs: list[float] = []
    losses: list[float] = []
    raw: list[float] = []
    average, best = 0.0, math.inf
    stop_reason = f"ran all {num_steps} steps"
    growth = max_lr / min_lr
    for step, (inputs, targets) in zip(range(num_steps), _cycle(batches), strict=False):
        lr = min_lr * growth ** (step / (num_steps - 1))
        for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
            group["lr"] = lr * ratio
        # float32 from any floating dtype, as a fit's steps take them (tensors made under
        # torch.set_default_dtype(torch.float64) are float64); autocast lowers a step itself
        floating = inputs.is_floating_point()
        inputs = copy_to(inputs, device, torch.float32 if floating else None)
        targets = copy_to(targets, device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            batch_loss = loss(forward(inputs), targets)
        torch.autograd.backward(scaler.scale(batch_loss))
        scaler.step(optimizer)
        scaler.update()
        value = float(batch_loss.detach())
        if dist.enabled:
            value = dist.sum([value], device)[0] / dist.world_size
        if not math.isfinite(value):
            stop_reason = f"the loss became {value} at lr {lr:.1e}"
            break
        average = smoothing * average + (1 - smoothing) * value
        smoothed = average / (1 - smoothing ** (step + 1))
        lrs.append(lr)
        raw.append(value)
        losses.append(smoothed)
        best = min(best, smoothed)
        if step > 0 and smoothed > diverge * best:
            stop_reason = f"the loss diverged at lr {lr:.1e}"
            break
    optimizer.zero_grad(set_to_none=True)
    return LRFinderResult(tuple(lrs), tuple(losses), tuple(raw), rule, stop_reason)


def _changeable(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of what training can change: trainable parameters and every buffer."""
    state = {
        f"p:{name}": p.detach().clone() for name, p in model.named_parameters() if p.requires_grad
    }
    state.update({f"b:{name}": b.detach().clone() for name, b in model.named_buffers()})
    return state


def _put_back(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if f"p:{name}" in state:
                p.copy_(state[f"p:{name}"])
        for name, b in model.named_buffers():
            if f"b:{name}" in state:
                b.copy_(state[f"b:{name}"])


@contextlib.contextmanager
def restored_afterwards(
    model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
) -> Iterator[None]:
    """Put back, on leaving (an error too), the model's trainable weights and buffers, the
    train/eval mode of each module, the optimizer's state and rates, the loss scaler and the
    random generators of Python, NumPy and torch."""
    weights = _changeable(model)
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    scaler_state = copy.deepcopy(scaler.state_dict()) if scaler.is_enabled() else None
    generators = random_state()
    try:
        with modes_restored(model):
            yield
    finally:
        _put_back(model, weights)
        optimizer.load_state_dict(optimizer_state)
        if scaler_state is not None:
            scaler.load_state_dict(scaler_state)
        set_random_state(generators, source="lr_find")


def apply_lr(trainer: Trainer, lr: float) -> None:
    """Make ``lr`` the rate of the trainer's first parameter group, the other groups scaled
    with it (and the scheduler's starting rates); with the task's default Adam, also
    ``trainer.task.lr``.

    Raises
    ------
    ValueError
        If ``lr`` is not a finite number > 0.
    """
    number = as_number(lr)
    if number is None or not (number > 0 and math.isfinite(number)):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    lr = number  # a Python float in the optimizer's state (a checkpoint loads no NumPy)
    optimizer = trainer.optimizer
    ratios = _ratios(optimizer)
    factor = lr / _base_lrs(optimizer)[0]
    for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
        group["lr"] = group["lr"] * factor if "initial_lr" in group else lr * ratio
        if "initial_lr" in group:
            group["initial_lr"] = lr * ratio
    scheduler = trainer.scheduler
    if scheduler is not None:
        for name in ("base_lrs", "_last_lr"):
            values = getattr(scheduler, name, None)
            if isinstance(values, list):
                setattr(scheduler, name, [float(value) * factor for value in values])
    if trainer.task.optimizer is None:
        trainer.task.lr = float(lr)


def find_lr(
    trainer: Trainer,
    train: DataSource,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    num_steps: int = 100,
    rule: str = DEFAULT_RULE,
    apply: bool = False,
) -> LRFinderResult:
    """The range test with a Trainer's settings; see :meth:`Trainer.lr_find
    <retinalnet.training.Trainer.lr_find>`."""
    min_lr, max_lr, num_steps = _check_range(min_lr, max_lr, num_steps, rule)
    apply = check_bool(apply, "apply")  # "no" read as True would change the fit's rate
    model = trainer.model
    if isinstance(model, Classifier):
        check_same_classes(model.classes, train, where="Trainer.lr_find")
    # as fit does: a rate found on images of one class would be the fit's, which refuses them
    warn_of_missing_classes(train, model.classes if isinstance(model, Classifier) else None)
    trainer._prepare_run("Trainer.lr_find")  # the optimizer the coming fit starts with
    model.to(trainer.device)
    config, _ = trainer._feature_cache_for(train)
    cached = trainer._cached_or_none(train, views=config.views) if config is not None else None
    if cached is None:
        trainer._head = None  # the whole model trains (a fit before may have cached)
    data = cached if cached is not None else train
    task = trainer.task
    targets = train_targets(data, task.balance)
    sampler = task.sampler(targets, seed=trainer.seed)
    loader = trainer._loader(data, train=True, sampler=sampler, name="data")
    num_classes = len(model.classes) if isinstance(model, Classifier) else None
    task.setup(
        targets,
        num_classes=num_classes,
        device=trainer.device,
        unchecked_inputs=unchecked_samples(loader),
    )
    with contextlib.ExitStack() as stack:
        if loader is not train:  # its worker processes end with the test
            stack.callback(shut_down_workers, loader)
        stack.enter_context(restored_afterwards(model, trainer.optimizer, trainer._scaler))
        stack.callback(task._end_run)  # no hook left on the model, also after an interrupt
        enter_train_mode(model)
        # as a training pass: the task's hook (its batch-norm modes, the network's name for
        # its messages, the first batch's inputs checked)
        task.on_train_epoch_start(trainer._forward_module)
        dist = distributed_context(trainer.device)
        # as a fit's epochs: a last batch of one image that a batch-norm layer in train mode
        # cannot take is left out (torch refused it mid-test); checked at each pass over it
        batches = TrainingBatches(
            trainer._forward_module, loader, tell=dist.is_main, per_process=dist.enabled
        )
        stack.callback(batches.close)  # no hook left on the model when a step fails
        result = lr_range_test(
            trainer._forward_module,
            batches,
            optimizer=trainer.optimizer,
            loss=task.training_step,
            device=trainer.device,
            dtype=trainer._dtype,
            scaler=trainer._scaler,
            min_lr=min_lr,
            max_lr=max_lr,
            num_steps=num_steps,
            rule=rule,
            dist=dist,
        )
    logger.info("%s", result)
    if apply:
        if result.suggestion is None:
            raise ValueError(
                f"lr_find suggests no rate ({result}), so the learning rate is left as it "
                "was: give the test more steps before the loss diverges (a lower min_lr, a "
                "higher num_steps) or set the rate yourself"
            )
        apply_lr(trainer, result.suggestion)
    return result
