"""Equality by value for frozen results that hold arrays or tensors.

A dataclass's generated ``__eq__`` compares its fields as a tuple, and ``==`` on two NumPy
arrays or tensors gives an array, whose truth torch and NumPy refuse ("the truth value of an
array with more than one element is ambiguous"): ``result == rerun`` raised instead of
answering. The results that hold arrays (:class:`~retinalnet.training.EvaluationResult`,
:class:`~retinalnet.checkpoint.Checkpoint`) define ``__eq__`` with :func:`fields_equal`: equal
when every field is, arrays and tensors compared whole (same dtype, shape and values). Holding
mutable arrays and dicts, they are not hashable (``__hash__ = None``, as for a list).

.. versionadded:: 0.2
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["fields_equal", "values_equal"]


def values_equal(first: object, second: object) -> bool:
    """Whether two values are equal: arrays and tensors by dtype, shape and values
    (:func:`numpy.array_equal`, :func:`torch.equal`), dicts by keys and values, lists and
    tuples item by item, each at any depth; anything else by ``==``. A value is equal to
    itself (a NaN too, as in a list).

    Examples
    --------
    >>> values_equal({"w": torch.ones(2)}, {"w": torch.ones(2)})
    True
    >>> values_equal(np.eye(2), np.zeros((2, 2)))
    False
    """
    if first is second:
        return True
    if isinstance(first, torch.Tensor) or isinstance(second, torch.Tensor):
        return (
            isinstance(first, torch.Tensor)
            and isinstance(second, torch.Tensor)
            and first.dtype == second.dtype
            and first.shape == second.shape
            and torch.equal(first.cpu(), second.cpu())
        )
    if isinstance(first, np.ndarray) or isinstance(second, np.ndarray):
        return (
            isinstance(first, np.ndarray)
            and isinstance(second, np.ndarray)
            and first.dtype == second.dtype
            and np.array_equal(first, second)
        )
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        return first.keys() == second.keys() and all(
            values_equal(first[key], second[key]) for key in first
        )
    if isinstance(first, (list, tuple)) and isinstance(second, (list, tuple)):
        return (
            type(first) is type(second)
            and len(first) == len(second)
            and all(values_equal(a, b) for a, b in zip(first, second, strict=True))
        )
    return bool(first == second)


def fields_equal(first: Any, second: object) -> bool:
    """Whether two dataclass instances of one type have equal fields (:func:`values_equal`),
    those marked ``compare=False`` left out; ``NotImplemented`` for another type, so that
    ``==`` gives ``False`` (as a dataclass's own ``__eq__`` does).

    For the ``__eq__`` of a dataclass declared with ``eq=False``::

        def __eq__(self, other: object) -> bool:
            return fields_equal(self, other)

        __hash__ = None  # holds arrays: not hashable
    """
    compared = [field.name for field in dataclasses.fields(first) if field.compare]
    if type(second) is not type(first):
        return NotImplemented  # type: ignore[no-any-return]
    return all(values_equal(getattr(first, name), getattr(second, name)) for name in compared)
