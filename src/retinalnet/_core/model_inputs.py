"""The one rule that tells a prepared model input from an image that was never prepared.

A :class:`~retinalnet.models.Classifier` takes float tensors ``(3, size, size)`` made by its
:class:`~retinalnet.transforms.Preprocessing` (resized, centre-cropped, normalised). A
tensor of another size, an integer (uint8) tensor or a NumPy array is an image, not such an
input: run through the network as it is, it trains or explains the model on pixels it never
sees at prediction. The doors that take prepared inputs (the data a Trainer or ``evaluate``
reads, :meth:`TensorPreprocessing.batch
<retinalnet.tensor_preprocessing.TensorPreprocessing.batch>`, :func:`~retinalnet.gradcam.grad_cam`)
check them here, each with its own fix in the message.

A normalised scan always holds negative values (dark vitreous becomes about -2 with
ImageNet's mean and std), so a float input with none, for a preprocessing that subtracts a
positive mean, looks like an image in [0, 1] that was never normalised: it is warned about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from retinalnet._core.articles import with_article
from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.images import MIN_IMAGE_SIDE

if TYPE_CHECKING:
    from retinalnet.transforms import Preprocessing

__all__ = [
    "check_batch",
    "describe",
    "refuse_model_input",
    "refuse_unprepared",
    "warn_if_unnormalised",
]


def describe(value: object) -> str:
    """``a uint8 tensor (1, 40, 48)``, ``a NumPy array (40, 48) uint8``, or the type's name
    (``an Image``), with its article."""
    if isinstance(value, torch.Tensor):
        text = f"{str(value.dtype).removeprefix('torch.')} tensor {tuple(value.shape)}"
    elif isinstance(value, np.ndarray):
        text = f"NumPy array {value.shape} {value.dtype}"
    else:
        text = type(value).__name__
    return with_article(text)


def refuse_unprepared(
    value: object, preprocessing: Preprocessing, *, name: str, fix: str, batched: bool = False
) -> torch.Tensor:
    """``value`` if it is a float tensor ``(3, size, size)`` (``(N, 3, size, size)`` when
    ``batched``), else a one-line error naming it, what a model input is and ``fix``; then
    :func:`warn_if_unnormalised`.

    Raises
    ------
    TypeError
        If ``value`` is not a tensor (a NumPy array, a PIL image...).
    ValueError
        If it is an integer or boolean tensor, or of another shape.
    """
    size = preprocessing.size
    expected = f"({'N, ' if batched else ''}3, {size}, {size})"
    wanted = f"model inputs are float tensors {expected}, normalised by its preprocessing"
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} is {describe(value)}; {wanted}: {fix}")
    if not value.is_floating_point():
        raise ValueError(f"{name} is {describe(value)}, an image; {wanted}: {fix}")
    if tuple(value.shape[1:] if batched else value.shape) != (3, size, size) or (
        batched and value.dim() != 4
    ):
        raise ValueError(f"{name} is {describe(value)}; {wanted}: {fix}")
    warn_if_unnormalised(value, preprocessing, name=name, fix=fix)
    return value


def warn_if_unnormalised(
    value: torch.Tensor, preprocessing: Preprocessing, *, name: str, fix: str
) -> None:
    """Warn when ``value`` lies within [0, 1] while ``preprocessing`` subtracts a positive
    mean: it looks like an image in [0, 1] that was never normalised (a bright scan, once
    normalised, can have no negative value, but then values above 1)."""
    if max(preprocessing.mean) <= 0 or value.numel() == 0:
        return
    if _within_0_1(value):  # an image in [0, 1]
        warn_caller(
            f"{name} holds no negative value ({describe(value)}, values in "
            f"[{float(value.amin()):.3g}, {float(value.amax()):.3g}]): it looks like an image "
            f"that was not normalised (the model's preprocessing subtracts mean "
            f"{preprocessing.mean}, so a prepared scan has negatives): {fix}",
            UserWarning,
        )


def refuse_model_input(image: object, *, name: str, fix: str) -> None:
    """Refuse, at a door that takes images, a float tensor with negative values: a model
    input prepared already (normalised), not an image in [0, 1]; ``fix`` says what the door
    does with one. Anything else is left to the image gate.

    Raises
    ------
    ValueError
        If ``image`` is such a tensor.
    """
    if (
        not isinstance(image, torch.Tensor)
        or not image.is_floating_point()
        or image.dim() != 3  # a batch: the image gate's own message
        or image.numel() == 0
    ):
        return
    low = float(image.detach().amin())
    if low < 0:
        raise ValueError(
            f"{name} is {describe(image)} with values in [{low:.3g}, "
            f"{float(image.detach().amax()):.3g}]: a normalised model input, not an image "
            f"(in [0, 1]); {fix}"
        )


_PREPARED = (
    "prepare images with model.preprocessing.prepare(image) (torch.stack them for a batch), "
    "or predict them with retinalnet.Predictor"
)
"""The engine's fix for a batch that is no prepared model input."""


def check_batch(
    inputs: object,
    preprocessing: Preprocessing | None,
    *,
    fix: str = _PREPARED,
    warn: bool = True,
    refuse_images: bool = False,
) -> torch.Tensor:
    """``inputs`` if they are a batch of prepared model inputs, else a one-line error
    ending in ``fix`` (each door its own); the one rule of every loop's first batch.

    Refused: what is not a tensor, not floating point, and, for a Classifier (its
    ``preprocessing`` given), a single input ``(3, H, W)`` or what is no ``(N, 3, H, W)``
    batch. With ``warn``, a Classifier's batch of another size than its preprocessing's, or
    within [0, 1] (:func:`warn_if_unnormalised`), is warned of; with ``refuse_images`` (the
    batches of a data loop whose samples nothing checked: a user's ``collate_fn``), a
    3-channel batch in [0, 1] at another size is refused, as a data set's samples are
    (:func:`~retinalnet._core.loaders.make_loader`). A network may take
    other sizes, but it is then trained, scored or explained on other inputs than the
    Predictor's. ``warn=False`` where the library prepared the images itself (a bright scan
    can have no negative value once normalised). A tensor of one dimension (features) or
    with a side under ``MIN_IMAGE_SIDE`` (logits shaped by hand, no image) is left to the
    network; ``preprocessing=None`` (a bare network, a head on cached features) checks the
    dtype only.

    Raises
    ------
    TypeError
        If ``inputs`` is not a tensor.
    ValueError
        If it is not floating point, or no ``(N, 3, H, W)`` batch for a Classifier.
    """
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(
            f"inputs must be a torch.Tensor batch of prepared model inputs, got "
            f"{describe(inputs)}; {fix}"
        )
    if not inputs.is_floating_point():
        raise ValueError(
            f"inputs are {describe(inputs)}, not prepared model inputs (float, normalised); {fix}"
        )
    if (
        preprocessing is not None
        and inputs.dim() == 4
        and inputs.shape[-1] in (1, 3, 4)
        and inputs.shape[1] not in (1, 3, 4)
        and min(inputs.shape[1:3]) >= MIN_IMAGE_SIDE
    ):
        raise ValueError(
            f"inputs are {describe(inputs)}, images with their channels last (N, H, W, C), "
            f"not prepared model inputs (N, 3, H, W); {fix}"
        )
    if preprocessing is None or inputs.dim() < 3 or min(inputs.shape[-2:]) < MIN_IMAGE_SIDE:
        return inputs
    if inputs.dim() == 3:
        raise ValueError(
            f"inputs are one input {tuple(inputs.shape)}; the model takes a batch (N, 3, H, W): "
            "add the batch dimension with inputs.unsqueeze(0)"
        )
    if inputs.dim() != 4 or inputs.shape[1] == 1:  # one channel: grey images, never prepared
        raise ValueError(
            f"inputs are {describe(inputs)}; the model takes a batch (N, 3, H, W) of "
            f"prepared inputs: {fix}"
        )
    size = preprocessing.size
    other_size = tuple(inputs.shape[-2:]) != (size, size)
    if refuse_images and other_size and inputs.shape[1] == 3 and _within_0_1(inputs):
        raise ValueError(  # the rule of a data set's samples (make_loader), for its batches
            f"inputs are {describe(inputs)}, images in [0, 1] at another size than the "
            f"model's prepared inputs (N, 3, {size}, {size}); {fix}"
        )
    if not warn:
        return inputs
    if inputs.shape[1] != 3 or other_size:
        what = (
            f"{inputs.shape[1]} channels"
            if inputs.shape[1] != 3
            else f"{inputs.shape[-2]} x {inputs.shape[-1]} pixels"
        )
        warn_caller(
            f"inputs of {what} are not the model's prepared inputs (3 x {size} x {size}, its "
            f"preprocessing's): the model runs on other inputs than the Predictor's; {fix}",
            UserWarning,
        )
    warn_if_unnormalised(inputs, preprocessing, name="the batch", fix=fix)
    return inputs


def _within_0_1(values: torch.Tensor) -> bool:
    """Whether ``values`` lie within [0, 1]: an image never normalised (a normalised scan has
    negative values, or values above 1)."""
    detached = values.detach()
    return float(detached.amin()) >= 0 and float(detached.amax()) <= 1 + 1e-3
