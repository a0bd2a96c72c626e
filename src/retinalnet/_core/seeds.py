"""The one check of a seed: an int from 0 to 2**32 - 1 (NumPy's limit), for the Trainer,
:func:`~retinalnet.training.seed_everything`, patient splits and bootstrap intervals
(:func:`~retinalnet.metrics.classification_report`)."""

from __future__ import annotations

import numbers
from typing import Literal, overload

__all__ = ["MAX_SEED", "check_seed"]

MAX_SEED = 2**32 - 1
"""The largest seed NumPy takes."""


@overload
def check_seed(seed: object, *, allow_none: Literal[False]) -> int: ...
@overload
def check_seed(seed: object, *, allow_none: bool = True) -> int | None: ...
def check_seed(seed: object, *, allow_none: bool = True) -> int | None:
    """``seed`` as a Python int from 0 to 2**32 - 1 (or ``None``, when allowed), refusing
    anything else.

    A NumPy integer (``for seed in np.arange(5)``) is taken and returned as an int: torch's
    ``manual_seed`` and Python's :func:`random.seed` refuse one. A negative seed is refused,
    not folded: Python's :class:`random.Random` takes ``-1`` as ``1``, so two different
    seeds would give one split.

    Raises
    ------
    ValueError
        Naming the value received.

    Examples
    --------
    >>> check_seed(0)
    0
    >>> import numpy as np
    >>> type(check_seed(np.int64(3)))
    <class 'int'>
    >>> check_seed(-1)
    Traceback (most recent call last):
    ValueError: seed must be None or an int from 0 to 2**32 - 1, got -1
    """
    if seed is None and allow_none:
        return None
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not 0 <= int(seed) <= MAX_SEED
    ):
        allowed = "None or an int" if allow_none else "an int"
        raise ValueError(f"seed must be {allowed} from 0 to 2**32 - 1, got {seed!r}")
    return int(seed)
