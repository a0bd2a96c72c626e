"""Seeded, procedurally generated OCT-like B-scans for demos, docs and tests.

The scans imitate the look of the Spectralis images in the Kermany et al. (2018) OCT2017 data
set (dark speckled vitreous, a curved layered retina, a bright RPE line and a fading choroid)
and add one class-specific lesion: drusen, diabetic macular oedema cysts or a choroidal
neovascular membrane with subretinal fluid. They are not clinical data; use them to exercise
code paths, never to judge a model.
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeGuard

import numpy as np
import numpy.typing as npt
import torch.utils.data
from PIL import Image, ImageFilter

from retinalnet._core.classes import KERMANY_CLASSES, KERMANY_SPLITS

__all__ = ["SyntheticOCT", "make_synthetic_kermany", "render_bscan"]

_MIN_SIDE: Final = 32
_DEFAULT_SIZE: Final = (496, 512)

# Anatomical coordinate ``s`` of every pixel: each unit interval is one region, sampled by
# ``_LUT_RES`` entries of the per-image reflectivity look-up table.
_LUT_RES: Final = 128
_VITREOUS, _RETINA, _FLUID, _RPE, _SUB_RPE, _CHOROID, _DEEP = range(7)
_N_REGIONS: Final = 7
# Coordinate at each per-column knot (ILM, OPL, retina bottom, RPE top/bottom, Bruch, ...).
_KNOT_S: Final = (0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0 - 1e-6, 7.0 - 1e-6)
# Display: linear reflectivity 0.._DISPLAY_MAX is quantised to _DISPLAY_LEVELS codes.
_DISPLAY_MAX: Final = 1.4
_DISPLAY_LEVELS: Final = 1024

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

# Synthetic patient ids: a stride per seed, then an affine permutation of 1,000,000..9,999,999.
_ID_BASE: Final = 1_000_000
_ID_RANGE: Final = 9_000_000
_ID_SEED_STRIDE: Final = 100_003
_ID_MULTIPLIER: Final = 5_237_137  # coprime with _ID_RANGE, so the map is a permutation
_ID_OFFSET: Final = 3_918_274

FloatArray = npt.NDArray[np.float64]


def _check_size(size: object, name: str = "size") -> tuple[int, int]:
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
    """Whether ``value`` is an int (Python or NumPy), and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_seed(seed: object, name: str = "seed") -> int:
    """Return ``seed`` as an int or raise a TypeError/ValueError that names it."""
    if not _is_int(seed):
        raise TypeError(
            f"{name} must be a non-negative int, got {seed!r} of type {type(seed).__name__}; "
            f"pass e.g. {name}=0"
        )
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed!r}; pass e.g. {name}=0")
    return int(seed)


def _check_count(count: object, where: str) -> int:
    """Return an image count as an int or raise an error naming ``where`` it came from."""
    if not _is_int(count):
        raise TypeError(
            f"{where} must be an int number of images, got {count!r} of type {type(count).__name__}"
        )
    if count < 0:
        raise ValueError(f"{where} must be >= 0 images, got {count!r}")
    return int(count)


def _check_counts(counts: object, name: str) -> dict[str, int]:
    """Turn an int or a ``{class name: count}`` mapping into a count for every class."""
    if isinstance(counts, Mapping):
        unknown = [key for key in counts if key not in KERMANY_CLASSES]
        if unknown:
            raise ValueError(
                f"{name} has unknown class name {unknown[0]!r}; the keys must be among "
                f"{list(KERMANY_CLASSES)} (classes left out get 0 images)"
            )
        return {
            label: _check_count(counts.get(label, 0), f"{name}[{label!r}]")
            for label in KERMANY_CLASSES
        }
    count = _check_count(counts, name)
    return dict.fromkeys(KERMANY_CLASSES, count)


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
    label: str, rng: np.random.Generator, *, size: tuple[int, int] = _DEFAULT_SIZE
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
    size
        ``(height, width)`` in pixels, each at least 32. The default is the usual Kermany scan
        size.

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
        If ``label`` is not a Kermany class name or ``size`` is not two ints >= 32.
    TypeError
        If ``rng`` is not a ``numpy.random.Generator``.

    Examples
    --------
    >>> import numpy as np
    >>> image, mask = render_bscan("DME", np.random.default_rng(0), size=(128, 128))
    >>> image.shape, image.dtype, bool(mask.any())
    ((128, 128), dtype('uint8'), True)
    """
    label = _check_label(label)
    height, width = _check_size(size)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}; "
            "pass numpy.random.default_rng(seed)"
        )
    scan, mask = _render(label, rng, height, width)
    return np.array(scan, dtype=np.uint8), mask


class SyntheticOCT(torch.utils.data.Dataset[tuple[Any, int]]):
    """Procedurally generated OCT B-scans of the four Kermany classes.

    A stand-in for the Kermany et al. (2018) OCT2017 data set that needs no download: every
    image is rendered on demand by :func:`render_bscan` from ``numpy.random.default_rng([seed,
    index])``, so image ``index`` is the same in every process and DataLoader worker and the
    data set holds no pixels in memory. The attributes follow ``torchvision`` ``ImageFolder``.

    Parameters
    ----------
    num_per_class
        Images per class: an int for every class, or a mapping from class name to count
        (classes left out get 0).
    size
        ``(height, width)`` of every image, each at least 32; the default is the Kermany size.
    seed
        Non-negative int that fixes the images and the synthetic patient ids.
    transform
        Called on each PIL image (mode ``"L"``), e.g. a ``torchvision`` transform.
    target_transform
        Called on each class index.

    Attributes
    ----------
    classes : list of str
        ``list(KERMANY_CLASSES)``.
    class_to_idx : dict of str to int
        Class name to index.
    samples : list of (str, int)
        File name each image gets from :meth:`write` (``"CNV-1000003-1.jpeg"``) and its
        target, ordered by class then index.
    targets : list of int
        Class index of each image.
    patient_ids : list of str
        Synthetic 7-digit patient id of each image, one patient per image.
    size : tuple of (int, int)
        ``(height, width)``.
    seed : int
        The seed.

    Raises
    ------
    ValueError
        If ``size`` is not two ints >= 32, ``seed`` or a count is negative, or a mapping key
        is not a class name.
    TypeError
        If ``seed`` or a count is not an int.

    Notes
    -----
    Patient ids of two data sets whose seeds differ by 1 or 2 (as in
    :func:`make_synthetic_kermany`) never collide while each holds fewer than 100,003 images;
    other seeds collide rarely.

    Examples
    --------
    >>> data = SyntheticOCT(num_per_class=2, size=(128, 128), seed=0)
    >>> len(data), data.classes
    (8, ['CNV', 'DME', 'DRUSEN', 'NORMAL'])
    >>> image, target = data[0]
    >>> image.mode, image.size, target
    ('L', (128, 128), 0)
    >>> data.samples[0]
    ('CNV-4918274-1.jpeg', 0)
    """

    def __init__(
        self,
        num_per_class: int | Mapping[str, int] = 25,
        *,
        size: tuple[int, int] = _DEFAULT_SIZE,
        seed: int = 0,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        counts = _check_counts(num_per_class, "num_per_class")
        self.size: tuple[int, int] = _check_size(size)
        self.seed: int = _check_seed(seed)
        self.transform = transform
        self.target_transform = target_transform
        self.classes: list[str] = list(KERMANY_CLASSES)
        self.class_to_idx: dict[str, int] = {name: i for i, name in enumerate(self.classes)}
        self.targets: list[int] = [
            self.class_to_idx[name] for name in self.classes for _ in range(counts[name])
        ]
        first = (self.seed % _ID_RANGE) * _ID_SEED_STRIDE
        self.patient_ids: list[str] = [
            str(_ID_BASE + (_ID_MULTIPLIER * (first + i) + _ID_OFFSET) % _ID_RANGE)
            for i in range(len(self.targets))
        ]
        self.samples: list[tuple[str, int]] = [
            (f"{self.classes[target]}-{patient}-1.jpeg", target)
            for target, patient in zip(self.targets, self.patient_ids, strict=True)
        ]

    def __len__(self) -> int:
        """Number of images."""
        return len(self.targets)

    def _check_index(self, index: int) -> int:
        index = operator.index(index)
        if not 0 <= index < len(self):
            raise IndexError(
                f"index {index} is out of range for a SyntheticOCT of length {len(self)}; "
                f"use 0 <= index < {len(self)}"
            )
        return index

    def _render_index(self, index: int) -> tuple[Image.Image, npt.NDArray[np.bool_]]:
        index = self._check_index(index)
        label = self.classes[self.targets[index]]
        rng = np.random.default_rng([self.seed, index])
        return _render(label, rng, *self.size)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        """Return ``(image, target)`` of image ``index`` after the transforms.

        Parameters
        ----------
        index
            ``0 <= index < len(self)``.

        Returns
        -------
        tuple
            The PIL image (mode ``"L"``) or ``transform(image)``, and the class index or
            ``target_transform(target)``.

        Raises
        ------
        IndexError
            If ``index`` is negative or not below ``len(self)``.
        """
        image: Any = self.image(index)
        target: Any = self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def image(self, index: int) -> Image.Image:
        """Return image ``index`` untransformed, as a PIL image of mode ``"L"``.

        Raises
        ------
        IndexError
            If ``index`` is negative or not below ``len(self)``.
        """
        return self._render_index(index)[0]

    def mask(self, index: int) -> npt.NDArray[np.bool_]:
        """Return the lesion mask of image ``index``: bool, shape ``(height, width)``.

        The mask marks the drusen material, the DME cysts or the CNV elevation with its
        subretinal fluid; it is all ``False`` for ``"NORMAL"`` images.

        Raises
        ------
        IndexError
            If ``index`` is negative or not below ``len(self)``.
        """
        return self._render_index(index)[1]

    def write(
        self, root: str | os.PathLike[str], split: str = "train", *, quality: int = 95
    ) -> Path:
        """Write every image as a JPEG in the Kermany folder layout.

        Files go to ``root/split/CLASS/CLASS-PATIENTID-1.jpeg``; folders are created as
        needed and existing files of the same name are overwritten.

        Parameters
        ----------
        root
            Folder that holds the split folders.
        split
            One of ``KERMANY_SPLITS`` (``"train"``, ``"val"``, ``"test"``).
        quality
            JPEG quality, 1 to 100.

        Returns
        -------
        pathlib.Path
            ``root/split``, ready for an ``ImageFolder``-style reader.

        Raises
        ------
        ValueError
            If ``split`` is not a Kermany split name or ``quality`` is out of range.
        """
        if split not in KERMANY_SPLITS:
            raise ValueError(f"split must be one of {list(KERMANY_SPLITS)}, got {split!r}")
        if not _is_int(quality) or not 1 <= quality <= 100:
            raise ValueError(f"quality must be an int from 1 to 100, got {quality!r}; try 95")
        directory = Path(root) / split
        for name in self.classes:
            (directory / name).mkdir(parents=True, exist_ok=True)
        for index, (file_name, target) in enumerate(self.samples):
            path = directory / self.classes[target] / file_name
            self.image(index).save(path, format="JPEG", quality=int(quality))
        return directory

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_images={len(self)}, size={self.size}, seed={self.seed})"


def make_synthetic_kermany(
    root: str | os.PathLike[str],
    *,
    train: int | Mapping[str, int] = 40,
    val: int | Mapping[str, int] = 10,
    test: int | Mapping[str, int] = 10,
    size: tuple[int, int] = _DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """Write a small synthetic data set in the Kermany OCT2017 folder layout.

    Creates ``root/{train,val,test}/{CNV,DME,DRUSEN,NORMAL}/CLASS-PATIENTID-1.jpeg`` from
    :class:`SyntheticOCT` data sets seeded ``3 * seed``, ``3 * seed + 1`` and ``3 * seed + 2``,
    so no image and no patient id is shared between splits.

    Parameters
    ----------
    root
        Output folder, created if missing.
    train, val, test
        Images per class in each split: an int, or a mapping from class name to count.
    size
        ``(height, width)`` of the images, each at least 32.
    seed
        Non-negative int that fixes the whole data set.

    Returns
    -------
    pathlib.Path
        ``root``.

    Raises
    ------
    ValueError
        If ``size`` is not two ints >= 32, ``seed`` or a count is negative, or a mapping key
        is not a class name. All arguments are checked before anything is written.
    TypeError
        If ``seed`` or a count is not an int.

    Examples
    --------
    >>> root = make_synthetic_kermany("oct-demo", train=8, val=2, test=2)  # doctest: +SKIP
    >>> sorted(path.name for path in root.iterdir())  # doctest: +SKIP
    ['test', 'train', 'val']
    """
    checked_size = _check_size(size)
    checked_seed = _check_seed(seed)
    requested = {"train": train, "val": val, "test": test}
    datasets = {
        split: SyntheticOCT(
            _check_counts(requested[split], split),
            size=checked_size,
            seed=3 * checked_seed + offset,
        )
        for offset, split in enumerate(KERMANY_SPLITS)
    }
    for split, dataset in datasets.items():
        dataset.write(root, split)
    return Path(root)
