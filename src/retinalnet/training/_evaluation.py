"""Evaluating a model on a whole data set, in batches."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from retinalnet.models import Classifier
from retinalnet.training._device import resolve_device
from retinalnet.training._loaders import DataSource, make_loader
from retinalnet.training._progress import progress_bar

__all__ = ["EvaluationResult", "evaluate", "run_evaluation"]


@dataclass(frozen=True)
class EvaluationResult:
    """Loss, accuracy and confusion matrix of a model on a data set.

    Attributes
    ----------
    classes : tuple of str
        Class names, in the order of the matrix.
    loss : float
        Mean loss per image.
    accuracy : float
        Top-1 accuracy over all images.
    confusion_matrix : numpy.ndarray
        ``confusion_matrix[true, predicted]`` image counts (int64).
    """

    classes: tuple[str, ...]
    loss: float
    accuracy: float
    confusion_matrix: np.ndarray[Any, np.dtype[np.int64]]

    @property
    def num_samples(self) -> int:
        """Number of images evaluated."""
        return int(self.confusion_matrix.sum())

    @property
    def per_class_accuracy(self) -> dict[str, float]:
        """Top-1 accuracy (recall) of each class; NaN for a class with no images."""
        support = self.confusion_matrix.sum(axis=1)
        return {
            name: float(self.confusion_matrix[i, i] / support[i]) if support[i] else math.nan
            for i, name in enumerate(self.classes)
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "classes": list(self.classes),
            "num_samples": self.num_samples,
            "loss": self.loss,
            "accuracy": self.accuracy,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion_matrix": self.confusion_matrix.tolist(),
        }

    def __str__(self) -> str:
        width = max(8, *(len(name) + 1 for name in self.classes))
        lines = [
            f"images {self.num_samples}  loss {self.loss:.4f}  accuracy {self.accuracy:.2%}",
            "",
            "true \\ predicted".ljust(18)
            + "".join(n.rjust(width) for n in self.classes)
            + "  accuracy".rjust(11),
        ]
        for i, name in enumerate(self.classes):
            row = "".join(str(v).rjust(width) for v in self.confusion_matrix[i])
            accuracy = self.per_class_accuracy[name]
            shown = "-" if math.isnan(accuracy) else f"{accuracy:.1%}"
            lines.append(name.ljust(18) + row + shown.rjust(11))
        return "\n".join(lines)


def run_evaluation(
    model: nn.Module,
    loader: DataLoader[Any],
    *,
    loss: nn.Module,
    device: torch.device,
    classes: Sequence[str],
    progress: bool = False,
) -> EvaluationResult:
    """Evaluate on a prepared loader (the loop the Trainer uses after each epoch)."""
    num_classes = len(classes)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64)
    total_loss = 0.0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            batches = progress_bar(
                loader, total=len(loader), description="evaluate", enabled=progress
            )
            for inputs, targets in batches:
                inputs = inputs.to(device, non_blocking=True)
                targets = targets.to(device, non_blocking=True)
                outputs = model(inputs)
                total_loss += float(loss(outputs, targets)) * len(targets)
                predicted = outputs.argmax(dim=1)
                confusion += torch.bincount(
                    (targets * num_classes + predicted).cpu(), minlength=num_classes**2
                )
    finally:
        model.train(was_training)
    matrix = confusion.reshape(num_classes, num_classes).numpy()
    count = int(matrix.sum())
    return EvaluationResult(
        classes=tuple(classes),
        loss=total_loss / count if count else math.nan,
        accuracy=float(np.trace(matrix) / count) if count else math.nan,
        confusion_matrix=matrix,
    )


def evaluate(
    model: nn.Module,
    data: DataSource,
    *,
    loss: nn.Module | None = None,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    num_workers: int = 0,
    classes: Sequence[str] | None = None,
    progress: bool = False,
) -> EvaluationResult:
    """Loss, accuracy per class and overall, and the confusion matrix, batch by batch.

    Parameters
    ----------
    model
        A :class:`~retinalnet.models.Classifier` (its preprocessing and class names are
        used) or any module producing log-probabilities.
    data
        A data set of ``(image, target)`` or a DataLoader. A data set that yields PIL
        images is prepared with the model's evaluation preprocessing.
    loss
        Loss on the model's outputs; ``NLLLoss`` by default (the builders end in
        ``LogSoftmax``).
    batch_size, num_workers
        Loader settings when ``data`` is a data set.
    device
        ``"auto"`` (CUDA, then MPS, then CPU) or a device.
    classes
        Class names, when ``model`` is not a Classifier.
    progress
        Show a batch progress bar (needs tqdm).

    Examples
    --------
    >>> from retinalnet.training import evaluate
    >>> result = evaluate(model, KermanyOCT("OCT2017", "test"))  # doctest: +SKIP
    >>> print(result)  # doctest: +SKIP
    """
    target_device = resolve_device(device)
    if classes is None:
        if not isinstance(model, Classifier):
            raise ValueError("pass classes=[...] when the model is not a retinalnet Classifier")
        classes = model.classes
    transform = model.preprocessing.eval_transform() if isinstance(model, Classifier) else None
    loader = make_loader(
        data, batch_size=batch_size, shuffle=False, transform=transform, num_workers=num_workers
    )
    model.to(target_device)
    return run_evaluation(
        model,
        loader,
        loss=loss if loss is not None else nn.NLLLoss(),
        device=target_device,
        classes=classes,
        progress=progress,
    )
