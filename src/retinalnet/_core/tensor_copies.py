"""Write a tensor once when a checkpoint holds it twice.

A callback's state can hold copies of the model's own weights: :class:`EarlyStopping
<retinalnet.training.EarlyStopping>` keeps the best epoch's weights to restore them at the
end, and in the epoch that improved they are the weights the checkpoint stores anyway. A
fine-tuned ResNet-18's ``best.pt`` held them twice (85 MB for 42 MB of weights).
:func:`share_copies` points such copies at the model's tensors, and ``torch.save`` writes a
storage once however many entries share it: the file holds the weights once and loads
(``weights_only=True`` included) into the same values as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["share_copies"]


def share_copies(state: Any, weights: Mapping[str, torch.Tensor]) -> Any:
    """``state`` with every tensor that equals the model's entry of the same name replaced
    by that entry.

    Parameters
    ----------
    state
        Nested plain data (dicts, lists, tuples, tensors, numbers) as a callback's
        ``state_dict()`` returns it; it is not changed (the dicts are rebuilt).
    weights
        The model's state dict as the checkpoint stores it.

    Returns
    -------
    Any
        ``state`` with equal copies shared; other values as they were.

    Examples
    --------
    >>> w = {"fc.weight": torch.ones(2, 2)}
    >>> shared = share_copies({"best_weights": {"fc.weight": torch.ones(2, 2)}}, w)
    >>> shared["best_weights"]["fc.weight"] is w["fc.weight"]
    True
    """
    if isinstance(state, Mapping):
        return {
            key: _shared(key, value, weights)
            if isinstance(value, torch.Tensor)
            else share_copies(value, weights)
            for key, value in state.items()
        }
    if type(state) in (list, tuple):  # a named tuple's fields stay as they are
        return type(state)(share_copies(value, weights) for value in state)
    return state


def _shared(key: object, value: torch.Tensor, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The model's tensor named ``key`` when ``value`` is an exact copy of it, else ``value``."""
    own = weights.get(key) if isinstance(key, str) else None
    if (
        own is None
        or own is value
        or own.dtype != value.dtype
        or own.shape != value.shape
        or own.device != value.device
        or not torch.equal(own, value)
    ):
        return value
    return own
