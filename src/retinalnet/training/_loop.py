"""One fit of the Trainer: its data, callbacks and processes, and the epochs it runs.

Why this module is long: one fit's steps in order (the checks that refuse it before any
work, the resumed state, the feature cache, the loaders, the epochs, the end and the
clean-up also after an interrupt) read best in one place; the epoch's training pass, the
checkpointed state and the metrics live in their own modules.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.classes import check_same_classes
from retinalnet._core.loaders import DataSource, shut_down_workers, unchecked_samples
from retinalnet._core.log_marks import SAID_BY_THE_COMMAND_LINE
from retinalnet.datasets._readable import readable_for_scoring
from retinalnet.datasets._sample_names import sample_names_digest
from retinalnet.models import Classifier
from retinalnet.training._callbacks import Callback, check_callbacks
from retinalnet.training._data import (
    SAMPLER_NOT_DISTRIBUTED,
    classes_of,
    train_targets,
    warn_of_missing_classes,
    warn_of_own_transform,
)
from retinalnet.training._distributed import distributed_context
from retinalnet.training._epoch import enter_train_mode, epoch_line, train_one_epoch
from retinalnet.training._evaluation import EvaluationResult, run_evaluation
from retinalnet.training._fit_temperature import FitTemperature
from retinalnet.training._history import History
from retinalnet.training._lock import fit_lock
from retinalnet.training._metrics import EpochMetrics
from retinalnet.training._model_checkpoint import ModelCheckpoint
from retinalnet.training._nonfinite import first_nonfinite_state, nonfinite_loss_error
from retinalnet.training._resume import (
    check_epoch_size,
    check_loop_state,
    check_resume_path,
    epoch_size,
    note_other_settings,
    resume,
    resumed_stop,
    run_settings,
    warn_of_other_images,
)
from retinalnet.training._seed import (
    data_order_state,
    random_state,
    seed_everything,
    set_data_order_state,
    set_random_state,
)

if TYPE_CHECKING:
    from retinalnet.training._trainer import Trainer

__all__ = ["FitLoop"]

logger = logging.getLogger(__name__)


class FitLoop:
    """The state of one :meth:`Trainer.fit <retinalnet.training.Trainer.fit>`, and its run.

    It belongs to the Trainer it runs for, as Lightning's loops do: it reads the Trainer's
    settings, passes the Trainer to the callbacks, and leaves the results (history, epoch,
    stop reason) on it. What it holds lasts until the next fit: whether there was validation
    data, the callbacks in use (the Trainer's plus a :class:`ModelCheckpoint` for
    ``out_dir``), the processes, the training loader (whose data order checkpoints carry),
    and the metrics of the epoch in progress. It holds its Trainer by a weak reference, so
    that a Trainer dropped (a loop over learning rates in a notebook) is freed at once, with
    its loaders, not at the next garbage collection.
    """

    def __init__(self, trainer: Trainer, *, validation: bool) -> None:
        self._trainer = weakref.ref(trainer)
        self.validation = validation
        given = check_callbacks(trainer.callbacks, "Trainer.callbacks")
        # checkpoints are written after every other callback has taken in the epoch (an
        # EarlyStopping's count, a metric logged), whatever order they were given in, as
        # Lightning orders them: a run resumed from them repeats the uninterrupted one
        saves: list[Callback] = [c for c in given if isinstance(c, ModelCheckpoint)]
        others = [callback for callback in given if not isinstance(callback, ModelCheckpoint)]
        self.callbacks: list[Callback] = others + saves
        self.dist = distributed_context(trainer.device)
        if trainer.out_dir is not None:
            monitor = "val_loss" if validation else "train_loss"
            checkpoint = ModelCheckpoint(
                trainer.out_dir, monitor=monitor, overwrite=trainer.overwrite
            )
            self.callbacks.append(checkpoint)
        self.metrics: EpochMetrics | None = None  # while an epoch runs
        self.epochs_done = False  # the epochs have run; the callbacks' on_fit_end run now
        self.val_data: DataSource | None = None  # as given to fit (images, not cached features)
        self.validation_result: EvaluationResult | None = None  # the last epoch's
        self.train_loader: DataLoader[Any] | None = None
        self.train_names: str | None = None  # the training images' names digest, if listed
        self.val_loader: DataLoader[Any] | None = None
        self._made: list[DataLoader[Any]] = []  # the loaders made here (not a DataLoader given)
        self._ddp: nn.Module | None = None  # DistributedDataParallel with several processes
        self._temperature = FitTemperature()  # a calibrated model's, set aside for the fit

    @property
    def trainer(self) -> Trainer:
        """The Trainer this fit runs for."""
        trainer = self._trainer()
        if trainer is None:  # pragma: no cover - the Trainer runs its loop
            raise RuntimeError("the Trainer of this fit was deleted")
        return trainer

    def run(
        self,
        train: DataSource,
        val: DataSource | None,
        resume_from: str | os.PathLike[str] | None,
    ) -> History:
        """Check the data and lock ``out_dir``, then run the fit (see :meth:`_run`)."""
        trainer = self.trainer
        self.val_data = val
        if resume_from is not None:
            check_resume_path(resume_from)  # before any work
        if val is not None:
            classes_of(trainer.model)  # fail now, not after an epoch, if classes are unknown
        if isinstance(trainer.model, Classifier):  # the data's targets mean the model's classes
            check_same_classes(trainer.model.classes, train, where="Trainer.fit (train)")
            if val is not None:
                check_same_classes(trainer.model.classes, val, where="Trainer.fit (val)")
                warn_of_own_transform(trainer.model, val, where="Trainer.fit (val)")
        if trainer._feature_cache_for(train, val)[0] is None:
            train_targets(train, trainer.task.balance)  # fails now without targets
        model_classes = trainer.model.classes if isinstance(trainer.model, Classifier) else None
        checked, trainer._classes_checked = trainer._classes_checked, None  # one fit's
        if checked is None or checked[0] is not train or checked[1] is not val:
            warn_of_missing_classes(train, model_classes, val=val)  # (fine_tune's probe did)
        if trainer.task.balance == "sampler" and self.dist.enabled:
            raise ValueError(SAMPLER_NOT_DISTRIBUTED)
        with contextlib.ExitStack() as lock:
            refused: OSError | None = None
            if trainer.out_dir is not None and self.dist.is_main:  # only rank 0 writes there
                try:
                    lock.enter_context(fit_lock(trainer.out_dir))
                except OSError as error:  # held by another run, or cannot be written
                    refused = error
            # every rank stops when rank 0 cannot lock, rather than wait for it forever
            (stopped,) = self.dist.sum([0.0 if refused is None else 1.0], trainer.device)
            if refused is not None:
                raise refused
            if stopped:
                raise RuntimeError(
                    f"rank {self.dist.rank}: rank 0 could not lock {str(trainer.out_dir)!r} "
                    "(its error says why)"
                )
            try:
                return self._run(train, val, resume_from)
            except BaseException:
                self._temperature.put_back_if_unchanged()  # ended before a step: kept
                raise
            finally:
                self._release()

    def _release(self) -> None:
        """At the end of the fit, also one interrupted or failed: take the first batch's
        check off the model (no forward pass may have reached it), end the loaders' worker
        processes (kept between epochs, they would live on with the Trainer, a copy of the
        data set each), and drop the gradients (a fine-tuned VGG16's take 0.5 GB). The
        loaders stay, without workers: a checkpoint saved later reads their data order."""
        self.trainer.task._end_run()
        for loader in self._made:  # a DataLoader of yours keeps its workers
            shut_down_workers(loader)
        self.trainer.optimizer.zero_grad(set_to_none=True)

    def _run(
        self,
        train: DataSource,
        val: DataSource | None,
        resume_from: str | os.PathLike[str] | None,
    ) -> History:
        """Start the callbacks, load a resumed run and check ``best.pt``: everything that can
        refuse the fit comes before the expensive work (the feature cache, the epochs)."""
        trainer = self.trainer
        model = trainer.model
        model.to(trainer.device)  # before resuming: the optimizer state follows the weights
        trainer._built.used = True  # this run's optimizer: the next fit builds its own
        trainer.should_stop = False
        trainer.stop_reason = None
        trainer.history = History()
        trainer.epoch = 0
        for callback in self.callbacks:
            callback.on_fit_start(trainer)
        # before a resume loads other weights: one refused after that keeps 1.0 (the
        # weights changed), one refused before it puts the temperature back
        self._temperature.reset(model)
        loop_state: dict[str, Any] | None = None
        if resume_from is not None:
            resumed = resume(
                resume_from,
                model,
                device=trainer.device,
                optimizer=trainer.optimizer,
                scheduler=trainer.scheduler,
                callbacks=self.callbacks,
            )
            trainer.history, trainer.epoch = resumed.history, resumed.epoch
            loop_state = resumed.loop_state
            check_loop_state(loop_state, source=repr(str(resume_from)))
            if trainer.epoch > trainer.max_epochs:  # equal: a finished run, nothing to do
                raise ValueError(
                    f"cannot resume from {str(resume_from)!r}: it has trained "
                    f"{trainer.epoch} epochs, more than max_epochs={trainer.max_epochs}; "
                    f"max_epochs counts them all: give {trainer.epoch} or more (more to train "
                    "on)"
                )
            trainer.should_stop, trainer.stop_reason = resumed_stop(  # a stopped run stays so
                loop_state, epoch=trainer.epoch, source=repr(str(resume_from))
            )
        for callback in self.callbacks:
            if isinstance(callback, ModelCheckpoint):
                if resume_from is not None:
                    callback.check_resumed_is_latest(resume_from, trainer.epoch, trainer.history)
                    callback.resumed_from(resume_from)
                callback.check_best_is_free()
        if val is not None:
            # validation scores only the images it can read: with on_error="skip" the scan
            # put in place of an unreadable one would count twice, each epoch, and sway
            # early stopping, best.pt and the temperature
            val, _ = readable_for_scoring(
                val,
                model.preprocessing.load if isinstance(model, Classifier) else None,
                where="Trainer.fit (val)",
                progress=trainer.progress,
                num_workers=trainer.num_workers,
            )
            self.val_data = val
        self.train_names = sample_names_digest(train)  # before the cache: the images'
        train, val = self._features(train, val)
        targets = train_targets(train, trainer.task.balance)
        sampler = trainer.task.sampler(targets, seed=trainer.seed)
        train_loader = self.train_loader = trainer._loader(
            train, train=True, sampler=sampler, name="train"
        )
        num_classes = len(model.classes) if isinstance(model, Classifier) else None
        trainer.task.setup(
            targets,
            num_classes=num_classes,
            device=trainer.device,
            unchecked_inputs=unchecked_samples(train_loader),
        )
        val_loader = self.val_loader = (
            trainer._loader(val, train=False, name="val") if val is not None else None
        )
        pairs = ((train_loader, train), (val_loader, val))
        self._made = [made for made, data in pairs if made is not None and made is not data]
        if val_loader is not None and val_loader is not val:
            # inference loaders leave torch's global generator alone; validation in a fit
            # draws from it as it always did, so a seeded fit (and a run resumed from its
            # checkpoints' random state) repeats the runs of earlier versions
            val_loader.generator = None
        if trainer.seed is not None:
            seed_everything(trainer.seed)
        if self.dist.enabled:
            device = trainer.device
            device_ids = [device.index] if device.type == "cuda" else None
            self._ddp = DistributedDataParallel(trainer._forward_module, device_ids=device_ids)
        if loop_state is not None:
            self._restore(loop_state, source=repr(str(resume_from)))
        try:
            while trainer.epoch < trainer.max_epochs and not trainer.should_stop:
                self._run_epoch(train_loader, val_loader)
        except BaseException as exception:
            for callback in self.callbacks:
                callback.on_exception(trainer, exception)
            raise
        finally:
            self.metrics = None
        if trainer.stop_reason is None:
            trainer.stop_reason = (
                f"stopped by a callback after epoch {trainer.epoch}"
                if trainer.should_stop
                else f"reached max_epochs={trainer.max_epochs}"
            )
        trainer.history.stop_reason = trainer.stop_reason
        self.epochs_done = True
        try:  # calibration writes best.pt here: an interrupt says what it left
            for callback in self.callbacks:
                callback.on_fit_end(trainer)
        except BaseException as exception:
            for callback in self.callbacks:
                callback.on_exception(trainer, exception)
            raise
        # every process returns once rank 0 has written its files (checkpoints, logs), so
        # that none exits, or goes on to other work, while rank 0 still needs the group
        self.dist.barrier()
        logger.info(
            "fit finished: %s",
            trainer.stop_reason,
            extra={SAID_BY_THE_COMMAND_LINE: True},  # `retinalnet train` prints "stopped:"
        )
        return trainer.history

    def _features(
        self, train: DataSource, val: DataSource | None
    ) -> tuple[DataSource, DataSource | None]:
        """The fit's data as cached backbone features, when the Trainer's ``feature_cache``
        says so for this data; logs which, and why."""
        trainer = self.trainer
        config, reason = trainer._feature_cache_for(train, val)
        level = logging.INFO if trainer.progress and trainer._cache_choice.auto else logging.DEBUG
        logger.log(level, "feature cache: %s (%s)", "off" if config is None else "on", reason)
        trainer._head = None  # the whole model trains, unless the features are cached
        if config is None:
            return train, val
        # shard: in a distributed fit every process builds the cache, each taking its share
        cached = trainer._cached_or_none(train, views=config.views, shard=True)
        if cached is None:  # "auto", and the head is not the model's last step
            logger.log(level, "feature cache: off after all (%s)", trainer._cache_refused)
            return train, val
        return cached, trainer._cached(val, shard=True) if val is not None else None

    def loop_state(self) -> dict[str, Any]:
        """What a checkpoint needs for a resumed fit to repeat this one from here: the seed,
        random generators, data order, fp16 loss scale, a callback's stop (and why), and
        the size of an epoch (steps, batch size, samples: a per-step schedule's length), and
        the settings a bit-for-bit repeat needs besides the seed (workers, threads)."""
        return {
            "seed": self.trainer.seed,
            "random": random_state(),
            "data": data_order_state(self.train_loader),
            "scaler": self.trainer._scaler.state_dict(),
            "should_stop": bool(self.trainer.should_stop),
            "stop_reason": self.trainer.stop_reason,
            "train_names_sha256": self.train_names,
            **epoch_size(self.train_loader),
            **run_settings(self.train_loader),
        }

    def _restore(self, state: Mapping[str, Any], *, source: str) -> None:
        """Continue the random generators, data order and loss scale of a resumed run."""
        trainer = self.trainer
        if not state:
            logger.info("%s holds no random state (written before 0.2, or outside a fit)", source)
            return
        per_step = trainer.scheduler is not None and trainer.task.scheduler_interval == "step"
        check_epoch_size(state, self.train_loader, per_step=per_step, source=source)
        warn_of_other_images(state.get("train_names_sha256"), self.train_names, source=source)
        note_other_settings(state, run_settings(self.train_loader), source=source)
        saved = state.get("seed")
        if saved != trainer.seed:
            if trainer.seed is None:
                advice = f"pass seed={saved!r} (--seed {saved}) to repeat it"
            elif saved is None:
                advice = f"this fit follows seed={trainer.seed} from here"
            else:
                advice = f"this fit follows seed={trainer.seed} from here, not seed={saved}"
            warn_caller(
                f"the run in {source} used seed={saved!r} and this fit seed={trainer.seed!r}: "
                f"its shuffles and random draws will differ from the original run's; {advice}",
                UserWarning,
            )
        if saved == trainer.seed or trainer.seed is None:
            if "random" in state:
                set_random_state(state["random"], source=source)
            if "data" in state and self.train_loader is not None:
                set_data_order_state(
                    self.train_loader, state["data"], source=source, warn=saved == trainer.seed
                )
        if state.get("scaler") and trainer._scaler.is_enabled():
            trainer._scaler.load_state_dict(state["scaler"])

    def _run_epoch(self, train_loader: DataLoader[Any], val_loader: DataLoader[Any] | None) -> None:
        trainer = self.trainer
        epoch = trainer.epoch + 1
        metrics = self.metrics = EpochMetrics(trainer.task)
        for callback in self.callbacks:
            callback.on_epoch_start(trainer, epoch)
        started = time.perf_counter()
        # the rate the epoch starts at: a per-step schedule (fine-tuning's warm-up and
        # cosine) has moved on by its end, to the next epoch's (0 after the last)
        start_lr = float(trainer.optimizer.param_groups[0]["lr"])
        enter_train_mode(trainer.model)
        trained = train_one_epoch(
            self._ddp if self._ddp is not None else trainer._forward_module,
            train_loader,
            task=trainer.task,
            optimizer=trainer.optimizer,
            scaler=trainer._scaler,
            device=trainer.device,
            dtype=trainer._dtype,
            dist=self.dist,
            epoch=epoch,
            description=f"epoch {epoch}/{trainer.max_epochs}",
            progress=trainer.progress and self.dist.is_main,
        )
        if not trained.finite:
            self._stop_on_nonfinite(
                "training",
                epoch,
                trained.nonfinite_value if trained.nonfinite_step else trained.loss,
                step=trained.nonfinite_step,
                steps=trained.steps,
            )
        broken = first_nonfinite_state(trainer._forward_module)
        if broken is not None:  # a NaN gradient at the last step: the loss did not show it
            self._stop_on_nonfinite("weights", epoch, math.nan, parameter=broken)
        values = {"train_loss": trained.loss, "train_accuracy": trained.accuracy}
        if val_loader is not None:
            result = run_evaluation(
                trainer._engine(),
                val_loader,
                loss=trainer.task.loss,
                classes=classes_of(trainer.model),
                where="Trainer.fit (val)",
                refuse_nonfinite=False,  # a NaN validation loss stops the fit, naming the epoch
            )
            if not math.isfinite(result.loss):
                self._stop_on_nonfinite("validation", epoch, result.loss)
            self.validation_result = result
            values.update(trainer.task.validation_metrics(result))
        values["lr"] = start_lr
        seconds = time.perf_counter() - started
        metrics.record(trainer.history, values, epoch=epoch, seconds=seconds)
        trainer.epoch = epoch
        if self.dist.is_main:
            level = logging.INFO if trainer.progress else logging.DEBUG
            logger.log(level, epoch_line(epoch, trainer.max_epochs, metrics.values, seconds))
        trainer.task.step_scheduler(trainer.scheduler, metrics.values)
        for callback in self.callbacks:
            callback.on_epoch_end(trainer, epoch, metrics.values)

    def _stop_on_nonfinite(
        self,
        stage: str,
        epoch: int,
        value: float,
        *,
        step: int | None = None,
        steps: int | None = None,
        parameter: str | None = None,
    ) -> None:
        """Raise :class:`NonFiniteLossError` before anything of ``epoch`` is recorded or
        saved, naming what the checkpoints hold."""
        trainer = self.trainer
        checkpoints = [c for c in self.callbacks if isinstance(c, ModelCheckpoint)]
        saved = "; ".join(c.files_on_disk() for c in checkpoints)
        if not checkpoints:
            saved = "no checkpoint is written without out_dir"
        groups = trainer.optimizer.param_groups
        error = nonfinite_loss_error(
            stage=stage,
            epoch=epoch,
            value=value,
            step=step,
            steps=steps,
            parameter=parameter,
            # the rate set, not the scheduler's current one (0 in a warm-up's first step)
            lr=max(float(group.get("initial_lr", group["lr"])) for group in groups),
            saved=saved,
            low_precision=trainer._dtype in (torch.float16, torch.bfloat16),
        )
        where = f", step {step}" if step is not None else ""
        what = f"the weights ({parameter})" if stage == "weights" else f"the {stage} loss"
        trainer.stop_reason = f"{what} became {value} at epoch {epoch}{where}"
        trainer.history.stop_reason = trainer.stop_reason
        raise error
