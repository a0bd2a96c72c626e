"""The images of the splits a command reads: the folders', or a manifest's.

``retinalnet split`` writes a patient-aware train/val split (and the test rows) into a
manifest; ``train``, ``evaluate`` and ``calibrate`` take it with ``--manifest``, so a
download without a ``val`` folder (the Mendeley layout, ``CellData/OCT``) goes from
training to calibration and evaluation on one split.

A command reads its manifest once: ``train`` builds ``train`` and ``val`` from the rows of
that one reading, so a ``retinalnet split --out`` rewriting the file meanwhile cannot hand
them two different splits (validation images that are also trained on). Each split's rows
are checked under the data root as :meth:`KermanyOCT.from_manifest
<retinalnet.datasets.KermanyOCT.from_manifest>` checks them.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from retinalnet._core.classes import KERMANY_CLASSES, in_kermany_order
from retinalnet._core.path_version import file_version
from retinalnet.cli._argtypes import path_argument

if TYPE_CHECKING:
    from retinalnet.datasets import KermanyOCT, ManifestRow

__all__ = [
    "Splits",
    "add_manifest_argument",
    "read_manifest_once",
    "read_splits",
    "split_data",
    "study_classes",
]

logger = logging.getLogger("retinalnet")


def add_manifest_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--manifest FILE``: take ``what`` from a manifest instead of the folders."""
    parser.add_argument(
        "--manifest",
        type=path_argument,
        default=None,
        metavar="FILE",
        help=f"take {what} from this manifest (from `retinalnet split`; its relative paths "
        "start at --data) instead of the folders (default: the folders)",
    )


def study_classes(model_classes: Sequence[str]) -> tuple[str, ...]:
    """The Kermany classes a checkpoint's model was trained for (all four, or some of them
    in the Kermany order: a CNV-versus-NORMAL model reads only those folders).

    The commands read the Kermany classes, in the Kermany order, only, so a checkpoint of
    other classes (``AMD``, lower-case names, the Kermany ones in another order) is refused
    here, before any image is read, saying what the command line can and cannot do with it.

    Raises
    ------
    ValueError
        If ``model_classes`` are not two or more Kermany classes in the Kermany order; the
        message names them and the way out (Python, or a run trained with ``--classes``).
    """
    names = tuple(model_classes)
    if len(names) >= 2 and names == in_kermany_order(names):
        return names
    kermany = list(KERMANY_CLASSES)
    if len(names) >= 2 and set(names) <= set(KERMANY_CLASSES):
        raise ValueError(
            f"the model's classes are {list(names)}, Kermany classes out of the Kermany order "
            f"{kermany}, in which retinalnet's commands read them: its outputs would meet "
            "other classes; train a model of them with retinalnet train --classes "
            f"{' '.join(names)} (which keeps the Kermany order), or use this one in Python on "
            "data in its order"
        )
    raise ValueError(
        f"the model's classes are {list(names)}, not the Kermany classes {kermany} or some "
        "of them: retinalnet's commands read only those (some of them, for a model trained "
        "with --classes), while predict, export and info take any checkpoint; evaluate, "
        "calibrate or train it further in Python on data of its classes (torchvision's "
        "ImageFolder): model = load_checkpoint(path).build_model(), then "
        "retinalnet.training.evaluate(model, data), calibrate(model, data) or a Trainer"
    )


class Splits(NamedTuple):
    """The splits a command reads, in the order it asked for them, and the SHA-256 (64 hex
    digits) of the manifest bytes their rows were read from (``None`` for the folders):
    ``train`` records it, for ``--resume`` and ``evaluate`` to find the manifest by."""

    data: tuple[KermanyOCT, ...]
    manifest_sha256: str | None


def split_data(
    data: Path,
    split: str,
    manifest: Path | None,
    classes: Sequence[str] | None = None,
    *,
    on_error: str = "raise",
) -> KermanyOCT:
    """The images of ``split`` of ``classes`` (default: all four): the manifest's rows of it
    (paths under ``data``), or the folder ``data/split``; see :func:`read_splits`."""
    return read_splits(data, (split,), manifest, classes, on_error=on_error).data[0]


def read_splits(
    data: Path,
    splits: Sequence[str],
    manifest: Path | None,
    classes: Sequence[str] | None = None,
    *,
    on_error: str = "raise",
) -> Splits:
    """The images of each of ``splits`` of ``classes`` (default: all four): the folders
    ``data/split``, or the rows of each split of one reading of ``manifest`` (paths under
    ``data``), which are therefore one version of the file's split, whatever rewrites it
    meanwhile. ``on_error`` (``--on-error``) decides whether the manifest's rows that name
    no file are refused or left out with a warning; the data sets themselves read with
    ``on_error="raise"``, the command leaving out unreadable images itself.

    Raises
    ------
    FileNotFoundError, ValueError
        As :meth:`KermanyOCT.from_manifest <retinalnet.datasets.KermanyOCT.from_manifest>`
        (a file listed in two splits, also by two paths of it, is refused).
    RuntimeError
        If the manifest file changed while it was read, each time (a ``retinalnet split
        --out`` of it writing it again and again).
    """
    from retinalnet.datasets import KermanyOCT
    from retinalnet.datasets._manifest_files import check_no_file_twice_under

    partial = classes is not None and tuple(classes) != KERMANY_CLASSES
    if manifest is None:
        read = []
        for split in splits:
            if partial:
                logger.info("%s split: the images of %s only", split, ", ".join(classes or ()))
            read.append(KermanyOCT(data, split, classes=classes))
        return Splits(tuple(read), None)
    path = Path(manifest).expanduser()
    rows, sha256 = read_manifest_once(path)
    base = Path(data).expanduser()
    check_no_file_twice_under(rows, base, f"manifest {str(path)!r}")
    built = []
    for split in splits:
        if partial:
            logger.info("%s split: the images of %s only", split, ", ".join(classes or ()))
        dataset = _manifest_split(rows, split, base, path, classes, on_error=on_error)
        dataset.on_error = "raise"  # unreadable images: left out by the command, and listed
        built.append(dataset)
    return Splits(tuple(built), sha256)


_READS = 3
"""How many times a manifest that changed while it was read is read again."""


def read_manifest_once(path: Path) -> tuple[list[ManifestRow], str]:
    """The rows of the manifest at ``path`` and the SHA-256 of the bytes they were read
    from, both of one version of the file (its identity unchanged from before the digest to
    after the rows): what a command reads from a manifest, and compares with the digest a
    run recorded of it.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`~retinalnet.datasets.read_manifest`.
    RuntimeError
        If the file changed while it was read, each of :data:`_READS` times.
    """
    from retinalnet._core.files import file_digest
    from retinalnet.datasets import read_manifest

    for _ in range(_READS):  # a rewrite landing between two of our reads: read again
        if not path.is_file():  # its words for a missing manifest
            read_manifest(path)
        before = file_version(path)
        sha256 = file_digest(path).hex()
        rows = read_manifest(path)
        if file_version(path) == before:
            return rows, sha256
    raise RuntimeError(
        f"manifest {str(path)!r} changed while it was read, {_READS} times (is `retinalnet "
        f"split --out {str(path)!r}` writing it?): the splits would not be one version of it; "
        "run the command again once it is written"
    )


def _manifest_split(
    rows: Sequence[ManifestRow],
    split: str,
    base: Path,
    manifest: Path,
    classes: Sequence[str] | None,
    *,
    on_error: str,
) -> KermanyOCT:
    """One split of a manifest's rows, read once: :meth:`KermanyOCT.from_manifest
    <retinalnet.datasets.KermanyOCT.from_manifest>` with ``root=base``, on rows already
    read, less the check of the rows of all splits, made once by :func:`read_splits`."""
    from retinalnet.datasets import KermanyOCT

    return KermanyOCT._from_rows(rows, split, base, manifest, classes=classes, on_error=on_error)
