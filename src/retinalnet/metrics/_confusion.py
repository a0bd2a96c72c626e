"""Confusion matrix and per-class top-k accuracy, and the checks of targets and
probabilities that every metric shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = ["confusion_matrix", "topk_accuracy"]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]


def _as_targets(targets: npt.ArrayLike, num_classes: int | None = None) -> IntArray:
    array = np.asarray(targets)
    if array.ndim != 1:
        raise ValueError(f"targets must be one class index per image (1-d), got {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"targets must be integer class indices, got dtype {array.dtype}")
    result = array.astype(np.int64)
    if (
        num_classes is not None
        and result.size
        and (result.min() < 0 or result.max() >= num_classes)
    ):
        raise ValueError(
            f"targets must be class indices from 0 to {num_classes - 1}, got values from "
            f"{int(result.min())} to {int(result.max())}; check the class order"
        )
    return result


def confusion_matrix(
    targets: npt.ArrayLike, predicted: npt.ArrayLike, num_classes: int
) -> IntArray:
    """Count images by true and predicted class.

    Parameters
    ----------
    targets, predicted
        Class indices, one per image.
    num_classes
        Size of the square matrix.

    Returns
    -------
    numpy.ndarray
        ``matrix[true, predicted]`` image counts, int64, shape ``(num_classes, num_classes)``.

    Raises
    ------
    ValueError
        If the lengths differ or an index is outside ``0 .. num_classes - 1``.

    Examples
    --------
    >>> from retinalnet.metrics import confusion_matrix
    >>> confusion_matrix([0, 0, 1], [0, 1, 1], 2).tolist()
    [[1, 1], [0, 1]]
    """
    true = _as_targets(targets, num_classes)
    pred = _as_targets(predicted, num_classes)
    if true.shape != pred.shape:
        raise ValueError(
            f"targets and predicted differ in length ({len(true)} vs {len(pred)}); "
            "pass one of each per image"
        )
    counts = np.bincount(true * num_classes + pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _as_probabilities(probabilities: npt.ArrayLike, num_images: int) -> FloatArray:
    array = np.asarray(probabilities, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != num_images or array.shape[1] < 2:
        raise ValueError(
            f"probabilities must have shape (images, classes) = ({num_images}, >= 2), got "
            f"{array.shape}"
        )
    return array


def topk_accuracy(
    targets: npt.ArrayLike, probabilities: npt.ArrayLike, ks: Sequence[int] = (1, 2, 3)
) -> dict[int, FloatArray]:
    """The tutorial's table: per class, how often the true class is among the top ``k``.

    Parameters
    ----------
    targets
        True class indices.
    probabilities
        Class probabilities (or any scores), shape ``(images, classes)``.
    ks
        The values of ``k``, each from 1 to the number of classes (``k`` equal to the
        number of classes is always 100%, one of the tutorial's bugs, so the default stops
        at 3).

    Returns
    -------
    dict
        ``{k: array}`` with one accuracy per class (NaN for a class without images).

    Examples
    --------
    >>> from retinalnet.metrics import topk_accuracy
    >>> table = topk_accuracy([0, 1], [[0.6, 0.4], [0.7, 0.3]], ks=[1, 2])
    >>> table[1].tolist(), table[2].tolist()
    ([1.0, 0.0], [1.0, 1.0])
    """
    true = _as_targets(targets)
    scores = _as_probabilities(probabilities, len(true))
    num_classes = scores.shape[1]
    true = _as_targets(true, num_classes)
    # rank of the true class: how many classes score strictly higher
    true_scores = scores[np.arange(len(true)), true]
    rank = (scores > true_scores[:, None]).sum(axis=1)
    support = np.bincount(true, minlength=num_classes)
    table: dict[int, FloatArray] = {}
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_classes:
            raise ValueError(f"each k must be an int from 1 to {num_classes}, got {k!r}")
        hits = np.bincount(true[rank < k], minlength=num_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            table[int(k)] = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
    return table
