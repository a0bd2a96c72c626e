"""``retinalnet train``'s ``history.csv`` after a fit stopped by an error: the epochs that
a checkpoint holds, not one more.

A fit stopped by a checkpoint the disk refused (a full disk) or by an interrupt while a
checkpoint was written has the record of an epoch that no file holds. Written to
``history.csv``, it would name an epoch that ``--resume`` cannot go on from, and at the
first epoch it would leave a ``history.csv`` alone, which makes the next run refuse the
folder as another run's.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from retinalnet._core.path_version import file_version

if TYPE_CHECKING:
    from retinalnet.training import History

__all__ = ["SavedEpochs"]

logger = logging.getLogger("retinalnet")

_CHECKPOINTS = ("best.pt", "last.pt")


class SavedEpochs:
    """The checkpoints of ``out`` as a fit starts, to tell once it stopped which epochs its
    checkpoints hold: those of the files it wrote (changed since it started), and the
    epochs of the run it resumed (``resume``: the file it resumed from).

    A file there that the fit did not write (another run's, kept until this one replaces
    it with ``--overwrite``) holds none of this fit's epochs.
    """

    def __init__(self, out: Path, resume: Path | None) -> None:
        from retinalnet.checkpoint import checkpoint_epoch

        self.out = Path(out)
        self.resumed_epoch = checkpoint_epoch(resume) if resume is not None else None
        self._before = {name: file_version(self.out / name) for name in _CHECKPOINTS}

    def latest(self) -> int | None:
        """The latest epoch of the run that a checkpoint holds; ``None`` if none does."""
        from retinalnet.checkpoint import checkpoint_epoch

        epochs = [] if self.resumed_epoch is None else [self.resumed_epoch]
        for name, before in self._before.items():
            path = self.out / name
            if file_version(path) != before:  # written by this fit
                epoch = checkpoint_epoch(path)
                epochs += [] if epoch is None else [epoch]
        return max(epochs, default=None)

    def write_history(self, history: History, path: Path) -> None:
        """Write the records of ``history`` that a checkpoint holds to ``path`` (none: no
        file is written); a write the disk refuses is left unsaid, the fit's error is what
        is reported."""
        from retinalnet.training import History

        latest = self.latest()
        kept = [record for record in history if latest is not None and record.epoch <= latest]
        if len(kept) < len(history):
            unsaved = history[len(kept)].epoch
            if kept:
                logger.info(
                    "%s: epochs up to %d, which a checkpoint holds (epoch %d was not saved)",
                    path,
                    kept[-1].epoch,
                    unsaved,
                )
            else:
                logger.info("%s not written: epoch %d was not saved, nor any before", path, unsaved)
        if kept:
            with contextlib.suppress(OSError):
                History(kept).to_csv(path)
