"""``--on-error skip`` for predict and evaluate: leave unreadable images out, list them last."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from PIL import Image

from retinalnet._core.printable import one_line

if TYPE_CHECKING:
    from retinalnet.datasets import KermanyOCT
    from retinalnet.predictor import SkippedImage

__all__ = ["print_skipped", "readable_split"]


def readable_split(
    data: KermanyOCT,
    decode: Callable[[str], Image.Image],
    *,
    progress: bool,
    num_workers: int = 0,
) -> tuple[KermanyOCT, list[SkippedImage]]:
    """The split without the images ``decode`` cannot read, and those images.

    The library's check (:func:`retinalnet.datasets._readable.readable_split`), which
    ``evaluate()``, ``calibrate()``, the Trainer's validation and the feature cache run on a
    data set with ``on_error="skip"``: each image is decoded once more before the
    evaluation, as the model will decode it (``num_workers`` processes share the decoding).
    """
    from retinalnet.datasets._readable import readable_split as library_readable_split
    from retinalnet.predictor import SkippedImage

    readable, skipped = library_readable_split(
        data, decode, progress=progress, num_workers=num_workers
    )
    return readable, [SkippedImage(path, reason) for path, reason in skipped]


def print_skipped(command: str, skipped: Sequence[SkippedImage]) -> None:
    """List the images left out, one per line, on stderr (after the results)."""
    if not skipped:
        return
    plural = "image" if len(skipped) == 1 else "images"
    lines = [f"retinalnet {command}: skipped {len(skipped)} unreadable {plural}:"]
    lines += [f"  {one_line(s.source)}: {s.reason}" for s in skipped]
    print("\n".join(lines), file=sys.stderr)
