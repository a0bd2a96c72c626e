"""Data that a safe load reads back: NumPy values made plain, anything else refused by place.

``torch.load(path, weights_only=True)`` unpickles tensors and a short list of plain Python
types only. ``torch.save`` writes anything, so a NumPy number (``np.float64`` is a
``float``, and passes every check that asks for one), an enum member or an object of the
user's class in a callback's state made a checkpoint that the load then refused, in place of
a good one. :func:`loadable_data` walks the containers of such data before a byte is
written: NumPy scalars become the Python values they hold, NumPy arrays tensors, and what a
safe load would not read back raises :class:`NotLoadableError`, naming where it is. Tensors are
kept as they are, not copied: a large optimizer state costs a walk over its dicts.
"""

from __future__ import annotations

import reprlib
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from retinalnet._core.python_values import python_number

__all__ = ["NotLoadableError", "loadable_data"]

# what the weights-only unpickler reads back, by exact type (an IntEnum is an int, and a
# subclass is pickled by its class, which the unpickler refuses)
_LEAVES = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        bytearray,
        torch.Size,
        torch.device,
        torch.dtype,
        torch.layout,
        torch.qscheme,
        torch.Tensor,
        nn.Parameter,
    }
)
_DICTS = (dict, OrderedDict, Counter)
_SEQUENCES = (list, tuple, set)
_NUMPY_PLAIN = "biufcSU"  # bool, ints, floats, complex, bytes, str: as Python values
_NUMPY_TENSOR = "biufc"  # arrays of these as tensors; of bytes or str as lists


class NotLoadableError(ValueError):
    """A value that ``torch.load(weights_only=True)`` would not read back.

    Parameters
    ----------
    where
        Where it is, as a key path (``callbacks['BestSeen']['best']``).
    value
        The value.
    reason
        What is wrong with it, when more than its type.

    Attributes
    ----------
    where : str
        Where it is.
    value : object
        The value.
    """

    def __init__(self, where: str, value: object, reason: str = "") -> None:
        self.where = where
        self.value = value
        described = f"{_described(value)} at {where}"
        super().__init__(f"{described} ({reason})" if reason else described)


class _RefusedError(Exception):
    """Raised from inside the walk; each container it passes adds its key, so a key path
    is made only for a value refused (nothing is formatted for the values kept)."""

    def __init__(self, value: object, reason: str = "") -> None:
        self.value = value
        self.reason = reason
        self.keys: list[str] = []  # innermost first


def loadable_data(value: Any, where: str) -> Any:
    """``value`` as data that ``torch.load(weights_only=True)`` reads back.

    NumPy scalars and 0-d arrays become the Python values they hold
    (:func:`~retinalnet._core.python_values.python_number`), other NumPy arrays tensors (of
    strings: lists); a mapping of another kind becomes a ``dict``. Dicts, lists, tuples and
    sets are rebuilt with their items made so (keys too); tensors, ``torch.Size``, dtypes,
    devices and plain Python values are kept as they are, tensors not copied.

    Parameters
    ----------
    value
        Nested plain data: a checkpoint's field.
    where
        Its name, the start of the key path a refusal names (``"callbacks"``).

    Returns
    -------
    Any
        ``value`` made loadable; ``value`` is not changed.

    Raises
    ------
    NotLoadableError
        If it holds anything else (an object of the user's class, an enum member, a named
        tuple, a ``datetime``, a tensor subclass), naming where and its type; or a container
        that holds itself.

    Examples
    --------
    >>> loadable_data({"best": np.float64(0.5), "seen": [np.int64(3)]}, "state")
    {'best': 0.5, 'seen': [3]}
    >>> loadable_data({"seen": [1, range(3)]}, "state")
    Traceback (most recent call last):
    ...
    retinalnet._core.loadable_data.NotLoadableError: range range(0, 3) at state['seen'][1]
    """
    try:
        return _loadable(value, set())
    except _RefusedError as refused:
        path = where + "".join(reversed(refused.keys))
        raise NotLoadableError(path, refused.value, refused.reason) from None


def _loadable(value: Any, inside: set[int]) -> Any:
    kind = type(value)
    if kind in _LEAVES:
        return value
    if isinstance(value, (np.generic, np.ndarray)):
        return _from_numpy(value)
    mapping = isinstance(value, Mapping)
    if not mapping and kind not in _SEQUENCES:
        raise _RefusedError(value)
    if id(value) in inside:
        raise _RefusedError(value, "it holds itself")
    inside.add(id(value))
    try:
        if mapping:
            items = {_key(key, inside): _item(key, item, inside) for key, item in value.items()}
            return items if kind is dict or kind not in _DICTS else kind(items)
        return kind(_item(index, item, inside) for index, item in enumerate(value))
    finally:
        inside.discard(id(value))


def _key(key: Any, inside: set[int]) -> Any:
    try:
        return _loadable(key, inside)
    except _RefusedError as refused:
        refused.keys.append(f" key {key!r}")
        raise


def _item(key: Any, item: Any, inside: set[int]) -> Any:
    try:
        return _loadable(item, inside)
    except _RefusedError as refused:
        refused.keys.append(f"[{key!r}]")
        raise


def _from_numpy(value: np.generic | np.ndarray) -> Any:
    """A NumPy scalar or array as a Python value or a tensor (an array of strings: a list)."""
    plain_type = isinstance(value, np.generic) or type(value) in (np.ndarray, np.memmap)
    if not plain_type or value.dtype.kind not in _NUMPY_PLAIN:  # datetime64, a masked array
        raise _RefusedError(value, "convert it to Python numbers or a tensor")
    if value.ndim == 0:
        number = python_number(value)
        if isinstance(number, np.generic):  # np.longdouble, np.clongdouble: no Python type
            raise _RefusedError(value, "convert it to float() or complex() first")
        return number
    if value.dtype.kind not in _NUMPY_TENSOR:
        return value.tolist()
    try:
        return torch.from_numpy(np.array(value, order="C"))  # a copy, its strides positive
    except TypeError:  # a dtype torch has not (float128)
        raise _RefusedError(value, "convert it to a tensor of a dtype torch has") from None


def _described(value: object) -> str:
    """The type and the start of the repr of ``value``, on one line."""
    return f"{type(value).__name__} {' '.join(reprlib.repr(value).split())}"
