"""One training pass over the data: train mode, the steps, the epoch's loss and accuracy."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from retinalnet._core.device_copies import copy_to
from retinalnet._core.progress import progress_bar
from retinalnet._core.proportion_text import percent
from retinalnet._core.widest_float import widest_float
from retinalnet.models._classifier import Classifier, declared_feature_blocks
from retinalnet.precision import autocast
from retinalnet.training._distributed import DistributedContext
from retinalnet.training._last_batch import TrainingBatches, explained_one_image_error
from retinalnet.training._nonfinite import first_nonfinite
from retinalnet.training._task import ClassificationTask

__all__ = ["TrainingPass", "enter_train_mode", "epoch_line", "train_one_epoch"]


def enter_train_mode(model: nn.Module) -> None:
    """Train mode for the trained part; everything frozen runs as at inference.

    One rule, whether only a head trains or the last feature blocks too (fine-tuning), so
    the frozen parts compute what they computed before training (no dropout, fixed
    batch-norm statistics) and training with and without the feature cache sees the same
    features:

    - a module whose parameters are all frozen runs in eval mode with everything inside it
      (a batch-norm layer keeps its statistics, a frozen block drops no path);
    - a module that holds trainable parameters trains (its frozen parts still follow the
      rule above);
    - a module without parameters trains only inside a trained unit: a declared feature
      block or head of a :class:`~retinalnet.models.Classifier` that holds trainable
      parameters, or a module whose parameters are all trainable (a head widened to its
      dropout). Elsewhere it runs in eval mode: VGG16's dropouts between its frozen fc6 and
      fc7 stay off while its last conv blocks fine-tune, as in the probe.
    """
    model.train()
    _set_frozen_modes(model, _trained_units(model), inside_unit=False)


def _set_frozen_modes(module: nn.Module, units: set[int], *, inside_unit: bool) -> None:
    """Put into eval mode what the rule of :func:`enter_train_mode` leaves out of training
    in ``module`` (which is in train mode with everything inside it)."""
    inside = list(module.parameters())
    if inside and not any(p.requires_grad for p in inside):
        module.eval()  # all frozen: with everything inside it
        return
    all_trains = bool(inside) and all(p.requires_grad for p in inside)
    inside_unit = inside_unit or all_trains or id(module) in units
    if not inside and not inside_unit:  # no parameters, outside every trained unit
        module.eval()
        return
    for child in module.children():
        _set_frozen_modes(child, units, inside_unit=inside_unit)


def _trained_units(model: nn.Module) -> set[int]:
    """The ids of a Classifier's declared blocks and head that hold trainable parameters,
    and of their layers (a block may be a view: a new ``Sequential`` of the network's
    layers); none for another module."""
    if not isinstance(model, Classifier):
        return set()
    declared = _declared_blocks(model)  # a new list (the declaration's own is never changed)
    with contextlib.suppress(TypeError, AttributeError):  # no nn.Linear to guess; a path gone
        declared = [*declared, model.head_module()[1]]
    units: set[int] = set()
    for unit in declared:
        if any(p.requires_grad for p in unit.parameters()):
            units.add(id(unit))
            units.update(id(layer) for layer in unit.children())
    return units


def _declared_blocks(model: Classifier) -> list[nn.Module]:
    """A Classifier's feature blocks; none for an unrecognised one (nothing declared and
    no structure to guess from). A declaration that gives no feature blocks (names,
    blocks without parameters) is refused, naming the fix."""
    declared = declared_feature_blocks(model)
    if declared is not None:
        return declared
    try:
        return model.feature_block_modules()  # the 0.1 structure guess
    except TypeError:
        return []


@dataclass(frozen=True)
class TrainingPass:
    """What one training pass reports: the mean loss and accuracy of its batches, its steps,
    and the first step whose loss was not finite (``None`` if all were)."""

    loss: float
    accuracy: float
    steps: int
    nonfinite_step: int | None = None
    nonfinite_value: float = math.nan

    @property
    def finite(self) -> bool:
        """Whether every step's loss (in every process) was finite."""
        return math.isfinite(self.loss)


def train_one_epoch(
    forward: nn.Module,
    loader: DataLoader[Any],
    *,
    task: ClassificationTask,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    dtype: torch.dtype | None,
    dist: DistributedContext,
    epoch: int,
    description: str,
    progress: bool,
) -> TrainingPass:
    """Run one epoch of optimizer steps; returns the mean loss and accuracy of its batches.

    Across processes the sums are added up, so every rank returns the whole epoch's values.
    The losses are read back once, at the end of the epoch (a GPU is not waited for at each
    step); a loss that is not finite at any step makes the epoch's mean not finite, and its
    first such step is then looked up. A last batch of one image that a batch-norm layer
    in train mode cannot take is left out, with a warning (see
    :class:`~retinalnet.training._last_batch.TrainingBatches`).
    """
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on all ranks
    # Losses and predictions stay on the device until the epoch ends, one operation per
    # batch: reading them after every batch would make the host wait for the GPU at each
    # step, and on cached features such small operations are most of an epoch.
    losses: list[torch.Tensor] = []
    sizes: list[int] = []
    predictions: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    task.on_train_epoch_start(forward)
    # a last batch of one image, which a batch-norm layer that trains cannot take, is seen
    # at the first batch and left out (with a warning), not met at the end of the epoch
    trained_on = TrainingBatches(forward, loader, tell=dist.is_main, per_process=dist.enabled)
    batches = progress_bar(trained_on, total=len(loader), description=description, enabled=progress)
    # each batch's labels checked on the host before the copy (nothing waits for a GPU):
    # torch's loss would say "Target 4 is out of bounds", on a GPU stop CUDA itself
    to_device = task._pass_labels(loader, where=f"training, epoch {epoch}")
    try:
        for batch, (inputs, targets) in enumerate(batches):
            # float32 from any floating dtype, as the inference engine takes them (tensors
            # made under torch.set_default_dtype(torch.float64) are float64): autocast
            # lowers the precision of a step itself
            floating = inputs.is_floating_point()
            inputs = copy_to(inputs, device, torch.float32 if floating else None)
            if inputs.dim() == 4:  # images: convolutions run faster channels-last (CPU and GPU)
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            targets = to_device(targets, device, batch=batch)
            optimizer.zero_grad(set_to_none=True)
            try:
                with autocast(device, dtype):
                    outputs = forward(inputs)
                    loss = task.training_step(outputs, targets)
            except ValueError as error:  # an epoch of one image: said with the batch size
                explained = explained_one_image_error(error, loader, len(targets))
                if explained is None:
                    raise
                raise explained from None
            torch.autograd.backward(scaler.scale(loss))
            scaler.step(optimizer)
            scaler.update()
            task.on_train_step_end()
            losses.append(loss.detach())
            sizes.append(len(targets))
            predictions.append(outputs.detach().argmax(dim=1))
            labels.append(targets)
    finally:  # no hook left on the model when a step fails
        trained_on.close()
    for _ in range(trained_on.left_out):  # a per-step schedule sized by len(loader)
        task.on_train_batch_left_out()
    if not losses:
        raise ValueError("the training loader produced no batches")
    sum_dtype = widest_float(device)  # float64; float32 on MPS, which has no float64
    weights = torch.tensor(sizes, dtype=sum_dtype, device=device)
    stacked = torch.stack(losses).to(sum_dtype)
    total_loss = stacked @ weights
    correct = (torch.cat(predictions) == torch.cat(labels)).sum()
    loss_sum, correct_sum, seen_sum = dist.sum(
        [float(total_loss), float(correct), float(sum(sizes))], device
    )
    result = TrainingPass(loss_sum / seen_sum, correct_sum / seen_sum, steps=len(losses))
    if result.finite:
        return result
    first = first_nonfinite(stacked)  # None: in another process's batches
    if first is None:
        return result
    return TrainingPass(result.loss, result.accuracy, result.steps, *first)


_SHORT = {"train_accuracy": "train_acc", "val_accuracy": "val_acc"}


def epoch_line(epoch: int, max_epochs: int, metrics: Mapping[str, float], seconds: float) -> str:
    """The log line of an epoch: losses with 4 decimals, accuracies in percent, then the
    extra metrics and the seconds it took (``lr`` is left out)."""
    parts = [f"epoch {epoch}/{max_epochs}"]
    for name, value in metrics.items():
        if name == "lr":
            continue
        shown = percent(value, 2) if name.endswith("accuracy") else f"{value:.4f}"
        parts.append(f"{_SHORT.get(name, name)} {shown}")
    parts.append(f"{seconds:.1f}s")
    return "  ".join(parts)
