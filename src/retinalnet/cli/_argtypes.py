"""argparse types for the numbers and paths every command takes: a value out of range, or a
path that cannot mean what its option needs, is refused while the arguments are parsed (exit
status 2, with the usage), before the command does any work."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from retinalnet._core.folder_spelling import names_a_folder
from retinalnet._core.seeds import MAX_SEED

__all__ = [
    "SEED_MAX",
    "bootstrap_resamples",
    "file_argument",
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
    an empty argument, such as an unset shell variable in quotes, would read all of it),
    with a leading ``~`` or ``~user`` made the home folder.

    The shell expands ``~`` only at the start of a word: ``--out=~/run2``, a quoted
    ``"~/scans"`` and a job script's or config file's value reach the command as typed, and
    would otherwise name a folder called ``~`` in the current one. Every path option is of
    this type, so each treats ``~`` alike.

    Examples
    --------
    >>> str(path_argument("scans"))
    'scans'
    >>> path_argument("~/scans") == Path.home() / "scans"
    True
    >>> path_argument("")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: empty path; name a file or folder (. for the current folder)
    """
    if not value:
        raise argparse.ArgumentTypeError(
            "empty path; name a file or folder (. for the current folder)"
        )
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~user of no such user, or no home folder to be found
        raise argparse.ArgumentTypeError(
            f"{value!r}: no home folder found for {Path(value).parts[0]!r}; give the path in full"
        ) from None


# how argparse names the type in its messages ("invalid path value: ''")
path_argument.__name__ = "path"


def file_argument(example: str) -> Callable[[str], Path]:
    """An argparse type for an option naming a file to write: a :func:`path_argument` that
    does not name a folder by its spelling, a trailing ``/`` (``--csv preds/``) or a last
    part ``.`` or ``..``. :class:`~pathlib.Path` drops a trailing ``/``, so ``preds/``
    would otherwise write a file named ``preds``. ``example`` is the file name the message
    suggests in that folder.

    Examples
    --------
    >>> str(file_argument("predictions.csv")("preds.csv"))
    'preds.csv'
    >>> file_argument("predictions.csv")("preds/")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    argparse.ArgumentTypeError: 'preds/' names a folder, ... e.g. preds/predictions.csv
    """

    def parse(value: str) -> Path:
        path = path_argument(value)
        if names_a_folder(value):
            raise argparse.ArgumentTypeError(
                f"{value!r} names a folder, where a file is expected; name a file, e.g. "
                f"{Path(value) / example}"
            )
        return path

    parse.__name__ = "file path"  # how argparse names the type in its messages
    return parse
