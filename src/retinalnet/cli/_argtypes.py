"""argparse types for the numbers every command takes: a value out of range is refused while
the arguments are parsed (exit status 2, with the usage), before the command does any work."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from retinalnet._core.seeds import MAX_SEED

__all__ = [
    "SEED_MAX",
    "bootstrap_resamples",
    "int_in_range",
    "path_argument",
    "positive_number",
]

SEED_MAX = MAX_SEED
"""The largest seed: :func:`~retinalnet.training.seed_everything` takes 0 to 2**32 - 1."""


def int_in_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``, when given).

    Examples
    --------
    >>> int_in_range(1)("3")
    3
    >>> int_in_range(1)("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be at least 1, got 0
    >>> int_in_range(0, 9)("10")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be at most 9, got 10
    """

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
        if number < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {number}")
        if high is not None and number > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {number}")
        return number

    # how argparse names the type in its messages
    parse.__name__ = f"int >= {low}" if high is None else f"int from {low} to {high}"
    return parse


def bootstrap_resamples(value: str) -> int:
    """An argparse type: the bootstrap resamples of ``evaluate``'s 95% intervals, 0 (none)
    or from 40 to 100,000. Fewer than ``ceil(2 / (1 - 0.95))`` = 40 leave a tail of the
    percentile interval without a resample, as
    :func:`~retinalnet.metrics.classification_report` refuses too.

    Examples
    --------
    >>> bootstrap_resamples("1000"), bootstrap_resamples("0")
    (1000, 0)
    >>> bootstrap_resamples("1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be 0 (no intervals) or at least 40 for 95% intervals ..., got 1
    """
    # imported here: the parser is built without numpy, for a quick --help
    from retinalnet.metrics._intervals import minimum_resamples
    from retinalnet.metrics._report import MAX_BOOTSTRAP

    number = int_in_range(0, MAX_BOOTSTRAP)(value)
    fewest = minimum_resamples(0.95)
    if 0 < number < fewest:
        raise argparse.ArgumentTypeError(
            f"must be 0 (no intervals) or at least {fewest} for 95% intervals (each tail of a "
            f"percentile interval needs a resample; 1000 is usual), got {number}"
        )
    return number


# how argparse names the type in its messages
bootstrap_resamples.__name__ = "resample count"


def positive_number(value: str) -> float:
    """An argparse type: a finite number > 0.

    Examples
    --------
    >>> positive_number("1e-4")
    0.0001
    >>> positive_number("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be a finite number > 0, got 0
    """
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1e-4, got {value!r}") from None
    if not (number > 0 and math.isfinite(number)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value}")
    return number


def path_argument(value: str) -> Path:
    """An argparse type: a path that is not empty (``Path("")`` is the current folder, so
    an empty argument, such as an unset shell variable in quotes, would read all of it).

    Examples
    --------
    >>> str(path_argument("scans"))
    'scans'
    >>> path_argument("")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: empty path; name a file or folder (. for the current folder)
    """
    if not value:
        raise argparse.ArgumentTypeError(
            "empty path; name a file or folder (. for the current folder)"
        )
    return Path(value)


# how argparse names the type in its messages ("invalid path value: ''")
path_argument.__name__ = "path"
