"""The per-epoch record of a fit."""

from __future__ import annotations

import csv
import io
import logging
import math
import numbers
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, overload

from retinalnet._core.counts import as_integer
from retinalnet._core.files import atomic_write
from retinalnet.training._monitor import (
    check_mode,
    check_monitor_name,
    refuse_unknown_direction,
    resolve_mode,
)

__all__ = ["FIELDS", "EpochRecord", "History", "drawable_history"]

logger = logging.getLogger(__name__)

FIELDS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
    "lr",
)
"""The named fields of an :class:`EpochRecord`, in column order (``extra`` follows)."""


@dataclass(frozen=True)
class EpochRecord:
    """Metrics of one epoch. Epochs count from 1. Validation values are ``None`` without
    validation data.

    Attributes
    ----------
    extra : Mapping[str, float or None]
        Further metrics by name: a task's validation ``metrics``, values callbacks logged
        with :meth:`Trainer.log <retinalnet.training.Trainer.log>`.

        .. versionadded:: 0.2

    Examples
    --------
    >>> record = EpochRecord(
    ...     epoch=1, train_loss=0.9, train_accuracy=0.6, val_loss=0.8, val_accuracy=0.7,
    ...     seconds=12.5, lr=1e-3, extra={"val_drusen_recall": 0.5},
    ... )
    >>> record.metrics()["val_drusen_recall"]
    0.5
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    lr: float
    extra: Mapping[str, float | None] = field(default_factory=dict, hash=False)

    def metrics(self) -> dict[str, float]:
        """The monitorable values (losses, accuracies, lr, extra metrics) that are present."""
        return {
            key: float(value)
            for key, value in self.to_dict().items()
            if key not in ("epoch", "seconds") and value is not None
        }

    def to_dict(self) -> dict[str, Any]:
        """One flat dict: the fields, then the ``extra`` metrics by name.

        .. versionadded:: 0.2
        """
        values: dict[str, Any] = {name: getattr(self, name) for name in FIELDS}
        values.update(self.extra)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EpochRecord:
        """Rebuild from :meth:`to_dict` output: names other than the fields become ``extra``.

        Raises
        ------
        ValueError
            If a field is missing, ``epoch`` is not an int >= 1, or a metric is not a number
            (``None`` where an epoch may have no value).

        .. versionadded:: 0.2
        """
        missing = [name for name in FIELDS if name not in values]
        if missing:
            raise ValueError(
                f"an epoch record needs {', '.join(FIELDS)}; missing: {', '.join(missing)}"
            )
        epoch = as_integer(values["epoch"])
        if epoch is None or epoch < 1:
            raise ValueError(
                f"an epoch record's 'epoch' must be an int >= 1, got {values['epoch']!r}"
            )
        for name, value in values.items():
            optional = name in _OPTIONAL or name not in FIELDS
            if name == "epoch" or (value is None and optional):
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                expected = "a number or None" if optional else "a number"
                raise ValueError(
                    f"epoch {epoch}: metric {name!r} must be {expected}, got {value!r}"
                )
        extra = {key: value for key, value in values.items() if key not in FIELDS}
        return cls(**{**{name: values[name] for name in FIELDS}, "epoch": epoch}, extra=extra)


_OPTIONAL = frozenset({"val_loss", "val_accuracy"})


class History(Sequence[EpochRecord]):
    """What :meth:`Trainer.fit <retinalnet.Trainer.fit>` returns: one record per epoch.

    Attributes
    ----------
    stop_reason : str or None
        Why training stopped (early stopping, ``max_epochs`` reached).
    restored_epoch : int or None
        The epoch whose weights the model holds at the end, when early stopping restored
        the best weights.

    Examples
    --------
    >>> history = trainer.fit(train, val)  # doctest: +SKIP
    >>> history[-1].val_accuracy  # doctest: +SKIP
    >>> history.to_csv("history.csv")  # doctest: +SKIP
    """

    def __init__(self, records: Sequence[EpochRecord] = ()) -> None:
        self._records: list[EpochRecord] = list(records)
        self.stop_reason: str | None = None
        self.restored_epoch: int | None = None

    def append(self, record: EpochRecord) -> None:
        """Add the record of the epoch just finished."""
        self._records.append(record)

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, index: int) -> EpochRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[EpochRecord]: ...

    def __getitem__(self, index: int | slice) -> EpochRecord | list[EpochRecord]:
        """One epoch's record (``history[-1]``: the last), or a list of them for a slice."""
        return self._records[index]

    def __iter__(self) -> Iterator[EpochRecord]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"History(epochs={len(self)}, stop_reason={self.stop_reason!r})"

    @property
    def names(self) -> tuple[str, ...]:
        """Every column: the :class:`EpochRecord` fields, then the extra metrics recorded.

        .. versionadded:: 0.2
        """
        extra: dict[str, None] = {}
        for record in self._records:
            extra.update(dict.fromkeys(record.extra))
        return (*FIELDS, *extra)

    def column(self, name: str) -> list[float | None]:
        """One metric across epochs, e.g. ``history.column("val_loss")``; ``None`` where an
        epoch has no value (``val_loss`` in a fit without validation data, a metric logged
        in some epochs only): ``max(history.column("val_accuracy"))`` needs the ``None``
        left out, as a type checker says.

        .. versionchanged:: 0.2
           Typed ``list[float | None]``, not ``list[Any]``.
        """
        known = self.names
        if name not in known:
            raise KeyError(f"no metric {name!r} in the history; available: {', '.join(known)}")
        return [record.to_dict().get(name) for record in self._records]

    def _log_into_last(self, name: str, value: float) -> None:
        """Add a metric to the last record (logged after the record was made)."""
        last = self._records[-1]
        self._records[-1] = replace(last, extra={**last.extra, name: value})

    def best(self, monitor: str = "val_loss", mode: str = "auto") -> EpochRecord:
        """The epoch with the best ``monitor`` value (NaN and missing values never win; of
        equal values, the first).

        Parameters
        ----------
        monitor
            A metric of the history (see :attr:`names`).
        mode
            ``"min"`` when lower is better, ``"max"`` when higher is better, or ``"auto"``
            (default) as :class:`~retinalnet.training.EarlyStopping` decides it: ``"min"``
            for a loss (a name ending in ``_loss``) and ``"lr"``, ``"max"`` for an accuracy
            (ending in ``_accuracy``); any other metric needs ``"min"`` or ``"max"``.

            .. versionchanged:: 0.2
               ``"auto"`` by default, not ``"min"``, which gave the epoch with the lowest
               ``val_accuracy``.

        Raises
        ------
        TypeError
            If ``monitor`` is not a string.
        KeyError
            If the history has no ``monitor`` column; the message lists those it has.
        ValueError
            If ``mode`` is not ``"auto"``, ``"min"`` or ``"max"``, ``"auto"`` cannot tell
            which way ``monitor`` is better, or no epoch has a value.

        Warns
        -----
        UserWarning
            If ``mode`` is against the known direction (``"min"`` for an accuracy).

        Examples
        --------
        >>> history = History.from_records(
        ...     [
        ...         {"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.5, "val_loss": 0.7,
        ...          "val_accuracy": 0.6, "seconds": 1.0, "lr": 1e-3},
        ...         {"epoch": 2, "train_loss": 0.6, "train_accuracy": 0.7, "val_loss": 0.8,
        ...          "val_accuracy": 0.7, "seconds": 1.0, "lr": 1e-3},
        ...     ]
        ... )
        >>> history.best().epoch, history.best("val_accuracy").epoch
        (1, 2)
        """
        monitor = check_monitor_name(monitor, "History.best")
        given = check_mode(mode, "History.best")
        values = self.column(monitor)
        mode = resolve_mode(monitor, given, "History.best")
        refuse_unknown_direction(monitor, mode, "History.best")
        candidates = [
            (value, record)
            for value, record in zip(values, self._records, strict=True)
            if value is not None and not math.isnan(value)
        ]
        if not candidates:
            raise ValueError(f"no epoch has a {monitor!r} value")
        pick = min if mode == "min" else max
        return pick(candidates, key=lambda pair: pair[0])[1]

    def to_records(self) -> list[dict[str, Any]]:
        """A list of plain dicts, one per epoch (for JSON, pandas, checkpoints)."""
        return [record.to_dict() for record in self._records]

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> History:
        """Rebuild from :meth:`to_records` output."""
        return cls([EpochRecord.from_dict(record) for record in records])

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write one row per epoch with a header; returns the path.

        The file is written whole or not at all (a temporary file renamed over ``path``).

        Raises
        ------
        OSError
            If the disk or the operating system refuses the write; the message names the
            path and the cause, and the file there before is untouched.

        .. versionchanged:: 0.2
           Written atomically.
        """
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.names)
        writer.writeheader()
        writer.writerows(self.to_records())
        data = text.getvalue().encode()

        def write(stream: BinaryIO) -> None:
            stream.write(data)

        return atomic_write(path, write)


def drawable_history(records: Sequence[Mapping[str, Any]]) -> History | None:
    """A checkpoint's history as a :class:`History` for a report or a plot; ``None``, with a
    warning saying why it is left out, when its records are not whole epoch records (a
    history saved by hand with :func:`~retinalnet.checkpoint.save_checkpoint`), and for
    none at all. A figure is left out rather than the work before it lost."""
    if not records:
        return None
    try:
        return History.from_records(records)
    except ValueError as error:
        logger.warning("the checkpoint's training history is left out: %s", error)
        return None
