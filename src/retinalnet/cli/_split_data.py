"""The images of a split that a command reads: the folders', or a manifest's.

``retinalnet split`` writes a patient-aware train/val split (and the test rows) into a
manifest; ``train``, ``evaluate`` and ``calibrate`` take it with ``--manifest``, so a
download without a ``val`` folder (the Mendeley layout, ``CellData/OCT``) goes from
training to calibration and evaluation on one split.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retinalnet.datasets import KermanyOCT

__all__ = ["add_manifest_argument", "split_data"]


def add_manifest_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--manifest FILE``: take ``what`` from a manifest instead of the folders."""
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"take {what} from this manifest (from `retinalnet split`) instead of the "
        "folders (default: the folders)",
    )


def split_data(data: Path, split: str, manifest: Path | None) -> KermanyOCT:
    """The images of ``split``: the manifest's rows of it (paths under ``data``), or the
    folder ``data/split``."""
    from retinalnet.datasets import KermanyOCT

    if manifest is not None:
        return KermanyOCT.from_manifest(manifest, split, root=data)
    return KermanyOCT(data, split)
