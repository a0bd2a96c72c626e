"""The per-epoch record of a fit."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["EpochRecord", "History"]


@dataclass(frozen=True)
class EpochRecord:
    """Metrics of one epoch. Epochs count from 1. Validation values are ``None`` without
    validation data."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    lr: float

    def metrics(self) -> dict[str, float]:
        """The monitorable values (losses, accuracies, lr) that are present."""
        return {
            key: float(value)
            for key, value in asdict(self).items()
            if key not in ("epoch", "seconds") and value is not None
        }


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

    def __getitem__(self, index: Any) -> Any:
        return self._records[index]

    def __iter__(self) -> Iterator[EpochRecord]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"History(epochs={len(self)}, stop_reason={self.stop_reason!r})"

    def column(self, name: str) -> list[float | None]:
        """One metric across epochs, e.g. ``history.column("val_loss")``."""
        known = [f.name for f in fields(EpochRecord)]
        if name not in known:
            raise KeyError(f"no metric {name!r} in the history; available: {', '.join(known)}")
        return [getattr(record, name) for record in self._records]

    def best(self, monitor: str = "val_loss", mode: str = "min") -> EpochRecord:
        """The epoch with the best ``monitor`` value (NaN and missing values never win)."""
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        values = self.column(monitor)
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
        return [asdict(record) for record in self._records]

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> History:
        """Rebuild from :meth:`to_records` output."""
        return cls([EpochRecord(**dict(record)) for record in records])

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write one row per epoch with a header; returns the path."""
        out = Path(path)
        with open(out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(EpochRecord)])
            writer.writeheader()
            writer.writerows(self.to_records())
        return out
