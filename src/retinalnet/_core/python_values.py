"""NumPy and torch scalars as the Python numbers they hold.

A setting read from an array or a tensor (``dropout=np.float32(0.2)``,
``width_mult=config["width"]`` from a ``.npz``) works as a number, but is a NumPy or torch
object: saved in a checkpoint it is a pickled class that a safe load (``weights_only``)
refuses, and the file the run wrote could not be loaded again. A model's recorded settings
go through :func:`python_values`, so what is saved is plain Python; the other fields of a
checkpoint through :func:`~retinalnet._core.loadable_data.loadable_data`, which makes NumPy
numbers plain with :func:`python_number` and keeps tensors as tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["python_number", "python_values"]


def python_values(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with each NumPy scalar, 0-d array and 0-d tensor (also inside a plain
    list, tuple or dict) replaced by the Python number or bool it holds.

    Examples
    --------
    >>> python_values({"dropout": np.float32(0.5), "hidden": np.int64(8), "name": "x"})
    {'dropout': 0.5, 'hidden': 8, 'name': 'x'}
    """
    return {key: _python_value(value) for key, value in settings.items()}


def python_number(value: Any) -> Any:
    """The Python value a NumPy scalar or 0-d array holds (``np.float64(0.5)``: ``0.5``,
    ``np.bool_(True)``: ``True``, ``np.str_("a")``: ``"a"``); any other ``value`` as it is.

    Examples
    --------
    >>> python_number(np.int64(3)), python_number(np.array(0.5)), python_number([1])
    (3, 0.5, [1])
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:  # np.load's scalars
        return value.item()
    return value


def _python_value(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return python_number(value)
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        return value.item()
    if type(value) is dict:
        return {key: _python_value(item) for key, item in value.items()}
    if type(value) in (list, tuple):  # not a namedtuple, rebuilt by its own fields
        return type(value)(_python_value(item) for item in value)
    return value
