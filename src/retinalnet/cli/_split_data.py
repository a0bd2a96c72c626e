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


def study_classes(model_classes: Sequence[str]) -> tuple[str, ...] | None:
    """The Kermany classes a model was trained for, when they are some of the four in the
    Kermany order (a CNV-versus-NORMAL model reads only those folders); ``None`` otherwise,
    so that the data's four classes meet the model's and a mismatch is refused by name."""
    names = tuple(model_classes)
    return names if len(names) >= 2 and names == in_kermany_order(names) else None


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
