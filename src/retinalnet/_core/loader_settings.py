"""The checks of a data loader's settings, one rule for every door: the Trainer, the
Predictor, :func:`~retinalnet.training.evaluate`, :func:`~retinalnet.training.calibrate`,
the feature cache and the command line."""

from __future__ import annotations

import os

from retinalnet._core.counts import as_integer, check_count

__all__ = ["check_batch_size", "check_num_workers", "max_num_workers"]


def max_num_workers() -> int:
    """The most DataLoader worker processes accepted: 4 per CPU core, at least 32.

    More only cost memory (each holds a copy of the data set) and start-up time: 1000
    workers on 2 cores were still starting after two minutes.
    """
    return max(32, 4 * (os.cpu_count() or 1))


def check_batch_size(value: object, name: str = "batch_size") -> int:
    """``value`` as an int if it is an integer (Python's or NumPy's, not a bool) >= 1.

    Raises
    ------
    ValueError
        Naming ``name`` and the value (``batch_size must be an int >= 1, got 0``).
    """
    return check_count(value, name)


def check_num_workers(value: object) -> int | None:
    """``value`` if it is ``None`` (the default rule) or an int from 0 to
    :func:`max_num_workers`.

    Raises
    ------
    ValueError
        Naming the value and the range.

    Examples
    --------
    >>> check_num_workers(2), check_num_workers(None)
    (2, None)
    """
    if value is None:
        return None
    most = max_num_workers()
    number = as_integer(value)
    if number is None or not 0 <= number <= most:
        raise ValueError(
            f"num_workers must be None or an int from 0 to {most} (4 per CPU core, at least "
            f"32: more only cost memory and start-up time), got {value!r}"
        )
    return number
