"""The run folders of a TensorBoard ``log_dir``: a new run's, made in one step so that
runs starting together never share one, and which ``out_dir`` a run writes in, so that a
resumed fit writes on in its run's folder only when it is that run."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

__all__ = ["make_run_folder", "out_dir_key"]


def make_run_folder(log_dir: Path, out_dir: Path | None) -> str:
    """Make the folder in ``log_dir`` of a new run and return its name: the name of
    ``out_dir`` (``version_0`` without one), numbered when a folder or file of that name is
    there (``vgg16_2``, ``version_1``), as Lightning numbers its ``version_N``.

    Each name is claimed by making its folder (``mkdir`` fails if the name is taken, in
    one step): two runs starting together, in two processes, never get one folder.

    Raises
    ------
    OSError
        If ``log_dir`` cannot be made or written in.
    """
    # "runs/vgg16/." and "runs/vgg16/x/.." are vgg16; a link keeps its own name
    base = Path(os.path.normpath(out_dir.absolute())).name if out_dir is not None else ""
    names = (
        itertools.chain([base], (f"{base}_{number}" for number in itertools.count(2)))
        if base
        else (f"version_{number}" for number in itertools.count())
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        try:
            (log_dir / name).mkdir()
        except FileExistsError:  # another run's, or a file or link of that name
            continue
        return name
    raise AssertionError("unreachable: the names never run out")


def out_dir_key(out_dir: Path | None) -> str:
    """Which folder a run writes in, as its checkpoints record it: a digest of the real
    path of ``out_dir`` (``""`` without one)."""
    if out_dir is None:
        return ""
    return hashlib.sha256(os.fsencode(os.path.realpath(out_dir))).hexdigest()
