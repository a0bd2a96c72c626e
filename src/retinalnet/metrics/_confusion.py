"""Confusion matrix and per-class top-k accuracy, and the checks of targets, probabilities
and scores that every metric shares (one check of finiteness, :func:`_refuse_nonfinite`, and
one rule for ranking tied classes, :func:`_rank_of_true`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from retinalnet._core.counts import check_count

__all__ = ["confusion_matrix", "topk_accuracy"]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]


def _readable(values: npt.ArrayLike) -> npt.ArrayLike:
    """``values`` as NumPy reads them: a torch tensor detached (it may require grad), on
    the CPU and, when floating point, in float64 (NumPy has no bfloat16), as
    :func:`~retinalnet.volume.summarise_volume` reads it; anything else as it is. Duck-typed,
    so the metrics need no torch."""
    detach = getattr(values, "detach", None)
    if not callable(detach) or not callable(getattr(values, "is_floating_point", None)):
        return values
    tensor = detach().cpu()
    return tensor.double() if tensor.is_floating_point() else tensor  # type: ignore[no-any-return]


def _refuse_swapped(targets: object, probabilities: object, call: str) -> None:
    """Refuse ``targets`` that are a table and ``probabilities`` that are one value per
    image: the two given in the wrong order (the metrics take them in two orders, and the
    error would otherwise blame the targets). ``call`` is the function with its order,
    e.g. ``"topk_accuracy(targets, probabilities)"``; every metric taking both calls this
    before reading them."""
    try:
        shapes = np.shape(_readable(targets)), np.shape(_readable(probabilities))  # type: ignore[arg-type]
    except (TypeError, ValueError):  # ragged or unreadable: the checks that follow say so
        return
    if len(shapes[0]) == 2 and len(shapes[1]) == 1:
        raise ValueError(
            f"the arguments look swapped: the targets given are a table {shapes[0]} (of "
            f"probabilities?) and the probabilities one value per image {shapes[1]} (class "
            f"indices?); {call} takes them in this order"
        )


def _as_targets(
    targets: npt.ArrayLike, num_classes: int | None = None, name: str = "targets"
) -> IntArray:
    array = np.asarray(_readable(targets))
    if array.ndim != 1:
        raise ValueError(f"{name} must be one class index per image (1-d), got {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{name} must be integer class indices, got dtype {array.dtype} (first value "
            f"{array.reshape(-1)[:1].tolist()[0]!r}); pass indices in class order, 0 for the "
            "first class: [classes.index(name) for name in labels]"
        )
    result = array.astype(np.int64)
    if (
        num_classes is not None
        and result.size
        and (result.min() < 0 or result.max() >= num_classes)
    ):
        raise ValueError(
            f"{name} must be class indices from 0 to {num_classes - 1}, got values from "
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
        If the lengths differ, an index is outside ``0 .. num_classes - 1`` (a NaN
        index is a float, refused as not an integer), or ``num_classes`` is not an
        int >= 1.

    Examples
    --------
    >>> from retinalnet.metrics import confusion_matrix
    >>> confusion_matrix([0, 0, 1], [0, 1, 1], 2).tolist()
    [[1, 1], [0, 1]]
    """
    num_classes = check_count(
        num_classes, "num_classes", 1, " (the side of the matrix: the number of classes)"
    )
    true = _as_targets(targets, num_classes)
    pred = _as_targets(predicted, num_classes, "predicted")
    if true.shape != pred.shape:
        raise ValueError(
            f"targets and predicted differ in length ({len(true)} vs {len(pred)}); "
            "pass one of each per image"
        )
    counts = np.bincount(true * num_classes + pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _refuse_nonfinite(values: FloatArray, name: str) -> None:
    """Refuse NaN or infinite scores, one per row (image) of ``values``: every metric's check.

    A NaN row has no most probable class (argmax calls it the first class) and no rank, so
    a metric computed from it would be a confident wrong number; the error says how many
    rows are affected, which is the first, and where such values come from.
    """
    if np.isfinite(values).all():
        return
    bad = np.asarray(~np.isfinite(values).reshape(len(values), -1).all(axis=1))
    first = int(np.flatnonzero(bad)[0])
    row = np.atleast_1d(values[first])
    value = row[~np.isfinite(row)][0]
    raise ValueError(
        f"{name} hold NaN or infinite values in {int(bad.sum())} of {len(bad)} rows (the "
        f"first is row {first}, with {value}); expected finite numbers. They come from a "
        "model with non-finite weights or outputs: check the checkpoint (or predict in fp32 "
        "if the model ran in fp16/bf16)"
    )


def _as_probabilities(
    probabilities: npt.ArrayLike, num_images: int, name: str = "probabilities"
) -> FloatArray:
    """``probabilities`` as a float64 ``(images, classes)`` array of finite values."""
    array = np.asarray(_readable(probabilities), dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != num_images or array.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape (images, classes) = ({num_images}, >= 2), got {array.shape}"
        )
    _refuse_nonfinite(array, name)
    return array


def _as_binary(
    scores: npt.ArrayLike, positive: npt.ArrayLike
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """The finite scores and the labels of a binary problem (one class against the rest)."""
    values = np.asarray(_readable(scores), dtype=np.float64)
    given = np.asarray(_readable(positive))
    if values.shape != given.shape or values.ndim != 1:
        raise ValueError(
            f"scores and positive must be 1-d and of the same length, got shapes "
            f"{values.shape} and {given.shape}"
        )
    _refuse_nonfinite(values, "scores")
    return values, _as_labels(given)


def _as_labels(given: npt.NDArray[np.generic]) -> npt.NDArray[np.bool_]:
    """``given`` as booleans when it holds only bool or 0/1 labels; refused otherwise, as
    ``astype(bool)`` would call every nonzero label (class 2, 3 ...) positive."""
    if given.dtype == np.bool_:
        bad = np.zeros(given.shape, dtype=bool)
    elif np.issubdtype(given.dtype, np.integer) or np.issubdtype(given.dtype, np.floating):
        bad = ~np.isin(given, (0, 1))
    else:  # strings, objects: "no" and "yes" would both be True
        bad = np.array(
            [not (isinstance(v, (int, float)) and v in (0, 1)) for v in given.tolist()],
            dtype=bool,
        )
    if bad.any():
        shown = ", ".join(map(repr, list(dict.fromkeys(given[bad].tolist()))[:5]))
        raise ValueError(
            f"positive must be 0/1 or bool labels (1: positive), got {shown}; for class c "
            "of class indices pass positive=(targets == c)"
        )
    labels: npt.NDArray[np.bool_] = given.astype(bool)
    return labels


def _rank_of_true(scores: FloatArray, true: IntArray) -> IntArray:
    """The 0-based rank of each image's true class, by the library's tie rule.

    A class ranks before the true class when its score is higher, or equal with a lower
    class index: the order of a stable descending sort, whose first class is the argmax
    (the first maximum). So rank 0 is exactly "the predicted class is the true one".
    """
    true_scores = scores[np.arange(len(true)), true][:, None]
    lower_index = np.arange(scores.shape[1])[None, :] < true[:, None]
    before = (scores > true_scores) | ((scores == true_scores) & lower_index)
    rank: IntArray = before.sum(axis=1).astype(np.int64)
    return rank


def topk_accuracy(
    targets: npt.ArrayLike, probabilities: npt.ArrayLike, ks: Sequence[int] = (1, 2, 3)
) -> dict[int, FloatArray]:
    """The tutorial's table: per class, how often the true class is among the top ``k``.

    Classes are ranked by the library's tie rule (see :mod:`retinalnet.metrics`): on equal
    scores the lower class index ranks first, as argmax picks the first maximum, so the
    top-1 row is always each class's recall in :func:`classification_report`.

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

    Raises
    ------
    ValueError
        If the shapes disagree, a target is out of range, a ``k`` is out of range, or a
        probability is NaN or infinite (the message counts the rows and names the first).

    Examples
    --------
    >>> from retinalnet.metrics import topk_accuracy
    >>> table = topk_accuracy([0, 1], [[0.6, 0.4], [0.7, 0.3]], ks=[1, 2])
    >>> table[1].tolist(), table[2].tolist()
    ([1.0, 0.0], [1.0, 1.0])
    """
    _refuse_swapped(targets, probabilities, "topk_accuracy(targets, probabilities)")
    _refuse_bare_k(ks, "ks")
    true = _as_targets(targets)
    scores = _as_probabilities(probabilities, len(true))
    num_classes = scores.shape[1]
    true = _as_targets(true, num_classes)
    rank = _rank_of_true(scores, true)
    support = np.bincount(true, minlength=num_classes)
    table: dict[int, FloatArray] = {}
    for k in _checked_ks(ks, num_classes):
        hits = np.bincount(true[rank < k], minlength=num_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            table[k] = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
    return table


def _refuse_bare_k(ks: object, name: str) -> None:
    """Refuse one ``k`` (or anything but a sequence of them) given for a list of ``k``."""
    if isinstance(ks, (int, np.integer)) or not isinstance(ks, Iterable):
        raise ValueError(f"{name} must be a list of ints, e.g. [1, 2], got {ks!r}")


def _checked_ks(ks: Iterable[int], num_classes: int, name: str = "ks") -> list[int]:
    """The ``k`` of a top-k table as Python ints, each from 1 to ``num_classes``: the one
    check of :func:`topk_accuracy` and of the reports' ``topk``, made before any work (also
    without images) and read once (a generator too)."""
    _refuse_bare_k(ks, name)
    checked = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_classes:
            raise ValueError(f"each k must be an int from 1 to {num_classes}, got {k!r}")
        checked.append(int(k))
    return checked


def _as_counts(
    matrix: npt.ArrayLike,
    name: str = "the confusion matrix",
    fix: str = "pass the counts (normalize=True draws each row as fractions of its true class)",
) -> IntArray:
    """``matrix`` as the int64 counts of a square confusion matrix ``[true, predicted]``.

    Refused when it is not square or holds anything but whole numbers >= 0 (integer-valued
    floats are counts), naming the first cell at fault and the fix: a matrix of fractions
    (scikit-learn's ``confusion_matrix(normalize="true")``) would be drawn as counts of 0,
    a negative count as shares above 100%, a count of 5.7 as 5. The one check of every
    matrix given whole (:func:`retinalnet.plots.plot_confusion_matrix`, a hand-built
    :class:`~retinalnet.training.EvaluationResult`); ``fix`` ends the message.
    """
    array = np.asarray(_readable(matrix))
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"{name} must be square, got shape {array.shape}")
    expected = f"{name} must hold counts of images (whole numbers >= 0)"
    values: FloatArray | None = None
    if array.dtype.kind in "iufO":
        try:
            values = array.astype(np.float64)
        except (TypeError, ValueError):
            values = None
    if values is None:
        raise ValueError(f"{expected}, got dtype {array.dtype}; {fix}")
    finite = np.isfinite(values)
    whole = finite & (values == np.floor(values))
    shares = bool(((values >= 0) & (values <= 1)).all())  # a normalised matrix
    for found, bad in (
        ("a value that is not a number", np.isnan(values)),
        ("an infinite value", ~finite & ~np.isnan(values)),
        ("a negative count", finite & (values < 0)),
        ("fractions" if shares else "a count that is not a whole number", ~whole),
    ):
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{expected}, but it holds {found} ({values[row, column]:g} at row {row}, "
                f"column {column}); {fix}"
            )
    counts: IntArray = values.astype(np.int64)
    return counts
