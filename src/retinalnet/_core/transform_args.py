"""The ``transform`` and ``target_transform`` of a data set, checked when it is made.

A transform is called on each sample when the data set is read: one that cannot be called
(the :class:`~retinalnet.transforms.Preprocessing` itself rather than one of its
transforms) failed only at the first read, in Python's words ("'Preprocessing' object is
not callable"), inside a fit.
"""

from __future__ import annotations

import reprlib

from retinalnet._core.articles import type_with_article

__all__ = ["check_transforms"]

_PREPROCESSING_FIX = (
    "a Preprocessing is not itself a transform. Leave transform out for the Trainer, "
    "evaluate, calibrate and the Predictor (they prepare each image with the model's own "
    "preprocessing); for a loop of your own pass preprocessing.train_transform() (training "
    "data, augmented) or preprocessing.eval_transform()"
)


def check_transforms(transform: object, target_transform: object, *, owner: str) -> None:
    """Refuse a ``transform`` or ``target_transform`` that is neither ``None`` nor callable.

    Parameters
    ----------
    transform, target_transform
        The data set's arguments.
    owner
        The data set's class name, said in the message (``"KermanyOCT"``).

    Raises
    ------
    TypeError
        Naming the argument and what it got; for a
        :class:`~retinalnet.transforms.Preprocessing`, the transforms it makes.
    """
    for name, value in (("transform", transform), ("target_transform", target_transform)):
        if value is None or callable(value):
            continue
        if hasattr(value, "train_transform") and hasattr(value, "eval_transform"):
            raise TypeError(f"{owner}({name}={type(value).__name__}(...)): {_PREPROCESSING_FIX}")
        raise TypeError(
            f"{owner}: {name} must be a callable (a function or a torchvision transform) or "
            f"None, got {type_with_article(value)} {reprlib.repr(value)}"
        )
