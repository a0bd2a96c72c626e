"""The fields of an :class:`~retinalnet.training.EvaluationResult`, checked as given.

:func:`~retinalnet.training.evaluate` fills a result from the model's outputs; a user may
also build one by hand (from saved probabilities, another tool's counts). Its text, its
per-class accuracy and its plots read the fields as they are, so a matrix of another size
than the classes (an ``IndexError`` deep in ``__str__``), of fractions (read as counts of
0), of negative counts, or probabilities with a column per class missing would give a
traceback or a wrong number far from the mistake. Each is refused where it is made.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from retinalnet._core.counts import as_number
from retinalnet.metrics._confusion import _as_counts, _as_targets, _readable
from retinalnet.models._checks import check_class_names

__all__ = ["checked_classes", "checked_matrix", "checked_probabilities", "checked_scalars"]

_WHERE = "EvaluationResult"


def checked_classes(classes: object) -> tuple[str, ...]:
    """``classes`` as a model's class names are checked (2 or more distinct names that print
    as they are: :func:`~retinalnet.models._checks.check_class_names`), the error naming
    the result."""
    try:
        return check_class_names(classes)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{_WHERE}: {error}") from None


def checked_matrix(matrix: npt.ArrayLike, classes: tuple[str, ...]) -> np.ndarray[Any, Any]:
    """The confusion matrix as int64 counts, one row and one column per class."""
    counts = _as_counts(
        matrix,
        f"{_WHERE}: confusion_matrix",
        "pass image counts [true, predicted], e.g. retinalnet.metrics.confusion_matrix"
        "(targets, predicted, len(classes))",
    )
    if len(counts) != len(classes):
        raise ValueError(
            f"{_WHERE}: confusion_matrix is {len(counts)}x{len(counts)} but there are "
            f"{len(classes)} classes {classes}; pass one row and one column per class, in "
            "the classes' order"
        )
    return counts


def checked_probabilities(
    probabilities: npt.ArrayLike | None,
    targets: npt.ArrayLike | None,
    patient_ids: Sequence[Hashable | None] | None,
    classes: tuple[str, ...],
) -> tuple[
    np.ndarray[Any, np.dtype[np.float64]] | None,
    np.ndarray[Any, np.dtype[np.int64]] | None,
    tuple[Hashable | None, ...] | None,
]:
    """The per-image fields: probabilities ``(images, classes)`` as float64, targets as
    int64 class indices, patient ids as a tuple, all of one length. NaN probabilities are
    kept (a validation pass records them; the reports refuse them with their own message).
    """
    scores = None
    if probabilities is not None:
        try:
            scores = np.asarray(_readable(probabilities), dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{_WHERE}: probabilities must be numbers, one row per image, got "
                f"{type(probabilities).__name__} {reprlib.repr(probabilities)}"
            ) from None
        if scores.ndim != 2 or scores.shape[1] != len(classes):
            raise ValueError(
                f"{_WHERE}: probabilities must have shape (images, {len(classes)}), one "
                f"column per class of {classes}, got {scores.shape}"
            )
    true = None
    if targets is not None:
        true = _as_targets(targets, len(classes), f"{_WHERE}: targets")
    patients = None if patient_ids is None else tuple(patient_ids)
    lengths = {
        name: len(values)
        for name, values in (
            ("probabilities", scores),
            ("targets", true),
            ("patient_ids", patients),
        )
        if values is not None
    }
    if len(set(lengths.values())) > 1:
        said = ", ".join(f"{name} {length}" for name, length in lengths.items())
        raise ValueError(
            f"{_WHERE}: the per-image fields differ in length ({said}); pass one of each "
            "per image, in the same order"
        )
    return scores, true, patients


def checked_scalars(loss: object, accuracy: object, temperature: object) -> tuple[float, ...]:
    """``loss``, ``accuracy`` and ``temperature`` as Python floats (a NumPy float32 is not
    JSON), refusing a loss that is no number (``str()`` formats it), an accuracy outside 0..1
    (NaN: no images; 95 for 95% would print as 9500%) and a temperature that is not a
    positive finite number (every probability is divided by it)."""
    numbers = [as_number(_scalar(value)) for value in (loss, accuracy, temperature)]
    number_loss, number_accuracy, number_temperature = numbers
    if number_loss is None:
        raise ValueError(
            f"{_WHERE}: loss must be a number (the mean loss per image; NaN for no images), "
            f"got {type(loss).__name__} {loss!r}"
        )
    if number_accuracy is None or not (math.isnan(number_accuracy) or 0 <= number_accuracy <= 1):
        raise ValueError(
            f"{_WHERE}: accuracy must be a fraction from 0 to 1 (NaN for no images), got "
            f"{accuracy!r}; pass e.g. 0.95 for 95%"
        )
    if number_temperature is None or not (
        math.isfinite(number_temperature) and number_temperature > 0
    ):
        raise ValueError(
            f"{_WHERE}: temperature must be a positive finite number (1.0: uncalibrated), "
            f"got {temperature!r}"
        )
    return number_loss, number_accuracy, number_temperature


def _scalar(value: object) -> object:
    """A 0-d tensor or array (``criterion(...)``'s loss) as the number it holds."""
    item = getattr(value, "item", None)
    if getattr(value, "ndim", None) == 0 and callable(item):
        return item()
    return value
