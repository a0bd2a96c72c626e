"""The images of a split that a command reads: the folders', or a manifest's.

``retinalnet split`` writes a patient-aware train/val split (and the test rows) into a
manifest; ``train``, ``evaluate`` and ``calibrate`` take it with ``--manifest``, so a
download without a ``val`` folder (the Mendeley layout, ``CellData/OCT``) goes from
training to calibration and evaluation on one split.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from retinalnet._core.classes import KERMANY_CLASSES, in_kermany_order
from retinalnet.cli._argtypes import path_argument

if TYPE_CHECKING:
    from retinalnet.datasets import KermanyOCT

__all__ = ["add_manifest_argument", "split_data", "study_classes"]

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


def split_data(
    data: Path,
    split: str,
    manifest: Path | None,
    classes: Sequence[str] | None = None,
    *,
    on_error: str = "raise",
) -> KermanyOCT:
    """The images of ``split`` of ``classes`` (default: all four): the manifest's rows of it
    (paths under ``data``), or the folder ``data/split``. ``on_error`` (``--on-error``)
    decides whether the manifest's rows that name no file are refused or left out with a
    warning; the data set itself reads with ``on_error="raise"``, the command leaving out
    unreadable images itself."""
    from retinalnet.datasets import KermanyOCT

    if classes is not None and tuple(classes) != KERMANY_CLASSES:
        logger.info("%s split: the images of %s only", split, ", ".join(classes))
    if manifest is not None:
        rows = KermanyOCT.from_manifest(
            manifest, split, root=data, classes=classes, on_error=on_error
        )
        rows.on_error = "raise"  # unreadable images: left out by the command, and listed
        return rows
    return KermanyOCT(data, split, classes=classes)
