"""The training loop."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset

from retinalnet._core.device import default_num_workers, resident_device, resolve_device
from retinalnet._core.loaders import DataSource, make_loader
from retinalnet._core.progress import progress_bar
from retinalnet.checkpoint import load_checkpoint, load_weights, save_checkpoint
from retinalnet.engine import InferenceEngine
from retinalnet.models import Classifier
from retinalnet.models._classifier import network_of
from retinalnet.precision import Precision, autocast, resolve_precision
from retinalnet.training._balance import BALANCE_MODES, balanced_sampler, class_weights
from retinalnet.training._callbacks import MONITORABLE, Callback, ModelCheckpoint
from retinalnet.training._distributed import DistributedContext, distributed_context, local_device
from retinalnet.training._evaluation import EvaluationResult, run_evaluation
from retinalnet.training._feature_cache import build_feature_cache, trainable_head
from retinalnet.training._history import EpochRecord, History

__all__ = ["OptimizerFactory", "SchedulerFactory", "Trainer"]

logger = logging.getLogger(__name__)

OptimizerFactory: TypeAlias = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
"""Builds an optimizer for the trainable parameters, e.g. ``lambda p: torch.optim.SGD(p, 0.01)``."""

SchedulerFactory: TypeAlias = Callable[
    [torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler
]
"""Builds a learning-rate scheduler for the optimizer, stepped once per epoch, e.g.
``lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)``."""


class Trainer:
    """Fits a model, with callbacks, checkpoints and resumption.

    Parameters
    ----------
    model
        A :class:`~retinalnet.models.Classifier` (from :func:`~retinalnet.vgg16_transfer`,
        say). Its preprocessing is applied to data sets that yield PIL images, its class
        names label the metrics, and checkpoints need it.
    optimizer
        An optimizer, or a function building one from the trainable parameters. Default:
        ``Adam(trainable parameters, lr=lr)``, as in the tutorial.
    scheduler
        A function building a learning-rate scheduler from the optimizer; it is stepped
        after every epoch (``ReduceLROnPlateau`` with the validation loss, or the training
        loss without validation data). Default: a constant learning rate.
    loss
        Default ``NLLLoss`` (the model ends in ``LogSoftmax``).
    device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda:0"``, ...
    callbacks
        E.g. ``[EarlyStopping(patience=3)]``. Run in order after each epoch.
    max_epochs
        Upper bound on epochs (counting those of a resumed run).
    batch_size, num_workers
        DataLoader settings for data sets passed to :meth:`fit` (a DataLoader is used as is).
        ``num_workers=None`` picks by device (:func:`default_num_workers`: 0 on a CPU, where
        workers measured slower, up to 8 with a GPU).
    lr
        Learning rate of the default optimizer.
    checkpoint_dir
        If given, the best model and the latest state are written there during the fit (a
        :class:`ModelCheckpoint` monitoring ``val_loss``, or ``train_loss`` without
        validation data).
    overwrite
        Let a new fit replace an existing ``best.pt`` in ``checkpoint_dir``.
    feature_cache
        Compute the frozen backbone's output once per image and train only the head on it
        (see :func:`~retinalnet.training.build_feature_cache`): ``True`` keeps it in memory,
        a folder keeps it on disk for later runs. Needs every parameter outside the head
        frozen. Images then get the evaluation preprocessing (no random augmentation below
        the head, except ``cache_views`` augmented copies per image).
    cache_views
        With ``feature_cache``, also cache this many augmented copies of each training image.
    precision
        ``"auto"`` (default), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (GPU, with loss scaling),
        one policy for the whole fit (see :func:`~retinalnet.precision.resolve_precision`):
        with ``"auto"`` the training passes run in bf16 on GPUs (fp16 on older ones) and in
        fp32 on CPUs, where bf16 training measured 4.5 times slower (the demo's small CNN, 2
        cores); validation and the feature cache run through the inference engine, in bf16
        on GPUs and on CPUs with native bf16 (frozen VGG16: 5.7 times faster than fp32 on 2
        CPU cores), as the Predictor and :func:`evaluate` do. Weights and optimizer state
        stay fp32.
    seed
        Seeds torch and the shuffling at the start of :meth:`fit`: the same seed gives the
        same run on the CPU.
    verbose
        Log one line per epoch at INFO and show a live batch bar (when tqdm is installed
        and the output is a terminal). ``False`` is quiet.
    balance
        Counter class imbalance in the training data (whose ``targets`` attribute gives the
        classes): ``"weights"`` weights the default ``NLLLoss`` of the training batches by
        :func:`class_weights` (the validation loss stays unweighted, so it compares across
        runs); ``"sampler"`` draws batches with :func:`balanced_sampler` (seeded by
        ``seed``). Default ``None``: neither.

        .. versionadded:: 0.2

    Attributes
    ----------
    history : History
        Filled by :meth:`fit`.
    should_stop : bool
        Set by a callback to end the fit after the current epoch.
    stop_reason : str or None
        Why the last fit stopped.
    epoch : int
        Epochs completed so far.

    Examples
    --------
    >>> from retinalnet import EarlyStopping, KermanyOCT, Trainer, vgg16_transfer
    >>> model = vgg16_transfer()  # doctest: +SKIP
    >>> trainer = Trainer(model, callbacks=[EarlyStopping(patience=3)])  # doctest: +SKIP
    >>> train = KermanyOCT("OCT2017", "train")  # doctest: +SKIP
    >>> history = trainer.fit(train, KermanyOCT("OCT2017", "val"))  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: torch.optim.Optimizer | OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        loss: nn.Module | None = None,
        device: str | torch.device = "auto",
        callbacks: Sequence[Callback] = (),
        max_epochs: int = 20,
        batch_size: int = 32,
        num_workers: int | None = None,
        lr: float = 1e-3,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        feature_cache: bool | str | os.PathLike[str] = False,
        cache_views: int = 0,
        precision: Precision = "auto",
        seed: int | None = None,
        verbose: bool = True,
        balance: str | None = None,
    ) -> None:
        if balance is not None and balance not in BALANCE_MODES:
            raise ValueError(
                f"balance must be None or one of {', '.join(map(repr, BALANCE_MODES))}, "
                f"got {balance!r}"
            )
        if balance == "weights" and loss is not None:
            raise ValueError(
                "balance='weights' weights the default NLLLoss; with your own loss, pass "
                "weight=class_weights(train.targets) to it and leave balance=None"
            )
        for name, value, low in (
            ("max_epochs", max_epochs, 1),
            ("batch_size", batch_size, 1),
            ("num_workers", 0 if num_workers is None else num_workers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(
                "the model has no trainable parameters (everything is frozen); attach a new "
                "head with retinalnet.models.replace_head or freeze less"
            )
        if checkpoint_dir is not None and not isinstance(model, Classifier):
            raise TypeError(
                "checkpoint_dir needs a retinalnet Classifier, so checkpoints carry class "
                "names and preprocessing: wrap the network with Classifier(network, classes=...)"
            )
        self.model = model
        self.device = local_device(resolve_device(device))
        self.precision = precision
        self._dtype = resolve_precision(precision, self.device, training=True)
        self._scaler = torch.amp.GradScaler("cuda", enabled=self._dtype == torch.float16)
        if optimizer is None:
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(trainable, lr=lr)
        elif isinstance(optimizer, torch.optim.Optimizer):
            self.optimizer = optimizer
        else:
            self.optimizer = optimizer(trainable)
        self.scheduler = scheduler(self.optimizer) if scheduler is not None else None
        self.loss = loss if loss is not None else nn.NLLLoss()
        self.callbacks: list[Callback] = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.overwrite = overwrite
        self.feature_cache = feature_cache
        self.cache_views = cache_views
        if feature_cache is not False:
            if not isinstance(model, Classifier):
                raise TypeError("feature_cache needs a retinalnet Classifier model")
            trainable_head(model)  # fails now if the model has no frozen part to cache
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.num_workers = default_num_workers(self.device) if num_workers is None else num_workers
        self.seed = seed
        self.verbose = verbose
        self.balance = balance
        self._train_loss: nn.Module = self.loss
        self.history = History()
        self.should_stop = False
        self.stop_reason: str | None = None
        self.epoch = 0
        self._has_val = False
        self._active_callbacks: list[Callback] = []
        self._head: nn.Module | None = None  # set while training on cached features
        self._dist = DistributedContext()
        self._ddp: nn.Module | None = None  # the DistributedDataParallel wrapper in a fit
        self._inference: InferenceEngine | None = None

    @property
    def available_metrics(self) -> tuple[str, ...]:
        """Metric names the current fit produces (``val_*`` only with validation data)."""
        return tuple(m for m in MONITORABLE if self._has_val or not m.startswith("val_"))

    def _all_callbacks(self) -> list[Callback]:
        callbacks = list(self.callbacks)
        if self.checkpoint_dir is not None:
            monitor = "val_loss" if self._has_val else "train_loss"
            callbacks.append(
                ModelCheckpoint(self.checkpoint_dir, monitor=monitor, overwrite=self.overwrite)
            )
        return callbacks

    def _loader(
        self, data: DataSource, *, train: bool, targets: list[int] | None = None
    ) -> DataLoader[Any]:
        transform = decode = None
        if isinstance(self.model, Classifier):
            prep = self.model.preprocessing
            transform = prep.train_transform() if train else prep.eval_transform()
            decode = prep.load
        generator = None
        if train and self.seed is not None:
            generator = torch.Generator().manual_seed(self.seed)
        sampler: Sampler[int] | None = None
        if self.balance == "sampler" and targets is not None:
            sampler = balanced_sampler(targets, seed=self.seed)
        seeded_or_distributed = self._dist.enabled or self.seed is not None
        if train and seeded_or_distributed and not isinstance(data, DataLoader):
            # An epoch-seeded shuffle: the same order on every rank, a resumed run repeats the
            # order of the run it continues, and N ranks together see what one process sees.
            if sampler is not None and self._dist.enabled:
                raise ValueError(
                    "balance='sampler' cannot be combined with distributed training; use "
                    "balance='weights'"
                )
            if sampler is None:
                sampler = DistributedSampler(
                    data,
                    num_replicas=self._dist.world_size,
                    rank=self._dist.rank,
                    shuffle=True,
                    seed=self.seed or 0,
                )
        return make_loader(
            data,
            batch_size=self.batch_size,
            shuffle=train,
            transform=transform,
            decode=decode,
            num_workers=self.num_workers,
            generator=generator,
            pin_memory=self.device.type == "cuda",
            sampler=sampler,
        )

    def _train_targets(self, train: DataSource) -> list[int] | None:
        """The training targets when ``balance`` needs them; fails early without them."""
        if self.balance is None:
            return None
        targets = getattr(train, "targets", None)
        if targets is None and isinstance(train, TensorDataset) and len(train.tensors) == 2:
            targets = train.tensors[1].tolist()  # e.g. cached features (feature_cache)
        if isinstance(train, DataLoader) or targets is None:
            raise TypeError(
                f"balance={self.balance!r} needs a data set with a `targets` attribute (like "
                f"KermanyOCT), got {type(train).__name__}; pass the data set, not a DataLoader"
            )
        return [int(target) for target in targets]

    @property
    def _classes(self) -> tuple[str, ...]:
        if isinstance(self.model, Classifier):
            return self.model.classes
        output = getattr(self.model, "num_classes", None)
        if isinstance(output, int):
            return tuple(str(i) for i in range(output))
        raise TypeError(
            "cannot tell the number of classes of a plain module; wrap it in "
            "retinalnet.models.Classifier(network, classes=[...])"
        )

    def fit(
        self,
        train: DataSource,
        val: DataSource | None = None,
        *,
        resume_from: str | os.PathLike[str] | None = None,
    ) -> History:
        """Train until ``max_epochs`` or until a callback stops it.

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
            up to ``max_epochs``.

        Returns
        -------
        History
            All epochs, including those of a resumed run.
        """
        self._dist = distributed_context(self.device)
        with _logs_from_main_process_only(self._dist):
            return self._fit(train, val, resume_from)

    def _fit(
        self,
        train: DataSource,
        val: DataSource | None,
        resume_from: str | os.PathLike[str] | None,
    ) -> History:
        self._has_val = val is not None
        if self._has_val:
            self._classes  # noqa: B018 - fail now, not after an epoch, if classes are unknown
        if self.feature_cache is not False:
            train = self._cached(train, views=self.cache_views)
            val = self._cached(val) if val is not None else None
        targets = self._train_targets(train)
        train_loader = self._loader(train, train=True, targets=targets)
        self._train_loss = self.loss
        if self.balance == "weights" and targets is not None:
            num_classes = len(self._classes) if isinstance(self.model, Classifier) else None
            weights = class_weights(targets, num_classes).to(self.device)
            self._train_loss = nn.NLLLoss(weight=weights)
            logger.info("class weights for the loss: %s", [round(float(w), 3) for w in weights])
        val_loader = self._loader(val, train=False) if val is not None else None
        if self.seed is not None:
            torch.manual_seed(self.seed)
        self.model.to(self.device)
        self._ddp = self._wrap_distributed()
        self.should_stop = False
        self.stop_reason = None
        self.history = History()
        self.epoch = 0
        callbacks = self._active_callbacks = self._all_callbacks()
        for callback in callbacks:
            callback.on_fit_start(self)
        if resume_from is not None:
            self._resume(resume_from, callbacks)
        try:
            while self.epoch < self.max_epochs and not self.should_stop:
                self._run_epoch(train_loader, val_loader, callbacks)
        except BaseException as exception:
            for callback in callbacks:
                callback.on_exception(self, exception)
            raise
        if self.stop_reason is None:
            self.stop_reason = (
                f"stopped by a callback after epoch {self.epoch}"
                if self.should_stop
                else f"reached max_epochs={self.max_epochs}"
            )
        self.history.stop_reason = self.stop_reason
        for callback in callbacks:
            callback.on_fit_end(self)
        logger.info("fit finished: %s", self.stop_reason)
        return self.history

    def _run_epoch(
        self,
        train_loader: DataLoader[Any],
        val_loader: DataLoader[Any] | None,
        callbacks: Iterable[Callback],
    ) -> None:
        epoch = self.epoch + 1
        for callback in callbacks:
            callback.on_epoch_start(self, epoch)
        started = time.perf_counter()
        train_loss, train_accuracy = self._train_one_epoch(train_loader, epoch)
        val_result = None
        if val_loader is not None:
            val_result = run_evaluation(
                self._engine(), val_loader, loss=self.loss, classes=self._classes
            )
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_loss=val_result.loss if val_result else None,
            val_accuracy=val_result.accuracy if val_result else None,
            seconds=time.perf_counter() - started,
            lr=float(self.optimizer.param_groups[0]["lr"]),
        )
        self.history.append(record)
        self.epoch = epoch
        self._log_epoch(record)
        metrics = record.metrics()
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metrics["val_loss" if self._has_val else "train_loss"])
        elif self.scheduler is not None:
            self.scheduler.step()
        for callback in callbacks:
            callback.on_epoch_end(self, epoch, metrics)

    @property
    def _forward_module(self) -> nn.Module:
        """What a batch goes through: the head alone on cached features, else the model."""
        return self._head if self._head is not None else self.model

    def _cached(self, data: DataSource, *, views: int = 0) -> DataSource:
        if not isinstance(self.model, Classifier):
            raise TypeError("feature_cache needs a retinalnet Classifier model")
        cache_dir = None if isinstance(self.feature_cache, bool) else self.feature_cache
        cache = build_feature_cache(
            self.model,
            data,
            views=views,
            seed=self.seed or 0,
            cache_dir=cache_dir,
            batch_size=max(self.batch_size, 64),
            num_workers=self.num_workers,
            device=self.device,
            precision=self.precision,
            progress=self.verbose,
        )
        self._head = trainable_head(self.model)[1]
        return cache.dataset(resident_device(cache.features.nbytes, self.device))

    def _enter_train_mode(self) -> None:
        """Train mode for the trained part; a frozen backbone stays in eval mode.

        A frozen feature extractor is run as at inference (no dropout, fixed batch-norm
        statistics), so training with and without the feature cache sees the same features.
        """
        self.model.train()
        try:
            head_name, _ = trainable_head(self.model)
        except ValueError:
            return  # more than a head trains: everything in train mode
        network = network_of(self.model)
        for name, module in network.named_modules():
            inside_head = name == head_name or name.startswith(f"{head_name}.")
            on_path_to_head = head_name.startswith(f"{name}.") or name == ""
            if not inside_head and not on_path_to_head:
                module.eval()

    def _wrap_distributed(self) -> nn.Module | None:
        """DistributedDataParallel around the trained module when several processes train."""
        if not self._dist.enabled:
            return None
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self._forward_module, device_ids=device_ids)

    def _train_one_epoch(self, loader: DataLoader[Any], epoch: int) -> tuple[float, float]:
        self._enter_train_mode()
        forward = self._ddp if self._ddp is not None else self._forward_module
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on all ranks
        # Losses and predictions stay on the device until the epoch ends, one operation per
        # batch: reading them after every batch would make the host wait for the GPU at each
        # step, and on cached features such small operations are most of an epoch.
        losses: list[torch.Tensor] = []
        sizes: list[int] = []
        predictions: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        batches = progress_bar(
            loader,
            total=len(loader),
            description=f"epoch {epoch}/{self.max_epochs}",
            enabled=self.verbose and self._dist.is_main,
        )
        for inputs, targets in batches:
            inputs = inputs.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.device, self._dtype):
                outputs = forward(inputs)
                loss = self._train_loss(outputs, targets)
            self._scaler.scale(loss).backward()
            self._scaler.step(self.optimizer)
            self._scaler.update()
            losses.append(loss.detach())
            sizes.append(len(targets))
            predictions.append(outputs.detach().argmax(dim=1))
            labels.append(targets)
        if not losses:
            raise ValueError("the training loader produced no batches")
        sum_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        weights = torch.tensor(sizes, dtype=sum_dtype, device=self.device)
        total_loss = torch.stack(losses).to(sum_dtype) @ weights
        correct = (torch.cat(predictions) == torch.cat(labels)).sum()
        loss_sum, correct_sum, seen_sum = self._dist.sum(
            [float(total_loss), float(correct), float(sum(sizes))], self.device
        )
        return loss_sum / seen_sum, correct_sum / seen_sum

    def _log_epoch(self, record: EpochRecord) -> None:
        parts = [
            f"epoch {record.epoch}/{self.max_epochs}",
            f"train_loss {record.train_loss:.4f}",
            f"train_acc {record.train_accuracy:.2%}",
        ]
        if record.val_loss is not None and record.val_accuracy is not None:
            parts += [f"val_loss {record.val_loss:.4f}", f"val_acc {record.val_accuracy:.2%}"]
        parts.append(f"{record.seconds:.1f}s")
        if self._dist.is_main:
            logger.log(logging.INFO if self.verbose else logging.DEBUG, "  ".join(parts))

    def evaluate(self, data: DataSource) -> EvaluationResult:
        """Loss, accuracy (overall and per class) and confusion matrix on ``data``.

        Uses the trainer's loss, device and batch size, and the model's eval preprocessing;
        with ``feature_cache``, the backbone features of ``data`` are cached too.
        """
        self.model.to(self.device)
        if self.feature_cache is not False:
            data = self._cached(data)
        return run_evaluation(
            self._engine(),
            self._loader(data, train=False),
            loss=self.loss,
            classes=self._classes,
            progress=self.verbose,
        )

    def _engine(self) -> InferenceEngine:
        """The inference engine for validation and :meth:`evaluate`: the head alone on
        cached features, else the model; kept while the module it runs stays the same, so
        bf16 weights are cast again only where training changed them."""
        module = self._forward_module
        if self._inference is None or self._inference.model is not module:
            self._inference = InferenceEngine(module, device=self.device, precision=self.precision)
        return self._inference

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Write the model and the training state (for resuming) atomically to ``path``.

        In a distributed run only rank 0 writes; the others return the same path.
        """
        if not isinstance(self.model, Classifier):
            raise TypeError("save_checkpoint needs a retinalnet Classifier model")
        if not self._dist.is_main:
            return Path(path)
        callbacks = self._active_callbacks or self.callbacks
        states = {
            key: callback.state_dict()
            for key, callback in zip(_state_keys(callbacks), callbacks, strict=True)
        }
        return save_checkpoint(
            path,
            self.model,
            epoch=self.epoch,
            history=self.history.to_records(),
            optimizer_state=self.optimizer.state_dict(),
            scheduler_state=self.scheduler.state_dict() if self.scheduler is not None else None,
            callback_states=states,
        )

    def _resume(self, path: str | os.PathLike[str], callbacks: Iterable[Callback]) -> None:
        checkpoint = load_checkpoint(path, map_location=self.device)
        if isinstance(self.model, Classifier) and checkpoint.classes != self.model.classes:
            raise ValueError(
                f"cannot resume from {str(path)!r}: it was trained for classes "
                f"{list(checkpoint.classes)}, the model has {list(self.model.classes)}"
            )
        load_weights(self.model, checkpoint.state_dict, source=checkpoint.path)
        if checkpoint.optimizer_state is not None:
            try:
                self.optimizer.load_state_dict(checkpoint.optimizer_state)
            except (ValueError, KeyError) as error:
                raise ValueError(
                    f"cannot resume the optimizer from {str(path)!r} ({error}); use the same "
                    "optimizer and trainable parameters as the run being resumed"
                ) from None
        if self.scheduler is not None and checkpoint.scheduler_state is not None:
            self.scheduler.load_state_dict(checkpoint.scheduler_state)
        self.history = History.from_records(checkpoint.history)
        self.epoch = checkpoint.epoch
        states: Mapping[str, Any] = checkpoint.callback_states
        callbacks = list(callbacks)
        for key, callback in zip(_state_keys(callbacks), callbacks, strict=True):
            if key in states:
                callback.load_state_dict(states[key])
        logger.info("resumed from %s after epoch %d", path, self.epoch)


def _state_keys(callbacks: Sequence[Callback]) -> list[str]:
    """Checkpoint keys of the callbacks' states: ``state_key``, numbered when repeated."""
    keys: list[str] = []
    for callback in callbacks:
        key = callback.state_key
        repeats = sum(1 for k in keys if k == key or k.startswith(f"{key}#"))
        keys.append(f"{key}#{repeats + 1}" if repeats else key)
    return keys


@contextlib.contextmanager
def _logs_from_main_process_only(context: DistributedContext) -> Iterator[None]:
    """In a distributed run, silence retinalnet's INFO logs on every rank but 0."""
    if context.is_main:
        yield
        return
    package_logger = logging.getLogger("retinalnet")
    level = package_logger.level
    package_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        package_logger.setLevel(level)
