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

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.images import MIN_IMAGE_SIDE

if TYPE_CHECKING:
    from retinalnet.transforms import Preprocessing

__all__ = ["check_batch", "describe", "refuse_unprepared", "warn_if_unnormalised"]


def describe(value: object) -> str:
    """``a uint8 tensor (1, 40, 48)``, ``a NumPy array (40, 48) uint8``, or the type's name
    (``an Image``), with its article."""
    if isinstance(value, torch.Tensor):
        text = f"{str(value.dtype).removeprefix('torch.')} tensor {tuple(value.shape)}"
    elif isinstance(value, np.ndarray):
        text = f"NumPy array {value.shape} {value.dtype}"
    else:
        text = type(value).__name__
    return ("an " if text[0].lower() in "aeio" else "a ") + text  # "a uint8"


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
    """Warn when ``value`` holds no negative value while ``preprocessing`` subtracts a
    positive mean: it looks like an image in [0, 1] that was never normalised."""
    if max(preprocessing.mean) <= 0 or value.numel() == 0:
        return
    if float(value.detach().amin()) >= 0:
        warn_caller(
            f"{name} holds no negative value ({describe(value)}, values in "
            f"[{float(value.amin()):.3g}, {float(value.amax()):.3g}]): it looks like an image "
            f"that was not normalised (the model's preprocessing subtracts mean "
            f"{preprocessing.mean}, so a prepared scan has negatives): {fix}",
            UserWarning,
        )


_PREPARED = (
    "prepare images with model.preprocessing.prepare(image) (torch.stack them for a batch), "
    "or predict them with retinalnet.Predictor"
)


def check_batch(inputs: object, *, image_model: bool) -> None:
    """Refuse what is no batch of prepared inputs in one line: not a tensor, not floating
    point, and for a Classifier (images ``(N, 3, H, W)``) a single input or another number
    of channels. A tensor with a side under ``MIN_IMAGE_SIDE`` is no image (logits or
    features shaped by hand) and is left to the network."""
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(
            f"inputs must be a torch.Tensor batch of prepared model inputs, got "
            f"{describe(inputs)}; {_PREPARED}"
        )
    if not inputs.is_floating_point():
        raise ValueError(
            f"inputs are {describe(inputs)}, not prepared model inputs (float, normalised); "
            f"{_PREPARED}"
        )
    if not image_model or inputs.dim() < 3 or min(inputs.shape[-2:]) < MIN_IMAGE_SIDE:
        return
    if inputs.dim() == 3:
        raise ValueError(
            f"inputs are one input {tuple(inputs.shape)}; the model takes a batch (N, 3, H, W): "
            "add the batch dimension with inputs.unsqueeze(0)"
        )
    if inputs.dim() != 4 or inputs.shape[1] != 3:
        raise ValueError(
            f"inputs are {describe(inputs)}; the model takes a batch (N, 3, H, W) of "
            f"prepared inputs: {_PREPARED}"
        )
