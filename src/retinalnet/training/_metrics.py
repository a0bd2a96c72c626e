"""The metrics of an epoch, by name: what the task and the loop report, and what callbacks log
with ``Trainer.log``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from retinalnet.training._callbacks import Callback
from retinalnet.training._history import FIELDS, EpochRecord, History
from retinalnet.training._returned_values import metric_number
from retinalnet.training._task import ClassificationTask

__all__ = ["EpochMetrics", "available_metrics"]


def available_metrics(
    task: ClassificationTask, validation: bool, callbacks: Iterable[Callback]
) -> tuple[str, ...]:
    """What a fit reports each epoch: the task's metrics, ``lr``, then the names callbacks
    declare in ``metric_names``."""
    names = [*task.metric_names(validation), "lr"]
    for callback in callbacks:
        names += [name for name in callback.metric_names if name not in names]
    return tuple(names)


class EpochMetrics:
    """The metrics of the epoch in progress, by name.

    Values logged before the epoch's record is made go into it; values logged after (from
    ``on_epoch_end``) are added to the record already in the history, and callbacks later in
    the list see them in their ``metrics``.
    """

    def __init__(self, task: ClassificationTask) -> None:
        self.values: dict[str, float] = {}
        self._reserved = frozenset((*task.metric_names(validation=True), "lr", *FIELDS))
        self._history: History | None = None  # once the epoch's record is in it

    def log(self, name: str, value: float | torch.Tensor) -> None:
        """Record ``name`` for this epoch.

        Raises
        ------
        ValueError
            If ``name`` is no name, or one the Trainer records itself.
        TypeError
            If ``value`` is not one real number (see
            :func:`~retinalnet.training._returned_values.metric_number`).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a metric name must be a non-empty string, got {name!r}")
        if name in self._reserved:
            raise ValueError(
                f"{name!r} is recorded by the Trainer itself; log your metric under another name"
            )
        number = metric_number(name, value, logged=True)
        self.values[name] = number
        if self._history is not None:
            self._history._log_into_last(name, number)

    def record(
        self, history: History, values: Mapping[str, float], *, epoch: int, seconds: float
    ) -> None:
        """Append the epoch's record to ``history``: ``values`` (the loop's and the task's
        metrics), then what callbacks logged so far."""
        logged = dict(self.values)
        self.values.clear()
        self.values.update(values)
        self.values.update(logged)
        fields = {"epoch": epoch, "val_loss": None, "val_accuracy": None, "seconds": seconds}
        history.append(EpochRecord.from_dict({**fields, **self.values}))
        self._history = history
