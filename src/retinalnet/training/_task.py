"""What is trained: the loss, class balance, optimizer and scheduler, and the metrics logged.

The :class:`~retinalnet.training.Trainer` runs the loop (device, precision, callbacks,
checkpoints); a :class:`ClassificationTask` says what the loop optimises and reports, as a
LightningModule does for Lightning's Trainer. New losses, optimizers or metrics never touch
the loop.

Why this module is long: :class:`ClassificationTask` is a public class whose docstring is
its manual (every setting and hook, with what it refuses); its code is short steps the loop
calls, which read best beside each other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import torch
from torch import nn
from torch.utils.data import Sampler

from retinalnet._core.class_labels import class_labels
from retinalnet._core.counts import as_number
from retinalnet._core.model_outputs import class_scores, nll_for_log_probabilities
from retinalnet.models._classifier import network_of
from retinalnet.training._balance import BALANCE_MODES, balanced_sampler, class_weights
from retinalnet.training._evaluation import EvaluationResult
from retinalnet.training._first_batch import FirstInputsCheck
from retinalnet.training._labels import BatchLabels
from retinalnet.training._returned_values import (
    checked_optimizer,
    checked_scheduler,
    metric_number,
)

__all__ = [
    "ClassificationTask",
    "MetricFunction",
    "OptimizerFactory",
    "SchedulerFactory",
]

logger = logging.getLogger(__name__)

OptimizerFactory: TypeAlias = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
"""Builds an optimizer for the trainable parameters, e.g. ``lambda p: torch.optim.SGD(p, 0.01)``."""

SchedulerFactory: TypeAlias = Callable[
    [torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler
]
"""Builds a learning-rate scheduler for the optimizer, stepped once per epoch, e.g.
``lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)``."""

MetricFunction: TypeAlias = Callable[[EvaluationResult], float]
"""Computes one validation metric from an epoch's :class:`EvaluationResult`: one number
(a Python or NumPy number, or a tensor or array of one element; not a bool or a string)."""

TRAIN_METRICS: tuple[str, ...] = ("train_loss", "train_accuracy")
"""What every training epoch reports."""

VAL_METRICS: tuple[str, ...] = ("val_loss", "val_accuracy")
"""What every validation reports, before the task's own ``metrics``."""

SCHEDULER_INTERVALS: tuple[str, ...] = ("epoch", "step")
"""When a task's scheduler steps: after each epoch, or after each optimizer step."""


class ClassificationTask:
    """What the Trainer trains: loss, class balance, optimizer, scheduler and metrics.

    The :class:`~retinalnet.training.Trainer` owns the loop (device, precision, callbacks,
    checkpoints, resuming); the task owns what is optimised and what each epoch reports,
    in the spirit of a LightningModule. Subclass it to change a step, or pass functions.

    Parameters
    ----------
    loss
        Loss of the model's outputs. Default ``CrossEntropyLoss``, right for networks
        returning logits and for those ending in ``LogSoftmax`` (the builders here) alike:
        on log-probabilities it equals ``NLLLoss``, since ``log_softmax`` of them gives them
        back. The validation loss uses it unweighted.

        .. versionchanged:: 0.2
           ``CrossEntropyLoss`` by default, not ``NLLLoss`` (which trained a network
           returning logits on a loss without a lower bound).
    balance
        Counter class imbalance in the training data (whose ``targets`` attribute gives the
        classes): ``"weights"`` weights the default loss of the training batches by
        :func:`class_weights` (the validation loss stays unweighted, so it compares across
        runs); ``"sampler"`` draws batches with :func:`balanced_sampler` (seeded by the
        Trainer's ``seed``). Default ``None``: neither.
    optimizer
        A function building the optimizer from the trainable parameters, e.g.
        ``lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9)``. An optimizer
        instance is used as it is (the task then fits that model only). Default:
        ``Adam(trainable parameters, lr=lr, weight_decay=weight_decay)``, as in the tutorial.
    lr, weight_decay
        Settings of the default Adam optimizer.
    scheduler
        A function building a learning-rate scheduler from the optimizer; it is stepped after
        every epoch (``ReduceLROnPlateau`` with the validation loss, or the training loss
        without validation data), or after every optimizer step with
        ``scheduler_interval="step"``. Default: a constant learning rate.
    metrics
        Extra validation metrics by name, each computed from the epoch's
        :class:`EvaluationResult`, e.g. ``{"val_drusen_recall": lambda r:
        r.per_class_accuracy["DRUSEN"]}``. They are recorded in the :class:`History`, logged
        each epoch, and callbacks monitor them with ``mode="min"`` or ``"max"``.
    scheduler_interval
        When the scheduler steps: ``"epoch"`` (default, after each epoch's validation) or
        ``"step"`` (after each optimizer step, as warm-up and cosine schedules of a few
        epochs need; Lightning's ``interval="step"``).

        .. versionadded:: 0.2

    Attributes
    ----------
    criterion : torch.nn.Module
        The loss of the training batches in the current fit (``loss``, or the class-weighted
        ``CrossEntropyLoss`` with ``balance="weights"``). The default loss, on a network
        whose outputs are log-probabilities (ending in ``LogSoftmax``), is computed as the
        ``NLLLoss`` it equals from the fit's first batch on, so such a network trains
        exactly as with 0.1's ``NLLLoss``.

    Raises
    ------
    ValueError
        If ``balance`` is unknown, ``balance="weights"`` comes with a loss of your own,
        ``lr`` or ``weight_decay`` is out of range or comes with your own optimizer, or a
        metric name is taken. In a fit, when the first training batch's outputs are no
        class scores ``(N, number of classes)`` (see :meth:`training_step`).
    TypeError
        If ``optimizer``, ``scheduler`` or a metric is not callable. Also if what one of
        them returns is not what it builds (:meth:`configure_optimizers`, at the Trainer's
        construction; :meth:`validation_metrics`, at each validation).

    Examples
    --------
    >>> import torch
    >>> from retinalnet.training import ClassificationTask, Trainer
    >>> task = ClassificationTask(
    ...     balance="weights",
    ...     lr=1e-4,
    ...     scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20),
    ... )
    >>> trainer = Trainer(model, task, max_epochs=20)  # doctest: +SKIP

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        *,
        loss: nn.Module | None = None,
        balance: str | None = None,
        optimizer: torch.optim.Optimizer | OptimizerFactory | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: SchedulerFactory | None = None,
        metrics: Mapping[str, MetricFunction] | None = None,
        scheduler_interval: str = "epoch",
    ) -> None:
        if scheduler_interval not in SCHEDULER_INTERVALS:
            raise ValueError(
                f"scheduler_interval must be one of {', '.join(map(repr, SCHEDULER_INTERVALS))}, "
                f"got {scheduler_interval!r}"
            )
        if balance is not None and balance not in BALANCE_MODES:
            raise ValueError(
                f"balance must be None or one of {', '.join(map(repr, BALANCE_MODES))}, "
                f"got {balance!r}"
            )
        if balance == "weights" and loss is not None:
            raise ValueError(
                "balance='weights' weights the default CrossEntropyLoss; with your own loss, "
                "pass weight=class_weights(train.targets) to it and leave balance=None"
            )
        for name, value in (("lr", lr), ("weight_decay", weight_decay)):
            if as_number(value) is None:
                raise ValueError(f"{name} must be a number, got {value!r}")
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if not (weight_decay >= 0 and math.isfinite(weight_decay)):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        if optimizer is not None:
            if not isinstance(optimizer, torch.optim.Optimizer) and not callable(optimizer):
                raise TypeError(
                    "optimizer must be a torch optimizer or a function building one from the "
                    f"trainable parameters, got {type(optimizer).__name__}"
                )
            if (lr, weight_decay) != (1e-3, 0.0):
                raise ValueError(
                    "lr and weight_decay set the default Adam optimizer; with your own "
                    "optimizer, set them there (e.g. lambda params: torch.optim.SGD(params, "
                    "lr=0.01)) and leave them out here"
                )
        if scheduler is not None and not callable(scheduler):
            raise TypeError(
                "scheduler must be a function building a scheduler from the optimizer, got "
                f"{type(scheduler).__name__}"
            )
        extra = dict(metrics or {})
        for name, function in extra.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"metric names must be non-empty strings, got {name!r}")
            if name in (*TRAIN_METRICS, *VAL_METRICS, "lr", "epoch", "seconds"):
                raise ValueError(
                    f"metric name {name!r} is taken by the Trainer's own metrics; choose "
                    "another, e.g. 'val_' + what it measures"
                )
            if not callable(function):
                raise TypeError(
                    f"metric {name!r} must be a function of an EvaluationResult, got "
                    f"{type(function).__name__}"
                )
        self.loss: nn.Module = loss if loss is not None else nn.CrossEntropyLoss()
        self.balance = balance
        self.optimizer = optimizer
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.scheduler = scheduler
        self.metrics: dict[str, MetricFunction] = extra
        self.scheduler_interval = scheduler_interval
        self.criterion: nn.Module = self.loss
        self._step_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self._num_classes: int | None = None
        self._model_name = "the model"
        self._outputs_checked = False
        self._inputs_check = FirstInputsCheck()
        self._default_loss = loss is None
        self._labels: BatchLabels | None = None
        self._steps = 0

    def __repr__(self) -> str:
        settings = [f"loss={type(self.loss).__name__}()"]
        if self.balance is not None:
            settings.append(f"balance={self.balance!r}")
        if self.optimizer is None:
            settings.append(f"lr={self.lr!r}")
            if self.weight_decay:
                settings.append(f"weight_decay={self.weight_decay!r}")
        else:
            settings.append("optimizer=...")
        if self.scheduler is not None:
            settings.append("scheduler=...")
            if self.scheduler_interval != "epoch":
                settings.append(f"scheduler_interval={self.scheduler_interval!r}")
        if self.metrics:
            settings.append(f"metrics={sorted(self.metrics)!r}")
        return f"ClassificationTask({', '.join(settings)})"

    @property
    def needs_targets(self) -> bool:
        """Whether a fit needs the training targets (``balance`` is set)."""
        return self.balance is not None

    def metric_names(self, validation: bool) -> tuple[str, ...]:
        """Names of the metrics each epoch reports, with or without validation data.

        Examples
        --------
        >>> ClassificationTask().metric_names(validation=False)
        ('train_loss', 'train_accuracy')
        """
        if not validation:
            return TRAIN_METRICS
        return (*TRAIN_METRICS, *VAL_METRICS, *self.metrics)

    def configure_optimizers(
        self, parameters: list[nn.Parameter]
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
        """The optimizer of ``parameters`` and its scheduler (``None``: a constant rate).

        Parameters
        ----------
        parameters
            The model's trainable parameters.

        Examples
        --------
        >>> from torch import nn
        >>> optimizer, scheduler = ClassificationTask(lr=0.01).configure_optimizers(
        ...     list(nn.Linear(2, 2).parameters())
        ... )
        >>> type(optimizer).__name__, scheduler
        ('Adam', None)

        Raises
        ------
        TypeError
            If the ``optimizer`` function returns no torch optimizer (a list of parameter
            groups, say: put them in one, ``torch.optim.AdamW(groups)``), or the
            ``scheduler`` function no learning-rate scheduler (a function of the epoch, say:
            put it in a ``LambdaLR``; or ``None``: leave ``scheduler`` out). The Trainer
            calls this at construction, so these fail before any training.
        ValueError
            If the ``scheduler`` function returns a scheduler of another optimizer than the
            one it was given.
        """
        if self.optimizer is None:
            optimizer: torch.optim.Optimizer = torch.optim.Adam(
                parameters, lr=self.lr, weight_decay=self.weight_decay
            )
        elif isinstance(self.optimizer, torch.optim.Optimizer):
            optimizer = self.optimizer
        else:
            optimizer = checked_optimizer(self.optimizer(parameters), type(self).__name__)
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        if self.scheduler is not None:
            scheduler = checked_scheduler(self.scheduler(optimizer), optimizer, type(self).__name__)
        self._step_scheduler = scheduler if self.scheduler_interval == "step" else None
        return optimizer, scheduler

    def train_loss(
        self, targets: Sequence[int] | None = None, num_classes: int | None = None
    ) -> nn.Module:
        """The loss of the training batches: ``loss``, or with ``balance="weights"`` an
        ``CrossEntropyLoss`` weighted by :func:`class_weights` of ``targets``.

        Raises
        ------
        ValueError
            With ``balance="weights"`` and no ``targets``.
        """
        if self.balance != "weights":
            return self.loss
        if targets is None:
            raise ValueError("balance='weights' needs the training targets")
        weights = class_weights(targets, num_classes)
        logger.info("class weights for the loss: %s", [round(float(w), 3) for w in weights])
        return nn.CrossEntropyLoss(weight=weights)

    def setup(
        self,
        targets: Sequence[int] | None,
        *,
        num_classes: int | None,
        device: torch.device,
        unchecked_inputs: bool = False,
    ) -> None:
        """Prepare a fit: set :attr:`criterion` from the training targets, on ``device``;
        the fit's first training batch has its outputs checked against ``num_classes``, and
        its inputs (by the data sets' rule, warnings included, with ``unchecked_inputs``: a
        loader whose samples nothing checked)."""
        self.criterion = self.train_loss(targets, num_classes).to(device)
        self._num_classes = num_classes
        self._outputs_checked = False
        self._inputs_check.reset(unchecked=unchecked_inputs)
        self._labels = None
        self._steps = 0

    def sampler(self, targets: Sequence[int] | None, *, seed: int | None) -> Sampler[int] | None:
        """The training sampler: :func:`balanced_sampler` with ``balance="sampler"``, else
        ``None`` (the Trainer shuffles)."""
        if self.balance != "sampler" or targets is None:
            return None
        return balanced_sampler(targets, seed=seed)

    def on_train_epoch_start(self, module: nn.Module) -> None:
        """Called by the training pass once ``module`` is in train mode, before its first
        step; does nothing by default (a fine-tuning task puts batch norms back in eval
        mode here); subclasses call it: it notes the network's name for error messages, and
        has the fit's first batch checked (:func:`~retinalnet._core.model_inputs.check_batch`).

        .. versionadded:: 0.2
        """
        self._model_name = type(network_of(module)).__name__
        self._inputs_check.arm(module)

    def _pass_labels(self, loader: Any, *, where: str) -> BatchLabels:
        """The label check of a training pass over ``loader``: the loop has each batch's
        labels checked on the host, before they are copied to the device (nothing waits for
        a GPU), and :meth:`training_step` takes those as checked."""
        self._labels = BatchLabels(self._num_classes, where=where, loader=loader, in_order=False)
        return self._labels

    def _end_run(self) -> None:
        """Called when a fit or ``lr_find`` ends, however it ends (an error, an interrupt
        before the first forward pass): the first batch's check leaves no hook behind."""
        self._inputs_check.disarm()

    def on_train_step_end(self) -> None:
        """Called after every optimizer step: steps the scheduler when
        ``scheduler_interval="step"``.

        .. versionadded:: 0.2
        """
        if self._step_scheduler is not None:
            self._step_scheduler.step()

    def on_train_batch_left_out(self) -> None:
        """Called for a training batch left out of an epoch (a last batch of one image that
        a training batch-norm layer cannot take): steps the scheduler when
        ``scheduler_interval="step"``, as :meth:`on_train_step_end` would have, so that a
        schedule sized by the loader's length (fine-tuning's warm-up and cosine) keeps its
        epochs.

        .. versionadded:: 0.2
        """
        if self._step_scheduler is not None:
            self._step_scheduler.step()

    def training_step(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of one training batch, to minimise.

        The first batch of a fit (or ``lr_find``) has its outputs checked by
        :func:`~retinalnet._core.model_outputs.class_scores`: a network returning a tuple or
        a dict, another shape than ``(N, number of classes)`` or probabilities (a forward
        ending in ``Softmax``) is refused then, in one line naming the fix.

        Every batch's labels are checked before the loss sees them: integer class indices
        of the model's classes (torch's own losses say ``Target 4 is out of bounds``, or on
        a GPU stop CUDA, naming neither the image nor the fix).

        .. versionchanged:: 0.2
           The labels are checked.

        Raises
        ------
        TypeError, ValueError
            From :func:`~retinalnet._core.model_outputs.class_scores`, on the first batch.
            A ``TypeError`` for labels that are not integers (floats), a ``ValueError`` for
            a label outside the model's classes, naming the batch, the image and the label.
        """
        self._inputs_check.disarm()  # a forward ran: no hook left on the model
        if not self._outputs_checked:
            class_scores(outputs, self._num_classes, model_name=self._model_name)
            self._outputs_checked = True
            self._exact_for_log_probabilities(outputs)
            if self._num_classes is None:  # a network of its own: its outputs say
                self._num_classes = int(outputs.shape[1])
                if self._labels is not None:
                    self._labels.num_classes = self._num_classes
        if self._labels is None or not self._labels.checked(targets):  # lr_find, a first batch
            targets = class_labels(
                targets,
                self._num_classes or int(outputs.shape[1]),
                where=self._labels.where if self._labels is not None else "training",
                batch=self._steps,
            )
        self._steps += 1
        loss: torch.Tensor = self.criterion(outputs, targets)
        return loss

    def _exact_for_log_probabilities(self, outputs: torch.Tensor) -> None:
        """The default loss on log-probabilities as the ``NLLLoss`` it equals, bit for bit
        as in 0.1 (:func:`~retinalnet._core.model_outputs.nll_for_log_probabilities`)."""
        if self._default_loss:
            self.criterion = nll_for_log_probabilities(self.criterion, outputs)

    def validation_metrics(self, result: EvaluationResult) -> dict[str, float]:
        """The metrics of one validation: ``val_loss``, ``val_accuracy`` and ``metrics``.

        Raises
        ------
        TypeError
            If a metric returns other than one real number (``None``, a string, a bool,
            an array of one value per class), naming the metric, what it returned and the
            fix. The fit stops then, in the epoch's validation; the checkpoints of the
            epochs before are kept.
        """
        values = {"val_loss": result.loss, "val_accuracy": result.accuracy}
        for name, function in self.metrics.items():
            values[name] = metric_number(name, function(result))
        return values

    def step_scheduler(
        self,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        metrics: Mapping[str, float],
    ) -> None:
        """Step the scheduler after an epoch; ``ReduceLROnPlateau`` gets the validation
        loss (the training loss without validation data). A scheduler stepped per optimizer
        step (``scheduler_interval="step"``) is left alone."""
        if self.scheduler_interval == "step":
            return
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(metrics["val_loss"] if "val_loss" in metrics else metrics["train_loss"])
        elif scheduler is not None:
            scheduler.step()
