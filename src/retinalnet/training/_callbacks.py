"""Callbacks: hooks into the training loop, and early stopping (checkpointing is in
``_model_checkpoint.py``)."""

from __future__ import annotations

import logging
import math
import reprlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from retinalnet._core.bool_options import check_bool
from retinalnet._core.counts import as_number, check_count
from retinalnet.training._monitor import (
    check_monitor_and_mode,
    judged_otherwise,
    nan_monitor_message,
    never_a_number,
    refuse_unknown_direction,
)

if TYPE_CHECKING:
    from pathlib import Path

    from retinalnet.training._trainer import Trainer

__all__ = ["Callback", "EarlyStopping"]

logger = logging.getLogger(__name__)


class Callback:
    """Base class of training callbacks; every hook does nothing by default.

    Override the hooks you need. To stop training, set ``trainer.should_stop = True`` (and
    ``trainer.stop_reason``); the trainer finishes the epoch and ends the fit. The decision
    is kept in the checkpoints written after it: a fit resumed from them trains no more
    epochs.
    ``state_dict``/``load_state_dict`` let a resumed run resume the callback too. A callback
    can record a metric of the epoch with :meth:`Trainer.log
    <retinalnet.training.Trainer.log>`; callbacks later in the list see it, and declaring
    its name in :attr:`metric_names` lets :class:`EarlyStopping` and :class:`ModelCheckpoint`
    monitor it (with ``mode="min"`` or ``"max"``, unless the name ends in ``_loss`` or
    ``_accuracy``).

    Examples
    --------
    >>> class LogMemory(Callback):
    ...     metric_names = ("cuda_memory_gb",)
    ...
    ...     def on_epoch_end(self, trainer, epoch, metrics):
    ...         trainer.log("cuda_memory_gb", torch.cuda.max_memory_allocated() / 2**30)
    """

    metric_names: tuple[str, ...] = ()
    """Names of the metrics this callback logs with ``trainer.log`` every epoch.

    .. versionadded:: 0.2
    """

    @property
    def state_key(self) -> str:
        """Key of this callback's state in a checkpoint."""
        return type(self).__name__

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once before the first epoch (before resumed state is loaded)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Called before each epoch; ``epoch`` counts from 1."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        """Called after each epoch with its metrics (``train_loss``, ``val_loss``, ...)."""

    def on_checkpoint_saved(self, trainer: Trainer, path: Path) -> None:
        """Called after a :class:`ModelCheckpoint` wrote ``path`` whole: ``best.pt`` in an
        epoch that improved its metric, ``last.pt`` after every epoch (copy or upload it
        here). In a distributed run, on the process that writes (rank 0) only.

        .. versionadded:: 0.2
        """

    def on_fit_end(self, trainer: Trainer) -> None:
        """Called once after the last epoch, also when stopped early."""

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        """Called when the fit is interrupted by an exception (``KeyboardInterrupt`` too)."""

    def state_dict(self) -> dict[str, Any]:
        """State to store in checkpoints (plain data and tensors only)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def check_callbacks(callbacks: object, name: str = "callbacks") -> list[Callback]:
    """``callbacks`` as a list, if it is a list (or other iterable) of :class:`Callback`
    instances.

    Parameters
    ----------
    callbacks
        What was passed as ``callbacks``.
    name
        How the message names it (``"callbacks"``, ``"Trainer.callbacks"``).

    Raises
    ------
    TypeError
        If ``callbacks`` is not an iterable (a single callback, ``None``), is a string or a
        mapping, or one of its items is not a Callback instance (a class, a number); the
        message names the item's position.
    """
    if isinstance(callbacks, str | bytes | Mapping) or not isinstance(callbacks, Iterable):
        raise TypeError(
            f"{name} must be a list of Callbacks, got {type(callbacks).__name__}; pass a list "
            f"({name}=[...]), or {name}=() for none"
        )
    checked = list(callbacks)
    for position, callback in enumerate(checked):
        if isinstance(callback, Callback):
            continue
        if isinstance(callback, type) and issubclass(callback, Callback):
            raise TypeError(
                f"{name}[{position}] must be a retinalnet Callback, got the class "
                f"{callback.__name__}; pass an instance: {callback.__name__}()"
            )
        raise TypeError(
            f"{name}[{position}] must be a retinalnet Callback, got "
            f"{type(callback).__name__} ({reprlib.repr(callback)}); pass an instance of a "
            "retinalnet.training.Callback subclass (EarlyStopping, ModelCheckpoint, ...)"
        )
    return checked


def _check_monitor(monitor: str, mode: str, trainer: Trainer, owner: str) -> None:
    """At the start of a fit: refuse a monitored metric the fit does not produce (listing
    those it does), then one whose direction ``mode="auto"`` cannot tell."""
    available = trainer.available_metrics
    if monitor in available:
        refuse_unknown_direction(monitor, mode, owner)
        return
    if monitor.startswith("val_") and not trainer.has_validation:
        hint = " (pass validation data to fit)"
    else:
        hint = (
            " (a metric of your own: add it to ClassificationTask(metrics=...), or log it "
            "with trainer.log in a callback that lists it in metric_names)"
        )
    raise ValueError(
        f"{owner} monitors {monitor!r}, which this fit does not produce{hint}; "
        f"available: {', '.join(available)}"
    )


class _Tracker:
    """Keeps the best value of a metric. NaN is never an improvement."""

    def __init__(self, mode: str, min_delta: float = 0.0) -> None:
        self.mode = mode
        self.min_delta = min_delta
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.nan_seen = False  # a NaN was monitored in this fit (logged once)

    def judge(self, value: float, epoch: int, monitor: str, owner: str) -> bool:
        """:meth:`update`, logging the first NaN ``value`` of the fit (a tracker is new for
        each fit) as a warning that names ``owner`` and says what the NaN does."""
        if math.isnan(value) and not self.nan_seen:
            self.nan_seen = True
            logger.warning(nan_monitor_message(monitor, epoch, owner))
        return self.update(value, epoch)

    def improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float, epoch: int) -> bool:
        if not self.improves(value):
            return False
        self.best, self.best_epoch = value, epoch
        return True

    def state(self, monitor: str) -> dict[str, Any]:
        """The best so far, and what it is the best of, for a checkpoint."""
        return {
            "best_score": self.best,
            "best_epoch": self.best_epoch,
            "monitor": monitor,
            "mode": self.mode,
        }

    def resume(self, state: Mapping[str, Any], monitor: str, given: str, owner: str) -> bool:
        """Take the best of a resumed :meth:`state`; ``False`` if it was judged otherwise
        (logged): on another metric it is left out, the other way round it stays the one
        to beat (see :func:`~retinalnet.training._monitor.judged_otherwise`)."""
        self.best, self.best_epoch = state["best_score"], state["best_epoch"]
        otherwise = judged_otherwise(state, monitor, self.mode, given, owner)
        if otherwise == "monitor":
            self.best = self.best_epoch = None
        return otherwise is None


class EarlyStopping(Callback):
    """Stop when a metric stops improving, and keep the best weights.

    Parameters
    ----------
    monitor
        The name of the metric: ``"val_loss"`` (default), ``"val_accuracy"``,
        ``"train_loss"``, ``"lr"``, or any metric the fit produces (see
        :attr:`Trainer.available_metrics <retinalnet.training.Trainer.available_metrics>`);
        checked when the fit starts. It is the first positional parameter:
        ``EarlyStopping(patience=5)``, not ``EarlyStopping(5)``.
    mode
        ``"min"`` when lower is better, ``"max"`` when higher is better, or ``"auto"``
        (default): ``"min"`` for a loss (a name ending in ``_loss``) and ``"lr"``,
        ``"max"`` for an accuracy (ending in ``_accuracy``). For any other metric (one of
        your own, such as ``"val_auc"``) the name does not tell, and a fit refuses
        ``"auto"``: pass ``"min"`` or ``"max"``. A mode against the known direction
        (``mode="min"`` with ``"val_accuracy"``) warns.

        .. versionchanged:: 0.2
           ``"auto"`` by default, not ``"min"``, which kept the epoch with the lowest
           ``val_accuracy``.
    patience
        Epochs without improvement before stopping. A NaN (a metric the validation data
        cannot define, as an AUC without images of both classes) is never an improvement;
        its first in a fit is logged as a warning, and a fit stopped on a metric NaN in every
        epoch says so in :attr:`stop_reason`.
    min_delta
        Smallest change that counts as an improvement: a finite number >= 0.
    restore_best_weights
        At the end of the fit, load the weights of the best epoch, whether training stopped
        early or ran out of epochs (the tutorial forgot the second case). Only trainable
        parameters and buffers are kept in memory; frozen weights cannot change.

    Attributes
    ----------
    mode : str
        ``"min"`` or ``"max"``, as ``mode="auto"`` resolved it; ``"auto"`` still for a
        metric whose name does not tell (a fit then refuses it).
    stopped_epoch : int or None
        The epoch after which it stopped training.
    stop_reason : str or None
        Why it stopped, for logs and the history.

    Raises
    ------
    TypeError
        If ``monitor`` is not a string (``EarlyStopping(5)``: the message points to
        ``patience=5``).
    ValueError
        If ``monitor`` is empty, ``mode`` is not ``"auto"``, ``"min"`` or ``"max"``,
        ``patience`` is not an int >= 0, or ``min_delta`` is not a finite number >= 0. In
        a fit, when the fit does not produce ``monitor``, or ``mode="auto"`` cannot tell
        which way it is better.

    Warns
    -----
    UserWarning
        If ``mode`` is against the known direction of ``monitor`` (``"min"`` for an
        accuracy, ``"max"`` for a loss).

    Examples
    --------
    >>> from retinalnet import EarlyStopping, Trainer
    >>> trainer = Trainer(model, callbacks=[EarlyStopping(patience=3)])  # doctest: +SKIP
    >>> EarlyStopping("val_accuracy").mode
    'max'
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        patience: int = 3,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ) -> None:
        self.monitor, self.mode, self._mode_given = check_monitor_and_mode(
            monitor, mode, "EarlyStopping"
        )
        patience = check_count(patience, "patience", 0)
        delta = as_number(min_delta)
        if delta is None or not (delta >= 0 and math.isfinite(delta)):
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        self.patience = patience
        self.min_delta = delta
        self.restore_best_weights = check_bool(restore_best_weights, "restore_best_weights")
        self._reset()

    def _reset(self) -> None:
        self._tracker = _Tracker(self.mode, self.min_delta)
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.stop_reason: str | None = None
        self._best_weights: dict[str, torch.Tensor] | None = None

    @property
    def best_score(self) -> float | None:
        """Best value of the monitored metric so far."""
        return self._tracker.best

    @property
    def best_epoch(self) -> int | None:
        """Epoch (from 1) of the best value."""
        return self._tracker.best_epoch

    def on_fit_start(self, trainer: Trainer) -> None:
        _check_monitor(self.monitor, self.mode, trainer, "EarlyStopping")
        self._reset()

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        value = float(metrics[self.monitor])
        if self._tracker.judge(value, epoch, self.monitor, "EarlyStopping"):
            self.wait = 0
            if self.restore_best_weights:
                self._best_weights = _changeable_state(trainer.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            if self.best_score is None:  # NaN in every epoch: nothing to name as the best
                self.stop_reason = f"early stopping: {never_a_number(self.monitor)}"
            else:
                self.stop_reason = (
                    f"early stopping: {self.monitor} did not improve for {self.wait} "
                    f"epoch(s) (best {self.best_score:.4f} at epoch {self.best_epoch})"
                )
            trainer.should_stop = True
            trainer.stop_reason = self.stop_reason

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best_weights and self._best_weights is not None:
            trainer.model.load_state_dict(self._best_weights, strict=False)
            trainer.history.restored_epoch = self.best_epoch
            logger.info(
                "restored the weights of epoch %s (%s %.4f)",
                self.best_epoch,
                self.monitor,
                self.best_score,
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            **self._tracker.state(self.monitor),
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "stop_reason": self.stop_reason,
            "best_weights": self._best_weights,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.wait = int(state["wait"])
        self.stopped_epoch = state["stopped_epoch"]
        self.stop_reason = state.get("stop_reason")  # not kept before 0.2's resumed stop
        self._best_weights = state["best_weights"]
        if not self._tracker.resume(state, self.monitor, self._mode_given, "EarlyStopping"):
            self.wait = 0  # counted against a best judged otherwise
            if self._tracker.best is None:
                self._best_weights = None  # of another metric's best


def _changeable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the state entries training can change: trainable parameters and buffers."""
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    return {
        name: value.detach().to("cpu", copy=True)
        for name, value in model.state_dict().items()
        if name not in frozen
    }
