"""Preprocessing presets: the tutorial's pipelines, one definition for train, eval and predict.

Every retinalnet model carries a :class:`Preprocessing`. Training, evaluation and prediction
all build their transforms from it, so an image is never prepared one way for training and
another way at inference (the tutorial's ``process_image`` squashed scans to 256x256 and
divided by 256; here there is nothing to get wrong).

Why this module is long: :class:`Preprocessing` is one object on purpose (every pipeline is
built from it, checkpoints carry it), and its docstring documents each setting; the named
augmentation presets and their two OCT-specific steps (gamma, speckle) belong beside it.
"""

from __future__ import annotations

import math
import numbers
import os
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypeGuard, overload

import torch
from PIL import Image
from torchvision import transforms as tvt

from retinalnet._core.augmentation_presets import PRESETS
from retinalnet._core.bool_options import check_bool
from retinalnet._core.deprecation import module_getattr
from retinalnet._core.images import (
    ImageInput,
    coerce_image,
    load_image,
    to_model_mode,
    warn_of_full_scale_images,
)

__all__ = ["AUGMENTATION_PRESETS", "IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Channel means the ImageNet backbones were trained with."""
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Channel standard deviations the ImageNet backbones were trained with."""


class _GrayOrRGB:
    """Keep an ``"L"`` or ``"RGB"`` image as it is (no copy) and convert any other mode by the
    rules of :func:`~retinalnet._core.images.to_model_mode` (a 16-bit scan is rescaled by its
    bit depth, not clipped to white).

    The steps that follow (resize, crop, rotation, flips) work on each channel alike, so a
    gray scan resized in one channel and repeated into three afterwards
    (:class:`_ThreeChannels`) gives exactly the numbers of converting it to RGB first, for a
    third of the work.
    """

    def __call__(self, image: ImageInput) -> Image.Image:
        if isinstance(image, Image.Image):
            return to_model_mode(image)
        if isinstance(image, (str, os.PathLike)):
            raise TypeError(
                f"the preprocessing pipeline takes an image, not the path {os.fspath(image)!r}; "
                "read the file with Preprocessing.load(path) first, or call "
                "Preprocessing.prepare(path)"
            )
        # a tensor (or what else the image gate takes) becomes an image by its rules, as in
        # Preprocessing.prepare; anything else is refused there, in one line
        return coerce_image(image)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _pipeline(steps: list[Any], preprocessing: Preprocessing) -> tvt.Compose:
    """``Compose(steps)`` that knows the :class:`Preprocessing` it was made from (its
    ``preprocessing`` attribute), so the data loading can check a data set's tensors against
    the inputs it makes (see :func:`retinalnet._core.loaders.make_loader`)."""
    pipeline = tvt.Compose(steps)
    pipeline.preprocessing = preprocessing
    return pipeline


class _ThreeChannels:
    """Repeat a one-channel image tensor into the three channels a backbone takes."""

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.expand(3, -1, -1) if tensor.shape[0] == 1 else tensor

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _RandomGamma:
    """Raise a ``[0, 1]`` image tensor to a random power in ``[1 / (1 + g), 1 + g]``
    (log-uniform): darker or brighter mid-tones, as OCT devices' display curves differ."""

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        bound = math.log1p(self.gamma)
        power = math.exp((float(torch.rand(())) * 2 - 1) * bound)
        return tensor.clamp(0, 1).pow(power)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gamma={self.gamma})"


class _Speckle:
    """Multiplicative noise, ``x * (1 + sigma * N(0, 1))`` clipped to ``[0, 1]``: OCT's
    speckle is multiplicative, so dark (vitreous) areas stay dark."""

    def __init__(self, sigma: float) -> None:
        self.sigma = sigma

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(tensor.shape[-2:], dtype=tensor.dtype)  # the same in every channel
        return (tensor * (1 + self.sigma * noise)).clamp(0, 1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma})"


AUGMENTATION_PRESETS: Mapping[str, Mapping[str, Any]] = PRESETS
"""Named training augmentations (:meth:`Preprocessing.with_augmentation`): ``"none"`` (the
evaluation pipeline), ``"light"``, ``"tutorial"`` (the defaults: the tutorial's
rotation, crop and flip), ``"oct"`` (flips, rotations of 8 degrees, scale jitter 0.6-1,
brightness/contrast 0.2; the fine-tuning recipe's default), ``"oct-shift-gamma"``
(``"oct"`` with shifts of 5% and gamma 0.2) and ``"oct-strong"`` (``"oct-shift-gamma"`` with
speckle-like multiplicative noise 0.1). docs/accuracy.rst gives what each measured on real
scans: ``"oct"`` had the lowest validation loss; ``"oct-shift-gamma"`` scored higher on
scans from other sources than the training images, and ``"oct-strong"`` lower than it on
every measure.

.. versionadded:: 0.2
"""


def _check_size(size: object, name: str = "size", most: int = 2048) -> int:
    """``size`` as an int if it is an integer from 32 to ``most``; a ValueError naming
    ``name`` else. 2048 pixels is more than any B-scan's side (Kermany's: 384 to 1536) and
    than any ImageNet model's input (600 for EfficientNet-B7); ``size=100000`` ran into
    PIL's decompression-bomb error deep in the centre crop."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise ValueError(f"{name} must be an int from 32 to {most} (pixels), got {size!r}")
    if not 32 <= int(size) <= most:
        raise ValueError(f"{name} must be an int from 32 to {most} (pixels), got {size!r}")
    return int(size)


def _is_number(value: object) -> TypeGuard[numbers.Real]:
    """A real number that is finite (an int, a float, a NumPy number; never a bool)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _check_number(value: object, name: str, allowed: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float if it is a finite number for which ``ok`` holds; a ValueError
    naming ``name``, what is ``allowed`` and ``value`` else."""
    if not _is_number(value) or not ok(float(value)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return float(value)


def _check_numbers(
    value: object, name: str, count: int, allowed: str, ok: Callable[[tuple[float, ...]], bool]
) -> tuple[float, ...]:
    """``value`` as a tuple of ``count`` floats if it is a sequence of finite numbers for
    which ``ok`` holds; a ValueError naming ``name``, what is ``allowed`` and ``value`` else."""
    items: list[object] = []
    if not isinstance(value, (str, bytes, Mapping)) and isinstance(value, Iterable):
        items = list(value)
    values = tuple(float(item) for item in items if _is_number(item))
    if len(items) != count or len(values) != count or not ok(values):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return values


@dataclass(frozen=True)
class Preprocessing:
    """How images are prepared for a model: resize, crop, normalise, and train augmentation.

    The defaults are the tutorial's pipelines at 224 px.

    Parameters
    ----------
    size
        Side of the square the model sees (the centre crop). Default 224.
    resize
        Shorter side before the centre crop at evaluation, and the random-resized-crop size
        in training. Default ``round(size * 256 / 224)``, i.e. 256 for 224.
    mean, std
        Per-channel normalisation (ImageNet's by default).
    rotation
        Maximum random rotation in degrees during training (15).
    scale
        Area range of the random resized crop during training ((0.8, 1.0)).
    hflip
        Random horizontal flips during training (a left eye mirrors a right eye).
    jitter
        Random brightness and contrast change during training, as a fraction (0 = off, the
        default). The tutorial's ``ColorJitter()`` had all factors at 0 and so did nothing;
        ``jitter=0.2`` makes it real.
    translate
        Random shift during training, as a fraction of the side (0 = off, the default).

        .. versionadded:: 0.2
    gamma
        Random gamma change during training: the image is raised to a power in
        ``[1 / (1 + gamma), 1 + gamma]`` (0 = off, the default).

        .. versionadded:: 0.2
    speckle
        Standard deviation of multiplicative Gaussian noise added during training, speckle
        as OCT shows it (0 = off, the default).

        .. versionadded:: 0.2
    reduced_decode
        Decode a large JPEG at 1/2, 1/4 or 1/8 scale (libjpeg's draft mode) when its shorter
        side stays at least about ``resize`` (see :meth:`load`): several times faster to
        read. Off by default: on the 80 real sample scans at 256 px it stays within 1 to 2
        grey levels of a full decode, but at 1/4 scale it lost the fine texture of the
        synthetic demo scans (best validation accuracy 100% -> 71%, ``retinalnet demo``).
        Turn it on for large data sets after checking it on yours. It is part of the
        preprocessing, so training, evaluation, prediction and the feature cache always
        decode a file the same way, and checkpoints carry it.

        .. versionadded:: 0.2

    Raises
    ------
    ValueError
        If a setting is of the wrong type or out of range; the message names the setting,
        what it must be and the value given (``std must be 3 finite numbers > 0 (one per
        channel), got (inf, inf, inf)``). Numbers must be finite (never NaN or infinite),
        ``hflip`` and ``reduced_decode`` must be ``True`` or ``False`` (not ``1`` or
        ``"false"``), and ``mean``, ``std`` and ``scale`` must have 3, 3 and 2 values.

        .. versionchanged:: 0.2
           Every setting is checked, also when read back from a checkpoint or an export
           (:meth:`from_dict`).

    Examples
    --------
    >>> from retinalnet.transforms import Preprocessing
    >>> prep = Preprocessing()
    >>> prep.resize, prep.size
    (256, 224)
    >>> tensor = prep.eval_transform()(image)  # doctest: +SKIP
    """

    size: int = 224
    resize: int = field(default=0)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    rotation: float = 15.0
    scale: tuple[float, float] = (0.8, 1.0)
    hflip: bool = True
    jitter: float = 0.0
    reduced_decode: bool = False
    translate: float = 0.0
    gamma: float = 0.0
    speckle: float = 0.0

    def __post_init__(self) -> None:
        # Every setting is checked for its type and range, whether it was given in code or
        # read back from a checkpoint or an export: a NaN mean, an infinite std or the
        # string "false" would otherwise give answers computed from the wrong numbers.
        checked: dict[str, Any] = {"size": _check_size(self.size)}
        resize = self.resize
        if isinstance(resize, numbers.Integral) and not isinstance(resize, bool) and resize == 0:
            resize = round(checked["size"] * 256 / 224)  # the default: the tutorial's ratio
        checked["resize"] = _check_size(resize, "resize", most=4096)
        if checked["resize"] < checked["size"]:
            raise ValueError(
                f"resize ({checked['resize']}) must be >= size ({checked['size']}): the "
                "centre crop is taken from the resized image"
            )
        checked["mean"] = _check_numbers(
            self.mean, "mean", 3, "3 finite numbers (one per channel)", lambda _: True
        )
        checked["std"] = _check_numbers(
            self.std,
            "std",
            3,
            "3 finite numbers > 0 (one per channel)",
            lambda values: min(values) > 0,
        )
        checked["rotation"] = _check_number(
            self.rotation, "rotation", "a number in [0, 180] (degrees)", lambda v: 0 <= v <= 180
        )
        checked["scale"] = _check_numbers(
            self.scale,
            "scale",
            2,
            "2 numbers (low, high) with 0 < low <= high <= 1",
            lambda values: 0 < values[0] <= values[1] <= 1,
        )
        checked["hflip"] = check_bool(self.hflip, "hflip")
        checked["jitter"] = _check_number(
            self.jitter, "jitter", "a number in [0, 1)", lambda v: 0 <= v < 1
        )
        checked["reduced_decode"] = check_bool(self.reduced_decode, "reduced_decode")
        checked["translate"] = _check_number(
            self.translate,
            "translate",
            "a number in [0, 0.5) (of the side)",
            lambda v: 0 <= v < 0.5,
        )
        checked["gamma"] = _check_number(
            self.gamma, "gamma", "a number in [0, 1)", lambda v: 0 <= v < 1
        )
        checked["speckle"] = _check_number(
            self.speckle, "speckle", "a number in [0, 1)", lambda v: 0 <= v < 1
        )
        # Plain ints, floats and tuples: sequences read back from JSON or a checkpoint
        # become tuples, NumPy numbers Python ones.
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def augments(self) -> bool:
        """Whether :meth:`train_transform` changes images at random (``False`` for the
        ``"none"`` preset, whose training pipeline is :meth:`eval_transform`).

        .. versionadded:: 0.2
        """
        settings = (self.rotation, self.jitter, self.translate, self.gamma, self.speckle)
        return any(settings) or self.hflip or self.scale != (1.0, 1.0)

    @property
    def decode_size(self) -> int | None:
        """The shorter side :meth:`load` decodes large JPEG files towards: :attr:`resize`
        with ``reduced_decode``, ``None`` (full size) without.

        .. versionadded:: 0.2
        """
        return self.resize if self.reduced_decode else None

    def with_augmentation(self, preset: str) -> Preprocessing:
        """A copy whose training augmentation is the named preset; size, normalisation and
        decoding stay as they are, so evaluation and prediction are unchanged.

        Parameters
        ----------
        preset
            A key of :data:`AUGMENTATION_PRESETS`: ``"none"``, ``"light"``, ``"tutorial"``,
            ``"oct"``, ``"oct-shift-gamma"`` or ``"oct-strong"``.

        Raises
        ------
        ValueError
            If ``preset`` is not a known name.

        Examples
        --------
        >>> prep = Preprocessing(size=64).with_augmentation("oct")
        >>> prep.scale, prep.rotation
        ((0.6, 1.0), 8.0)
        >>> Preprocessing(size=64).with_augmentation("oct-strong").speckle
        0.1

        .. versionadded:: 0.2
        """
        if preset not in AUGMENTATION_PRESETS:
            raise ValueError(
                f"unknown augmentation preset {preset!r}; choose one of "
                f"{', '.join(map(repr, AUGMENTATION_PRESETS))}"
            )
        return replace(self, **AUGMENTATION_PRESETS[preset])

    def eval_transform(self) -> tvt.Compose:
        """Deterministic pipeline for validation, test and prediction.

        ``Resize(resize) -> CenterCrop(size) -> ToTensor -> Normalize``, on three channels:
        the same numbers as converting the image to RGB first (as the tutorial's
        ``ImageFolder`` did), but a grayscale scan is resized in one channel and repeated
        into three only as a tensor (1.6 -> 0.7 ms per real Kermany scan on one core).

        It takes a PIL image or an image tensor (``(H, W)``, ``(1, H, W)`` or ``(3, H, W)``,
        uint8 or float in [0, 1]), read by the rules of :meth:`prepare`.

        .. versionchanged:: 0.2
           Image tensors are taken too (they raised an ``AttributeError`` before).
        """
        return _pipeline(
            [
                _GrayOrRGB(),
                tvt.Resize(self.resize),
                tvt.CenterCrop(self.size),
                tvt.ToTensor(),
                _ThreeChannels(),
                tvt.Normalize(self.mean, self.std),
            ],
            self,
        )

    def train_transform(self) -> tvt.Compose:
        """Augmenting pipeline for training.

        ``RandomResizedCrop(resize, scale) -> RandomRotation(rotation) (RandomAffine with
        translate) -> [ColorJitter] -> RandomHorizontalFlip -> CenterCrop(size) -> ToTensor
        -> [gamma] -> [speckle] -> Normalize``, on three channels, a grayscale scan in one
        until it is a tensor (as in :meth:`eval_transform`). Without any augmentation (the
        ``"none"`` preset) it is :meth:`eval_transform`. Random draws come from torch's
        generator, so ``torch.manual_seed`` makes them repeat. It takes the images
        :meth:`eval_transform` takes.
        """
        if not self.augments:
            return self.eval_transform()
        steps: list[Any] = [
            _GrayOrRGB(),
            tvt.RandomResizedCrop(self.resize, scale=self.scale),
        ]
        if self.translate > 0:
            steps.append(tvt.RandomAffine(self.rotation, translate=(self.translate,) * 2))
        else:
            steps.append(tvt.RandomRotation(self.rotation))
        if self.jitter > 0:
            steps.append(tvt.ColorJitter(brightness=self.jitter, contrast=self.jitter))
        if self.hflip:
            steps.append(tvt.RandomHorizontalFlip())
        steps += [tvt.CenterCrop(self.size), tvt.ToTensor()]
        if self.gamma > 0:
            steps.append(_RandomGamma(self.gamma))
        if self.speckle > 0:
            steps.append(_Speckle(self.speckle))
        steps += [_ThreeChannels(), tvt.Normalize(self.mean, self.std)]
        return _pipeline(steps, self)

    def load(self, path: str | os.PathLike[str]) -> Image.Image:
        """Decode an image file the way this preprocessing expects it.

        With ``reduced_decode``, a JPEG at least about twice as large as ``resize`` is
        decoded at reduced scale (see :func:`~retinalnet.datasets.load_image`); otherwise,
        and for PNG files, at full size.

        Raises
        ------
        retinalnet.datasets.UnreadableImageError
            If the file cannot be read; the message names it.
        """
        return load_image(path, target_size=self.decode_size)

    def prepare(self, image: ImageInput) -> torch.Tensor:
        """The model input ``(3, size, size)`` of one image: a path, PIL image or tensor.

        The path from file to tensor that prediction, evaluation, Grad-CAM and the command
        line share: :meth:`load` (for a path), then :meth:`eval_transform`.

        Examples
        --------
        >>> import torch
        >>> Preprocessing(size=64).prepare(torch.zeros(80, 96, dtype=torch.uint8)).shape
        torch.Size([3, 64, 64])
        """
        warn_of_full_scale_images([image], target_size=self.decode_size)
        prepared: torch.Tensor = self.eval_transform()(coerce_image(image, decode=self.load))
        return prepared

    def crop_box(self, image_size: tuple[int, int]) -> tuple[float, float, float, float]:
        """Where the model's input lies in an image: ``(left, top, right, bottom)`` pixels.

        The evaluation pipeline resizes the shorter side to ``resize`` and takes the centre
        ``size`` square; this is that square, in the coordinates of the image as given
        (``image_size`` is its ``(width, height)``, as PIL gives it). Grad-CAM uses it to
        place a heatmap back on the scan.

        Examples
        --------
        >>> Preprocessing(size=224).crop_box((512, 512))
        (32.0, 32.0, 480.0, 480.0)
        """
        width, height = image_size
        # torchvision Resize(int): the shorter side becomes `resize`, the longer is truncated
        if width <= height:
            resized = (self.resize, int(self.resize * height / width))
        else:
            resized = (int(self.resize * width / height), self.resize)
        # torchvision CenterCrop offsets
        left = round((resized[0] - self.size) / 2.0)
        top = round((resized[1] - self.size) / 2.0)
        scale_x, scale_y = width / resized[0], height / resized[1]
        return (
            left * scale_x,
            top * scale_y,
            (left + self.size) * scale_x,
            (top + self.size) * scale_y,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists and numbers) for checkpoints and JSON.

        The 0.2 augmentation settings (``translate``, ``gamma``, ``speckle``) are left out
        when off, so such a file reads as before in a version without them.
        """
        data = asdict(self)
        for key in ("mean", "std", "scale"):
            data[key] = list(data[key])
        for key in ("translate", "gamma", "speckle"):
            if not data[key]:
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Rebuild from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If ``data`` is not a mapping, has keys this version does not know, or a
            setting that is not valid (as the constructor checks it: the message names the
            setting and its value).
        """
        if not isinstance(data, Mapping):
            raise ValueError(
                "preprocessing settings must be a mapping of setting names to values (as "
                f"Preprocessing.to_dict() gives), got {type(data).__name__} {data!r}"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known, key=str)
        if unknown:
            raise ValueError(
                f"unknown preprocessing setting(s) {unknown}; known: {sorted(known)} "
                "(was this written by a newer retinalnet? upgrade with pip install -U retinalnet)"
            )
        return cls(**dict(data))


@overload
def check_preprocessing(
    value: object, name: str = ..., *, optional: Literal[True] = ...
) -> Preprocessing | None: ...
@overload
def check_preprocessing(
    value: object, name: str = ..., *, optional: Literal[False]
) -> Preprocessing: ...
def check_preprocessing(
    value: object, name: str = "preprocessing", *, optional: bool = True
) -> Preprocessing | None:
    """``value`` if it is a :class:`Preprocessing` (or ``None``, when ``optional``); a
    TypeError naming ``name``, the value and the fix if not. Every door that reads a
    preprocessing's settings runs it first (``small_cnn(preprocessing=64)`` was Python's
    "'int' object has no attribute 'size'").

    Raises
    ------
    TypeError
        Naming ``name``, the value given and how to build one.
    """
    if isinstance(value, Preprocessing) or (value is None and optional):
        return value
    if isinstance(value, Mapping):  # saved settings: Preprocessing.to_dict()'s
        fix = f"{name}=Preprocessing.from_dict(settings)"
    elif value is None:
        fix = f"the model's ({name}=model.preprocessing) or Preprocessing(size=...)"
    else:
        fix = f"{name}=Preprocessing(size={value if type(value) is int else '...'})"
    expected = "a retinalnet.transforms.Preprocessing" + (" or None" if optional else "")
    raise TypeError(
        f"{name} must be {expected}, got {type(value).__name__} {reprlib.repr(value)}; pass {fix}"
    )


def _train_transforms(size: int = 224, *, jitter: float = 0.0) -> tvt.Compose:
    return Preprocessing(size=size, jitter=jitter).train_transform()


def _eval_transforms(size: int = 224) -> tvt.Compose:
    return Preprocessing(size=size).eval_transform()


def _as_rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB (a module-level function: a lambda cannot go to a "spawn" worker)."""
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_rgb() -> tvt.Lambda:
    return tvt.Lambda(_as_rgb)


__getattr__ = module_getattr(
    __name__,
    {
        "train_transforms": (
            __name__,
            "_train_transforms",
            "use Preprocessing(size=...).train_transform()",
        ),
        "eval_transforms": (
            __name__,
            "_eval_transforms",
            "use Preprocessing(size=...).eval_transform()",
        ),
        "ToRGB": (
            __name__,
            "_to_rgb",
            "use Preprocessing().eval_transform(), which converts any mode itself",
        ),
    },
)
