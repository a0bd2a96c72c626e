"""The images a checkpoint trained on, refused as the images it is scored or calibrated on.

A run trained on a ``--manifest`` split records the manifest (path and SHA-256) in its
checkpoints. Its ``train`` rows may name files of any of the data's folders (a pooled,
patient-aware re-split puts some of ``test/`` in training), so the folders' ``test/`` split
is then no test of that model: ``evaluate --split test`` without the run's manifest would
score images it learnt, and report an accuracy it does not have on new patients. ``evaluate``
and ``calibrate`` refuse such images before any work, naming one and the fix
(:func:`refuse_images_trained_on`). A run trained on the folders' split has nothing to check:
its training images are ``train/``, which neither command reads but with ``--split train``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from retinalnet.checkpoint import Checkpoint
from retinalnet.cli._resumed_options import TrainOptions
from retinalnet.datasets import KermanyOCT, read_manifest
from retinalnet.datasets._linked_files import real_path

__all__ = ["refuse_images_trained_on"]

logger = logging.getLogger(__name__)


def _real_paths(paths: list[str]) -> list[str]:
    """The real path of each file (links followed), one ``realpath`` a folder."""
    folders: dict[str, str] = {}
    return [real_path(os.path.abspath(path), folders) for path in paths]  # noqa: PTH100


def _training_manifest(checkpoint: Checkpoint, root: Path) -> Path | None:
    """The manifest the run was trained on under ``root``, when recorded and still there as
    it was (a run on another data folder, as recorded, has nothing to check here)."""
    from retinalnet._core.files import file_digest

    record = checkpoint.callback_states.get(TrainOptions.KEY)
    run = record.get("manifest") if isinstance(record, Mapping) else None
    if not isinstance(run, Mapping):
        return None  # the folders' split, the Python API, or an older retinalnet
    trained_under = record.get("data") if isinstance(record, Mapping) else None
    if isinstance(trained_under, str) and trained_under != os.path.realpath(root):
        return None  # another data folder: same relative names, other images
    path = Path(str(run.get("path")))
    if not path.is_file() or file_digest(path).hex() != run.get("sha256"):
        logger.info(
            "not checked whether the images were trained on: the run's manifest %r is not "
            "there as it was",
            str(path),
        )
        return None
    return path


def refuse_images_trained_on(
    checkpoint: Checkpoint, data: KermanyOCT, root: Path, *, command: str
) -> None:
    """Refuse ``data`` when the checkpoint's run trained on some of its images (the ``train``
    rows of its recorded manifest, read under ``root``, the ``--data`` folder).

    ``--split train`` (training accuracy, asked for as such) and a run trained on another
    data folder (recorded since 0.2) are not checked.

    Raises
    ------
    ValueError
        Counting the images, naming one and the manifest, with the fix: the manifest's own
        ``test`` (``evaluate``) or ``val`` (``calibrate``) rows.
    """
    manifest = _training_manifest(checkpoint, root)
    if manifest is None or data.split == "train":  # training accuracy, asked for as such
        return
    trained = set(
        _real_paths(
            [str(root / row.path) for row in read_manifest(manifest) if row.split == "train"]
        )
    )
    paths = [path for path, _ in data.samples]
    seen = [path for path, real in zip(paths, _real_paths(paths), strict=True) if real in trained]
    if not seen:
        return
    split = "test" if command == "evaluate" else "val"
    raise ValueError(
        f"{len(seen)} of the {len(paths)} images to {command} were trained on by this "
        f"checkpoint's run (train rows of its --manifest {str(manifest)!r}), e.g. "
        f"{seen[0]!r}: a score on them says nothing of new patients; {command} on that "
        f"manifest's {split} rows (--manifest {str(manifest)!r} --split {split}), or on images "
        "the run never trained on"
    )
