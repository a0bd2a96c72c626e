"""The procedural renderer of synthetic OCT B-scans: geometry, layers, lesions, shadows,
speckle and the display mapping (:func:`render_bscan`).

The scans imitate the look of the Spectralis images in the Kermany et al. (2018) OCT2017 data
set; :class:`~retinalnet.datasets.SyntheticOCT` renders its images here.
"""

from __future__ import annotations

import functools
from typing import Any, Final, TypeGuard

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from retinalnet._core.classes import KERMANY_CLASSES
from retinalnet._core.counts import as_integer
from retinalnet._core.deprecation import renamed_argument
from retinalnet.datasets._anatomy import (
    _CHOROID,
    _FLUID,
    _KNOT_S,
    _LUT_RES,
    _SUB_RPE,
    _lookup_tables,
)

__all__ = ["render_bscan"]

_MIN_SIDE: Final = 32
_DEFAULT_SIZE: Final = (496, 512)
# Display: linear reflectivity 0.._DISPLAY_MAX is quantised to _DISPLAY_LEVELS codes.
_DISPLAY_MAX: Final = 1.4
_DISPLAY_LEVELS: Final = 1024

FloatArray = npt.NDArray[np.float64]


def _check_size(size: object, name: str = "shape") -> tuple[int, int]:
    """Return ``size`` as ``(height, width)`` or raise a ValueError that names it."""
    if isinstance(size, (tuple, list)) and len(size) == 2:
        sides = [side for side in size if _is_int(side)]
        if len(sides) == 2 and min(sides) >= _MIN_SIDE:
            return int(sides[0]), int(sides[1])
    raise ValueError(
        f"{name} must be a (height, width) pair of ints, each >= {_MIN_SIDE}, got {size!r}; "
        f"pass e.g. {name}=(496, 512) (the Kermany scan size) or {name}=(128, 128)"
    )


def _is_int(value: object) -> TypeGuard[int | np.integer[Any]]:
    """Whether ``value`` is an int (Python or NumPy), and not a bool (:func:`as_integer`)."""
    return as_integer(value) is not None


def _check_label(label: object) -> str:
    if not isinstance(label, str) or label not in KERMANY_CLASSES:
        raise ValueError(f"label must be one of {list(KERMANY_CLASSES)}, got {label!r}")
    return label


@functools.lru_cache(maxsize=8)
def _pixel_coordinates(height: int, width: int) -> FloatArray:
    """Row index of every pixel, column-major, offset by ``column * (height + 8)``.

    With the same offset on the per-column knots, one ``numpy.interp`` call maps every pixel
    of every column at once.
    """
    stride = height + 8
    columns = np.arange(width, dtype=np.float64)[:, None] * stride
    coords = (columns + np.arange(height, dtype=np.float64)[None, :]).ravel()
    coords.setflags(write=False)
    return coords


def _dome(
    xn: FloatArray, centre: float, half_width: float, height: float, power: float
) -> FloatArray:
    """``height * (1 - u**2) ** power`` for ``|u| < 1``, ``u = (xn - centre) / half_width``."""
    u = (xn - centre) / half_width
    return height * np.clip(1.0 - u * u, 0.0, None) ** power


def _bump(xn: FloatArray, centre: float, half_width: float) -> FloatArray:
    """A Gaussian of height 1 across the columns."""
    u = (xn - centre) / half_width
    return np.exp(-u * u)


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """Normal noise drawn on a coarse ``cells`` grid and bilinearly resized to ``shape``."""
    coarse = rng.standard_normal(cells, dtype=np.float32)
    resized = Image.fromarray(coarse).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.array(resized, dtype=np.float32)


def _render(
    label: str, rng: np.random.Generator, height: int, width: int
) -> tuple[Image.Image, npt.NDArray[np.bool_]]:
    """Render one scan; the public wrapper validates the arguments."""
    xn = (np.arange(width) + 0.5) / width * 2.0 - 1.0  # column position in [-1, 1]

    # --- geometry, one value per column -------------------------------------------------
    centre = rng.uniform(-0.15, 0.15)  # fovea, and the centre of the macular lesions
    top = height * rng.uniform(0.25, 0.36)
    curvature = height * rng.uniform(-0.05, 0.14)
    tilt = height * rng.uniform(-0.07, 0.07)
    wobble = height * rng.uniform(0.0, 0.015)
    wobble_freq, wobble_phase = rng.uniform(1.0, 2.5), rng.uniform(0.0, 2.0 * np.pi)
    surface = (
        top
        + curvature * ((xn - centre) ** 2 - 0.3)
        + tilt * xn
        + wobble * np.sin(np.pi * wobble_freq * xn + wobble_phase)
    )
    thickness = height * rng.uniform(0.20, 0.25) * (1.0 + rng.uniform(-0.06, 0.06) * xn)
    bruch = surface + thickness  # Bruch's membrane: the bottom of the RPE, never lifted
    rpe = thickness * rng.uniform(0.075, 0.095)
    neuro = thickness - rpe
    ilm = surface.copy()
    mid = surface + 0.5 * neuro  # bottom of the inner retina (OPL)
    elevation = np.zeros(width)  # lift of the RPE above Bruch's membrane
    fluid = np.zeros(width)  # subretinal fluid between the retina and the RPE
    spread = 0.3  # half-width of the DME swelling

    pit_probability = {"NORMAL": 1.0, "DRUSEN": 0.85, "DME": 0.3, "CNV": 0.35}[label]
    if rng.uniform() < pit_probability:
        depth = rng.uniform(0.7, 0.95) if label in ("NORMAL", "DRUSEN") else rng.uniform(0.2, 0.6)
        pit = depth * 0.5 * neuro * _bump(xn, centre, rng.uniform(0.12, 0.22))
        ilm += pit
        mid += 0.25 * pit

    if label == "DRUSEN":
        for _ in range(rng.integers(2, 7)):
            druse = _dome(
                xn,
                centre + rng.uniform(-0.6, 0.6),
                rng.uniform(0.07, 0.14),
                height * rng.uniform(0.04, 0.075),
                rng.uniform(0.8, 1.2),
            )
            elevation = np.maximum(elevation, druse)
        ilm -= 0.2 * elevation
        mid -= 0.7 * elevation
    elif label == "DME":
        centre += rng.normal(0.0, 0.05)
        spread = rng.uniform(0.25, 0.5)
        swelling = height * rng.uniform(0.05, 0.11) * _bump(xn, centre, spread)
        ilm -= swelling
        mid -= rng.uniform(0.3, 0.5) * swelling
    elif label == "CNV":
        lesion_centre = centre + rng.uniform(-0.1, 0.1)
        half_width = rng.uniform(0.28, 0.42)
        lift = height * rng.uniform(0.07, 0.11)
        u = xn - lesion_centre
        asymmetric = np.where(u < 0, half_width * rng.uniform(0.7, 1.3), half_width)
        elevation = lift * np.clip(1.0 - (u / asymmetric) ** 2, 0.0, None) ** rng.uniform(1.0, 1.6)
        ripple = 1.0 + 0.12 * np.sin(rng.uniform(8.0, 20.0) * xn + rng.uniform(0, 2 * np.pi))
        elevation *= ripple
        for _ in range(rng.integers(1, 4)):
            elevation += _dome(
                xn,
                lesion_centre + rng.uniform(-0.7, 0.7) * half_width,
                half_width * rng.uniform(0.2, 0.4),
                lift * rng.uniform(0.1, 0.3),
                0.7,
            ) * (elevation > 0)
        fluid = _dome(
            xn,
            lesion_centre + rng.normal(0.0, 0.04),
            half_width * rng.uniform(1.1, 1.7),
            height * rng.uniform(0.03, 0.06),
            1.5,
        )
        # Fibrovascular tissue thickens the lifted RPE band irregularly.
        rpe = rpe * (1.0 + (elevation / lift) * rng.uniform(0.3, 0.8) * ripple)
        ilm -= 0.8 * (elevation + fluid)
        mid -= 0.9 * (elevation + fluid)

    rpe_bottom = bruch - elevation
    rpe_top = rpe_bottom - rpe
    retina_bottom = rpe_top - fluid
    choroid_bottom = bruch + height * rng.uniform(0.08, 0.14)
    knots = np.stack(
        [
            np.full(width, -2.0),
            ilm,
            mid,
            retina_bottom,
            rpe_top,
            rpe_bottom,
            bruch,
            choroid_bottom,
            choroid_bottom + 0.12 * height,
            np.full(width, height + 2.0),
        ]
    )
    knots = np.maximum.accumulate(np.clip(knots, -2.0, height + 2.0), axis=0)

    # --- anatomical coordinate and reflectivity of every pixel ---------------------------
    # Pixels are handled column by column, as a (width, height) array, until the very end:
    # then every per-column quantity broadcasts along the contiguous axis.
    stride = height + 8
    xp = (knots + np.arange(width) * stride).T.ravel()
    lut_position = np.interp(
        _pixel_coordinates(height, width), xp, np.tile(np.array(_KNOT_S) * _LUT_RES, width)
    )
    index = lut_position.astype(np.int32).reshape(width, height)  # region * _LUT_RES + offset
    base_lut, amplitude_lut = _lookup_tables(label, rng)
    image = base_lut[index]
    modulation = amplitude_lut[index]
    modulation *= _smooth_noise(rng, (width, height), (max(2, width // 10), max(2, height // 10)))
    modulation += 1.0
    np.maximum(modulation, 0.05, out=modulation)
    image *= modulation

    # Shadows: retinal vessels shade everything below the nerve fibre layer, and lesions shade
    # the choroid under them.
    vessel_shade = np.ones(width)
    for _ in range(rng.integers(1, 5)):
        vessel_shade -= rng.uniform(0.2, 0.5) * _bump(xn, rng.uniform(-0.95, 0.95), 0.012)
    np.maximum(vessel_shade, 0.3, out=vessel_shade)
    lesion = elevation + fluid
    lesion_shade = 1.0 - 0.45 * lesion / max(float(lesion.max()), 1.0)
    column = np.empty((width, 1), dtype=np.float32)
    column[:, 0] = vessel_shade
    np.multiply(image, column, out=image, where=index > int(1.1 * _LUT_RES))
    column[:, 0] = lesion_shade
    np.multiply(image, column, out=image, where=index >= _CHOROID * _LUT_RES)

    if label == "DRUSEN":
        mask = _region_mask(index, _SUB_RPE, _SUB_RPE, elevation >= 0.5)
    elif label == "CNV":
        mask = _region_mask(index, _FLUID, _SUB_RPE, lesion >= 0.5)
    else:
        mask = np.zeros((width, height), dtype=bool)
    if label == "DME":
        _add_cysts(image, mask, index, rng, centre, spread, ilm, retina_bottom)

    # --- speckle, log-like display mapping and a slight blur ------------------------------
    # Speckle grains are about twice as long across the scan as they are deep.
    speckle = _smooth_noise(rng, (width, height), ((width + 1) // 2, (2 * height) // 3))
    floor = np.abs(speckle)
    floor *= rng.uniform(0.02, 0.04)
    speckle *= rng.uniform(0.45, 0.65)
    speckle += 1.0
    np.maximum(speckle, 0.0, out=speckle)
    image *= speckle
    image += floor
    levels = np.linspace(0.0, _DISPLAY_MAX, _DISPLAY_LEVELS)
    gain, gamma, offset = rng.uniform(0.8, 1.1), rng.uniform(0.75, 1.15), rng.uniform(-0.02, 0.05)
    display = np.clip(255.0 * (offset + gain * levels**gamma), 0.0, 255.0).astype(np.uint8)
    image *= (_DISPLAY_LEVELS - 1) / _DISPLAY_MAX
    np.minimum(image, _DISPLAY_LEVELS - 1, out=image)
    pixels = np.ascontiguousarray(display[image.astype(np.int32)].T)
    radius = rng.uniform(0.7, 1.1) * min(height / 496, width / 512)
    scan = Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(radius))
    return scan, np.ascontiguousarray(mask.T)


def _region_mask(
    index: npt.NDArray[np.int32], first: int, last: int, columns: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Pixels whose region lies in ``first..last``, in the selected columns (width, height)."""
    mask = index >= first * _LUT_RES
    mask &= index < (last + 1) * _LUT_RES
    mask &= columns[:, None]
    return mask


def _add_cysts(
    image: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_],
    index: npt.NDArray[np.int32],
    rng: np.random.Generator,
    centre: float,
    spread: float,
    ilm: FloatArray,
    retina_bottom: FloatArray,
) -> None:
    """Draw dark intraretinal cysts into ``image`` and mark them in ``mask``, in place.

    All three arrays are column-major, shape ``(width, height)``.
    """
    width, height = image.shape
    cols = np.arange(width, dtype=np.float64)[:, None]
    rows = np.arange(height, dtype=np.float64)[None, :]
    darkness = rng.uniform(0.02, 0.05)
    inner, outer = int(1.05 * _LUT_RES), int(1.97 * _LUT_RES)
    for _ in range(rng.integers(3, 9)):
        x = centre + float(np.clip(rng.normal(0.0, 0.6 * spread), -0.9, 0.9))
        cx = float(np.clip((x + 1.0) / 2.0 * width, 0, width - 1))
        local = retina_bottom[int(cx)] - ilm[int(cx)]
        cy = ilm[int(cx)] + rng.uniform(0.35, 0.72) * local
        a = max(1.5, width * rng.uniform(0.025, 0.06))
        b = max(1.5, min(height * rng.uniform(0.02, 0.045), 0.2 * local))
        c0, c1 = max(0, int(cx - a)), min(width, int(cx + a) + 2)
        r0, r1 = max(0, int(cy - b)), min(height, int(cy + b) + 2)
        if r0 >= r1 or c0 >= c1:
            continue
        inside = ((cols[c0:c1] - cx) / a) ** 2 + ((rows[:, r0:r1] - cy) / b) ** 2 <= 1.0
        region = index[c0:c1, r0:r1]
        inside &= (region > inner) & (region < outer)
        image[c0:c1, r0:r1][inside] = darkness
        mask[c0:c1, r0:r1] |= inside


def render_bscan(
    label: str,
    rng: np.random.Generator,
    *,
    shape: tuple[int, int] = _DEFAULT_SIZE,
    size: tuple[int, int] | None = None,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Render one synthetic OCT B-scan of a class and its lesion mask.

    The scan has a dark speckled vitreous, a curved retina (about a fifth of the height) with
    the nerve fibre, nuclear, plexiform, ellipsoid and RPE layers, and a choroid that fades with
    depth. Position, curvature, tilt, layer brightness, contrast and noise vary per scan. The
    class adds its lesion: ``"NORMAL"`` a foveal pit only, ``"DRUSEN"`` 2-6 dome-shaped RPE
    elevations filled with moderately reflective material, ``"DME"`` a thickened retina with
    dark intraretinal cysts, ``"CNV"`` a large irregular RPE elevation with hyper-reflective
    tissue and dark subretinal fluid.

    Parameters
    ----------
    label
        Class name, one of ``KERMANY_CLASSES`` (``"CNV"``, ``"DME"``, ``"DRUSEN"``,
        ``"NORMAL"``).
    rng
        The only source of randomness; the same generator state gives the same scan.
    shape
        ``(height, width)`` in pixels, each at least 32 (``size`` before 0.2, deprecated).
        The default is the usual Kermany scan size.

    Returns
    -------
    image : numpy.ndarray
        Grayscale scan, dtype ``uint8``, shape ``(height, width)``.
    mask : numpy.ndarray
        Lesion mask, dtype ``bool``, shape ``(height, width)``: the drusen material, the
        cysts, or the CNV elevation with its fluid; all ``False`` for ``"NORMAL"``.

    Raises
    ------
    ValueError
        If ``label`` is not a Kermany class name or ``shape`` is not two ints >= 32.
    TypeError
        If ``rng`` is not a ``numpy.random.Generator``.

    Examples
    --------
    >>> import numpy as np
    >>> image, mask = render_bscan("DME", np.random.default_rng(0), shape=(128, 128))
    >>> image.shape, image.dtype, bool(mask.any())
    ((128, 128), dtype('uint8'), True)
    """
    label = _check_label(label)
    shape = renamed_argument("render_bscan", "size", "shape", size, shape, _DEFAULT_SIZE)
    height, width = _check_size(shape)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}; "
            "pass numpy.random.default_rng(seed)"
        )
    scan, mask = _render(label, rng, height, width)
    return np.array(scan, dtype=np.uint8), mask
