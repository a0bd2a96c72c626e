"""The checks of Grad-CAM's arguments: each wrong input said in one line, before any work."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from retinalnet._core.model_inputs import check_batch
from retinalnet._core.model_outputs import class_scores
from retinalnet.models import Classifier
from retinalnet.models._checks import check_batch_side
from retinalnet.models._classifier import network_of

__all__ = [
    "another_layer",
    "check_heatmap",
    "check_image_size",
    "check_inputs",
    "check_map_size",
    "class_indices",
    "forward_scores",
    "layer_name",
    "probe_activation",
]

_LARGEST_PROBE = 512
"""The largest input side tried when looking for one that gives a 2 x 2 map."""


def check_inputs(
    model: nn.Module, inputs: object, *, prepared: bool = False
) -> tuple[torch.Tensor, bool]:
    """The inputs as an ``(N, C, H, W)`` batch and whether one image was given, or a
    one-line error naming what is wrong with them. A Classifier's inputs that do not look
    prepared are warned of, unless ``prepared`` (the library prepared them itself: a bright
    image can have no negative value once normalised)."""
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
    spec = model._input_sizes() if isinstance(model, Classifier) else None
    smallest = 1 if spec is None else spec.min_size
    height, width = batch.shape[-2:]
    name = "the model" if spec is None else spec.name
    if min(height, width) < smallest:
        raise ValueError(
            f"inputs of {height} x {width} pixels are too small: {name} needs each side at "
            f"least {smallest}; prepare images with the model's preprocessing (grad_cam_image)"
        )
    check_batch_side(
        spec, height, width, "prepare images with the model's preprocessing (grad_cam_image)"
    )
    if not bool(torch.isfinite(batch).all()):
        raise ValueError(
            "inputs hold NaN or infinite values, which give no heatmap; check the images "
            "and their preprocessing"
        )
    # the rule of every door's batches; other sizes are explained, as asked, with a warning
    preprocessing = model.preprocessing if isinstance(model, Classifier) else None
    check_batch(batch, preprocessing, fix=_UNPREPARED_FIX, warn=not prepared)
    return batch.float(), single  # computed in fp32: a float64 or fp16 batch cast


_UNPREPARED_FIX = (
    "for an image (path, PIL image or image tensor) call grad_cam_image(model, image), "
    "which prepares it with the model's preprocessing"
)


# how torch says that an input shrank to nothing in a pooling or convolution
_TOO_SMALL = ("Output size is too small", "Kernel size can't be greater than actual input")


def forward_scores(
    model: nn.Module,
    batch: torch.Tensor,
    before_softmax: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """The class scores Grad-CAM explains (``before_softmax`` of the model's outputs: the
    logits before a final softmax module), checked as at every door
    (:func:`~retinalnet._core.model_outputs.class_scores`: a tuple, a dict, ``(N, C, 1, 1)``,
    probabilities or another number of scores than a Classifier's classes refused in one
    line); an input too small for its pooling said in one line."""
    try:
        outputs: object = model(batch)
    except RuntimeError as error:
        if not any(sign in str(error) for sign in _TOO_SMALL):
            raise
        height, width = batch.shape[-2:]
        raise ValueError(
            f"inputs of {height} x {width} pixels are too small for the model (its layers "
            "shrink them to nothing); pass larger inputs, e.g. at the model's preprocessing "
            "size"
        ) from None
    scores = before_softmax(outputs) if isinstance(outputs, torch.Tensor) else outputs
    classes = model.classes if isinstance(model, Classifier) else None
    return class_scores(
        scores,
        len(classes) if classes is not None else None,
        model_name=type(network_of(model)).__name__,
    )


def check_map_size(
    model: nn.Module,
    batch: torch.Tensor,
    spatial: torch.Tensor,
    layer: nn.Module,
    *,
    at_input: bool,
    reshape: Callable[[torch.Tensor], torch.Tensor] | None,
    given: bool,
) -> None:
    """Refuse a 1 x 1 activation map: its heatmap is one value spread over the image,
    whatever the image shows.

    A map of one row or one column (1 x N) is explained: its heatmap varies along the other
    side. The message names the layer, its map and the smallest square input that gives the
    layer a 2 x 2 map (found by forward passes of zeros up to the layer, only when refusing).
    """
    map_height, map_width = spatial.shape[-2:]
    if map_height * map_width > 1:
        return
    height, width = batch.shape[-2:]
    spec = model._input_sizes() if isinstance(model, Classifier) else None
    name = "the model" if spec is None else spec.name
    where = f"{'the input of ' if at_input else ''}its layer {layer_name(model, layer)!r}"
    problem = (
        f"Grad-CAM of {name} on {height} x {width} inputs: {where} gives a {map_height} x "
        f"{map_width} map, so the heatmap would be constant, whatever the image shows"
    )
    fixed = None if spec is None else spec.fixed_size
    if fixed is not None:
        raise ValueError(
            f"{problem}; {name} takes {fixed} x {fixed} inputs only: "
            f"{another_layer(model, given, 'an earlier layer', suggest=False)}"
        )
    device = next((parameter.device for parameter in model.parameters()), batch.device)

    def gives_2x2(side: int) -> bool:
        shape = _map_shape(model, layer, at_input, reshape, side, batch.shape[1], device)
        return shape is not None and min(shape) >= 2

    smallest = _smallest_side(min(height, width), gives_2x2)
    if smallest is None:
        raise ValueError(
            f"{problem}; the map stays smaller than 2 x 2 up to {_LARGEST_PROBE} x "
            f"{_LARGEST_PROBE} inputs (a pooled layer?): "
            f"{another_layer(model, given, 'a convolutional layer before the pooling')}"
        )
    raise ValueError(
        f"{problem}; the layer gives 2 x 2 from {smallest} x {smallest} inputs: use a model "
        f"trained on inputs of at least {smallest} pixels (its Preprocessing size), or "
        f"{another_layer(model, given, 'an earlier layer', suggest=False)}"
    )


def class_indices(
    class_index: int | Sequence[int] | torch.Tensor | None, scores: torch.Tensor
) -> torch.Tensor:
    """The class each image's map explains: ``class_index`` checked, or the argmax."""
    count, num_classes = scores.shape
    if class_index is None:
        return scores.detach().argmax(dim=1)
    if not _holds_integers(class_index):  # 1.5 or True would silently become class 1
        indices = torch.empty(0, dtype=torch.int64)
    else:
        indices = torch.as_tensor(class_index, dtype=torch.int64, device=scores.device).flatten()
    if indices.numel() == 1:
        indices = indices.expand(count)
    if indices.numel() != count or indices.min() < 0 or indices.max() >= num_classes:
        raise ValueError(
            f"class_index must be an int from 0 to {num_classes - 1}, one per image, or None "
            f"(the predicted class), got {class_index!r}"
        )
    return indices


def _holds_integers(value: object) -> bool:
    """An int, a sequence of ints or an integer tensor; never a bool or a float."""
    if isinstance(value, torch.Tensor):
        integer = not (value.is_floating_point() or value.is_complex())
        return integer and value.dtype != torch.bool
    if isinstance(value, Sequence) and not isinstance(value, str):
        return all(_holds_integers(item) for item in value)
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def layer_name(model: nn.Module, layer: nn.Module) -> str:
    """The layer's path in the model (``network.layer4``), else its class name."""
    return next(
        (name for name, module in model.named_modules() if module is layer and name),
        type(layer).__name__,
    )


def another_layer(model: nn.Module, given: bool, what: str, *, suggest: bool = True) -> str:
    """How to explain ``what`` (``"an earlier layer"``) instead, for the door used.

    A layer given as ``layer=`` is replaced there. A Classifier's own layer (declared,
    registered or guessed) is the one :meth:`Predictor.gradcam <retinalnet.Predictor.gradcam>`,
    the command line, the report and TensorBoard explain, none of which takes ``layer=``:
    the fix is to declare another with ``Classifier(gradcam_layer=...)``, or ``layer=`` in
    a call of ``grad_cam`` or ``grad_cam_image``. ``suggest`` names the network's last
    ``Conv2d`` as an example path (not when an earlier layer than the current is needed).
    """
    if given or not isinstance(model, Classifier):
        return f"pass layer= {what}"
    path = "PATH"
    if suggest:  # the network's last convolution, as an example of a path
        path = next(
            (
                repr(name)
                for name, module in reversed(list(model.network.named_modules()))
                if isinstance(module, nn.Conv2d)
            ),
            path,
        )
    return (
        f"declare {what} with Classifier(network, ..., gradcam_layer={path}) (the layer "
        "Predictor.gradcam, retinalnet predict --cam, reports and TensorBoard explain), or "
        "in Python pass layer= one to grad_cam or grad_cam_image"
    )


def _smallest_side(start: int, gives_2x2: Callable[[int], bool]) -> int | None:
    """The smallest side above ``start`` for which ``gives_2x2`` holds (the map only grows
    with the input), or None up to :data:`_LARGEST_PROBE`: doubling, then bisection."""
    low = max(start, 1)  # known not to give 2 x 2
    high = None
    while high is None and low < _LARGEST_PROBE:
        side = min(2 * low, _LARGEST_PROBE)
        if gives_2x2(side):
            high = side
        else:
            low = side
    if high is None:
        return None
    while high - low > 1:
        middle = (low + high) // 2
        if gives_2x2(middle):
            high = middle
        else:
            low = middle
    return high


class _LayerReachedError(Exception):
    """Ends a probing forward pass at the explained layer, carrying its activation."""

    def __init__(self, activation: torch.Tensor) -> None:
        super().__init__(tuple(activation.shape))
        self.activation = activation


def probe_activation(
    model: nn.Module,
    layer: nn.Module,
    at_input: bool,
    size: tuple[int, int],
    channels: int,
    device: torch.device,
) -> torch.Tensor | None:
    """The layer's activation (its input when ``at_input``) for one input of zeros of
    ``size`` ``(height, width)``, the forward pass stopped there; None if the model refuses
    that size."""

    def reached(activation: torch.Tensor) -> None:
        raise _LayerReachedError(activation.detach())

    handle = (
        layer.register_forward_pre_hook(lambda module, args: reached(args[0]))
        if at_input
        else layer.register_forward_hook(lambda module, args, output: reached(output))
    )
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, *size, dtype=torch.float32, device=device))
    except _LayerReachedError as stop:
        return stop.activation
    except (RuntimeError, ValueError, AssertionError):  # a size the model cannot take
        return None  # (torchvision's ViT refuses other sizes with an AssertionError)
    finally:
        handle.remove()
    return None


def _map_shape(
    model: nn.Module,
    layer: nn.Module,
    at_input: bool,
    reshape: Callable[[torch.Tensor], torch.Tensor] | None,
    side: int,
    channels: int,
    device: torch.device,
) -> tuple[int, int] | None:
    """The layer's map size for a ``side`` x ``side`` input, or None if the model refuses it."""
    activation = probe_activation(model, layer, at_input, (side, side), channels, device)
    if activation is None:
        return None
    try:
        spatial = activation if reshape is None else reshape(activation)
    except (RuntimeError, ValueError):  # a reshape that takes no other size (a fixed grid)
        return None
    return int(spatial.shape[-2]), int(spatial.shape[-1])


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
