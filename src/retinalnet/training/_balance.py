"""Class imbalance: loss weights and a class-balanced sampler from the training targets."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import WeightedRandomSampler

from retinalnet._core.counts import as_integer, check_count
from retinalnet._core.seeds import check_seed
from retinalnet.metrics._confusion import _as_targets

__all__ = ["BALANCE_MODES", "balanced_sampler", "class_counts", "class_weights"]

BALANCE_MODES: tuple[str, ...] = ("weights", "sampler")
"""The ``ClassificationTask(balance=...)`` options besides ``None``."""


def _checked_targets(targets: Sequence[int], num_classes: int | None) -> tuple[list[int], int]:
    """``targets`` as Python ints (read by the metrics' one rule for class indices: a list,
    an array or a tensor of integers; class names or floats are refused naming the first),
    and the number of classes."""
    if num_classes is not None:
        num_classes = check_count(num_classes, "num_classes", 1, " (the model's classes)")
    if len(targets) == 0:
        raise ValueError("targets is empty: pass the class index of every training sample")
    values = _as_targets(targets).tolist()
    low, high = min(values), max(values)
    if low < 0:
        raise ValueError(f"targets must be class indices >= 0, got {low!r}")
    if num_classes is None:
        return values, high + 1
    if high >= num_classes:
        raise ValueError(
            f"target {high!r} is out of range for num_classes={num_classes}; pass the number "
            "of classes the model predicts"
        )
    return values, num_classes


def class_counts(targets: Sequence[int], num_classes: int | None = None) -> list[int]:
    """Number of samples of each class.

    Parameters
    ----------
    targets
        The class index of every sample (``dataset.targets``).
    num_classes
        Length of the result; default ``max(targets) + 1``.

    Examples
    --------
    >>> class_counts([0, 0, 1, 3], num_classes=4)
    [2, 1, 0, 1]

    .. versionadded:: 0.2
    """
    values, size = _checked_targets(targets, num_classes)
    counts = [0] * size
    for target in values:
        counts[target] += 1
    return counts


def class_weights(targets: Sequence[int], num_classes: int | None = None) -> torch.Tensor:
    """Inverse-frequency class weights for the loss: ``n / (classes_present * n_c)``.

    A class with half the average number of samples gets weight 2, so every class
    contributes equally to a weighted loss such as ``NLLLoss(weight=...)``. The weights
    average to 1 over the samples; a class with no samples gets 0.

    With the Kaggle OCT2017 training counts (CNV 37,205, DME 11,348, DRUSEN 8,616,
    NORMAL 26,315) the weights are about 0.56, 1.84, 2.42 and 0.79.

    Parameters
    ----------
    targets
        The class index of every training sample (``dataset.targets``).
    num_classes
        Length of the result; default ``max(targets) + 1``.

    Returns
    -------
    torch.Tensor
        ``float32``, one weight per class.

    Raises
    ------
    ValueError
        If ``targets`` is empty, holds an index outside ``[0, num_classes)`` or
        something else than integer class indices (class names, floats), or
        ``num_classes`` is not an int >= 1.

    Examples
    --------
    >>> from torch import nn
    >>> weights = class_weights([0, 0, 0, 1])
    >>> weights
    tensor([0.6667, 2.0000])
    >>> loss = nn.NLLLoss(weight=weights)

    .. versionadded:: 0.2
    """
    counts = class_counts(targets, num_classes)
    present = sum(1 for count in counts if count)
    total = len(targets)
    return torch.tensor(
        [total / (present * count) if count else 0.0 for count in counts], dtype=torch.float32
    )


def balanced_sampler(
    targets: Sequence[int], *, seed: int | None = None, num_samples: int | None = None
) -> WeightedRandomSampler:
    """A sampler drawing every class equally often (with replacement).

    Each sample is drawn with probability proportional to ``1 / n_c`` of its class, so a
    batch holds about as many DRUSEN as CNV scans; rare-class images are repeated within an
    epoch and common-class images are left out of it.

    Parameters
    ----------
    targets
        The class index of every training sample (``dataset.targets``).
    seed
        Seeds the draws; ``None`` uses torch's global generator.
    num_samples
        Draws per epoch; default ``len(targets)``.

    Returns
    -------
    torch.utils.data.WeightedRandomSampler
        Pass it as ``DataLoader(data, sampler=...)`` (without ``shuffle``).

    Raises
    ------
    ValueError
        If ``targets`` is empty, holds a negative index or something else than integer
        class indices (class names, floats), or ``num_samples`` is not positive.

    Examples
    --------
    >>> sampler = balanced_sampler([0, 0, 0, 1], seed=0)
    >>> len(sampler)
    4

    .. versionadded:: 0.2
    """
    values, size = _checked_targets(targets, None)
    counts = class_counts(values, size)
    draws = len(values) if num_samples is None else num_samples
    count = as_integer(draws)
    if count is None or count < 1:
        raise ValueError(f"num_samples must be a positive int or None, got {num_samples!r}")
    weights = [1.0 / counts[target] for target in values]
    seed = check_seed(seed)  # an int: torch's generator refuses NumPy's
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return WeightedRandomSampler(weights, count, replacement=True, generator=generator)
