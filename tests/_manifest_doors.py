"""The doors that read a split of a manifest, and the scans the manifest tests list."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from retinalnet.datasets import KermanyOCT

Door = Callable[[Path, Path], KermanyOCT]


def manifest_doors() -> dict[str, Door]:
    """Every door that reads split ``train`` of a manifest: Python's, and the CLI's (train,
    evaluate and calibrate take ``--manifest`` through ``split_data``)."""
    from retinalnet.cli._split_data import split_data

    return {
        "from_manifest": lambda manifest, root: KermanyOCT.from_manifest(
            manifest, "train", root=root
        ),
        "cli --manifest": lambda manifest, root: split_data(root, "train", manifest),
    }


def small_scan(path: Path) -> Path:
    """An 8 x 8 grey JPEG at ``path`` (its folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8)).save(path, format="JPEG")
    return path
