"""Stdout carries one output: a file an option writes there, or the command's results.

``--csv -``, ``--out /dev/stdout`` and the like write their file through standard output
(:func:`retinalnet._core.files.atomic_write` reads these names). The lines a person reads
(the predictions, the tables, ``plots: ...``) then go to stderr, as they do with ``--json``,
so that ``pandas.read_csv`` or ``jq`` reads the file alone; two outputs bound for stdout
are refused before any work.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

from retinalnet._core.files import _descriptor

__all__ = ["on_stdout", "one_output_on_stdout", "results_stream"]


def on_stdout(path: str | os.PathLike[str] | None) -> bool:
    """Whether an output option's value writes to standard output: ``-``,
    ``/dev/stdout``, ``/dev/fd/1`` or ``/proc/self/fd/1``, the names the writers send
    through descriptor 1."""
    return path is not None and _descriptor(path) == 1


def results_stream(*outputs: str | os.PathLike[str] | None) -> TextIO:
    """Where the human result lines go: stderr when one of ``outputs`` (the values of a
    command's output options) writes to stdout, else stdout."""
    return sys.stderr if any(on_stdout(output) for output in outputs) else sys.stdout


def one_output_on_stdout(outputs: Mapping[str, bool], fix: str) -> None:
    """Refuse two outputs bound for stdout, before any work.

    Parameters
    ----------
    outputs
        Each output, as its option is typed (``--csv -``, ``--json``), and whether it goes
        to stdout.
    fix
        What to type instead, said after the problem.

    Raises
    ------
    ValueError
        If more than one of ``outputs`` goes to stdout: naming them, and ``fix``.
    """
    bound = [option for option, there in outputs.items() if there]
    if len(bound) > 1:
        raise ValueError(
            f"{' and '.join(bound)} both write to stdout, which can carry one of them: {fix}"
        )
