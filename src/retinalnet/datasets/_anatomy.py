"""The anatomy of a synthetic B-scan: the regions of the anatomical coordinate, the retinal
layers and the per-image reflectivity tables that
:func:`~retinalnet.datasets.render_bscan` reads.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

# Anatomical coordinate ``s`` of every pixel: each unit interval is one region, sampled by
# ``_LUT_RES`` entries of the per-image reflectivity look-up table.
_LUT_RES: Final = 128
_VITREOUS, _RETINA, _FLUID, _RPE, _SUB_RPE, _CHOROID, _DEEP = range(7)
_N_REGIONS: Final = 7
# Coordinate at each per-column knot (ILM, OPL, retina bottom, RPE top/bottom, Bruch, ...).
_KNOT_S: Final = (0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0 - 1e-6, 7.0 - 1e-6)

# Neurosensory retina from the ILM down, as (end of layer as a fraction of the thickness,
# reflectivity). The inner retina (NFL to OPL) ends at 0.5, the knot the foveal pit compresses.
_RETINA_LAYERS: Final = (
    (0.085, 0.80),  # nerve fibre layer (bright, at the ILM)
    (0.20, 0.46),  # ganglion cell layer
    (0.33, 0.58),  # inner plexiform layer
    (0.43, 0.22),  # inner nuclear layer
    (0.50, 0.52),  # outer plexiform layer
    (0.83, 0.13),  # outer nuclear layer
    (0.855, 0.40),  # external limiting membrane
    (0.885, 0.18),  # myoid zone
    (0.945, 0.88),  # ellipsoid zone
    (1.00, 0.34),  # interdigitation zone
)


def _lookup_tables(
    label: str, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per-image reflectivity and texture-amplitude tables over the anatomical coordinate."""
    t = (np.arange(_LUT_RES) + 0.5) / _LUT_RES
    base = np.empty((_N_REGIONS, _LUT_RES))
    base[_VITREOUS] = rng.uniform(0.025, 0.05)
    ends = np.array([end for end, _ in _RETINA_LAYERS])
    levels = np.array([level for _, level in _RETINA_LAYERS])
    levels = levels * rng.uniform(0.88, 1.12, size=levels.shape)
    retina = levels[np.minimum(np.searchsorted(ends, t), len(ends) - 1)]
    kernel = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0
    base[_RETINA] = np.convolve(np.pad(retina, 2, mode="edge"), kernel, mode="valid")
    base[_FLUID] = rng.uniform(0.02, 0.05)
    base[_RPE] = rng.uniform(0.85, 1.0) * (0.78 + 0.22 * np.sin(np.pi * t))
    if label == "CNV":
        base[_SUB_RPE] = rng.uniform(0.6, 0.75) * (1.0 - 0.3 * t)
    else:
        base[_SUB_RPE] = rng.uniform(0.42, 0.58) * (1.0 - 0.2 * t)
    choroid_level = rng.uniform(0.36, 0.5)
    base[_CHOROID] = choroid_level * (1.0 - 0.5 * t)
    base[_DEEP] = choroid_level * 0.5 * np.exp(-3.0 * t) + 0.02

    amplitude = np.empty((_N_REGIONS, _LUT_RES))
    amplitude[_VITREOUS] = 0.0
    amplitude[_RETINA] = 0.12
    amplitude[_FLUID] = 0.15
    amplitude[_RPE] = 0.12
    amplitude[_SUB_RPE] = 0.45 if label == "CNV" else 0.12
    amplitude[_CHOROID] = 0.55
    amplitude[_DEEP] = 0.45
    return base.astype(np.float32).ravel(), amplitude.astype(np.float32).ravel()
