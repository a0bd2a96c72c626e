"""A last training batch of one image, which a batch-norm layer in train mode cannot take.

When the training images of an epoch (a process's share of them) are one more than a
multiple of the batch size, the epoch ends on a batch of one image. A batch-norm layer
that trains normalises with the batch's statistics; on a feature map of 1x1 (resnet18's
last block at 32 px, a ``BatchNorm1d`` in a head) one image gives it one value per channel,
and torch raises "Expected more than 1 value per channel when training" at the end of the
first epoch, after all its other steps.

:class:`LastBatchCheck` finds this before the epoch's last step: its forward pre-hooks
note, during the epoch's first batch, how many values per channel one image gives each
batch-norm layer that trains. Where one layer gets a single value the last batch is left
out of the epoch (as ``DataLoader(drop_last=True)`` and fastai's training loaders do), and
a warning says so once, with the batch sizes that train on every image. A batch of one
image that works (a larger feature map) is trained on as before: only a step that would
fail is left out, so no run that worked changes. The loader, and with it the steps of an
epoch a checkpoint records (:func:`~retinalnet.training._resume.epoch_size`) and the data
order a resumed run restores, stays as it is, and so does a per-step schedule sized from
it: a left-out batch moves the schedule on as a step would have (fine-tuning's warm-up
still lasts one epoch and its cosine still ends at its last step).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.hooks import RemovableHandle

__all__ = ["LastBatchCheck", "TrainingBatches", "explained_one_image_error"]

logger = logging.getLogger(__name__)

_TORCH_SAYS = "Expected more than 1 value per channel when training"
"""The start of torch's error for a batch-norm layer that trains on one value per channel."""

_TOLD: weakref.WeakSet[DataLoader[Any]] = weakref.WeakSet()
"""The loaders whose left-out last batch was said: once, not at every epoch."""


def _images_of_epoch(loader: DataLoader[Any]) -> int | None:
    """The images (samples) an epoch of ``loader`` gives this process; ``None`` where the
    loader cannot tell (a batch sampler of its own, an iterable data set)."""
    if loader.batch_size is None:
        return None
    try:
        return len(loader.sampler)  # type: ignore[arg-type]
    except TypeError:
        return None


def _other_batch_sizes(images: int, batch_size: int) -> str:
    """The batch sizes nearest ``batch_size`` that leave no batch of one image."""
    below = next((b for b in range(batch_size - 1, 1, -1) if images % b != 1), None)
    above = next(b for b in range(batch_size + 1, images + 2) if images % b != 1)
    return f"{below} or {above}" if below is not None else str(above)


class LastBatchCheck:
    """Whether one training pass leaves out its last batch, of one image.

    Made at the start of the pass, once the module is in train mode (the task's hook run):
    when the last batch of ``loader`` holds one image and a batch-norm layer of ``forward``
    trains, it hooks those layers until :meth:`first_batch_done`, which decides from what
    the first batch gave them. :meth:`leaves_out` then names the batch to skip.

    Parameters
    ----------
    forward
        The module the pass runs (the model, or DistributedDataParallel around it).
    loader
        The training loader.
    tell
        Whether this process logs the warning (the main one of a distributed fit).
    per_process
        Whether ``loader`` gives this process a share of the images (a distributed fit).
    """

    def __init__(
        self, forward: nn.Module, loader: DataLoader[Any], *, tell: bool, per_process: bool
    ) -> None:
        self._loader = loader
        self._tell = tell
        self._per_process = per_process
        self._skip = False
        self._single: list[str] = []
        self._handles: list[RemovableHandle] = []
        self._images = images = _images_of_epoch(loader)
        self._batch_size = batch_size = loader.batch_size or 0
        self._last_step = -1
        if images is None or not batch_size or loader.drop_last:
            return
        if images < 2 or images % batch_size != 1:
            return
        self._last_step = images // batch_size  # the batch of one image, counted from 0
        for name, layer in forward.named_modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.training:
                self._handles.append(layer.register_forward_pre_hook(self._noter(name)))

    def _noter(self, name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        """The hook that notes layer ``name`` when one image gives it one value per channel."""

        def note(module: nn.Module, args: tuple[Any, ...]) -> None:
            inputs = args[0] if args else None
            if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2:
                return
            # (N, C) or (N, C, 1, 1) for the N images of the first (full) batch: one value a
            # channel per image; rows of tokens, (N x tokens, C), give one image several
            one_each = inputs.numel() == self._batch_size * inputs.shape[1]
            if one_each and name not in self._single:
                self._single.append(name)

        return note

    def first_batch_done(self) -> None:
        """Remove the hooks; decide, from the first batch, whether the last is left out."""
        self.remove()
        if not self._single:
            return
        self._skip = True
        loader = self._loader
        if not self._tell or loader in _TOLD:
            return
        _TOLD.add(loader)
        layers = ", ".join(repr(name) for name in self._single[:3])
        if len(self._single) > 3:
            layers += ", ..."
        logger.warning(
            "training: the last batch of each epoch holds 1 of its %d images%s "
            "(batch_size=%d), and batch-norm layers that train (%s) get one value per channel "
            "from one image, which torch cannot train on: that batch is left out of each "
            "epoch (as with DataLoader(drop_last=True); another image each epoch when the data "
            "is shuffled); pass batch_size=%s to train on every image",
            self._images,
            " in this process" if self._per_process else "",
            self._batch_size,
            layers,
            _other_batch_sizes(self._images or 0, self._batch_size),
        )

    def leaves_out(self, step: int, samples: int) -> bool:
        """Whether the batch of ``samples`` images at ``step`` (0 for the first) is the
        last batch of one image, left out of the pass."""
        return self._skip and samples == 1 and step == self._last_step

    def remove(self) -> None:
        """Remove the hooks (also when the first batch failed)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class TrainingBatches:
    """The batches of ``loader`` a training pass trains on: all of them, less a last batch
    of one image that a batch-norm layer of ``forward`` in train mode cannot take (see
    :class:`LastBatchCheck`). Each pass over it checks anew (the modules' modes then), so
    it can be gone through again (``lr_find`` cycles through short data). The first batch
    must have gone through ``forward`` before the second is asked for, as in a training
    loop; :meth:`close` removes the hooks of a pass left after its first batch (the loop
    failed or stopped), as the caller's ``finally``.

    Parameters are those of :class:`LastBatchCheck`; :attr:`left_out` counts the batches
    left out, whose steps a per-step schedule still takes
    (:meth:`~retinalnet.training.ClassificationTask.on_train_batch_left_out`).
    """

    def __init__(
        self, forward: nn.Module, loader: DataLoader[Any], *, tell: bool, per_process: bool
    ) -> None:
        self.forward = forward
        self.loader = loader
        self.tell = tell
        self.per_process = per_process
        self.left_out = 0  # batches left out by the passes so far
        self._checks: list[LastBatchCheck] = []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        check = LastBatchCheck(
            self.forward, self.loader, tell=self.tell, per_process=self.per_process
        )
        self._checks.append(check)
        try:
            for step, batch in enumerate(self.loader):
                if step == 1:  # the first batch has gone through the forward: decide
                    check.first_batch_done()
                if check.leaves_out(step, len(batch[1])):
                    self.left_out += 1
                    continue
                yield batch
        finally:
            check.remove()
            self._checks.remove(check)

    def close(self) -> None:
        """Remove the hooks a pass still has on the modules (it ended after one batch)."""
        for check in self._checks:
            check.remove()


def explained_one_image_error(
    error: ValueError, loader: DataLoader[Any], samples: int
) -> ValueError | None:
    """Torch's error for a batch-norm layer that trains on a batch of one image, said with
    the batch size and the fix; ``None`` for another error. It comes where
    :class:`LastBatchCheck` could not see it coming: an epoch of one image, a loader
    with a batch sampler of its own."""
    if samples != 1 or not str(error).startswith(_TORCH_SAYS):
        return None
    images = _images_of_epoch(loader)
    held = f"an epoch of {images} image(s)" if images is not None else "the loader"
    return ValueError(
        f"a training batch holds 1 image ({held}, batch_size={loader.batch_size}), and a "
        "batch-norm layer that trains gets one value per channel from it, which torch "
        f"cannot train on ({error}); train on more images, give batches of at least 2 "
        "(DataLoader(drop_last=True) or another batch_size), or keep the batch-norm layers "
        "in eval mode (freeze them)"
    )
