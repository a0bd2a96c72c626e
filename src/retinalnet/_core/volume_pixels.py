"""How many pixels a volume file (a multi-page TIFF, an animated GIF or PNG, a multi-frame
DICOM file) may claim in all, checked from its header before any frame is decoded.

PIL's decompression-bomb check (``PIL.Image.MAX_IMAGE_PIXELS``) looks at one image; a file
of many frames, each under it, would decode them all at full size (24 pages of 9000 x 9000
deflated zeros: a 3 MB file, 2.7 GB of memory). A volume may hold :data:`VOLUME_FACTOR`
times that limit (a 256-B-scan swept-source volume of 1024 x 1024 is 3 times it).
"""

from __future__ import annotations

from PIL import Image

__all__ = ["VOLUME_FACTOR", "volume_pixels_reason"]

VOLUME_FACTOR = 4
"""A volume may claim this many times ``PIL.Image.MAX_IMAGE_PIXELS`` in all its frames."""


def volume_pixels_reason(frames: int, pixels: int) -> str | None:
    """Why a volume whose ``frames`` claim ``pixels`` in all is refused, in words; ``None``
    when it is within the limit (or the limit is off: ``MAX_IMAGE_PIXELS = None``).

    Examples
    --------
    >>> volume_pixels_reason(49, 49 * 512 * 496) is None
    True
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or pixels <= VOLUME_FACTOR * limit:
        return None
    return (
        f"possible decompression bomb: its header claims {frames} frames of {pixels:,} "
        f"pixels in all, more than the limit for a volume of {VOLUME_FACTOR * limit:,} "
        f"pixels ({VOLUME_FACTOR} x PIL.Image.MAX_IMAGE_PIXELS); if the file is a genuine "
        "volume, raise that limit before reading it"
    )
