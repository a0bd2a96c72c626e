"""A run's files in its folder (``best.pt``, ``last.pt``, ``history.csv``): the links a run
replaces rather than writes through, and what a new run is told when it finds them."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RUN_FILES", "replace_foreign_link", "run_files_taken"]

logger = logging.getLogger(__name__)

RUN_FILES = ("best.pt", "last.pt", "history.csv")
"""The files of a run in its folder (``retinalnet train`` writes ``history.csv``): a new
run into a folder holding any of them would replace another run's."""


def replace_foreign_link(path: Path) -> None:
    """Before a run first writes ``path`` that is not its own: a symbolic link there to an
    existing file (``last.pt -> deployed/v3.pt``) is removed, so that the run writes a file
    of its own in its place and the file linked to stays as it is (the file writers write
    through a link). A link to no file yet (set up to put the run's files on another disk)
    is kept: nothing is replaced through it."""
    if path.is_symlink() and path.exists():
        target = os.path.realpath(path)
        path.unlink()
        logger.info(
            "%s was a link to %s, which this run leaves as it is: its file takes the link's place",
            path,
            target,
        )


def run_files_taken(dirpath: Path, found: Sequence[Path]) -> FileExistsError:
    """The refusal of a new run into ``dirpath``, which holds the run files ``found`` (the
    first named), with the ways out that there are: resuming the run from its ``last.pt``,
    from its ``best.pt`` when it left no ``last.pt``, or, when it left no checkpoint at all
    (a ``history.csv`` alone: the run stopped before its first checkpoint was written, on a
    full disk perhaps), no resume: nothing of it was saved."""
    taken = f"{found[0]} already exists and would be replaced by this new run"
    allow = "allow it (overwrite=True, or --overwrite)"
    best, last = dirpath / "best.pt", dirpath / "last.pt"
    if last.exists():
        return FileExistsError(
            f"{taken}; resume that run (fit(..., resume_from=last.pt), or --resume on the "
            f"command line), choose another folder, or {allow}"
        )
    if best.exists():
        return FileExistsError(
            f"{taken}; that run left no last.pt: resume it from its best.pt (fit(..., "
            f"resume_from={str(best)!r})), choose another folder, or {allow}"
        )
    return FileExistsError(
        f"{taken}; the run that wrote it saved no checkpoint (no best.pt, no last.pt "
        "beside it: it stopped before its first one was written, on a full disk perhaps), so "
        "there is nothing to resume; free some space if the disk was full, then start the run "
        f"again in another folder, or there if you {allow}"
    )
