"""The labels a loss is given: integer class indices of the model's classes, or one line why not.

torch's losses take labels as they come: a label the model has no class for stops with
``IndexError: Target 4 is out of bounds`` (on a GPU, a device-side assert that leaves CUDA
unusable), float labels with ``expected target dtype to be Long or Byte``, and neither
names the image nor the fix. Training, ``lr_find``, evaluation and the feature cache check
their labels here first.
"""

from __future__ import annotations

import reprlib

import torch

__all__ = ["class_labels"]

_FIX = (
    "labels are class indices, 0 for the first of the classes in the model's order: check "
    "the data's targets and its target_transform"
)


def class_labels(
    targets: object,
    num_classes: int,
    *,
    where: str,
    batch: int | None = None,
    first_row: int = 0,
) -> torch.Tensor:
    """``targets`` as int64 class indices, checked against ``num_classes``.

    Parameters
    ----------
    targets
        One batch's labels (or a whole data set's), one per image.
    num_classes
        The model's number of classes: labels run from 0 to ``num_classes - 1``.
    where
        What is running, for the message (``"training"``, ``"evaluate()"``).
    batch
        The batch's number, when the rows are not the data's own order (shuffled training
        batches): an image is then named by its place in that batch.
    first_row
        The data's index of the first row (batches in data order): an image is named by
        its index in the data.

    Returns
    -------
    torch.Tensor
        ``targets`` itself when it is int64 already, else an int64 copy (integer labels of
        another width, which torch's losses refuse), on the same device.

    Raises
    ------
    TypeError
        If the labels are not a tensor of integers (floats, bools, class names).
    ValueError
        If they are not one label per image (1-d), or a label is outside
        ``0 .. num_classes - 1``; the message names the first such image and its label.
    """
    place = f"batch {batch}" if batch is not None else "the data"
    if not isinstance(targets, torch.Tensor):
        raise TypeError(
            f"{where}: the labels of {place} are {type(targets).__name__} "
            f"{reprlib.repr(targets)}; {_FIX}"
        )
    if targets.dim() != 1:  # before the dtype: one-hot or probability rows are floats
        raise ValueError(
            f"{where}: the labels of {place} have shape {tuple(targets.shape)}; one class "
            f"index per image is expected, shape (images,); {_FIX} (for one-hot or "
            "probability rows, give each row's class index: row.argmax())"
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        first = targets.reshape(-1)[:1].tolist()
        shown = f" (first {first[0]!r})" if first else ""
        raise TypeError(
            f"{where}: the labels of {place} are {targets.dtype}{shown}, not integers; "
            f"{_FIX} (give integer targets, e.g. target_transform=int or "
            "torch.tensor(labels, dtype=torch.long))"
        )
    if not len(targets):
        return targets.long()
    low, high = (int(value) for value in torch.aminmax(targets))  # one read, for both ends
    if low < 0 or high >= num_classes:
        outside = (targets < 0) | (targets >= num_classes)
        row = int(outside.nonzero()[0, 0])
        value = int(targets[row])
        image = f"image {row} of batch {batch}" if batch is not None else f"image {first_row + row}"
        raise ValueError(
            f"{where}: {image} has label {value}, but the model has {num_classes} "
            f"class{'' if num_classes == 1 else 'es'} (labels 0 to {num_classes - 1}); {_FIX}"
        )
    return targets if targets.dtype == torch.int64 else targets.long()
