"""Which tensor, and which version of its values: to tell, later, whether a copy made from
it (a cast weight, cached features) still holds its values.

A tensor's address (``data_ptr()``) and version counter are not enough: a weight replaced
by a new tensor (``load_state_dict(assign=True)``, ``module.weight = nn.Parameter(...)``,
``param.data = ...``) can be allocated where the old one was freed, with the same version
counter (0 for a new tensor), and a stamp of address and version then takes new values for
the old ones. A :class:`TensorStamp` also holds weak references to the tensor and to its
storage: it matches only the same tensor object, still on the same storage (a freed storage
is never the same object as a new one at its address), read the same way (shape, strides,
offset and dtype: ``param.data = param.data.transpose(2, 3)`` is another tensor on the same
memory), unchanged in place since.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["TensorStamp", "all_match", "tensor_stamp", "tensor_stamps"]


@dataclass(frozen=True, eq=False)
class TensorStamp:
    """A tensor, its storage, its address and its version counter when stamped.

    Compare with :meth:`matches`, not ``==``: the stamps hold no values to compare.
    """

    tensor: weakref.ref[torch.Tensor]
    storage: weakref.ref[torch.UntypedStorage]
    pointer: int
    version: int
    layout: tuple[object, ...]  # shape, strides, storage offset and dtype

    def matches(self, tensor: torch.Tensor) -> bool:
        """Whether ``tensor`` is the tensor stamped, on the same storage, at the same
        address, read the same way, and not changed in place since (its version counter is
        the same)."""
        storage = self.storage()  # None once freed
        return (
            self.tensor() is tensor
            and storage is not None
            and storage is _storage_or_none(tensor)
            and tensor.data_ptr() == self.pointer
            and _version_or_none(tensor) == self.version
            and _layout(tensor) == self.layout
        )


def tensor_stamp(tensor: torch.Tensor) -> TensorStamp | None:
    """A stamp of ``tensor`` (see :class:`TensorStamp`), or ``None`` when it cannot tell an
    in-place change: an inference tensor (made under :func:`torch.inference_mode`) has no
    version counter, and a tensor without a storage (sparse) no storage to follow.

    Examples
    --------
    >>> weight = torch.zeros(2)
    >>> stamp = tensor_stamp(weight)
    >>> stamp.matches(weight), stamp.matches(torch.zeros(2))
    (True, False)
    >>> _ = weight.add_(1)  # changed in place
    >>> stamp.matches(weight)
    False
    >>> square = torch.zeros(2, 3)
    >>> stamp = tensor_stamp(square)
    >>> square.data = square.data.t()  # the same memory read another way
    >>> stamp.matches(square)
    False
    """
    version, storage = _version_or_none(tensor), _storage_or_none(tensor)
    if version is None or storage is None:
        return None
    return TensorStamp(
        weakref.ref(tensor), weakref.ref(storage), tensor.data_ptr(), version, _layout(tensor)
    )


def tensor_stamps(tensors: Iterable[torch.Tensor]) -> tuple[TensorStamp | None, ...]:
    """A stamp of each of ``tensors`` (a model's state, in order)."""
    return tuple(tensor_stamp(tensor) for tensor in tensors)


def all_match(stamps: Sequence[TensorStamp | None], tensors: Sequence[torch.Tensor]) -> bool:
    """Whether ``tensors`` are, one by one, the tensors ``stamps`` were made of, unchanged
    (a tensor without a stamp never matches: it cannot tell an in-place change)."""
    return len(stamps) == len(tensors) and all(
        stamp is not None and stamp.matches(tensor)
        for stamp, tensor in zip(stamps, tensors, strict=True)
    )


def _layout(tensor: torch.Tensor) -> tuple[object, ...]:
    return (tuple(tensor.shape), tensor.stride(), tensor.storage_offset(), tensor.dtype)


def _version_or_none(tensor: torch.Tensor) -> int | None:
    if tensor.is_inference():
        return None
    version: int = tensor._version
    return version


def _storage_or_none(tensor: torch.Tensor) -> torch.UntypedStorage | None:
    try:
        return tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse and other storage-less layouts
        return None
