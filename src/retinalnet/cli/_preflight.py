"""What every command checks before any work: that the files and folders it will write can
be written, and that writing them destroys nothing.

A command that finds out only at its end that ``--out``, ``--csv`` or ``--tensorboard``
cannot be written has lost its work (an evaluation, an export, an epoch). :data:`OUTPUTS`
lists, for each command, the options that name something it writes; :func:`check_outputs`
refuses, in one line naming the option, before the command starts:

- a file where a folder is to be, a folder where a file is to be, and a folder that cannot
  be made or written;
- two outputs of the command on one path, or one inside the other's file
  (``predict --csv o1 --cam o1``, ``evaluate --out same --report same``); folders may be
  shared (``--plots`` and ``--cam`` write names of their own);
- an output that lands among what a command reads (:data:`INPUTS`): an output file that is
  one of its input files (``evaluate --out best.pt``, ``predict scan.png --csv scan.png``),
  or a scan in a folder it reads, and an output folder inside a folder it reads (``predict
  scans --cam scans``: the overlays would be read as scans next time). Of ``--data``, all
  of ``train/``, ``val/`` and ``test/`` count, not only the split read; with ``--manifest``,
  all of ``--data`` (its rows may lie anywhere under it). Paths are compared as they really
  are: an output that is a symbolic link is checked where it leads (it is written there);
- an output file whose suffix names another kind of file than the one written
  (:data:`~retinalnet.cli._output_kinds.WRITES`: JSON into ``last.pt``, ONNX into
  ``history.csv``);
- an output file that would replace a retinalnet checkpoint or an image (``--overwrite``
  allows it where a command has that option; none that writes a file has it now).

``-``, ``/dev/stdout``, ``/dev/null`` and the like are written through, never replaced:
only their writability is checked.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from functools import cached_property
from itertools import combinations
from pathlib import Path
from typing import Literal

from retinalnet._core.classes import IMAGE_EXTENSIONS
from retinalnet._core.files import _descriptor, _is_stream
from retinalnet._core.folders import check_file_target, check_folder
from retinalnet.cli._output_kinds import refuse_another_suffix, refuse_replacing_a_model_or_scan

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

_SPLITS = ("train", "val", "test")


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output option of ``args.command`` that cannot be written,
    or whose writing would destroy or mix with what the command reads or writes.

    Raises
    ------
    NotADirectoryError
        A file where a folder is to be (or in its path).
    IsADirectoryError
        A folder where a file is to be.
    PermissionError
        A folder that cannot be made or written (no permission, a read-only file system).
    FileExistsError
        An output file that the command reads (see :data:`INPUTS`), or that is a retinalnet
        checkpoint or an image it would replace.
    ValueError
        Two outputs on one path (or one inside the other's file), an output folder inside a
        folder the command reads, or an output file whose suffix names another kind of file
        than the one written.
    """
    given: list[tuple[str, Kind, Path]] = []
    for dest, flag, kind in OUTPUTS.get(args.command, ()):
        value = getattr(args, dest, None)
        if not isinstance(value, str | Path):  # not given (or --feature-cache in memory)
            continue
        if kind == "folder":
            check_folder(value, name=flag, fix=_FIX[kind])
        else:
            check_file_target(value, name=flag, fix=_FIX[kind])
        if not _through(Path(value)):
            given.append((flag, kind, Path(value)))
    _refuse_shared_paths(given)
    if not given:
        return
    reads = _reads(args)
    for flag, kind, path in given:
        if kind == "folder":
            _refuse_a_folder_among_the_inputs(flag, path, reads)
        else:
            _refuse_overwriting(args, flag, path, reads)


def _through(path: Path) -> bool:
    """Whether ``path`` is written through rather than replaced: ``-``, ``/dev/fd/N``, or
    something that is neither a file nor a folder (``/dev/null``, a terminal, a pipe)."""
    return _descriptor(path) is not None or _is_stream(path)


def _said(path: Path) -> str:
    """``'path'``, and where it leads when it is a symbolic link."""
    if path.is_symlink():
        return f"{str(path)!r} (a link to {os.path.realpath(path)!r})"
    return repr(str(path))


def _same(first: Path, second: Path) -> bool:
    """Whether two paths are one: the same real path, or the same file (device and inode:
    a hard link, a case-insensitive file system)."""
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:
        return first.samefile(second)
    except OSError:  # one is not there yet
        return False


def _inside(path: Path, folder: Path) -> bool:
    """Whether the real path of ``path`` lies under the real path of ``folder``."""
    return Path(os.path.realpath(folder)) in Path(os.path.realpath(path)).parents


def _refuse_shared_paths(outputs: list[tuple[str, Kind, Path]]) -> None:
    """Refuse two outputs on one path, or an output inside another's file (one would replace
    the other, or fail after the work: "File exists", "Is a directory"). Two output folders
    may be one: each command names what it writes there apart (``--plots`` and ``--cam``).
    """
    for first, second in combinations(outputs, 2):
        (flag, kind, path), (other, other_kind, other_path) = first, second
        if kind == other_kind == "folder":
            continue
        if _same(path, other_path):
            if kind == other_kind:
                what = f"one file: {other} would replace what {flag} writes"
            else:
                what = (
                    f"one path, which cannot be both the {kind} of {flag} and the "
                    f"{other_kind} of {other}"
                )
            raise ValueError(
                f"{flag} {str(path)!r} and {other} {str(other_path)!r} name {what}; pass "
                f"another path for {other}"
            )
        for (inner, _, inner_path), (outer, outer_kind, outer_path) in (
            (first, second),
            (second, first),
        ):
            if outer_kind == "file" and _inside(inner_path, outer_path):
                raise ValueError(
                    f"{inner} {str(inner_path)!r} is inside {outer} {str(outer_path)!r}, "
                    f"which is a file; pass a path for {inner} outside it"
                )


def _inputs(args: argparse.Namespace) -> Iterator[tuple[str, Path]]:
    """``(flag, path)`` of every file or folder ``args.command`` reads, or may read next
    time: of ``--data``, each of its split folders (there or not, whichever split is read),
    or, with ``--manifest``, all of it (a manifest's rows may lie anywhere under it)."""
    for dest, flag in INPUTS.get(args.command, ()):
        value = getattr(args, dest, None)
        if dest == "data" and getattr(args, "manifest", None) is None and value is not None:
            if Path(value).is_dir():
                yield from ((flag, Path(value) / split) for split in _SPLITS)
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str | Path) and Path(item).exists():
                yield flag, Path(item)


class _Read:
    """A file or folder a command reads, as its option gave it (``folder``: searched for
    scans, or a split folder of ``--data`` that is not there yet)."""

    def __init__(self, flag: str, path: Path, *, folder: bool) -> None:
        self.flag, self.path, self.folder = flag, path, folder

    @cached_property
    def folders(self) -> frozenset[str]:
        """The real paths of the folder and of every folder searched under it (walked when
        first asked: an output that is no scan and no folder never needs it)."""
        return frozenset(_real_folders(self.path) | {os.path.realpath(self.path)})

    def holds(self, real: str, *, itself: bool) -> bool:
        """Whether the real path ``real`` lies in this folder (or is it, with ``itself``)."""
        if not self.folder:
            return False
        folders = self.folders
        return any(str(folder) in folders for folder in Path(real).parents) or (
            itself and real in folders
        )


def _reads(args: argparse.Namespace) -> list[_Read]:
    """What ``args.command`` reads (see :func:`_inputs`)."""
    return [_Read(flag, path, folder=not path.is_file()) for flag, path in _inputs(args)]


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


def _refuse_a_folder_among_the_inputs(flag: str, folder: Path, reads: list[_Read]) -> None:
    """Refuse an output folder in a folder the command reads: what it writes there would be
    read with the scans next time (``evaluate --plots data/test/CNV``)."""
    real = os.path.realpath(folder)
    for read in reads:
        if read.holds(real, itself=True):
            raise ValueError(
                f"{flag} {_said(folder)} is inside the {read.flag} folder "
                f"{str(read.path)!r}, which the command reads: its files would be read as "
                f"scans next time; pass a folder outside it for {flag}"
            )


def _refuse_overwriting(
    args: argparse.Namespace, flag: str, output: Path, reads: list[_Read]
) -> None:
    """Refuse an output file that is a file the command reads, or a scan in a folder it
    reads (it would be read, then replaced by a report, a CSV or a model), whose suffix
    names another kind of file, or that would replace a checkpoint or an image."""
    real = os.path.realpath(output)
    exists = Path(real).is_file()
    in_place = False
    for read in reads:
        if read.folder:
            if not exists or Path(real).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if not read.holds(real, itself=False):
                continue
            what = f"a scan in the {read.flag} folder {str(read.path)!r}"
        elif exists and _same(output, read.path):
            if (args.command, flag, read.flag) in _WRITTEN_IN_PLACE:
                in_place = True
                continue
            what = (
                f"the {read.flag} file"
                if read.flag.startswith("-")
                else f"one of the {read.flag}s it reads"
            )
        else:
            continue
        raise FileExistsError(
            f"{flag} {_said(output)} is {what}: writing it would destroy what the command "
            f"reads; pass another file for {flag}"
        )
    refuse_another_suffix(args.command, flag, output, _said(output))
    if exists and not in_place and not getattr(args, "overwrite", False):
        refuse_replacing_a_model_or_scan(
            args.command, flag, output, _said(output), has_overwrite=hasattr(args, "overwrite")
        )
