"""Checkpoints of a fit: the training state written, and a fit resumed from it."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from retinalnet._core.caller_warnings import warn_caller
from retinalnet.checkpoint import (
    architectures_met,
    folder_given_message,
    load_checkpoint,
    load_weights,
    other_architecture,
    preprocessing_differences,
    save_checkpoint,
)
from retinalnet.models import Classifier
from retinalnet.training._callbacks import Callback
from retinalnet.training._history import History
from retinalnet.training._resumed_schedule import (
    SCHEDULER_CLASS_KEY,
    check_resumed_schedule,
    start_rates,
    warn_of_other_rates,
)
from retinalnet.transforms import Preprocessing

__all__ = [
    "ResumedState",
    "check_epoch_size",
    "check_loop_state",
    "check_resume_path",
    "epoch_size",
    "note_other_settings",
    "resume",
    "resumed_stop",
    "run_settings",
    "save_training_state",
    "warn_of_other_images",
]

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
    order (``loop_state``, with the scheduler's class added: a resumed fit checks it)."""
    if loop_state is not None:
        scheduler_class = type(scheduler).__name__ if scheduler is not None else None
        loop_state = {**loop_state, SCHEDULER_CLASS_KEY: scheduler_class}
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


def check_resume_path(path: str | os.PathLike[str]) -> None:
    """Refuse a run's folder given to resume from, naming its ``last.pt`` (its ``best.pt``
    would go back to an earlier epoch than the run reached).

    Raises
    ------
    IsADirectoryError
        If ``path`` is a folder.
    """
    if Path(path).is_dir():
        raise IsADirectoryError(f"resume_from {folder_given_message(Path(path), 'last.pt')}")


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
        ``optimizer``, its run had a learning-rate scheduler and ``scheduler`` is ``None``
        or of another class, or the other way round, or a part of it is malformed (the
        message names the file and the field).
    """
    checkpoint = load_checkpoint(path, map_location=device)
    source = repr(str(path))
    if isinstance(model, Classifier) and checkpoint.classes != model.classes:
        raise ValueError(
            f"cannot resume from {source}: it was trained for classes "
            f"{list(checkpoint.classes)}, the model has {list(model.classes)}"
        )
    other = other_architecture(checkpoint.arch, model)
    if other is not None:
        raise ValueError(
            f"cannot resume from {source}: it was trained as arch {checkpoint.arch!r}, the "
            f"model is arch {other!r}; build the model with create_model({checkpoint.arch!r}, "
            "...)"
        )
    if isinstance(model, Classifier):
        _check_preprocessing(source, checkpoint.preprocessing, model.preprocessing)
    check_resumed_schedule(
        source,
        saved_state=checkpoint.scheduler_state,
        training_state=checkpoint.optimizer_state is not None,
        loop_state=checkpoint.loop_state,
        scheduler=scheduler,
    )
    try:
        history = History.from_records(checkpoint.history)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"cannot resume from {source}: field 'history' is malformed: {error}"
        ) from None
    archs = architectures_met(checkpoint.arch, model, checkpoint.arch_kwargs)
    load_weights(model, checkpoint.state_dict, source=checkpoint.path, archs=archs)
    if checkpoint.optimizer_state is not None:
        given = start_rates(optimizer)
        try:
            optimizer.load_state_dict(checkpoint.optimizer_state)
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise ValueError(
                f"cannot resume the optimizer from {source} ({error}); use the same "
                "optimizer and trainable parameters as the run being resumed"
            ) from None
        warn_of_other_rates(
            source,
            optimizer,
            given=given,
            history=history,
            scheduled=checkpoint.scheduler_state is not None,
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


def _state_keys(callbacks: Sequence[Callback]) -> list[str]:
    """Checkpoint keys of the callbacks' states: ``state_key``, numbered when repeated."""
    keys: list[str] = []
    for callback in callbacks:
        key = callback.state_key
        repeats = sum(1 for k in keys if k == key or k.startswith(f"{key}#"))
        keys.append(f"{key}#{repeats + 1}" if repeats else key)
    return keys


def check_loop_state(state: Mapping[str, Any], *, source: str) -> None:
    """Refuse a malformed loop state of a resumed checkpoint before the fit does any work.

    Raises
    ------
    ValueError
        Naming the checkpoint and the field.
    """
    for part in ("random", "data", "scaler"):
        if not isinstance(state.get(part, {}), Mapping):
            raise ValueError(
                f"cannot resume from {source}: field 'loop.{part}' must be a dict, got "
                f"{type(state[part]).__name__}"
            )
    if not isinstance(state.get("should_stop", False), bool):
        raise ValueError(
            f"cannot resume from {source}: field 'loop.should_stop' must be a bool, got "
            f"{type(state['should_stop']).__name__}"
        )
    if not isinstance(state.get("stop_reason"), str | None):
        raise ValueError(
            f"cannot resume from {source}: field 'loop.stop_reason' must be a str or None, "
            f"got {type(state['stop_reason']).__name__}"
        )
    for part in ("steps_per_epoch", "batch_size", "train_samples", "num_workers", "threads"):
        value = state.get(part)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(
                f"cannot resume from {source}: field 'loop.{part}' must be an int or None, "
                f"got {type(value).__name__}"
            )


def resumed_stop(state: Mapping[str, Any], *, epoch: int, source: str) -> tuple[bool, str | None]:
    """The stop decision of the run resumed, as ``(should_stop, stop_reason)``: a run a
    callback ended (early stopping) has nothing left to train, as a run that reached
    ``max_epochs``, and the fit goes straight to its end (the best weights restored, a
    calibration done again); said in one warning. A loop state written before the decision
    was recorded gives ``(False, None)``: the fit trains on, as it did."""
    if not state.get("should_stop"):
        return False, None
    reason = state.get("stop_reason")
    logger.warning(
        "%s: the run had stopped early at epoch %d%s, nothing to train; start a new run to "
        "train it further",
        source,
        epoch,
        f" ({reason})" if reason else "",
    )
    return True, reason


def check_epoch_size(
    state: Mapping[str, Any],
    loader: DataLoader[Any] | None,
    *,
    per_step: bool,
    source: str,
) -> None:
    """Refuse to resume a per-step learning-rate schedule (``per_step``) over epochs of
    another number of steps (another batch size or number of training images): the
    schedule's length was fixed by the run's steps, and would end early (a rate of 0 for
    the epochs left) or never. Without a per-step schedule, warn, as for another learning
    rate. A loop state written before epochs were recorded is not checked.

    Raises
    ------
    ValueError
        Naming both runs' steps per epoch (images / batch size) and the fix.
    """
    saved_steps = state.get("steps_per_epoch")
    if saved_steps is None or loader is None:
        return
    now = epoch_size(loader)
    if now["steps_per_epoch"] is None:
        return
    was, this = _described(state), _described(now)
    if now["steps_per_epoch"] != saved_steps:
        if per_step:
            raise ValueError(
                f"cannot resume from {source}: its run took {was} and this fit takes "
                f"{this}, and its learning-rate schedule is per step, sized for the "
                "run's steps; resume with the same training data, batch size and feature "
                "cache (each augmented view it caches is one more image of an epoch), or "
                "start a new run"
            )
        fix = "training data and batch size"
    elif state.get("batch_size") != now["batch_size"]:
        fix = "batch size"
    else:
        return
    logger.warning(
        "%s: its run took %s and this fit takes %s: the epochs left differ from the run's; "
        "resume with the same %s to repeat it",
        source,
        was,
        this,
        fix,
    )


def epoch_size(loader: DataLoader[Any] | None) -> dict[str, int | None]:
    """An epoch's optimizer steps, batch size and training samples (``None`` where the
    loader cannot tell, an iterable data set say)."""
    sizes: dict[str, int | None] = {
        "steps_per_epoch": None,
        "batch_size": None,
        "train_samples": None,
    }
    if loader is None:
        return sizes
    sizes["batch_size"] = loader.batch_size
    with contextlib.suppress(TypeError, NotImplementedError):
        sizes["steps_per_epoch"] = len(loader)
    with contextlib.suppress(TypeError, NotImplementedError):
        sizes["train_samples"] = len(loader.sampler)  # type: ignore[arg-type]
    return sizes


def run_settings(loader: DataLoader[Any] | None) -> dict[str, int | None]:
    """What a run repeats bit for bit only with, besides its seed: the training loader's
    worker processes (each draws its own augmentation) and torch's threads (the order of
    a sum's terms)."""
    return {
        "num_workers": loader.num_workers if loader is not None else None,
        "threads": torch.get_num_threads(),
    }


def note_other_settings(
    saved: Mapping[str, Any], now: Mapping[str, int | None], *, source: str
) -> None:
    """Log (INFO) the :func:`run_settings` a resumed fit runs with that differ from its
    run's: it goes on as it would, but is not the uninterrupted run bit for bit."""
    names = {"num_workers": "DataLoader workers (--workers)", "threads": "torch threads"}
    changed = [
        f"{label}: {saved[key]} then, {now[key]} now"
        for key, label in names.items()
        if saved.get(key) is not None and saved[key] != now.get(key)
    ]
    if changed:
        logger.info(
            "resuming from %s with other settings than its run's (%s): the epochs left can "
            "differ slightly from the uninterrupted run's (augmentation drawn in workers, "
            "the order of sums)",
            source,
            "; ".join(changed),
        )


def warn_of_other_images(saved: object, now: str | None, *, source: str) -> None:
    """Warn when a resumed fit trains on other images than its run did: as many or not,
    their names or classes differ (``saved`` and ``now`` are
    :func:`~retinalnet.datasets._sample_names.sample_names_digest` digests; a run or a data
    set that does not list them is not checked). ``retinalnet train --resume`` refuses
    this before any work; in Python it may be meant, and is said once."""
    if not isinstance(saved, str) or now is None or saved == now:
        return
    warn_caller(
        f"resuming from {source} on other training images than its run's (other file names "
        "or classes): the epochs left train on other data than the run did; resume with "
        "the run's training data to repeat it, or start a new run",
        UserWarning,
    )


def _described(sizes: Mapping[str, Any]) -> str:
    """``"2 steps per epoch (6 images / batch size 4)"``, as far as ``sizes`` tells."""
    steps = sizes.get("steps_per_epoch")
    samples, batch = sizes.get("train_samples"), sizes.get("batch_size")
    detail = f" ({samples} images / batch size {batch})" if samples and batch else ""
    return f"{steps} steps per epoch{detail}"
