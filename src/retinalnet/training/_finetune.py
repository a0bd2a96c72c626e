"""The fine-tuning recipe: a linear probe on cached features, then the last blocks unfrozen.

:func:`fine_tune` is the one call (fastai's ``learn.fine_tune``): it trains the head on the
frozen backbone's cached features for a few seconds, then unfreezes the last ``blocks``
declared feature blocks with discriminative learning rates (lower for earlier blocks, the
head's highest), AdamW, batch-norm statistics kept, warm-up then cosine decay per optimizer
step, a class-weighted loss, and the best validation loss's weights kept. :class:`FineTune`
holds the settings; :class:`FineTuneTask` is the :class:`ClassificationTask` of the second
phase, usable on its own with a :class:`Trainer`.

Why this module is long: the recipe's settings (each documented and checked), its task
(parameter groups, schedule, batch-norm handling) and the two-phase call with its resume
checks belong together; each part is small.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from typing_extensions import Unpack

from retinalnet._core.bool_options import check_bool
from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.counts import as_integer, as_number, check_count
from retinalnet._core.loader_settings import check_batch_size
from retinalnet._core.loaders import DataSource
from retinalnet.models import Classifier
from retinalnet.training._callbacks import Callback, EarlyStopping, check_callbacks
from retinalnet.training._config import FeatureCacheConfig, feature_cache_config
from retinalnet.training._feature_cache import HeadNotLastError
from retinalnet.training._history import History
from retinalnet.training._nonfinite import NonFiniteLossError, check_finite_weights
from retinalnet.training._resume import check_resume_path, epoch_size
from retinalnet.training._task import ClassificationTask
from retinalnet.training._trainer import Trainer, training_grad_mode
from retinalnet.training._trainer_settings import TRAINER_SETTINGS, TrainerSettings

if TYPE_CHECKING:
    from retinalnet.checkpoint import Checkpoint

__all__ = [
    "FineTune",
    "FineTuneTask",
    "WarmupCosine",
    "discriminative_param_groups",
    "fine_tune",
    "fine_tune_trainer",
]

logger = logging.getLogger(__name__)


def _positive(name: str, value: float, *, zero: bool = False) -> float:
    number = as_number(value)
    if number is None or not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if number < 0 or (number == 0 and not zero):
        raise ValueError(f"{name} must be {'>= 0' if zero else '> 0'}, got {value!r}")
    return value if type(value) in (int, float) else number  # a NumPy number: a float


def _count(name: str, value: int, *, low: int) -> int:
    return check_count(value, name, low)


def _lr_decay(value: float) -> float:
    number = as_number(value)
    if number is None or not 0 < number <= 1:
        raise ValueError(
            f"lr_decay must be in (0, 1] (earlier blocks learn slower; 1.0 gives every block "
            f"lr), got {value!r}"
        )
    return value if type(value) in (int, float) else number


def _fraction(name: str, value: object, what: str) -> float:
    """``value`` as a float if it is a finite number in [0, 1] (not a bool)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0 <= float(value) <= 1  # NaN fails too
    ):
        raise ValueError(f"{name} must be a finite number in [0, 1] ({what}), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FineTune:
    """The fine-tuning recipe's settings (see :func:`fine_tune`).

    The defaults are the recipe the issue measured in plain PyTorch on real Kermany scans,
    checked through this library on 471 training images with EfficientNet-Lite0
    (docs/accuracy.rst: it beats the frozen tutorial head on validation loss in 5 seeds of
    5; a lower rate, discriminative decay, updating batch norms, fewer blocks and gradual
    unfreezing did not measure better).

    The image size is the model's (its :class:`~retinalnet.transforms.Preprocessing`), not
    a setting of the recipe: 256 px measured better than 224 px there (5 seeds: sample-scan
    accuracy 78.8% against 74.8%, DRUSEN 63% against 50%, the same validation accuracy), so
    ``retinalnet train`` fine-tunes at 256 px; in Python build the model with
    ``preprocessing=Preprocessing(size=256)``.

    Parameters
    ----------
    blocks
        How many of the model's last declared feature blocks
        (:meth:`~retinalnet.models.Classifier.feature_block_modules`) are unfrozen, >= 1.
        ``None`` (the default): the last half, rounded down (at least one): 2 of ResNet's 4
        stages, 2 of EfficientNet-B0's 5 block groups, 6 of ViT-B/16's 12 encoder layers,
        8 of EfficientNet-Lite0's 17 blocks in the benchmark (its last 8 MBConv blocks and
        conv head; against the last 4 over seeds 0-2 there: validation loss 0.425 against
        0.527, sample scans 73.3% against 67.5%, docs/accuracy.rst). See :meth:`blocks_for`.
    epochs
        Fine-tuning epochs (the second phase).
    probe_epochs
        Epochs of the linear probe: the head alone on the frozen backbone's cached features
        (seconds). 0 skips it (the head then starts as it is).
    lr
        Learning rate of the last unfrozen block.
    head_lr
        Learning rate of the head while fine-tuning.
    probe_lr
        Learning rate (Adam) of the head during the probe.
    lr_decay
        Each block before the last gets ``lr_decay`` times the rate of the block after it
        (discriminative rates; 1.0 gives every block ``lr``).
    weight_decay
        AdamW weight decay of weights (biases and normalisation parameters get none).
    warmup_epochs
        Epochs of linear warm-up from ``0.01 x`` the rates, before the cosine decay to 0; at
        most ``epochs``. It is counted in the schedule's units (optimizer steps with
        ``schedule="step"``, epochs with ``"epoch"``), rounded up, so that a warm-up asked
        for lasts at least one unit and at most one fewer than the run: ``0.5`` is one
        epoch with ``"epoch"``, ``2.5`` three (two in a three-epoch run). A warm-up asked to
        last the whole run (``warmup_epochs == epochs``, as the default ``1.0`` is for
        ``epochs=1``, a quick trial run) is cut to half of the run, in those units (rounded
        down: none in a one-epoch run with ``"epoch"``, where any warm-up is none), and an
        INFO line says so when the fit starts. A resumed run keeps the warm-up it started
        with.
    schedule
        ``"step"``: warm-up and cosine are updated after every optimizer step; ``"epoch"``:
        after every epoch.
    freeze_bn
        Keep the running statistics of the unfrozen blocks' batch norms (eval mode; their
        scale and shift still train). ``False`` lets them update from the training batches
        (needed for a network built by hand without pretrained weights, whose statistics
        were never estimated: :func:`fine_tune` warns of them).
    balance
        ``"weights"`` (class-weighted loss), ``"sampler"`` or ``None``: see
        :class:`ClassificationTask`. Used in both phases.
    augment
        Training augmentation preset (:data:`~retinalnet.transforms.AUGMENTATION_PRESETS`)
        set on the model's preprocessing before training, for both phases; ``None`` keeps
        the model's own.
    probe_views
        Augmented views per image in the probe's feature cache (see
        :class:`FeatureCacheConfig`).
    patience
        Stop fine-tuning after this many epochs without a lower validation loss (0: at the
        first, as :class:`~retinalnet.training.EarlyStopping` does); ``None`` runs every
        epoch. Either way the best epoch's weights are kept at the end.

    Raises
    ------
    ValueError
        For a setting out of range (a count below its least, a rate not finite and > 0,
        ``lr_decay`` outside ``(0, 1]``, ``warmup_epochs`` over ``epochs``, an unknown
        ``schedule``, ``augment`` or ``balance``); the message names it.
    TypeError
        If ``freeze_bn`` is not ``True`` or ``False`` (the error is a ``ValueError``
        too, as every on/off option's), or ``augment`` is neither ``None`` nor a str.

    Examples
    --------
    >>> from retinalnet.training import FineTune
    >>> FineTune(blocks=8, epochs=10).lr
    0.0002

    .. versionadded:: 0.2
    """

    blocks: int | None = None
    epochs: int = 10
    probe_epochs: int = 10
    lr: float = 2e-4
    head_lr: float = 1e-3
    probe_lr: float = 1e-3
    lr_decay: float = 1.0
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    schedule: str = "step"
    freeze_bn: bool = True
    balance: str | None = "weights"
    augment: str | None = "oct"
    probe_views: int = 0
    patience: int | None = None

    def __post_init__(self) -> None:
        from retinalnet.transforms import AUGMENTATION_PRESETS

        # counts are kept as Python ints (a NumPy int would reach the checkpoint's options)
        if self.blocks is not None:
            object.__setattr__(self, "blocks", _count("blocks", self.blocks, low=1))
        object.__setattr__(self, "epochs", _count("epochs", self.epochs, low=1))
        object.__setattr__(self, "probe_epochs", _count("probe_epochs", self.probe_epochs, low=0))
        object.__setattr__(self, "probe_views", _count("probe_views", self.probe_views, low=0))
        for name in ("lr", "head_lr", "probe_lr"):  # kept as Python floats, as the counts
            object.__setattr__(self, name, _positive(name, getattr(self, name)))
        object.__setattr__(
            self, "weight_decay", _positive("weight_decay", self.weight_decay, zero=True)
        )
        object.__setattr__(
            self, "warmup_epochs", _positive("warmup_epochs", self.warmup_epochs, zero=True)
        )
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs!r}) must be <= epochs ({self.epochs!r}): "
                "the warm-up would take longer than the whole run; pass fewer warm-up epochs "
                "(or more epochs)"
            )
        object.__setattr__(self, "lr_decay", _lr_decay(self.lr_decay))
        if self.schedule not in ("step", "epoch"):
            raise ValueError(f"schedule must be 'step' or 'epoch', got {self.schedule!r}")
        object.__setattr__(self, "freeze_bn", check_bool(self.freeze_bn, "freeze_bn"))
        if self.augment is not None and not isinstance(self.augment, str):
            raise TypeError(
                f"augment must be None or a preset name (a str), got "
                f"{type(self.augment).__name__}; pass one of "
                f"{', '.join(map(repr, AUGMENTATION_PRESETS))}"
            )
        if self.augment is not None and self.augment not in AUGMENTATION_PRESETS:
            raise ValueError(
                f"augment must be None or one of {', '.join(map(repr, AUGMENTATION_PRESETS))}, "
                f"got {self.augment!r}"
            )
        if self.patience is not None:
            object.__setattr__(self, "patience", _count("patience", self.patience, low=0))
        ClassificationTask(balance=self.balance)  # checks balance

    def blocks_for(self, model: Classifier) -> int:
        """The number of feature blocks unfrozen in ``model``: ``blocks``, or half of those
        it declares (rounded down, at least one).

        Raises
        ------
        ValueError
            If ``blocks`` is more than the model declares.

        Examples
        --------
        >>> from retinalnet.models import create_model
        >>> FineTune().blocks_for(create_model("resnet18", weights=None))
        2
        """
        available = len(model.feature_block_modules())
        if self.blocks is None:
            return max(1, available // 2)
        if self.blocks > available:
            raise ValueError(
                f"FineTune(blocks={self.blocks}) but {type(model.network).__name__} declares "
                f"only {available} feature blocks; pass blocks <= {available}"
            )
        return self.blocks

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (checkpoints carry them, so a resume can check them)."""
        return asdict(self)


def discriminative_param_groups(
    model: Classifier,
    blocks: int,
    *,
    lr: float,
    head_lr: float,
    lr_decay: float = 1.0,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups for the head and the last ``blocks`` feature blocks.

    The head comes first (rate ``head_lr``; the Trainer logs the first group's rate), then
    the blocks from the last (rate ``lr``) to the earliest unfrozen one (``lr *
    lr_decay ** k`` for the block ``k`` before the last). Weights get ``weight_decay``;
    biases and normalisation parameters (one-dimensional) get none. Each group has a
    ``name`` (``"head"``, ``"block -1"``, ...). Only trainable parameters are listed.

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`~retinalnet.models.Classifier`.
    ValueError
        If ``blocks`` is not in ``[1, number of feature blocks]``, ``lr`` or ``head_lr`` is
        not a finite number > 0, ``lr_decay`` is not in ``(0, 1]``, ``weight_decay`` is not
        a finite number >= 0, or the head is one of the blocks.

    Examples
    --------
    >>> from retinalnet.models import create_model
    >>> model = create_model("resnet18", weights=None, freeze=False)
    >>> groups = discriminative_param_groups(model, 2, lr=1e-4, head_lr=1e-3, lr_decay=0.5)
    >>> {g["name"]: g["lr"] for g in groups}
    {'head': 0.001, 'block -1': 0.0001, 'block -2': 5e-05}
    """
    if not isinstance(model, Classifier):
        raise TypeError(
            f"discriminative_param_groups needs a retinalnet Classifier (it reads the declared "
            f"head and feature blocks), got {type(model).__name__}; wrap it: "
            "Classifier(network, classes=..., head=..., feature_blocks=[...])"
        )
    lr, head_lr = _positive("lr", lr), _positive("head_lr", head_lr)
    lr_decay = _lr_decay(lr_decay)
    weight_decay = _positive("weight_decay", weight_decay, zero=True)
    all_blocks = model.feature_block_modules()
    count = as_integer(blocks)
    if count is None or not 1 <= count <= len(all_blocks):
        raise ValueError(
            f"blocks must be an int in [1, {len(all_blocks)}] ({type(model.network).__name__} "
            f"declares {len(all_blocks)} feature blocks), got {blocks!r}"
        )
    _check_head_apart(model, count)
    head = model.head_module()[1]
    units: list[tuple[str, nn.Module, float]] = [("head", head, head_lr)]
    for k, block in enumerate(reversed(all_blocks[len(all_blocks) - count :])):
        units.append((f"block -{k + 1}", block, lr * lr_decay**k))
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for name, module, rate in units:
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for p in module.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if p.ndim <= 1 else decay).append(p)
        for params, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"params": params, "lr": rate, "weight_decay": wd, "name": name})
    return groups


def _check_head_apart(model: Classifier, blocks: int) -> None:
    """Refuse a head that shares parameters with one of the last ``blocks`` feature blocks.

    Raises
    ------
    ValueError
        Naming the head and the block (``"block -1"`` is the last).
    """
    path, head = model.head_module()
    head_params = {id(p) for p in head.parameters()}
    all_blocks = model.feature_block_modules()
    for k, block in enumerate(reversed(all_blocks[len(all_blocks) - blocks :])):
        if any(id(p) in head_params for p in block.parameters()):
            raise ValueError(
                f"the head {path!r} is inside feature block 'block -{k + 1}' (the last is "
                "-1): declare them apart, feature blocks that end before the head"
            )


class WarmupCosine:
    """A learning-rate factor: linear warm-up from ``start`` to 1, then cosine decay to
    ``end`` (a ``LambdaLR`` function; a callable object, so the scheduler's state saves it).

    Parameters
    ----------
    total
        Steps (or epochs) of the whole schedule, an int >= 1.
    warmup
        Steps of the warm-up, an int in ``[0, total)`` (0: none).
    start, end
        Factor at the first step and at the last, each in ``[0, 1]``.

    Raises
    ------
    ValueError
        If an argument is out of range, or not an int (``total``, ``warmup``) or a finite
        number (``start``, ``end``); the message names it.

    Examples
    --------
    >>> schedule = WarmupCosine(total=10, warmup=2)
    >>> [round(schedule(step), 3) for step in (0, 1, 2, 6, 10)]
    [0.01, 0.505, 1.0, 0.5, 0.0]
    """

    def __init__(self, total: int, warmup: int = 0, *, start: float = 0.01, end: float = 0.0):
        checked_total = as_integer(total)
        if checked_total is None or checked_total < 1:
            raise ValueError(f"total must be an int >= 1, got {total!r}")
        checked_warmup = as_integer(warmup)
        if checked_warmup is None or not 0 <= checked_warmup < checked_total:
            raise ValueError(
                f"warmup must be an int in [0, total) = [0, {checked_total}), got {warmup!r}"
            )
        self.total = checked_total
        self.warmup = checked_warmup
        self.start = _fraction("start", start, "the factor at the first step")
        self.end = _fraction("end", end, "the factor at the last step")

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.start + (1 - self.start) * step / self.warmup
        progress = min(1.0, (step - self.warmup) / (self.total - self.warmup))
        return self.end + (1 - self.end) * 0.5 * (1 + math.cos(math.pi * progress))


class FineTuneTask(ClassificationTask):
    """The fine-tuning phase's task: AdamW over :func:`discriminative_param_groups`, a
    :class:`WarmupCosine` schedule, and (with ``freeze_bn``) batch norms in eval mode.

    Parameters
    ----------
    model
        The :class:`~retinalnet.models.Classifier` being fine-tuned, its last
        ``recipe.blocks`` blocks and head trainable.
    recipe
        The settings.
    steps_per_epoch
        Optimizer steps in an epoch of this process (the schedule's length is
        ``recipe.epochs`` of them): ``len`` of the training loader it runs. Under
        :func:`fine_tune` the schedule is sized again, as the fit's first epoch starts,
        from the fit's own training loader, so that it follows the steps each process
        really runs (under ``torchrun``, its :class:`~torch.utils.data.DistributedSampler`
        share: ``ceil(ceil(images / processes) / batch_size)``). With a Trainer of your
        own, pass that number.

    Attributes
    ----------
    schedule
        The :class:`WarmupCosine` factor of the rates (a warm-up that would last the whole
        run is cut to half of it: see :class:`FineTune`'s ``warmup_epochs``).

    Raises
    ------
    TypeError
        If ``model`` is not a Classifier or ``recipe`` not a :class:`FineTune`.
    ValueError
        If ``steps_per_epoch`` is not an int >= 1.

    Examples
    --------
    >>> from retinalnet.models import create_model
    >>> model = create_model("resnet18", weights=None)
    >>> task = FineTuneTask(model, FineTune(blocks=2, epochs=3), steps_per_epoch=5)
    >>> trainer = Trainer(model, task, max_epochs=3)  # doctest: +SKIP

    .. versionadded:: 0.2
    """

    def __init__(self, model: Classifier, recipe: FineTune, *, steps_per_epoch: int) -> None:
        if not isinstance(model, Classifier):
            raise TypeError(
                f"FineTuneTask needs a retinalnet Classifier (it reads the declared head and "
                f"feature blocks), got {type(model).__name__}; wrap it: Classifier(network, "
                "classes=..., head=..., feature_blocks=[...])"
            )
        if not isinstance(recipe, FineTune):
            raise TypeError(
                f"recipe must be a FineTune, got {type(recipe).__name__}; pass FineTune(...)"
            )
        steps_per_epoch = _count("steps_per_epoch", steps_per_epoch, low=1)
        super().__init__(
            balance=recipe.balance,
            optimizer=self._optimizer,
            scheduler=self._scheduler,
            scheduler_interval=recipe.schedule,  # "step" or "epoch", as FineTune checked
        )
        self.model = model
        self.recipe = recipe
        total, warmup, self._cut = _schedule_length(recipe, steps_per_epoch)
        self.schedule = WarmupCosine(total, warmup)
        self._cut_said = False

    def _size_schedule(
        self, steps_per_epoch: int, scheduler: torch.optim.lr_scheduler.LRScheduler | None
    ) -> None:
        """Size :attr:`schedule` for ``steps_per_epoch`` optimizer steps an epoch (those of
        the fit's training loader), in place: ``scheduler`` (a ``LambdaLR`` of it, built
        before the loader) follows it, and its rates are set again for the step it is at."""
        total, warmup, self._cut = _schedule_length(self.recipe, steps_per_epoch)
        if (total, warmup) == (self.schedule.total, self.schedule.warmup):
            return
        logger.debug(
            "fine-tuning schedule: %d steps per epoch (this process's training loader)",
            steps_per_epoch,
        )
        self.schedule.total, self.schedule.warmup = total, warmup
        if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR) and all(
            rule is self.schedule for rule in scheduler.lr_lambdas
        ):
            factor = self.schedule(scheduler.last_epoch)
            groups = scheduler.optimizer.param_groups
            for group, base in zip(groups, scheduler.base_lrs, strict=True):
                group["lr"] = base * factor

    def _end_run(self) -> None:
        super()._end_run()
        self._cut_said = False  # the next fit says a warm-up cut short again

    def _optimizer(self, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
        groups = discriminative_param_groups(
            self.model,
            self.recipe.blocks_for(self.model),
            lr=self.recipe.lr,
            head_lr=self.recipe.head_lr,
            lr_decay=self.recipe.lr_decay,
            weight_decay=self.recipe.weight_decay,
        )
        listed = {id(p) for group in groups for p in group["params"]}
        extra = [p for p in parameters if id(p) not in listed]
        if extra:
            raise ValueError(
                f"{len(extra)} trainable parameter(s) lie outside the head and the last "
                f"{self.recipe.blocks_for(self.model)} feature blocks; freeze them (fine_tune "
                "does) or "
                "declare them in a block"
            )
        return torch.optim.AdamW(groups)

    def _scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule)

    def on_train_epoch_start(self, module: nn.Module) -> None:
        super().on_train_epoch_start(module)
        if self._cut is not None and not self._cut_said:  # once a fit, the schedule sized
            logger.info("%s", self._cut)
            self._cut_said = True
        if self.recipe.freeze_bn:
            for layer in module.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    layer.eval()


def _schedule_length(recipe: FineTune, steps_per_epoch: int) -> tuple[int, int, str | None]:
    """The schedule's length and warm-up, in its units (optimizer steps with
    ``schedule="step"``, epochs with ``"epoch"``), and what is said when a warm-up that
    would last the whole run is cut to half of it (``None`` when it is not)."""
    per_step = recipe.schedule == "step"
    unit = steps_per_epoch if per_step else 1
    total = recipe.epochs * unit
    # rounded up: a warm-up asked for lasts at least one unit (a float's error, 0.3 * 10 =
    # 3.0000000000000004, is no unit more)
    asked = round(recipe.warmup_epochs * unit, 9)
    warmup = min(math.ceil(asked) or int(recipe.warmup_epochs > 0), total - 1)
    if asked < total and (warmup or not asked):  # at least one unit, one fewer than the run
        return total, warmup, None
    units = "steps" if per_step else "epochs"
    cut = total // 2
    whole = (
        f"fine-tuning: a warm-up of {recipe.warmup_epochs:g} epoch(s) would last the whole "
        f"{recipe.epochs}-epoch run ({total} {units}), so"
    )
    if cut:
        return total, cut, f"{whole} it is cut to half of it ({cut} {units}), then the rates decay"
    return total, cut, f"{whole} there is none: the run trains at the full rates"


class _RecipeRecord(Callback):
    """The fine-tuning phase's own callback: carries the recipe into checkpoints, so a
    resumed fine-tune can check it, and sizes the task's schedule from the steps of the
    fit's training loader as the fit's first epoch starts (under ``torchrun`` each process
    runs its share of them, which ``len(train) / batch_size`` does not tell)."""

    KEY = "FineTune"

    @property
    def state_key(self) -> str:
        return self.KEY

    def __init__(self, recipe: FineTune) -> None:
        self.recipe = recipe
        self._sized = False

    def on_fit_start(self, trainer: Trainer) -> None:
        self._sized = False

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if self._sized:
            return
        self._sized = True
        if epoch > 1:  # resumed: the run's schedule came back with its scheduler's state
            return
        loop, task = trainer._loop, trainer.task
        if loop is None or not isinstance(task, FineTuneTask):
            return
        steps = epoch_size(loop.train_loader)["steps_per_epoch"]
        if steps is not None and steps >= 1:  # an iterable data set cannot tell
            task._size_schedule(steps, trainer.scheduler)

    def state_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe.to_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore: :func:`fine_tune` compares the recipe before resuming."""


def _unfreeze(model: Classifier, blocks: int) -> None:
    """Freeze everything, then make the head and the last ``blocks`` blocks trainable."""
    all_blocks = model.feature_block_modules()
    model.requires_grad_(False)
    for block in all_blocks[len(all_blocks) - blocks :]:
        block.requires_grad_(True)
    model.head_module()[1].requires_grad_(True)


def _steps_per_epoch(train: DataSource, batch_size: int) -> int:
    if isinstance(train, DataLoader):
        return max(1, len(train))
    return max(1, math.ceil(len(train) / batch_size))  # type: ignore[arg-type]


def _probe_cache_dir(option: object, recipe: FineTune) -> Path | None:
    """Where the probe keeps the features it always caches, by :func:`fine_tune`'s
    ``feature_cache``: ``None`` (in memory) for ``"auto"``, ``True`` or ``False``.

    Raises
    ------
    TypeError
        For a value of none of the kinds it takes, listing them.
    ValueError
        For a :class:`FeatureCacheConfig` of other ``views`` than the recipe's.
    """
    if isinstance(option, bool) or (isinstance(option, str) and option == "auto"):
        return None
    if not isinstance(option, str | os.PathLike | FeatureCacheConfig):
        raise TypeError(
            f"fine_tune's feature_cache must be 'auto', True or False (its linear probe "
            "caches the features in memory), a folder path or a FeatureCacheConfig (it keeps "
            f"them there, on disk), got {option!r}"
        )
    config = feature_cache_config(option)
    if config is None:  # not reached: False is taken above
        return None
    if config.views not in (0, recipe.probe_views):
        raise ValueError(
            f"fine_tune's probe caches FineTune(probe_views={recipe.probe_views}) augmented "
            f"views, not the feature_cache's views={config.views}; pass "
            f"FineTune(probe_views={config.views}) (and FeatureCacheConfig(cache_dir=...) "
            "for the folder alone)"
        )
    return config.cache_dir


def saved_recipe(checkpoint: Checkpoint) -> dict[str, Any] | None:
    """The :class:`FineTune` settings a checkpoint of :func:`fine_tune` was written with, as
    plain data; ``None`` for a checkpoint of another kind of run."""
    saved = checkpoint.callback_states.get(_RecipeRecord.KEY)
    if not isinstance(saved, dict) or not isinstance(saved.get("recipe"), dict):
        return None
    recipe: dict[str, Any] = saved["recipe"]
    return recipe


def _check_resume(path: str | os.PathLike[str], recipe: FineTune) -> None:
    from retinalnet.checkpoint import load_checkpoint

    check_resume_path(path)
    checkpoint = load_checkpoint(path, map_location="cpu")
    saved = saved_recipe(checkpoint)
    if saved is None:
        raise ValueError(
            f"cannot resume a fine-tune from {str(path)!r}: it was not written by fine_tune "
            "(no recipe in it); resume it with Trainer.fit(resume_from=...), or start a new "
            "fine-tune without resume_from"
        )
    current = recipe.to_dict()
    differ = {
        k: (v, current.get(k))
        for k, v in saved.items()
        if current.get(k) != v and not k.startswith("probe_")  # the probe is not resumed
    }
    if differ:
        details = ", ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in differ.items())
        raise ValueError(
            f"cannot resume the fine-tune in {str(path)!r} with another recipe ({details}); "
            "pass the recipe it was started with, or start a new run"
        )


def fine_tune(
    model: Classifier,
    train: DataSource,
    val: DataSource | None = None,
    recipe: FineTune | None = None,
    *,
    resume_from: str | os.PathLike[str] | None = None,
    **trainer_settings: Unpack[TrainerSettings],
) -> History:
    """Fine-tune a classifier: a linear probe on cached features, then the last blocks.

    1. The head alone trains for ``recipe.probe_epochs`` on the frozen backbone's cached
       features (:class:`FeatureCacheConfig`), keeping its best validation loss.
    2. The head and the last ``recipe.blocks`` declared feature blocks (by default the
       last half: :meth:`FineTune.blocks_for`) train for
       ``recipe.epochs`` with :class:`FineTuneTask` (discriminative AdamW rates, warm-up
       and cosine, batch-norm statistics kept), on augmented images; the weights of the
       best validation loss (training loss without ``val``) are kept at the end.

    The model is changed in place: its preprocessing gets ``recipe.augment`` and, after
    the call, the head and the last blocks are left trainable. These changes stay when the
    call is interrupted or fails too: the augmentation, and what trains (the head alone if
    it stopped in the probe, the head and the last blocks after it); rebuild the model (or
    load a checkpoint) to start over. The loaders' worker processes end with the call.

    Parameters
    ----------
    model
        A :class:`~retinalnet.models.Classifier` declaring its head and feature blocks
        (every registered architecture does; a hand-built network declares them with
        ``Classifier(network, head=..., feature_blocks=...)``).
    train, val
        Training and validation data (ideally a patient-aware split:
        :func:`~retinalnet.datasets.patient_split`).
    recipe
        The settings; default ``FineTune()``.
    resume_from
        A ``last.pt`` written by an interrupted fine-tune (its ``out_dir``): the probe is
        skipped and the fine-tuning phase continues where it stopped. A checkpoint of
        another recipe, or not written by this function, is refused, and so is training
        data or a ``batch_size`` that gives its epochs another number of steps (the
        per-step schedule is sized for the run's). A fine-tune that ``patience`` stopped
        trains no more epochs.
    **trainer_settings
        Passed to both phases' :class:`Trainer`: ``batch_size``, ``callbacks``,
        ``out_dir``, ``overwrite``, ``precision``, ``device``, ``seed``, ``progress``,
        ``num_workers``. ``callbacks`` and ``out_dir`` (``best.pt``/``last.pt``) belong to
        the fine-tuning phase. The probe always trains on cached features: ``feature_cache``
        says where it keeps them: ``"auto"`` (the default), ``True`` or ``False``: in
        memory; a folder, or a :class:`FeatureCacheConfig` whose ``cache_dir`` is used: on
        disk there, for later runs (the augmented views it caches are
        ``recipe.probe_views``).

    Returns
    -------
    History
        The fine-tuning phase's epochs (``restored_epoch`` is the one whose weights were
        kept).

    Raises
    ------
    TypeError
        If ``model`` is not a Classifier, a setting is not one of the above,
        ``feature_cache`` is none of the values above, or ``callbacks`` is not a list of
        :class:`Callback` instances (checked before the probe, naming the position of the
        first that is not).
    ValueError
        If ``recipe.blocks`` exceeds the model's feature blocks, ``batch_size`` is not an
        int >= 1, a :class:`FeatureCacheConfig` asks for other ``views`` than
        ``recipe.probe_views``, a weight of the model is already NaN or infinite (an
        earlier fit diverged; not when resuming), ``resume_from`` holds another recipe's run, or its
        epochs had another number of steps (other training data or ``batch_size``), or
        the head lies inside one of the blocks to unfreeze (all checked before the probe).
    HeadNotLastError
        A ``ValueError``: when the probe finds that the head is not the last step of the
        forward (a ``F.log_softmax`` after it), naming the ways out
        (``FineTune(probe_epochs=0)``, or ``nn.LogSoftmax`` inside the head module).

    Warns
    -----
    UserWarning
        With ``freeze_bn``, when batch norms of a network built by hand hold their
        initial statistics (never estimated), which the recipe would keep. Parameters
        frozen inside the blocks it unfreezes (while others there train) are unfrozen, as
        fastai's ``fine_tune`` does, and a warning is logged naming how many.

    Examples
    --------
    >>> from retinalnet.training import FineTune, fine_tune
    >>> history = fine_tune(model, train, val, FineTune(blocks=8), seed=0)  # doctest: +SKIP
    >>> history.best("val_loss")  # doctest: +SKIP

    .. versionadded:: 0.2
    """
    with training_grad_mode(model):  # inside a caller's no_grad() or inference_mode() too
        trainer = fine_tune_trainer(
            model, train, val, recipe, resume_from=resume_from, **trainer_settings
        )
        return trainer.fit(train, val, resume_from=resume_from)


def _frozen_in_trained_blocks(model: Classifier, blocks: int) -> list[str]:
    """Names of the parameters frozen in the last ``blocks`` feature blocks while others of
    them train (the user's choice, which fine-tuning undoes); none when these blocks are
    frozen whole, as ``create_model`` leaves a backbone."""
    all_blocks = model.feature_block_modules()
    inside = {id(p) for block in all_blocks[len(all_blocks) - blocks :] for p in block.parameters()}
    named = [(name, p) for name, p in model.network.named_parameters() if id(p) in inside]
    if not any(p.requires_grad for _, p in named):
        return []
    return [name for name, p in named if not p.requires_grad]


def _warn_of_initial_batch_norms(model: Classifier) -> None:
    """Warn when batch norms of a network built by hand hold the statistics they were
    built with (never estimated: no pretrained weights loaded), which ``freeze_bn`` keeps
    for the whole fine-tune. (A registered architecture built without its weights is
    warned about by ``create_model``.)"""
    fresh = [
        name
        for name, layer in model.network.named_modules()
        if isinstance(layer, nn.modules.batchnorm._BatchNorm)
        and layer.track_running_stats
        and layer.running_mean is not None
        and layer.running_var is not None
        and layer.num_batches_tracked is not None
        and int(layer.num_batches_tracked) == 0
        and not bool(layer.running_mean.any())
        and bool((layer.running_var == 1).all())
    ]
    if not fresh:
        return
    warn_caller(
        f"fine_tune: {len(fresh)} batch-norm layer(s) of {type(model.network).__name__} "
        f"(first {fresh[0]!r}) hold their initial statistics (mean 0, variance 1: never "
        "estimated), and FineTune(freeze_bn=True) keeps them so for the whole run; pass "
        "FineTune(freeze_bn=False), or load pretrained weights into the network first",
        UserWarning,
    )


def _warn_without_pretrained_weights(model: Classifier) -> None:
    """Warn when the architecture has no pretrained weights at all (``small_cnn``): the
    recipe's probe on a frozen random backbone and its batch-norm statistics kept at their
    initial values cripple a network trained from scratch (the demo's data: 51% against 95%
    for the same network trained whole)."""
    spec = model.spec
    if spec is None or spec.default_weights is not None:
        return
    warn_caller(
        f"fine_tune: {spec.name} has no pretrained weights, and the recipe assumes some: its "
        "linear probe trains on a frozen random backbone, the first blocks stay random and "
        "the batch-norm statistics stay at their initial values; train a network from "
        "scratch whole with Trainer(model).fit(train, val) (retinalnet train --recipe "
        "tutorial, its default for this architecture)",
        UserWarning,
    )


def fine_tune_trainer(
    model: Classifier,
    train: DataSource,
    val: DataSource | None = None,
    recipe: FineTune | None = None,
    *,
    resume_from: str | os.PathLike[str] | None = None,
    **trainer_settings: Unpack[TrainerSettings],
) -> Trainer:
    """:func:`fine_tune` in two steps: run the linear probe (skipped when resuming) and
    return the fine-tuning phase's :class:`Trainer`, not yet fitted; call its
    ``fit(train, val, resume_from=...)``. Its :meth:`~Trainer.evaluate` and ``history``
    are then at hand (the command line uses them). Each of its fits is a new run of the
    fine-tuning phase (:meth:`Trainer.fit`): the recipe's parameter groups and schedule,
    warm-up included, are built again from the model's weights then.

    Takes and raises what :func:`fine_tune` does.

    Examples
    --------
    >>> trainer = fine_tune_trainer(model, train, val, FineTune())  # doctest: +SKIP
    >>> history = trainer.fit(train, val)  # doctest: +SKIP
    >>> trainer.evaluate(val)  # doctest: +SKIP

    .. versionadded:: 0.2
    """
    if not isinstance(model, Classifier):
        raise TypeError(
            f"fine_tune needs a retinalnet Classifier (it reads the declared head and feature "
            f"blocks), got {type(model).__name__}; wrap it: Classifier(network, classes=..., "
            "head=..., feature_blocks=[...])"
        )
    unknown = sorted(set(trainer_settings) - TRAINER_SETTINGS)
    if unknown:
        raise TypeError(
            f"fine_tune got unknown setting(s) {unknown}; it takes {sorted(TRAINER_SETTINGS)} "
            "(epochs, rates and the rest are FineTune(...) settings)"
        )
    recipe = recipe if recipe is not None else FineTune()
    if not isinstance(recipe, FineTune):
        raise TypeError(f"recipe must be a FineTune, got {type(recipe).__name__}")
    blocks = recipe.blocks_for(model)  # fails now if the model has fewer
    _check_head_apart(model, blocks)  # before the probe trains
    if resume_from is None:  # a resumed run loads other weights
        check_finite_weights(model, "fine_tune")
    _warn_without_pretrained_weights(model)
    if model.spec is None and recipe.freeze_bn and resume_from is None:
        _warn_of_initial_batch_norms(model)  # (a resumed run loads its statistics)
    frozen_by_you = _frozen_in_trained_blocks(model, blocks)
    # checked before the probe trains (the probe's Trainer does not take them)
    callbacks: Sequence[Callback] = check_callbacks(trainer_settings.get("callbacks", ()))
    batch_size = check_batch_size(trainer_settings.get("batch_size", 32))
    cache_dir = _probe_cache_dir(trainer_settings.get("feature_cache", "auto"), recipe)
    if resume_from is not None:
        _check_resume(resume_from, recipe)
    if recipe.augment is not None:
        model.preprocessing = model.preprocessing.with_augmentation(recipe.augment)
    monitor = "val_loss" if val is not None else "train_loss"
    own = ("callbacks", "out_dir", "feature_cache")
    shared: dict[str, Any] = {k: v for k, v in trainer_settings.items() if k not in own}
    if recipe.probe_epochs and resume_from is None:
        model.requires_grad_(False)
        model.head_module()[1].requires_grad_(True)
        probe = Trainer(
            model,
            ClassificationTask(balance=recipe.balance, lr=recipe.probe_lr),
            max_epochs=recipe.probe_epochs,
            feature_cache=FeatureCacheConfig(cache_dir, views=recipe.probe_views),
            callbacks=[EarlyStopping(monitor, patience=recipe.probe_epochs)],
            **shared,
        )
        try:
            probed = probe.fit(train, val)
        except HeadNotLastError as error:
            raise HeadNotLastError(
                f"fine_tune's linear probe trains the head {model.head_module()[0]!r} alone on "
                f"cached features, but it is not the last step of "
                f"{type(model.network).__name__}'s forward or cannot run alone ({error}); skip "
                "the probe with FineTune(probe_epochs=0), or put what the forward does after "
                "the head inside the head module (nn.LogSoftmax(dim=1) in place of "
                "F.log_softmax)"
            ) from error
        except NonFiniteLossError as error:  # say which phase: the probe writes no checkpoint
            raise NonFiniteLossError(
                f"in the linear probe (the head on cached features, before fine-tuning; "
                f"nothing is written in this phase): {error}",
                stage=error.stage,
                epoch=error.epoch,
                step=error.step,
                value=error.value,
            ) from None
        logger.info(
            "linear probe: best %s %.4f at epoch %s",
            monitor,
            probed.best(monitor).metrics()[monitor] if len(probed) else math.nan,
            probed.restored_epoch,
        )
    _unfreeze(model, blocks)
    if frozen_by_you:
        logger.warning(
            "fine_tune: %d parameter(s) frozen before in the last %d feature block(s) train now "
            "(%s): fine_tune unfreezes whole blocks, as fastai does; to keep them frozen, "
            "declare feature_blocks that leave them out",
            len(frozen_by_you),
            blocks,
            ", ".join(frozen_by_you[:3]) + (", ..." if len(frozen_by_you) > 3 else ""),
        )
    task = FineTuneTask(model, recipe, steps_per_epoch=_steps_per_epoch(train, batch_size))
    patience = recipe.patience if recipe.patience is not None else recipe.epochs
    trainer = Trainer(
        model,
        task,
        max_epochs=recipe.epochs,
        # yours after EarlyStopping: a TemperatureScaling then calibrates the restored weights
        callbacks=[EarlyStopping(monitor, patience=patience), _RecipeRecord(recipe), *callbacks],
        out_dir=trainer_settings.get("out_dir"),
        **shared,
    )
    if recipe.probe_epochs and resume_from is None:  # the probe's fit said what they lack
        trainer._classes_checked = (train, val)
    return trainer
