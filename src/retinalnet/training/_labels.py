"""Each batch's labels checked before the loss, without making the host wait for a GPU.

Labels that arrive on the host (a data set read by workers) are checked there, before they
are copied to the device: nothing waits. Labels kept on the device (a feature cache resident
on a GPU, a TensorDataset of GPU tensors) would need a wait at every step; the whole
column of the data set's labels is checked once instead, and its batches are then trusted.
"""

from __future__ import annotations

from typing import Any

import torch

from retinalnet._core.class_labels import class_labels
from retinalnet._core.device_copies import copy_to

__all__ = ["BatchLabels"]


class BatchLabels:
    """Checks the labels of one pass over a loader (see :func:`class_labels`).

    Parameters
    ----------
    num_classes
        The model's number of classes; ``None`` while unknown (a network that is not a
        Classifier, before its first outputs): the labels pass unchecked then, for the
        loss's caller to check (:meth:`checked` says they were not).
    where
        What is running, for the messages.
    loader
        The pass's loader: a data set of tensors whose labels live on an accelerator has
        them checked once, whole, at the first batch that comes from there.
    in_order
        Whether the batches come in the data's order (evaluation): an image is then named
        by its index in the data, else by its batch and its place in it.
    """

    def __init__(self, num_classes: int | None, *, where: str, loader: Any, in_order: bool) -> None:
        self.num_classes = num_classes
        self.where = where
        self._loader = loader
        self._in_order = in_order
        self._rows = 0
        self._resident_checked = False
        self._last: torch.Tensor | None = None

    def __call__(self, targets: Any, device: torch.device, *, batch: int) -> torch.Tensor:
        """The batch's labels checked, as int64 on ``device``: queued toward a CUDA GPU,
        copied by the time this returns elsewhere (on the CPU the caller reads them at once).

        Raises
        ------
        TypeError, ValueError
            From :func:`class_labels`, naming the image and its label.
        """
        if self.num_classes is None:  # unknown yet: the caller checks them, once known
            if not isinstance(targets, torch.Tensor):  # class names, say: refused already
                class_labels(targets, 0, where=self.where, batch=batch)
            return copy_to(targets, device)
        on_accelerator = isinstance(targets, torch.Tensor) and targets.device.type != "cpu"
        if on_accelerator and not self._resident_checked:
            self._resident_checked = self._check_resident(self.num_classes)
        if not (on_accelerator and self._resident_checked):
            targets = class_labels(
                targets,
                self.num_classes,
                where=self.where,
                batch=None if self._in_order else batch,
                first_row=self._rows,
            )
        self._rows += len(targets)
        self._last = copy_to(targets, device, torch.int64)
        return self._last

    def checked(self, targets: torch.Tensor) -> bool:
        """Whether ``targets`` are the labels this check returned last."""
        return targets is self._last

    def _check_resident(self, num_classes: int) -> bool:
        """Check the labels column of the loader's data set of tensors, whole; whether there
        was one to check (else each batch is checked, waiting for the device)."""
        tensors = getattr(getattr(self._loader, "dataset", None), "tensors", None)
        if not isinstance(tensors, tuple) or len(tensors) < 2:
            return False
        labels = tensors[-1]
        if not isinstance(labels, torch.Tensor) or labels.device.type == "cpu":
            return False
        class_labels(labels, num_classes, where=self.where)  # names the data's image
        return True
