"""Pictures embedded in the page: figures and scans as PNG bytes in ``data:`` URIs."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from retinalnet._core.printable import save_figure
from retinalnet.report._html import esc

__all__ = ["figure_png", "heatmap_pair", "image_png", "img", "shrink", "shrink_heatmap"]

FIGURE_DPI = 80
"""Resolution of the figures in the page: sharp on a screen, about 30-60 KB per figure."""


def figure_png(figure: Any, *, dpi: int = FIGURE_DPI) -> bytes:
    """A matplotlib Figure rendered to PNG bytes in memory (nothing written to disk)."""
    buffer = io.BytesIO()
    save_figure(figure, buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def image_png(image: Image.Image) -> bytes:
    """A PIL image as optimised PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def img(png: bytes, alt: str, *, width: int | None = None) -> str:
    """An ``<img>`` element holding ``png`` as a base64 data URI; ``alt`` is escaped."""
    data = base64.b64encode(png).decode("ascii")
    size = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}"{size}>'


def shrink(image: Image.Image, max_side: int) -> Image.Image:
    """A copy of ``image`` whose longest side is at most ``max_side`` pixels."""
    scale = max_side / max(image.size)
    if scale >= 1:
        return image.copy()
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def shrink_heatmap(heatmap: npt.ArrayLike, size: tuple[int, int]) -> npt.NDArray[np.float32]:
    """A ``(height, width)`` heatmap resized to ``size`` = ``(width, height)``."""
    values = np.asarray(heatmap, dtype=np.float32)
    resized = Image.fromarray(values).resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 1)


def heatmap_pair(scan: Image.Image, heatmap: npt.ArrayLike, *, alpha: float = 0.45) -> Image.Image:
    """The scan beside the scan under its heatmap (jet colours, as
    :func:`retinalnet.plots.plot_gradcam` draws it), at the scan's own size: no axes, no
    margins, so a small picture keeps every pixel for the scan."""
    from matplotlib import colormaps

    gray = np.asarray(scan.convert("L"), dtype=np.float32)[..., None] / 255.0
    heat = np.asarray(heatmap, dtype=np.float32)
    colours = colormaps["jet"](heat)[..., :3].astype(np.float32)
    blended = (1 - alpha) * gray + alpha * colours
    gap = 4
    height, width = heat.shape
    pair = np.ones((height, 2 * width + gap, 3), dtype=np.float32)
    pair[:, :width] = gray
    pair[:, width + gap :] = blended
    return Image.fromarray(np.round(pair * 255).astype(np.uint8))
