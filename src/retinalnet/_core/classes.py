"""The four Kermany OCT classes, in the fixed order every retinalnet model uses."""

from __future__ import annotations

from typing import Final

KERMANY_CLASSES: Final[tuple[str, ...]] = ("CNV", "DME", "DRUSEN", "NORMAL")
"""Class names in output order: CNV=0, DME=1, DRUSEN=2, NORMAL=3."""

KERMANY_SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")
"""Split folder names of the Kermany OCT2017 download."""

IMAGE_EXTENSIONS: Final[frozenset[str]] = frozenset({".jpeg", ".jpg", ".png"})
"""File suffixes (compared lower-case) that are read as images."""
