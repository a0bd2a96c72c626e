"""The Trainer: the loop's settings and public face (device and processes, precision,
callbacks, checkpoints, resuming, evaluation).

What is trained (loss, class balance, optimizer, scheduler, metrics) is a
:class:`~retinalnet.training.ClassificationTask` (``_task.py``). The loop's parts live
beside it: one fit in ``_loop.py``, one training pass in ``_epoch.py``, the metrics of an
epoch in ``_metrics.py``, the loaders in ``_data.py``, the checkpointed training state in
``_resume.py``, the 0.1 argument names in ``_old_arguments.py``, what ``feature_cache``
comes to in ``_config.py``, the cached features kept for reuse in ``_cached_data.py`` and
the optimizer each fit builds in ``_fit_optimizer.py``.

Why this module is long: the Trainer's docstring is its manual (every setting, what
:meth:`~Trainer.fit` raises, the 0.1 names), a third of the module; the code is what stays
of the Trainer's public face once the loop, the epoch, the data and the checkpoints moved out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from retinalnet._core.bool_options import check_bool
from retinalnet._core.classes import check_same_classes
from retinalnet._core.device import default_num_workers, resident_device, resolve_device
from retinalnet._core.loaders import DataSource, shut_down_workers
from retinalnet._core.model_use import check_float32_weights, check_no_inference_weights
from retinalnet._core.progress import progress_output
from retinalnet.datasets._readable import readable_for_scoring
from retinalnet.engine import InferenceEngine
from retinalnet.models import Classifier
from retinalnet.precision import Precision, resolve_precision
from retinalnet.training._cached_data import CachedData
from retinalnet.training._callbacks import Callback, check_callbacks
from retinalnet.training._config import (
    FeatureCacheConfig,
    FeatureCacheOption,
    check_loop_settings,
    choose_feature_cache,
    why_data_is_not_cached,
)
from retinalnet.training._data import classes_of, fit_loader, warn_of_own_transform
from retinalnet.training._distributed import (
    DistributedContext,
    local_device,
    logs_from_main_process_only,
)
from retinalnet.training._evaluation import EvaluationResult, run_evaluation
from retinalnet.training._feature_cache import (
    HeadNotLastError,
    build_feature_cache,
    memory_mapped,
    trainable_head,
)
from retinalnet.training._fit_optimizer import (
    build_optimizer,
    optimizer_for_run,
    trainable_parameters,
)
from retinalnet.training._history import History
from retinalnet.training._loop import FitLoop
from retinalnet.training._lr_find import find_lr
from retinalnet.training._lr_result import LRFinderResult
from retinalnet.training._metrics import available_metrics
from retinalnet.training._model_checkpoint import refuse_shared_checkpoint_files
from retinalnet.training._nonfinite import check_finite_weights
from retinalnet.training._old_arguments import TrainerArguments, trainer_arguments
from retinalnet.training._resume import save_training_state
from retinalnet.training._seed import check_seed
from retinalnet.training._task import ClassificationTask

__all__ = ["Trainer", "training_grad_mode"]


class Trainer:
    """Fits a model: the loop, with callbacks, checkpoints and resumption.

    The Trainer owns how training runs (device and processes, precision, the epoch loop,
    callbacks, checkpoints); a :class:`ClassificationTask` says what is trained (loss, class
    balance, optimizer, scheduler, metrics).

    Parameters
    ----------
    model
        A :class:`~retinalnet.models.Classifier` (from :func:`~retinalnet.vgg16_transfer`,
        say). Its preprocessing is applied to data sets that yield PIL images, its class
        names label the metrics, and checkpoints need it.
    task
        What is trained. Default ``ClassificationTask()``: ``CrossEntropyLoss`` (equal to
        the tutorial's ``NLLLoss`` for networks ending in ``LogSoftmax``; right for logits
        too) and ``Adam(lr=1e-3)`` over the trainable parameters, as in the tutorial.

        .. versionadded:: 0.2
    max_epochs
        Upper bound on epochs (counting those of a resumed run).
    batch_size, num_workers
        DataLoader settings for data sets passed to :meth:`fit` (a DataLoader is used as is).
        ``num_workers=None`` picks by device (0 on a CPU, where workers measured slower, up
        to 8 with a GPU).
    callbacks
        :class:`Callback` instances, e.g. ``[EarlyStopping(patience=3)]``. Run in order
        after each epoch.
    out_dir
        If given, the best model (``best.pt``) and the latest state (``last.pt``) are written
        there during the fit (a :class:`ModelCheckpoint` monitoring ``val_loss``, or
        ``train_loss`` without validation data). The folder is locked while the fit writes
        there (:class:`RunLock`): a second fit into it is refused.

        .. versionadded:: 0.2
           Replaces ``checkpoint_dir``.
    overwrite
        Let a new fit replace an existing run's ``best.pt``, ``last.pt`` and ``history.csv``
        in ``out_dir`` (a symbolic link there is replaced, not written through); a resumed
        fit always may.
    feature_cache
        Compute the frozen backbone's output once per image and train only the head on it
        (see :func:`build_feature_cache`). ``"auto"`` (default): on, in memory and without
        augmented views, when the model is a Classifier whose parameters outside one final
        head are all frozen (``vgg16_transfer()``, ``create_model(name)``); off when more
        than a head trains (fine-tuning), for a plain module, and for training data that
        cannot be cached (a DataLoader, a data set with its own ``transform``); decided
        again at each fit for the model as it is then (a model unfrozen since trains
        without it), and each fit logs which and why. ``False``: off. ``True`` keeps it
        in memory, a folder keeps it on disk for later runs, a :class:`FeatureCacheConfig`
        also sets augmented ``views``; these need every parameter outside the head frozen
        (checked again at each fit). With the cache, images get the evaluation
        preprocessing (no random augmentation below the head, except the augmented
        views). A folder named ``auto`` is ``Path("auto")``.

        .. versionchanged:: 0.2
           The default is ``"auto"`` (was ``False``).
    precision
        ``"auto"`` (default), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (GPU, with loss scaling),
        one policy for the whole fit (see :func:`~retinalnet.precision.resolve_precision`):
        with ``"auto"`` the training passes run in bf16 on GPUs (fp16 on older ones) and in
        fp32 on CPUs, where bf16 training measured 4.5 times slower (the demo's small CNN, 2
        cores); validation and the feature cache run through the inference engine, in bf16
        on GPUs and on CPUs with native bf16 (frozen VGG16: 5.7 times faster than fp32 on 2
        CPU cores), as the Predictor and :func:`evaluate` do. Weights and optimizer state
        stay fp32.
    device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda:0"``, ...
    seed
        Seeds torch, NumPy, Python's ``random`` and the shuffling at the start of
        :meth:`fit`: the same seed gives the same history on the same CPU, bit for bit, with
        the same ``num_workers`` and number of threads (``OMP_NUM_THREADS``; another CPU
        can give another run: see :func:`seed_everything`), and a
        resumed fit repeats the uninterrupted one (checkpoints carry the random generators
        and the data order). Seed the model's initial weights too, before building it, with
        :func:`seed_everything`.
    progress
        Log one line per epoch at INFO (epoch, training and validation loss and accuracy,
        seconds) and show a live batch bar (when tqdm is installed and the output is a
        terminal; plain lines otherwise, for loops over 10 s). When neither the
        ``retinalnet`` logger nor the root logger has a handler, these lines are printed
        on stderr for the duration of the fit; with logging configured they go where it
        says, once. ``False`` is quiet (the lines go to DEBUG).

        .. versionadded:: 0.2
           Replaces ``verbose``.
    **deprecated
        The 0.1 keywords, accepted with a :class:`DeprecationWarning` until 0.3:
        ``checkpoint_dir`` (now ``out_dir``), ``verbose`` (now ``progress``), ``optimizer``,
        ``scheduler``, ``loss``, ``lr`` and ``balance`` (now ``task=ClassificationTask(...)``)
        and ``cache_views`` (now ``feature_cache=FeatureCacheConfig(views=...)``).

    Attributes
    ----------
    task : ClassificationTask
        What is trained.
    optimizer : torch.optim.Optimizer
        Built by the task from the trainable parameters, at construction and again at
        each :meth:`fit` (see there).
    scheduler : torch.optim.lr_scheduler.LRScheduler or None
        Built by the task with the optimizer, stepped after every epoch (or step).
    history : History
        Filled by :meth:`fit`.
    should_stop : bool
        Set by a callback to end the fit after the current epoch. Checkpoints keep it (and
        ``stop_reason``): a fit resumed from a stopped run trains no more epochs.
    stop_reason : str or None
        Why the last fit stopped.
    epoch : int
        Epochs completed so far.

    Raises
    ------
    ValueError
        For a loop setting or ``seed`` out of range, a model with nothing trainable, or a
        bad ``precision``.
    TypeError
        If ``model`` is not an ``nn.Module``, ``out_dir`` or an explicit ``feature_cache``
        comes with a plain module (not a Classifier), ``task`` is not a
        ClassificationTask, or ``callbacks`` is not a list of :class:`Callback` instances
        (the message names the position of the first that is not).

    Examples
    --------
    >>> from retinalnet import EarlyStopping, KermanyOCT, Trainer, vgg16_transfer
    >>> from retinalnet.training import ClassificationTask
    >>> model = vgg16_transfer()  # doctest: +SKIP
    >>> trainer = Trainer(
    ...     model,
    ...     ClassificationTask(balance="weights"),
    ...     callbacks=[EarlyStopping(patience=3)],
    ...     out_dir="runs/vgg16",
    ... )  # doctest: +SKIP
    >>> history = trainer.fit(
    ...     KermanyOCT("OCT2017", "train"), KermanyOCT("OCT2017", "val")
    ... )  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        task: ClassificationTask | None = None,
        *,
        max_epochs: int = 20,
        batch_size: int = 32,
        callbacks: Sequence[Callback] = (),
        out_dir: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        feature_cache: FeatureCacheOption = "auto",
        precision: Precision = "auto",
        device: str | torch.device = "auto",
        seed: int | None = None,
        progress: bool = True,
        num_workers: int | None = None,
        **deprecated: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(
                "Trainer needs a torch nn.Module to train (ideally a retinalnet Classifier), got "
                f"{type(model).__name__}; build one with retinalnet.models.create_model(name), "
                "or wrap your network: Classifier(network, classes=...)"
            )
        if deprecated:
            given = TrainerArguments(task, out_dir, progress, feature_cache)
            new = trainer_arguments(deprecated, given)
            task, out_dir, progress, feature_cache = (
                new.task,
                new.out_dir,
                new.progress,
                new.feature_cache,
            )
        overwrite = check_bool(overwrite, "overwrite")  # "no" read as True replaced a run
        progress = check_bool(progress, "progress")
        if task is not None and not isinstance(task, ClassificationTask):
            raise TypeError(
                f"task must be a ClassificationTask, got {type(task).__name__}; build one with "
                "ClassificationTask(loss=..., optimizer=..., ...)"
            )
        check_loop_settings(max_epochs=max_epochs, batch_size=batch_size, num_workers=num_workers)
        seed = check_seed(seed)  # an int: NumPy's are refused by torch's generators
        checked_callbacks = check_callbacks(callbacks)
        trainable = trainable_parameters(model)
        if out_dir is not None and not isinstance(model, Classifier):
            raise TypeError(
                "out_dir needs a retinalnet Classifier, so checkpoints carry class names and "
                "preprocessing: wrap the network with Classifier(network, classes=...)"
            )
        self.model = model
        self.task = task if task is not None else ClassificationTask()
        self.device = local_device(resolve_device(device))
        self.precision = precision
        self._dtype = resolve_precision(precision, self.device, training=True)
        # fp16 scales the loss on the device that trains (CUDA or MPS); a "cuda" scaler
        # disabled itself without CUDA, so MPS trained fp16 with no loss scaling
        self._scaler = torch.amp.GradScaler(self.device.type, enabled=self._dtype == torch.float16)
        self._built = build_optimizer(self.task, trainable)  # built again by a later fit
        self.optimizer, self.scheduler = self._built.optimizer, self._built.scheduler
        self.callbacks: list[Callback] = checked_callbacks
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.overwrite = overwrite
        self._feature_cache_option: FeatureCacheOption = feature_cache  # decided at each fit
        self._cache_choice = choose_feature_cache(feature_cache, model)
        self.feature_cache: FeatureCacheConfig | None = self._cache_choice.config
        self._cache_refused: str | None = None  # why "auto" found the model uncacheable
        # the data whose classes were checked before the next fit (fine_tune's probe), which
        # that fit, on the same data, does not check again
        self._classes_checked: tuple[object, object] | None = None
        self._last_cached: CachedData | None = None  # the features built last, for reuse
        self.max_epochs = int(max_epochs)  # a NumPy int would not load from a checkpoint
        self.batch_size = int(batch_size)
        self.num_workers = default_num_workers(self.device, num_workers)
        self.seed = seed
        self.progress = progress
        self.history = History()
        self.should_stop = False
        self.stop_reason: str | None = None
        self.epoch = 0
        self._loop: FitLoop | None = None  # the last fit's
        self._head: nn.Module | None = None  # set while training on cached features
        self._inference: InferenceEngine | None = None

    @property
    def has_validation(self) -> bool:
        """Whether the current (or last) fit has validation data.

        .. versionadded:: 0.2
        """
        return self._loop is not None and self._loop.validation

    @property
    def available_metrics(self) -> tuple[str, ...]:
        """Metric names the current fit produces: the task's (``val_*`` only with validation
        data), ``lr``, and those the callbacks declare in ``metric_names``."""
        callbacks = self._loop.callbacks if self._loop is not None else self.callbacks
        return available_metrics(self.task, self.has_validation, callbacks)

    def log(self, name: str, value: float | torch.Tensor) -> None:
        """Record a metric of the epoch in progress, e.g. from a callback's ``on_epoch_end``.

        It goes into the epoch's :class:`EpochRecord` (``extra``) and into the metrics the
        callbacks after this one receive. To let :class:`EarlyStopping` or
        :class:`ModelCheckpoint` monitor it, list it in the callback's ``metric_names`` and
        give the callback ``mode="min"`` or ``"max"``.

        Raises
        ------
        RuntimeError
            Outside an epoch of :meth:`fit`.
        ValueError
            If ``name`` is one of the metrics the Trainer records itself.
        TypeError
            If ``value`` is not one real number (``None``, a string, a bool, one value per
            class): log one metric per class.

        Examples
        --------
        >>> class Margin(Callback):
        ...     metric_names = ("val_margin",)
        ...
        ...     def on_epoch_end(self, trainer, epoch, metrics):
        ...         trainer.log("val_margin", metrics["val_accuracy"] - metrics["train_accuracy"])

        .. versionadded:: 0.2
        """
        if self._loop is None or self._loop.metrics is None:
            raise RuntimeError(
                f"Trainer.log({name!r}, ...) records a metric of the epoch in progress: call "
                "it from a callback hook (on_epoch_start, on_epoch_end) during fit"
            )
        self._loop.metrics.log(name, value)

    def _loader(
        self,
        data: DataSource,
        *,
        train: bool,
        sampler: Sampler[int] | None = None,
        name: str | None = None,
    ) -> DataLoader[Any]:
        return fit_loader(
            data,
            model=self.model,
            train=train,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            device=self.device,
            seed=self.seed,
            dist=self._loop.dist if self._loop is not None else DistributedContext(),
            sampler=sampler,
            name=name,
        )

    def fit(
        self,
        train: DataSource,
        val: DataSource | None = None,
        *,
        resume_from: str | os.PathLike[str] | None = None,
    ) -> History:
        """Train until ``max_epochs`` or until a callback stops it.

        Each fit (without ``resume_from``) is a new run from the model's current weights,
        as Lightning's: its history and epochs start at 1, and the task builds its optimizer
        and scheduler anew (``task.configure_optimizers``) from the parameters trainable now
        and the task's settings now (``task.lr``), so a model unfrozen since the last fit
        trains whole, with fresh optimizer moments and its schedule (a warm-up too) from
        the start. Only an optimizer no fit has used yet, built for the same trainable
        parameters and settings, is kept (with a rate ``lr_find(apply=True)`` set on it).
        ``feature_cache="auto"`` is decided again for the model as it is (off, and logged,
        once more than one final head trains). With ``resume_from``, the optimizer and
        scheduler are built the same way and the run's state is loaded into them. An
        optimizer object of your own (``ClassificationTask(optimizer=instance)``) is used
        as it is (its schedule restarts), and refused when parameters that became
        trainable are not in it. At the end, also of a fit that failed or was interrupted,
        the loaders' worker processes are ended and the gradients dropped (``.grad`` is
        ``None``).

        Parameters
        ----------
        train
            Training data: a data set of ``(image, target)`` or a DataLoader. A data set
            yielding PIL images gets the model's training preprocessing.
        val
            Validation data, evaluated after every epoch (model's eval preprocessing).
        resume_from
            A checkpoint written by this trainer (``last.pt``): the model, optimizer,
            history, epoch count and callback states are restored, and training continues
            up to ``max_epochs``. A run that has finished (``max_epochs`` reached, or
            stopped by a callback such as :class:`EarlyStopping`) trains no more epochs: the
            fit only ends it again (the best weights restored, a calibration redone), and
            says so for a stopped run.

            .. versionchanged:: 0.2
               A run a callback stopped stays stopped (it trained on until
               ``max_epochs``).

        Returns
        -------
        History
            All epochs, including those of a resumed run.

        Raises
        ------
        NonFiniteLossError
            If a training step's loss, the validation loss or a trained weight is NaN or
            infinite; nothing of that epoch is recorded or saved, and the message says what
            the checkpoints hold.
        RunLockedError
            If another run writes to ``out_dir``.
        FileExistsError
            If ``out_dir`` holds a ``best.pt`` that this new run would replace (not a
            resumed run, nor with ``overwrite=True``).
        ValueError
            If the data's classes differ from the model's, a callback monitors a metric
            the fit does not produce, or ``resume_from`` holds another run (other classes,
            another optimizer, another learning-rate schedule or none where it had one)
            or a malformed part, or an earlier epoch of the run whose
            ``last.pt`` is in ``out_dir`` (resuming ``best.pt`` would replace the later
            epochs). Also if a weight of the model is already NaN or infinite (an earlier
            fit diverged; not with ``resume_from``, which loads other weights), nothing is
            trainable, an optimizer object of your own was made for other trainable
            parameters, or an explicit ``feature_cache`` meets a model that trains more
            than its head. These refusals, the two above, and a missing ``resume_from`` file
            (``FileNotFoundError``) all come before the feature cache is built and before
            the first epoch. Also if the task's schedule is per step
            (``scheduler_interval="step"``) and an epoch of this fit has another number of
            steps than the resumed run's (another batch size or number of training images):
            refused before the first epoch (after the feature cache); without a per-step
            schedule that is logged as a warning.
            Also, before anything runs, if two checkpoint writers would write one file:
            ``out_dir`` and a :class:`ModelCheckpoint` of ``callbacks`` on the same folder,
            or two of those (the last to write would win).
        TypeError
            If something that is not a :class:`Callback` was added to ``callbacks`` after
            construction (refused before anything runs; the message names its position).
        retinalnet.checkpoint.CheckpointWriteError
            If a checkpoint cannot be written; the one there before is untouched.
        """
        # inside a caller's no_grad() or inference_mode() too
        with training_grad_mode(self.model):
            self._prepare_run("Trainer.fit", resumed=resume_from is not None)
            loop = self._loop = FitLoop(self, validation=val is not None)
            refuse_shared_checkpoint_files(loop.callbacks, self)  # best.pt: one writer
            with (
                progress_output(self.progress and loop.dist.is_main),
                logs_from_main_process_only(loop.dist),
            ):
                return loop.run(train, val, resume_from)

    def _prepare_run(self, where: str, *, resumed: bool = False) -> None:
        """Before a fit or ``lr_find``: refuse weights already NaN (unless a resumed run's
        replace them), take the optimizer for what trains now (see :meth:`fit`), and decide
        the feature cache for the model as it is now."""
        if not resumed:
            check_finite_weights(self.model, where)
        self._built = optimizer_for_run(
            self.model,
            self.task,
            self._built,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            where=where,
        )
        self.optimizer, self.scheduler = self._built.optimizer, self._built.scheduler
        self._decide_feature_cache()

    def _decide_feature_cache(self) -> None:
        """What ``feature_cache`` comes to for the model as it is now (a model unfrozen
        since construction has no frozen backbone to cache)."""
        self._cache_choice = choose_feature_cache(self._feature_cache_option, self.model)
        self.feature_cache = self._cache_choice.config

    @property
    def _forward_module(self) -> nn.Module:
        """What a batch goes through: the head alone on cached features, else the model."""
        return self._head if self._head is not None else self.model

    def _feature_cache_for(self, *data: DataSource | None) -> tuple[FeatureCacheConfig | None, str]:
        """The cache to use for ``data`` (``None``: none), and why.

        An explicit choice holds for any data (a disk cache of a DataLoader is then refused
        by :func:`build_feature_cache`); ``"auto"`` leaves data that cannot be cached
        uncached, and every data once the model's head proved not to be its last step.
        """
        choice = self._cache_choice
        if not choice.auto or self.feature_cache is None:
            return self.feature_cache, choice.reason
        if self._cache_refused is not None:
            return None, self._cache_refused
        for source in data:
            reason = why_data_is_not_cached(source) if source is not None else None
            if reason is not None:
                return None, reason
        return self.feature_cache, choice.reason

    def _cached_or_none(
        self, data: DataSource, *, views: int = 0, shard: bool = False
    ) -> DataSource | None:
        """``data`` as cached features, or ``None`` when ``"auto"`` finds that the model's
        head is not its last step (an explicit cache raises then)."""
        try:
            return self._cached(data, views=views, shard=shard)
        except HeadNotLastError as error:
            if not self._cache_choice.auto:
                raise
            self._cache_refused = f"{error} (found on the first batch)"
            self._head = None
            return None

    def _cached(self, data: DataSource, *, views: int = 0, shard: bool = False) -> DataSource:
        """``data`` as cached features; the ones built last are reused for the same data
        object while it holds the same samples and files and the frozen weights and
        preprocessing stay as they were (``evaluate(val)`` after a fit; see
        :meth:`CachedData.unchanged`). ``shard``: in a distributed fit every process builds
        it, each taking its share."""
        if not isinstance(self.model, Classifier) or self.feature_cache is None:
            raise TypeError("feature_cache needs a retinalnet Classifier model")
        head_name, head = trainable_head(self.model)
        last = self._last_cached
        seed = self.seed or 0  # draws the augmented views: another seed, other views
        same = (
            last is not None
            and last.source is data
            and last.views == views
            and (views == 0 or last.seed == seed)
        )
        if last is not None and same and last.unchanged(self.model, head_name):
            self._head = head
            return last.features
        cache = build_feature_cache(
            self.model,
            data,
            views=views,
            seed=seed,
            cache_dir=self.feature_cache.cache_dir,
            batch_size=max(self.batch_size, 64),
            num_workers=self.num_workers,
            device=self.device,
            precision=self.precision,
            progress=self.progress,
            shard=shard,  # in fit, every process builds it: each can take its share
        )
        # a disk cache is trained on from its file, memory-mapped: the copy the build holds
        # in memory is let go (the rows are read from the page cache, which can be reclaimed)
        cache = memory_mapped(cache, self.feature_cache.cache_dir)
        self._head = head
        features = cache.dataset(resident_device(cache.features.nbytes, self.device))
        self._last_cached = CachedData.of(self.model, head_name, data, views, features, seed=seed)
        return features

    def evaluate(self, data: DataSource) -> EvaluationResult:
        """Loss, accuracy (overall and per class) and confusion matrix on ``data``.

        Uses the task's loss, the trainer's device and batch size, and the model's eval
        preprocessing; with the feature cache (see ``feature_cache``), the backbone features
        of ``data`` are cached too. The features the last fit (or evaluation) built are
        reused for the same data set object; they are built again when its length, its
        ``samples`` (paths and classes) or a file's size or modification time changed
        (file-backed data sets; for others, its length and ``samples``), or the
        backbone's weights or the preprocessing did. A ``KermanyOCT(on_error="skip")``
        is scored on the images it can read (the others are logged), never on the scan it
        puts in their place.
        """
        if isinstance(self.model, Classifier):
            check_same_classes(self.model.classes, data, where="Trainer.evaluate")
            warn_of_own_transform(self.model, data, where="Trainer.evaluate")
        with progress_output(self.progress):
            decode = self.model.preprocessing.load if isinstance(self.model, Classifier) else None
            data, _ = readable_for_scoring(
                data,
                decode,
                where="Trainer.evaluate()",
                progress=self.progress,
                num_workers=self.num_workers,
            )
            self.model.to(self.device)
            self._decide_feature_cache()  # for the model as it is now
            config, _ = self._feature_cache_for(data)
            cached = self._cached_or_none(data) if config is not None else None
            if cached is None:
                self._head = None  # the whole model runs on this data
            loader = self._loader(cached if cached is not None else data, train=False, name="data")
            try:
                return run_evaluation(
                    self._engine(),
                    loader,
                    loss=self.task.loss,
                    classes=classes_of(self.model),
                    progress=self.progress,
                )
            finally:
                if loader is not data:  # a DataLoader of yours keeps its workers
                    shut_down_workers(loader)

    def _engine(self) -> InferenceEngine:
        """The inference engine for validation and :meth:`evaluate`: the head alone on
        cached features, else the model; kept while the module it runs stays the same, so
        bf16 weights are cast again only where training changed them."""
        module = self._forward_module
        if self._inference is None or self._inference.model is not module:
            self._inference = InferenceEngine(module, device=self.device, precision=self.precision)
        # the model's calibration temperature, also when the engine runs the head alone
        self._inference.temperature = getattr(self.model, "temperature", None)
        return self._inference

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Write the model and the training state (for resuming) atomically to ``path``.

        In a distributed run only rank 0 writes; the others return the same path.
        """
        if not isinstance(self.model, Classifier):
            raise TypeError("save_checkpoint needs a retinalnet Classifier model")
        if self._loop is not None and not self._loop.dist.is_main:
            return Path(path)
        return save_training_state(
            path,
            self.model,
            epoch=self.epoch,
            history=self.history,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            callbacks=self._loop.callbacks if self._loop is not None else self.callbacks,
            loop_state=self._loop.loop_state() if self._loop is not None else None,
        )

    def _checkpoint_saved(self, path: Path) -> None:
        """Tell the fit's callbacks that a :class:`ModelCheckpoint` wrote ``path`` whole
        (:meth:`Callback.on_checkpoint_saved`); in a distributed run on the writing process
        only."""
        if self._loop is not None and not self._loop.dist.is_main:
            return
        for callback in self._loop.callbacks if self._loop is not None else self.callbacks:
            callback.on_checkpoint_saved(self, path)

    def lr_find(
        self,
        train: DataSource,
        *,
        min_lr: float = 1e-7,
        max_lr: float = 10.0,
        num_steps: int = 100,
        rule: str = "steepest",
        apply: bool = False,
    ) -> LRFinderResult:
        """Find a learning rate: the range test of Smith (2017), as fastai's ``lr_find``.

        Trains ``num_steps`` batches of ``train`` at rates growing exponentially from
        ``min_lr`` to ``max_lr`` (stopping once the smoothed loss exceeds four times its
        lowest value), with this trainer's task (loss, class balance, optimizer), device,
        precision and feature cache (so on a frozen backbone the steps run on cached
        features: seconds). The optimizer is the one the coming :meth:`fit` would start
        with (built for the parameters trainable now, see :meth:`fit`), and its parameter
        groups keep their proportions: the first group's rate is the one tested and
        suggested. Afterwards the model's weights,
        each module's train/eval mode, the optimizer's state and rates, the loss scaler and
        the random generators are as before, bit for bit.

        Parameters
        ----------
        train
            Training data, as for :meth:`fit`.
        min_lr, max_lr, num_steps
            The range of rates and the steps over it (a short data set is repeated).
        rule
            How the rate is read off the curve: ``"steepest"`` (default; Lightning's rule,
            where the smoothed loss falls fastest) or ``"valley"`` (fastai's, more
            cautious). Measured with ``benchmarks/bench_lr_find.py`` (frozen
            EfficientNet-Lite0, 10 epochs, on synthetic scans and on 471 real Kermany scans),
            the steepest rate trained as well as the best fixed rate (1e-2) and better than
            the valley rate and the default 1e-3 (see :doc:`/training_tools`).
        apply
            Also make the suggestion the learning rate of the coming :meth:`fit` (the
            first parameter group's rate, the others scaled with it; with the default Adam
            also ``task.lr``, so later fits keep it too). With an optimizer function of
            your own, only the coming fit gets it: a later fit builds the optimizer again
            with the function's rates (and warns when the suggestion was never used, the
            trainable parameters having changed before the fit).

        Returns
        -------
        LRFinderResult
            The rates, the smoothed losses, the suggestion, and ``plot()``.

        Raises
        ------
        ValueError
            If a rate or ``num_steps`` is out of range, ``rule`` is unknown, a weight of
            the model is already NaN or infinite, or (with ``apply=True``) the curve is too
            short to suggest a rate (the rate is then left
            as it was).

        Examples
        --------
        >>> trainer = Trainer(model, feature_cache=True)  # doctest: +SKIP
        >>> result = trainer.lr_find(train, apply=True)  # doctest: +SKIP
        >>> print(result)  # doctest: +SKIP
        lr_find: 78 steps from 1.0e-07 to 1.6e+00 (the loss diverged at lr 1.6e+00); ...
        >>> history = trainer.fit(train, val)  # doctest: +SKIP

        .. versionadded:: 0.2
        """
        with training_grad_mode(self.model):  # inside a caller's no_grad() or inference_mode()
            return find_lr(
                self,
                train,
                min_lr=min_lr,
                max_lr=max_lr,
                num_steps=num_steps,
                rule=rule,
                apply=apply,
            )


@contextlib.contextmanager
def training_grad_mode(model: object) -> Iterator[None]:
    """Gradients on for a fit, whatever mode the caller is in: a fit inside
    ``torch.no_grad()`` or ``torch.inference_mode()`` (a notebook cell wrapped for
    evaluation) trains as outside them, as Grad-CAM computes its gradients there; the
    caller's mode is back afterwards.

    Raises
    ------
    ValueError
        If a weight of ``model`` was made under ``torch.inference_mode()`` (an inference
        tensor: no gradient can ever reach it), or is not float32 (a model cast by
        ``.half()``), before anything runs.
    """
    check_no_inference_weights(model, "trained")
    check_float32_weights(model, "trained")
    with torch.inference_mode(False), torch.enable_grad():
        yield
