"""What every command checks before any work: that the files and folders it will write can
be written.

A command that finds out only at its end that ``--out``, ``--csv`` or ``--tensorboard``
cannot be written has lost its work (an evaluation, an export, an epoch). :data:`OUTPUTS`
lists, for each command, the options that name something it writes; :func:`check_outputs`
refuses a file where a folder is to be, a folder where a file is to be, and a folder that
cannot be made or written, in one line naming the option, before the command starts.
:data:`INPUTS` lists the options naming what each command reads: an output file that is one
of them (``evaluate --out best.pt``, ``predict scan.png --csv scan.png``), or a scan inside
an input folder, is refused too, before it is read and then overwritten.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from retinalnet._core.classes import IMAGE_EXTENSIONS
from retinalnet._core.folders import check_file_target, check_folder

__all__ = ["INPUTS", "OUTPUTS", "check_outputs"]

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

INPUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "demo": (("weights", "--weights"),),
    "train": (
        ("data", "--data"),
        ("weights", "--weights"),
        ("resume", "--resume"),
        ("manifest", "--manifest"),
    ),
    "evaluate": (("checkpoint", "--checkpoint"), ("data", "--data"), ("manifest", "--manifest")),
    "calibrate": (("checkpoint", "--checkpoint"), ("data", "--data"), ("manifest", "--manifest")),
    "predict": (("checkpoint", "--checkpoint"), ("paths", "PATH")),
    "export": (("checkpoint", "--checkpoint"), ("images", "--images")),
    "audit": (("root", "ROOT"),),
    "split": (("root", "ROOT"),),
}
"""``{command: ((dest, flag), ...)}``: the options naming files or folders each command reads
(a list for ``predict``'s paths and ``export --images``)."""

_WRITTEN_IN_PLACE = {("calibrate", "--out", "--checkpoint")}
"""(command, output, input) pairs that may name one file: ``calibrate --out`` the checkpoint
itself writes the temperature into it, as without ``--out``."""

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
    FileExistsError
        An output file that the command reads (see :data:`INPUTS`).
    """
    for dest, flag, kind in OUTPUTS.get(args.command, ()):
        value = getattr(args, dest, None)
        if not isinstance(value, str | Path):  # not given (or --feature-cache in memory)
            continue
        if kind == "folder":
            check_folder(value, name=flag, fix=_FIX[kind])
        else:
            check_file_target(value, name=flag, fix=_FIX[kind])
            _refuse_overwriting_an_input(args, flag, Path(value))


def _inputs(args: argparse.Namespace) -> Iterator[tuple[str, Path]]:
    """``(flag, path)`` of every file or folder ``args.command`` reads that is there."""
    for dest, flag in INPUTS.get(args.command, ()):
        value = getattr(args, dest, None)
        values = value if isinstance(value, list) else [value]
        if dest == "data" and getattr(args, "manifest", None) is None and value is not None:
            # the folders read are the splits', not the whole root (a manifest's rows may
            # lie anywhere under it)
            splits = ("train", "val") if args.command == "train" else (args.split,)
            values = [Path(value) / split for split in splits]
        for item in values:
            if isinstance(item, str | Path) and Path(item).exists():
                yield flag, Path(item)


def _real_folders(folder: Path) -> set[str]:
    """The real paths of ``folder`` and of every folder under it, through symbolic links to
    folders as the image search follows them (each real folder once: a loop ends)."""
    found: set[str] = set()
    for current, subfolders, _ in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in found:
            subfolders.clear()  # reached again through a link: already searched
            continue
        found.add(real)
    return found


def _refuse_overwriting_an_input(args: argparse.Namespace, flag: str, output: Path) -> None:
    """Refuse an output file that is a file the command reads, or a scan in a folder it
    reads (it would be read, then replaced by a report, a CSV or a model)."""
    if not output.is_file():
        return  # a file that is not there overwrites nothing
    for input_flag, path in _inputs(args):
        if path.is_dir():
            if output.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if os.path.realpath(output.parent) not in _real_folders(path):
                continue
            what = f"a scan in the {input_flag} folder {str(path)!r}"
        elif output.samefile(path) and (args.command, flag, input_flag) not in _WRITTEN_IN_PLACE:
            what = (
                f"the {input_flag} file"
                if input_flag.startswith("-")
                else f"one of the {input_flag}s it reads"
            )
        else:
            continue
        raise FileExistsError(
            f"{flag} {str(output)!r} is {what}: writing it would destroy what the command "
            f"reads; pass another file for {flag}"
        )
