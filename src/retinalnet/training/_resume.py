"""Checkpoints of a fit: the training state written, and a fit resumed from it."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from retinalnet.checkpoint import (
    load_checkpoint,
    load_weights,
    preprocessing_differences,
    save_checkpoint,
)
from retinalnet.models import Classifier
from retinalnet.training._callbacks import Callback
from retinalnet.training._history import History
from retinalnet.transforms import Preprocessing

__all__ = ["ResumedState", "resume", "save_training_state"]

logger = logging.getLogger(__name__)


def save_training_state(
    path: str | os.PathLike[str],
    model: Classifier,
    *,
    epoch: int,
    history: History,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    callbacks: Sequence[Callback],
    loop_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write the model and everything a resumed fit needs to ``path``, atomically: the
    optimizer, scheduler and callback states, and the loop's random generators and data
    order (``loop_state``)."""
    states = {
        key: callback.state_dict()
        for key, callback in zip(_state_keys(callbacks), callbacks, strict=True)
    }
    return save_checkpoint(
        path,
        model,
        epoch=epoch,
        history=history.to_records(),
        optimizer_state=optimizer.state_dict(),
        scheduler_state=scheduler.state_dict() if scheduler is not None else None,
        callback_states=states,
        loop_state=loop_state,
    )


@dataclass(frozen=True)
class ResumedState:
    """What a resumed fit continues from: its history, the epochs it completed, and the
    loop state (random generators, data order) to continue."""

    history: History
    epoch: int
    loop_state: dict[str, Any]


def resume(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    *,
    device: torch.device,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    callbacks: Sequence[Callback],
) -> ResumedState:
    """Load the weights, optimizer, scheduler and callback states that ``path`` holds.

    Raises
    ------
    ValueError
        If the checkpoint was trained for other classes, its optimizer state does not fit
        ``optimizer``, or a part of it is malformed (the message names the file and the
        field).
    """
    checkpoint = load_checkpoint(path, map_location=device)
    source = repr(str(path))
    if isinstance(model, Classifier) and checkpoint.classes != model.classes:
        raise ValueError(
            f"cannot resume from {source}: it was trained for classes "
            f"{list(checkpoint.classes)}, the model has {list(model.classes)}"
        )
    if isinstance(model, Classifier):
        _check_preprocessing(source, checkpoint.preprocessing, model.preprocessing)
    try:
        history = History.from_records(checkpoint.history)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"cannot resume from {source}: field 'history' is malformed: {error}"
        ) from None
    load_weights(model, checkpoint.state_dict, source=checkpoint.path)
    if checkpoint.optimizer_state is not None:
        configured = _base_rates(optimizer)
        try:
            optimizer.load_state_dict(checkpoint.optimizer_state)
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise ValueError(
                f"cannot resume the optimizer from {source} ({error}); use the same "
                "optimizer and trainable parameters as the run being resumed"
            ) from None
        restored = _base_rates(optimizer)
        if restored != configured:
            logger.warning(
                "resumed the optimizer of %s with its learning rate %s, not the %s this fit "
                "was given: a resumed fit continues the run as it was. To train on with "
                "another learning rate, start a new run",
                source,
                _rates(restored),
                _rates(configured),
            )
    if scheduler is not None and checkpoint.scheduler_state is not None:
        try:
            scheduler.load_state_dict(checkpoint.scheduler_state)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"cannot resume from {source}: field 'scheduler' {error}") from None
    states: Mapping[str, Any] = checkpoint.callback_states
    for key, callback in zip(_state_keys(callbacks), callbacks, strict=True):
        if key not in states:
            continue
        try:
            callback.load_state_dict(states[key])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            problem = f"missing {error}" if isinstance(error, KeyError) else str(error)
            raise ValueError(
                f"cannot resume from {source}: field 'callbacks.{key}' does not hold the "
                f"state of {type(callback).__name__} ({problem})"
            ) from None
    logger.info("resumed from %s after epoch %d", path, checkpoint.epoch)
    return ResumedState(history, checkpoint.epoch, checkpoint.loop_state)


def _check_preprocessing(source: str, saved: Preprocessing, current: Preprocessing) -> None:
    """Refuse to go on training a network on images prepared otherwise than so far
    (another size, normalisation or decoding); the training augmentation may change."""
    details = preprocessing_differences(saved, current)
    if details:
        raise ValueError(
            f"cannot resume from {source}: its images were prepared otherwise ({details}); "
            "build the model with the checkpoint's preprocessing (load_checkpoint(path)"
            ".preprocessing), or start a new run"
        )


def _base_rates(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's rate as the fit was given it: a scheduler keeps it as ``initial_lr`` and
    scales ``lr`` (a warm-up starts ``lr`` at a hundredth of it)."""
    return [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]


def _rates(rates: Sequence[float]) -> str:
    return ", ".join(f"{rate:g}" for rate in rates)


def _state_keys(callbacks: Sequence[Callback]) -> list[str]:
    """Checkpoint keys of the callbacks' states: ``state_key``, numbered when repeated."""
    keys: list[str] = []
    for callback in callbacks:
        key = callback.state_key
        repeats = sum(1 for k in keys if k == key or k.startswith(f"{key}#"))
        keys.append(f"{key}#{repeats + 1}" if repeats else key)
    return keys
