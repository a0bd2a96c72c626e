"""The checks of Grad-CAM's arguments: each wrong input said in one line, before any work."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

from retinalnet.models import Classifier

__all__ = ["check_heatmap", "check_image_size", "check_inputs", "forward_scores"]


def check_inputs(model: nn.Module, inputs: object) -> tuple[torch.Tensor, bool]:
    """The inputs as an ``(N, C, H, W)`` batch and whether one image was given, or a
    one-line error naming what is wrong with them."""
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(
            f"inputs must be a torch.Tensor of prepared model inputs, got "
            f"{type(inputs).__name__}; for an image use grad_cam_image, for an array pass "
            "torch.as_tensor(array, dtype=torch.float32)"
        )
    single = inputs.dim() == 3
    batch = inputs.unsqueeze(0) if single else inputs
    channels = 3 if isinstance(model, Classifier) else None  # a bare network: any channels
    if batch.dim() != 4 or (channels is not None and batch.shape[1] != channels):
        raise ValueError(
            f"inputs must be (N, 3, H, W) or (3, H, W) model inputs, got {tuple(inputs.shape)}"
        )
    if not inputs.is_floating_point():
        raise ValueError(
            f"inputs must be floating-point model inputs, got dtype {inputs.dtype}; prepare "
            "images with model.preprocessing.prepare, or call grad_cam_image"
        )
    spec = model.spec if isinstance(model, Classifier) else None
    smallest = 1 if spec is None else spec.min_size
    height, width = batch.shape[-2:]
    name = "the model" if spec is None else spec.name
    if min(height, width) < smallest:
        raise ValueError(
            f"inputs of {height} x {width} pixels are too small: {name} needs each side at "
            f"least {smallest}; prepare images with the model's preprocessing (grad_cam_image)"
        )
    fixed = None if spec is None else spec.fixed_size
    if fixed is not None and (height, width) != (fixed, fixed):
        raise ValueError(
            f"{name} takes {fixed} x {fixed} inputs only, got "
            f"{height} x {width}; prepare images with the model's preprocessing (grad_cam_image)"
        )
    if not bool(torch.isfinite(batch).all()):
        raise ValueError(
            "inputs hold NaN or infinite values, which give no heatmap; check the images "
            "and their preprocessing"
        )
    return batch, single


# how torch says that an input shrank to nothing in a pooling or convolution
_TOO_SMALL = ("Output size is too small", "Kernel size can't be greater than actual input")


def forward_scores(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The model's scores, an input too small for its pooling said in one line."""
    try:
        scores: torch.Tensor = model(batch)
    except RuntimeError as error:
        if not any(sign in str(error) for sign in _TOO_SMALL):
            raise
        height, width = batch.shape[-2:]
        raise ValueError(
            f"inputs of {height} x {width} pixels are too small for the model (its layers "
            "shrink them to nothing); pass larger inputs, e.g. at the model's preprocessing "
            "size"
        ) from None
    return scores


def check_image_size(image_size: object) -> tuple[int, int]:
    sides = list(image_size) if isinstance(image_size, (tuple, list)) else []
    if len(sides) != 2 or not all(_is_side(side) for side in sides):
        raise ValueError(
            f"image_size must be the image's (width, height), two ints >= 1, got "
            f"{image_size!r}; pass image.size of the PIL image"
        )
    return int(sides[0]), int(sides[1])


def _is_side(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        return False
    return int(value) >= 1


def check_heatmap(heatmap: object) -> torch.Tensor:
    try:
        array = np.asarray(
            heatmap.detach().cpu() if isinstance(heatmap, torch.Tensor) else heatmap,
            dtype=np.float32,
        )
    except (TypeError, ValueError):
        raise ValueError(
            f"heatmap must be a 2-d array of numbers, got {type(heatmap).__name__}; pass "
            "a (H, W) map from grad_cam"
        ) from None
    if array.ndim != 2 or array.size == 0:
        raise ValueError(
            f"heatmap must be a non-empty 2-d (H, W) map, got shape {array.shape}; pass one "
            "image's map (grad_cam(model, batch)[i])"
        )
    if not np.isfinite(array).all():
        raise ValueError("heatmap holds NaN or infinite values; pass a map from grad_cam")
    return torch.from_numpy(array)
