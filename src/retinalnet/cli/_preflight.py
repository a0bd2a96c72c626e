"""What every command checks before any work: that the files and folders it will write can
be written.

A command that finds out only at its end that ``--out``, ``--csv`` or ``--tensorboard``
cannot be written has lost its work (an evaluation, an export, an epoch). :data:`OUTPUTS`
lists, for each command, the options that name something it writes; :func:`check_outputs`
refuses a file where a folder is to be, a folder where a file is to be, and a folder that
cannot be made or written, in one line naming the option, before the command starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from retinalnet._core.folders import check_file_target, check_folder

__all__ = ["OUTPUTS", "check_outputs"]

Kind = Literal["file", "folder"]

OUTPUTS: dict[str, tuple[tuple[str, str, Kind], ...]] = {
    "demo": (("out", "--out", "folder"),),
    "train": (
        ("out", "--out", "folder"),
        ("tensorboard", "--tensorboard", "folder"),
        ("feature_cache", "--feature-cache", "folder"),
    ),
    "evaluate": (
        ("out", "--out", "file"),
        ("plots", "--plots", "folder"),
        ("report", "--report", "file"),
        ("feature_cache", "--feature-cache", "folder"),
    ),
    "calibrate": (("out", "--out", "file"),),
    "predict": (
        ("csv", "--csv", "file"),
        ("cam", "--cam", "folder"),
        ("plots", "--plots", "folder"),
    ),
    "export": (("out", "--out", "file"),),
    "audit": (("out", "--out", "file"),),
    "split": (("out", "--out", "file"),),
}
"""``{command: ((dest, flag, kind), ...)}``: the options naming a file or folder each command
writes."""

_FIX: dict[Kind, str] = {
    "folder": "pass a folder that can be written (it is made if missing)",
    "file": "pass a file path that can be written (its folder is made if missing)",
}


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output option of ``args.command`` that cannot be written.

    Raises
    ------
    NotADirectoryError
        A file where a folder is to be (or in its path).
    IsADirectoryError
        A folder where a file is to be.
    PermissionError
        A folder that cannot be made or written (no permission, a read-only file system).
    """
    for dest, flag, kind in OUTPUTS.get(args.command, ()):
        value = getattr(args, dest, None)
        if not isinstance(value, str | Path):  # not given (or --feature-cache in memory)
            continue
        if kind == "folder":
            check_folder(value, name=flag, fix=_FIX[kind])
        else:
            check_file_target(value, name=flag, fix=_FIX[kind])
