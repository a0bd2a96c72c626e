"""ModelCheckpoint: the best model and the latest state written during a fit, and what they
hold when a fit stops early."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retinalnet._core.bool_options import check_bool
from retinalnet._core.files import atomic_copy
from retinalnet.checkpoint import CheckpointWriteError, checkpoint_epoch, load_checkpoint
from retinalnet.training._callbacks import Callback, _check_monitor, _Tracker
from retinalnet.training._lock import check_still_held
from retinalnet.training._monitor import check_monitor_and_mode, warn_no_best
from retinalnet.training._nonfinite import NonFiniteLossError
from retinalnet.training._run_files import RUN_FILES, replace_foreign_link, run_files_taken

if TYPE_CHECKING:
    from retinalnet.training._history import History
    from retinalnet.training._trainer import Trainer

__all__ = ["ModelCheckpoint", "refuse_shared_checkpoint_files"]

logger = logging.getLogger(__name__)


def refuse_shared_checkpoint_files(callbacks: Sequence[Callback], trainer: Trainer) -> None:
    """Refuse, at the start of a fit, two checkpoint writers of one file: the Trainer's
    ``out_dir`` and a :class:`ModelCheckpoint` of ``trainer.callbacks``, or two of those, on
    the same folder (or files linked to one). Each would replace the other's ``best.pt``
    and ``last.pt`` every epoch, and the last to write wins: ``best.pt`` would not hold the
    best epoch either reports. ``callbacks`` are those of the fit (the Trainer's, then the
    one for ``out_dir``).

    Raises
    ------
    ValueError
        Naming both writers, the file, and the fix.
    """
    writers: dict[str, str] = {}  # real path -> the writer that writes it
    for index, callback in enumerate(callbacks):
        if not isinstance(callback, ModelCheckpoint):
            continue
        own = not any(callback is given for given in trainer.callbacks)
        name = (
            f"Trainer(out_dir={str(callback.dirpath)!r})"
            if own
            else f"callbacks[{index}] ModelCheckpoint({str(callback.dirpath)!r})"
        )
        files = [callback.best_path] + ([callback.last_path] if callback.save_last else [])
        for file in files:
            first = writers.setdefault(os.path.realpath(file), name)
            if first == name:
                continue
            fix = (
                "remove the ModelCheckpoint (out_dir writes best.pt and last.pt) or give it "
                "another dirpath"
                if own
                else "give each ModelCheckpoint a folder of its own"
            )
            raise ValueError(
                f"{first} and {name} both write {str(file)!r}: each would replace the "
                f"other's every epoch, and the file would hold the last written, not the "
                f"best; {fix}"
            )


class ModelCheckpoint(Callback):
    """Write the best model (``best.pt``) and the latest state (``last.pt``) during a fit.

    Files are written atomically (temporary file, then rename). A new fit refuses a folder
    holding a run's files (``best.pt``, ``last.pt`` or ``history.csv``: :data:`RUN_FILES`)
    unless ``overwrite=True``, which replaces them; a file there that is a symbolic link to
    another file (``last.pt -> deployed/v3.pt``) is then replaced by the run's own file, the
    file it points to left as it is. A resumed fit (``fit(..., resume_from=...)``) keeps the
    best score of the run it continues, so a worse epoch never replaces a better checkpoint.
    ``last.pt`` is rewritten after every epoch, so an interrupted fit (Ctrl-C, a crash) loses at
    most the epoch it was in; the warning of an interrupted fit names the epochs the files hold.

    A write the disk refuses (a full disk, no permission) stops the fit with a
    :class:`~retinalnet.checkpoint.CheckpointWriteError` naming the file, the cause, and the
    epoch of the checkpoint left there, which is untouched.

    Its files are written after every other callback's ``on_epoch_end``, wherever it stands
    in ``callbacks`` (as Lightning orders its checkpoint callbacks): they hold the epoch as
    all of them have taken it in (an :class:`EarlyStopping`'s count, a metric logged with
    :meth:`Trainer.log <retinalnet.training.Trainer.log>`), so a run resumed from them
    repeats the uninterrupted one. A callback that reads the files gets each one as it is
    written, in :meth:`~retinalnet.training.Callback.on_checkpoint_saved`.

    Parameters
    ----------
    dirpath
        Folder for the files.
    monitor, mode
        What "best" means (the lowest ``val_loss`` by default), as for
        :class:`EarlyStopping`: any metric the fit produces; ``"auto"``, ``"min"``, ``"max"``.
        A NaN is never the best (its first is logged); a fit in which it is NaN in every
        epoch writes no ``best.pt``, and a ``UserWarning`` says so at its end.

        .. versionchanged:: 0.2
           ``mode="auto"`` by default, not ``"min"`` (which kept the lowest accuracy).
    save_last
        Also write ``last.pt`` after every epoch, for resuming.
    overwrite
        Allow a new fit to replace the files of another run in ``dirpath`` (``best.pt``,
        ``last.pt``, ``history.csv``).

    Raises
    ------
    TypeError, ValueError
        As :class:`EarlyStopping`, for ``monitor`` and ``mode``.
    """

    def __init__(
        self,
        dirpath: str | os.PathLike[str],
        *,
        monitor: str = "val_loss",
        mode: str = "auto",
        save_last: bool = True,
        overwrite: bool = False,
    ) -> None:
        self.monitor, self.mode, self._mode_given = check_monitor_and_mode(
            monitor, mode, "ModelCheckpoint"
        )
        self.dirpath = Path(dirpath)
        self.save_last = check_bool(save_last, "save_last")
        self.overwrite = check_bool(overwrite, "overwrite")  # "no" read as True lost runs
        self._tracker = _Tracker(self.mode)
        self._resumed = False
        self._epoch_in_progress: int | None = None  # from its start to its files written
        self._began = False
        # which of best.pt and last.pt are this run's (written by it, or the run it resumed)
        self._owns = {"best": False, "last": False}

    @property
    def best_path(self) -> Path:
        """``dirpath / "best.pt"``."""
        return self.dirpath / "best.pt"

    @property
    def last_path(self) -> Path:
        """``dirpath / "last.pt"``."""
        return self.dirpath / "last.pt"

    @property
    def best_score(self) -> float | None:
        """Best value of the monitored metric among the epochs written."""
        return self._tracker.best

    @property
    def best_epoch(self) -> int | None:
        """The epoch of :attr:`best_score`, the one ``best.pt`` holds.

        .. versionadded:: 0.2
        """
        return self._tracker.best_epoch

    def on_fit_start(self, trainer: Trainer) -> None:
        _check_monitor(self.monitor, self.mode, trainer, "ModelCheckpoint")
        self._tracker = _Tracker(self.mode)
        self._resumed = False
        self._epoch_in_progress = None
        self._began = False
        self._owns = {"best": False, "last": False}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._tracker.resume(state, self.monitor, self._mode_given, "ModelCheckpoint")
        self._resumed = True
        self._owns = {"best": True, "last": True}

    def resumed_from(self, path: str | os.PathLike[str]) -> None:
        """Say which file the fit resumed from: a run resumed from another folder does not
        own this folder's ``best.pt``, which it replaces only with ``overwrite=True``.

        A folder without the run's ``best.pt`` (a run resumed into another folder, or from
        a ``last.pt`` copied alone) gets it before the fit goes on: the run's ``best.pt``
        beside the file resumed from, or that file itself when it holds the best epoch; a
        later epoch replaces it only if it is better. Otherwise the fit would end without
        its best model, which is refused (``FileNotFoundError``, naming the file to copy).

        .. versionadded:: 0.2
        """
        resumed = Path(path)
        if resumed.resolve().parent != self.dirpath.resolve():
            self._resumed = False
            self._owns = {"best": False, "last": False}
            found = [] if self.overwrite else self._run_files_there()
            if found:  # said before best.pt is copied in
                raise FileExistsError(
                    f"{found[0]} is another run's, which resuming {str(resumed)!r} into "
                    f"{str(self.dirpath)!r} would replace; resume into the run's own "
                    f"folder ({str(resumed.parent)!r}), choose another folder, or allow it "
                    "(overwrite=True, or --overwrite)"
                )
        else:
            logger.info("continuing the run in %r (its files will be updated)", str(self.dirpath))
        best_epoch = self._tracker.best_epoch
        if best_epoch is None or self.best_path.exists():
            return
        for source in (resumed.parent / self.best_path.name, resumed):
            if source.is_file() and checkpoint_epoch(source) == best_epoch:
                atomic_copy(source, self.best_path)
                self._resumed, self._owns["best"] = True, True  # the run's own best.pt
                logger.info(
                    "%s: the run's best epoch %d, from %s", self.best_path, best_epoch, source
                )
                return
        raise FileNotFoundError(
            f"resuming {str(resumed)!r} into {str(self.dirpath)!r}, which holds no best.pt: "
            f"the run's best model (epoch {best_epoch}) is not beside it either, and the fit "
            f"would end without it; copy the run's best.pt (epoch {best_epoch}) into "
            f"{str(self.dirpath)!r}, or start a new run"
        )

    def check_resumed_is_latest(
        self, path: str | os.PathLike[str], epoch: int, history: History
    ) -> None:
        """Refuse to resume, into this folder, an epoch of a run whose ``last.pt`` here
        holds a later one: going on from ``best.pt`` (an earlier epoch) would replace the
        run's later epochs in ``last.pt``.

        ``last.pt`` belongs to the same run when its history begins with the epochs of
        ``path``'s history.

        Raises
        ------
        ValueError
            Naming both epochs and the two ways out.

        .. versionadded:: 0.2
        """
        resumed = Path(path)
        if not self.last_path.is_file() or resumed.resolve() == self.last_path.resolve():
            return
        later = checkpoint_epoch(self.last_path)
        if later is None or later <= epoch:
            return
        try:
            records = load_checkpoint(self.last_path, map_location="cpu").history
        except (OSError, ValueError, RuntimeError):
            return  # unreadable: not this run's to protect
        mine = history.to_records()
        if repr(list(records)[: len(mine)]) != repr(mine):
            return  # another run's last.pt (an --overwrite run replaces it as before)
        beside = resumed.resolve().parent == self.dirpath.resolve()
        where = "last.pt beside it" if beside else repr(str(self.last_path))
        raise ValueError(
            f"resume_from={str(resumed)!r} holds epoch {epoch}, and {where} holds epoch "
            f"{later} of this run: resume from {str(self.last_path)!r}, or train into another "
            "out_dir"
        )

    def state_dict(self) -> dict[str, Any]:
        return self._tracker.state(self.monitor)

    def check_best_is_free(self) -> None:
        """Refuse a new run into a folder that holds a run's files (``best.pt``, ``last.pt``
        or ``history.csv``: :data:`RUN_FILES`), which it would replace (not a resumed run,
        nor with ``overwrite=True``).

        The Trainer calls it once the callback states of a resumed run are loaded, before
        the feature cache is built or an epoch runs; every epoch checks again.

        Raises
        ------
        FileExistsError
            Naming the first of the files and the ways out there are: resuming that run
            from its ``last.pt`` (or its ``best.pt``: it left no ``last.pt``) when it saved a
            checkpoint, another folder, ``overwrite=True``.

        .. versionadded:: 0.2

        .. versionchanged:: 0.2
           ``last.pt`` and ``history.csv`` count as ``best.pt`` does.
        """
        found = [] if self._resumed or self.overwrite else self._run_files_there()
        if found:  # the first of them: the ways out are the folder's
            raise run_files_taken(self.dirpath, found)

    def _run_files_there(self) -> list[Path]:
        """The files of :data:`RUN_FILES` in the folder (a link to no file left out)."""
        return [self.dirpath / name for name in RUN_FILES if (self.dirpath / name).exists()]

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.check_best_is_free()
        self._epoch_in_progress = epoch
        self._began = True

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        value = float(metrics[self.monitor])
        improved = self._tracker.judge(value, epoch, self.monitor, "ModelCheckpoint")
        self._resumed = True  # from here on this run owns best.pt
        check_still_held(self.dirpath)  # the folder is still this run's
        if improved:
            if not self._owns["best"]:
                replace_foreign_link(self.best_path)
            trainer.save_checkpoint(self.best_path)
            self._owns["best"] = True  # an interrupt before last.pt is written knows it
            logger.info("epoch %d: %s improved, wrote %s", epoch, self.monitor, self.best_path)
            trainer._checkpoint_saved(self.best_path)
        if self.save_last:
            if not self._owns["last"]:
                replace_foreign_link(self.last_path)
            trainer.save_checkpoint(self.last_path)
            self._owns["last"] = True
            trainer._checkpoint_saved(self.last_path)
        self._epoch_in_progress = None

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._began and self._tracker.best is None:  # NaN in every epoch: no best.pt
            last = self.last_path if self.save_last and self._owns["last"] else None
            # a best.pt there is an earlier run's, or this run's from before its resume
            earlier = self.best_path if self.best_path.exists() and not self._owns["best"] else None
            warn_no_best(self.monitor, last, trainer.epoch, earlier)

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        # The files hold finished epochs only: the weights in memory are mid-epoch, and are
        # not written. These errors say themselves what the files hold.
        if isinstance(exception, CheckpointWriteError | NonFiniteLossError):
            return
        if not self._began and trainer.epoch == 0:
            return  # stopped before any epoch: nothing to report
        if trainer._loop is not None and trainer._loop.epochs_done:
            # the epochs are whole on disk: resuming would train nothing (a callback
            # interrupted at the end, such as calibration, says itself what is left to do)
            logger.warning(
                "fit interrupted (%s) at its end, after its last epoch %d: %s",
                type(exception).__name__,
                trainer.epoch,
                self.files_on_disk(),
            )
            return
        when = (
            f"during epoch {self._epoch_in_progress}"
            if self._epoch_in_progress is not None
            else f"after epoch {trainer.epoch}"
        )
        earlier = self.best_path.exists() or self.last_path.exists()
        if not any(self._owns.values()) and earlier:  # --overwrite: the run before's files
            logger.warning(
                "fit interrupted (%s) %s: this run wrote no checkpoint yet; the files in %r "
                "are an earlier run's (%s)",
                type(exception).__name__,
                when,
                str(self.dirpath),
                self.files_on_disk(),
            )
            return
        logger.warning(
            "fit interrupted (%s) %s: %s%s",
            type(exception).__name__,
            when,
            self.files_on_disk(),
            self._resume_advice(),
        )

    def _resume_advice(self) -> str:
        """How to continue an interrupted run: from its ``last.pt``; from its ``best.pt``
        when it was interrupted while writing its first ``last.pt`` (``best.pt`` then holds
        the same epoch, whole); nothing when neither file is this run's."""
        mine = {
            name: path
            for name, path in (("last", self.last_path), ("best", self.best_path))
            if self._owns[name] and checkpoint_epoch(path) is not None
        }
        if "last" in mine:
            return f"; continue with fit(..., resume_from={str(mine['last'])!r})"
        if "best" in mine:
            return (
                f"; this run's {str(mine['best'])!r} holds its last epoch whole (it was "
                f"interrupted writing last.pt): continue with fit(..., resume_from="
                f"{str(mine['best'])!r})"
            )
        return ""

    def files_on_disk(self) -> str:
        """What ``best.pt`` and ``last.pt`` hold now, in words, read from the files.

        For example ``"'runs/best.pt' holds epoch 2, 'runs/last.pt' epoch 3"``, or
        ``"no checkpoint in 'runs'"``.

        .. versionadded:: 0.2
        """
        parts: list[str] = []
        for name, path in (("best", self.best_path), ("last", self.last_path)):
            epoch = checkpoint_epoch(path)
            if epoch is not None:
                verb = "holds epoch" if not parts else "epoch"
                # beside a file of this run's, one left by an earlier run (--overwrite) is
                # named as such: resuming it would continue the other run
                foreign = any(self._owns.values()) and not self._owns[name]
                parts.append(
                    f"{str(path)!r} {verb} {epoch}{' of an earlier run' if foreign else ''}"
                )
        return ", ".join(parts) if parts else f"no checkpoint in {str(self.dirpath)!r}"
