"""``--on-error skip`` for predict and evaluate: leave unreadable images out, list them last."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from retinalnet.datasets import KermanyOCT
    from retinalnet.predictor import SkippedImage

__all__ = ["print_skipped", "readable_split"]


def readable_split(
    data: KermanyOCT, decode: Callable[[str], Image.Image], *, progress: bool
) -> tuple[KermanyOCT, list[SkippedImage]]:
    """The split without the images ``decode`` cannot read, and those images.

    Each image is decoded once more before the evaluation, as the model will decode it: an
    evaluation that met an unreadable file half-way could only stop or count another image
    in its place.
    """
    from retinalnet._core.images import UnreadableImageError
    from retinalnet._core.progress import progress_bar
    from retinalnet.predictor import SkippedImage

    skipped: list[SkippedImage] = []
    paths = [path for path, _ in data.samples]
    for path in progress_bar(
        paths, total=len(paths), description="checking images", enabled=progress
    ):
        try:
            decode(path).close()
        except UnreadableImageError as error:
            skipped.append(SkippedImage(path, error.reason or str(error)))
    if not skipped:
        return data, []
    if len(skipped) == len(paths):
        raise ValueError(
            f"none of the {len(paths)} images of {str(data.split_dir)!r} can be read "
            f"(first: {skipped[0].source}: {skipped[0].reason})"
        )
    return data.without(s.source for s in skipped), skipped


def print_skipped(command: str, skipped: Sequence[SkippedImage]) -> None:
    """List the images left out, one per line, on stderr (after the results)."""
    if not skipped:
        return
    plural = "image" if len(skipped) == 1 else "images"
    lines = [f"retinalnet {command}: skipped {len(skipped)} unreadable {plural}:"]
    lines += [f"  {s.source}: {s.reason}" for s in skipped]
    print("\n".join(lines), file=sys.stderr)
