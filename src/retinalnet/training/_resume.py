"""Checkpoints of a fit: the training state written, and a fit resumed from it."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from retinalnet.checkpoint import load_checkpoint, load_weights, save_checkpoint
from retinalnet.models import Classifier
from retinalnet.training._callbacks import Callback
from retinalnet.training._history import History

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
) -> Path:
    """Write the model and everything a resumed fit needs to ``path``, atomically."""
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
    )


@dataclass(frozen=True)
class ResumedState:
    """What a resumed fit continues from: its history and the epochs it completed."""

    history: History
    epoch: int


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
        If the checkpoint was trained for other classes, or its optimizer state does not
        fit ``optimizer``.
    """
    checkpoint = load_checkpoint(path, map_location=device)
    if isinstance(model, Classifier) and checkpoint.classes != model.classes:
        raise ValueError(
            f"cannot resume from {str(path)!r}: it was trained for classes "
            f"{list(checkpoint.classes)}, the model has {list(model.classes)}"
        )
    load_weights(model, checkpoint.state_dict, source=checkpoint.path)
    if checkpoint.optimizer_state is not None:
        try:
            optimizer.load_state_dict(checkpoint.optimizer_state)
        except (ValueError, KeyError) as error:
            raise ValueError(
                f"cannot resume the optimizer from {str(path)!r} ({error}); use the same "
                "optimizer and trainable parameters as the run being resumed"
            ) from None
    if scheduler is not None and checkpoint.scheduler_state is not None:
        scheduler.load_state_dict(checkpoint.scheduler_state)
    states: Mapping[str, Any] = checkpoint.callback_states
    for key, callback in zip(_state_keys(callbacks), callbacks, strict=True):
        if key in states:
            callback.load_state_dict(states[key])
    logger.info("resumed from %s after epoch %d", path, checkpoint.epoch)
    return ResumedState(History.from_records(checkpoint.history), checkpoint.epoch)


def _state_keys(callbacks: Sequence[Callback]) -> list[str]:
    """Checkpoint keys of the callbacks' states: ``state_key``, numbered when repeated."""
    keys: list[str] = []
    for callback in callbacks:
        key = callback.state_key
        repeats = sum(1 for k in keys if k == key or k.startswith(f"{key}#"))
        keys.append(f"{key}#{repeats + 1}" if repeats else key)
    return keys
