"""The images a checkpoint trained on, refused as the images it is scored or calibrated on.

A run trained on a ``--manifest`` split records the manifest (path and SHA-256) in its
checkpoints. Its ``train`` rows may name files of any of the data's folders (a pooled,
patient-aware re-split puts some of ``test/`` in training), so the folders' ``test/`` split
is then no test of that model: ``evaluate --split test`` without the run's manifest would
score images it learnt, and report an accuracy it does not have on new patients. ``evaluate``
and ``calibrate`` refuse such images before any work, naming one and the fix
(:func:`refuse_images_trained_on`). A run trained on the folders' split trained on
``train/``, which the folders' ``test/`` and ``val/`` never hold, but the rows of another
manifest may: those under ``--data``'s ``train/`` are refused too when it is the run's.

The run's manifest is found at its recorded real path or as given (from another working
directory too), and its ``train`` rows are read under the ``--data`` given now: the same
manifest (same SHA-256) names the same images by the same relative names, whether the data
folder is where the run read it, a copy or another mount. Each row names the file training
read for it (a ``\\`` read as ``/``, spaces around, the other Unicode normal form: the
manifest reader's own :func:`~retinalnet.datasets._manifest_files.same_file`), and an image
is one of them when it is that file (links followed). When the check cannot be made
(the manifest is not found, or has changed), a WARNING says so and why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from retinalnet._core.checkpoint_format import train_record
from retinalnet._core.utf_8_names import utf_8_data, utf_8_text
from retinalnet.checkpoint import Checkpoint
from retinalnet.cli._resumed_options import manifest_places, run_manifest
from retinalnet.datasets import KermanyOCT, read_manifest
from retinalnet.datasets._linked_files import real_path
from retinalnet.datasets._manifest_files import same_file

__all__ = ["refuse_images_trained_on"]

logger = logging.getLogger(__name__)


def _real_paths(paths: list[str]) -> list[str]:
    """The real path of each file (links followed), one ``realpath`` a folder."""
    folders: dict[str, str] = {}
    return [real_path(os.path.abspath(path), folders) for path in paths]  # noqa: PTH100


def _training_manifest(checkpoint: Checkpoint, command: str) -> Path | None:
    """The manifest the run was trained on, when recorded and found as it was (at its real
    path, or as given); a WARNING says why the images cannot be checked when it is not."""
    record = train_record(checkpoint.callback_states)
    run = record.get("manifest") if record is not None else None
    if not isinstance(run, Mapping):
        return None  # the folders' split, the Python API, or an older retinalnet
    found = run_manifest(run)
    if found is None:
        logger.warning(
            "%s did not check whether its images were trained on by this checkpoint's run: %s",
            command,
            _why_not_found(run),
        )
    return found


def _why_not_found(run: Mapping[str, object]) -> str:
    """Why the run's recorded manifest is not found as it was, and the way to the check."""
    from retinalnet._core.files import file_digest

    given, real, sha = str(run.get("path")), run.get("real_path"), str(run.get("sha256"))
    changed = [place for place in manifest_places(run) if place.is_file()]
    if changed:
        now = file_digest(changed[0]).hex()
        return (
            f"the run's --manifest {str(changed[0])!r} has changed since (SHA-256 "
            f"{now[:12]}..., the run's {sha[:12]}...); put the run's manifest back there to "
            "have them checked"
        )
    if isinstance(real, str):
        return (
            f"the run's --manifest {given!r} is not found (not at {real!r}); put it back there "
            "to have them checked"
        )
    return (
        f"the run's --manifest {given!r} is not found from {str(Path.cwd())!r} (its "
        "checkpoint records it as given, not its real path); run from the folder the run "
        "was trained in to have them checked"
    )


def _trained_folder(checkpoint: Checkpoint, root: Path, command: str) -> Path | None:
    """The ``train/`` folder under ``root`` that a run trained on the folders' split trained
    on: when ``root`` is the run's data folder (as recorded), or holds the same training
    images by name (a copy, another mount: the digest of their names and classes)."""
    record = train_record(checkpoint.callback_states)
    if record is None or record.get("manifest", False) is not None:
        return None  # a manifest's run, the Python API, or an older retinalnet
    folder = root / "train"
    # compared as UTF-8 text: the same folder under any locale (the record's own locale too)
    if utf_8_data(record.get("data")) == utf_8_text(os.path.realpath(root)):
        return folder
    names = record.get("train_names_sha256")
    if not isinstance(names, str):
        if isinstance(record.get("data"), str):
            logger.warning(
                "%s did not check whether its images under %r were trained on by this "
                "checkpoint's run: it trained on %r, and its checkpoint records no digest of "
                "the training images' names to tell whether %r holds them (an older "
                "retinalnet's)",
                command,
                str(folder),
                str(Path(str(record["data"])) / "train"),
                str(folder),
            )
        return None
    from retinalnet.cli._split_data import split_data, study_classes
    from retinalnet.datasets._sample_names import sample_names_digest

    try:
        train = split_data(root, "train", None, study_classes(checkpoint.classes))
    except (OSError, ValueError) as error:  # a train/ folder of another layout
        logger.warning(
            "%s did not check whether its images under %r were trained on by this "
            "checkpoint's run: that folder cannot be read as a training split (%s)",
            command,
            str(folder),
            error,
        )
        return None
    return folder if sample_names_digest(train) == names else None


def refuse_images_trained_on(
    checkpoint: Checkpoint, data: KermanyOCT, root: Path, *, command: str
) -> None:
    """Refuse ``data`` when the checkpoint's run trained on some of its images (the ``train``
    rows of its recorded manifest, read under ``root``, the ``--data`` folder; for a run on
    the folders' split, ``root``'s ``train/`` when it holds the run's training images).

    ``--split train`` (training accuracy, asked for as such) is not checked. When the run's
    manifest is not found as it was, a WARNING says that the images were not checked, and
    why.

    Raises
    ------
    ValueError
        Counting the images, naming one and the manifest (or the ``train/`` folder), with
        the fix: the manifest's own ``test`` (``evaluate``) or ``val`` (``calibrate``) rows
        (or the folders' split).
    """
    if data.split == "train":  # training accuracy, asked for as such
        return
    paths = [path for path, _ in data.samples]
    reals = _real_paths(paths)
    split = "test" if command == "evaluate" else "val"
    under = os.path.realpath(root / "train") + os.sep
    inside = [path for path, real in zip(paths, reals, strict=True) if real.startswith(under)]
    if inside and _trained_folder(checkpoint, root, command) is not None:
        raise ValueError(
            f"{len(inside)} of the {len(paths)} images to {command} were trained on by this "
            f"checkpoint's run (it trained on the folders' split, and they are in "
            f"{str(root / 'train')!r}), e.g. {inside[0]!r}: a score on them says nothing of "
            f"new patients; {command} on the folders' {split} split (--split {split} without "
            "--manifest), or on images the run never trained on"
        )
    manifest = _training_manifest(checkpoint, command)
    if manifest is None:
        return
    # each row resolved to the file training read for it (same_file finds it as
    # rows_with_files does: a `\`, spaces around, the other normal form), each image (its
    # path as listed, absolute: from the working directory) by the same identity
    file = same_file(root)
    trained = {file(row.path) for row in read_manifest(manifest) if row.split == "train"}
    seen = [path for path in paths if file(os.path.abspath(path)) in trained]  # noqa: PTH100
    if not seen:
        return
    raise ValueError(
        f"{len(seen)} of the {len(paths)} images to {command} were trained on by this "
        f"checkpoint's run (train rows of its --manifest {str(manifest)!r}), e.g. "
        f"{seen[0]!r}: a score on them says nothing of new patients; {command} on that "
        f"manifest's {split} rows (--manifest {str(manifest)!r} --split {split}), or on images "
        "the run never trained on"
    )
