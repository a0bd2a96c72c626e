"""The pointing game: do heatmaps peak inside the lesion more often than chance?"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["PointingGame", "pointing_game"]


@dataclass(frozen=True)
class PointingGame:
    """How often heatmaps peak inside the lesion, against chance.

    Attributes
    ----------
    hits : int
        Images whose heatmap maximum lies inside the (dilated) lesion mask.
    total : int
        Images scored (those with a non-empty mask).
    chance : float
        Mean fraction of the image the dilated mask covers: the hit rate of a random point.

    Examples
    --------
    >>> from retinalnet.gradcam import PointingGame
    >>> PointingGame(hits=9, total=30, chance=0.058).score
    0.3
    """

    hits: int
    total: int
    chance: float

    @property
    def score(self) -> float:
        """Hit rate, ``hits / total``."""
        return self.hits / self.total if self.total else float("nan")


def _dilate(mask: npt.NDArray[np.bool_], radius: int) -> npt.NDArray[np.bool_]:
    if radius <= 0:
        return mask
    height, width = mask.shape
    padded = np.pad(mask, radius)
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy : dy + height, dx : dx + width]
    return out


def pointing_game(
    heatmaps: Sequence[npt.ArrayLike], masks: Sequence[npt.ArrayLike], *, tolerance: int = 0
) -> PointingGame:
    """Score heatmaps against known lesion masks (the pointing game of Zhang et al., 2016).

    A hit is a heatmap whose maximum (first on ties) falls inside the lesion mask, dilated
    by ``tolerance`` pixels. Images with an empty mask (NORMAL) are skipped.

    Parameters
    ----------
    heatmaps, masks
        Same-shaped 2-d arrays, one pair per image.
    tolerance
        Dilation radius in pixels (a square neighbourhood), an int >= 0.

    Raises
    ------
    ValueError
        If ``tolerance`` is not an int >= 0, the counts differ, or a heatmap's shape differs
        from its mask's.

    Examples
    --------
    >>> import numpy as np
    >>> from retinalnet.gradcam import pointing_game
    >>> mask = np.zeros((4, 4), bool); mask[0, 0] = True
    >>> heatmap = np.zeros((4, 4)); heatmap[0, 0] = 1
    >>> result = pointing_game([heatmap], [mask])
    >>> result.score, result.chance
    (1.0, 0.0625)
    """
    if isinstance(tolerance, (bool, np.bool_)) or not isinstance(tolerance, numbers.Integral):
        raise ValueError(f"tolerance must be an int >= 0 (pixels), got {tolerance!r}; e.g. 0")
    if tolerance < 0:
        raise ValueError(
            f"tolerance must be an int >= 0 (pixels), got {tolerance!r}; 0 counts a peak "
            "inside the mask only"
        )
    if len(heatmaps) != len(masks):
        raise ValueError(f"{len(heatmaps)} heatmaps but {len(masks)} masks; pass one of each")
    hits = total = 0
    coverage = 0.0
    for heatmap, mask in zip(heatmaps, masks, strict=True):
        heat = np.asarray(heatmap, dtype=np.float64)
        region = np.asarray(mask, dtype=bool)
        if heat.shape != region.shape:
            raise ValueError(
                f"heatmap shape {heat.shape} differs from mask shape {region.shape}; map the "
                "heatmap to the image first (heatmap_to_image)"
            )
        if not region.any():
            continue
        region = _dilate(region, int(tolerance))
        total += 1
        coverage += float(region.mean())
        peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
        hits += bool(region[peak])
    return PointingGame(hits=hits, total=total, chance=coverage / total if total else float("nan"))
