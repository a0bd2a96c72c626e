"""Which activation Grad-CAM explains, and how it is read as an ``(N, C, H, W)`` map.

The model's own layer (declared, registered or guessed: :func:`find_target_layer`) is read
as declared: through its ``gradcam_reshape`` (ViT's tokens, Swin's channels-last map), and
at its input where the guess lands on a pooling layer. Passing that same module as
``layer=`` changes nothing. Another module passed as ``layer=`` is read by the form of its
output:

- 4-d: as ``(N, C, H, W)``, or as channels-last ``(N, H, W, C)`` (Swin's stages, ConvNeXt's
  block internals) when only that reading has the input's proportions. When both readings
  have them, or neither, a forward pass of a larger input tells them apart: the spatial sides
  grow with the input, the channels do not;
- otherwise (a token sequence ``(N, L, C)``): through the model's declared
  ``gradcam_reshape``, when it takes it;
- anything else, or what cannot be told apart on a model that declares a reshape, is refused
  in one line naming the layer, its shape and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from retinalnet.gradcam._checks import another_layer, layer_name, probe_activation
from retinalnet.models import Classifier, GradCamTarget
from retinalnet.models._blocks import channels_last_to_first
from retinalnet.models._fallback import guess_gradcam_target

__all__ = ["choose_target", "own_target", "reshape_for"]

Reshape = Callable[[torch.Tensor], torch.Tensor]

_CELLS = 2
"""How far a map's side may lie from the input's side over the stride (padding, rounding)."""

_GROWTH = 32
"""Pixels added to each side of the probing input: every side of stride 32 or less grows."""


def own_target(model: nn.Module) -> GradCamTarget:
    """The model's own layer: a Classifier's declared one, else the 0.1 structure guess."""
    if isinstance(model, Classifier):
        return model.gradcam_target()
    return guess_gradcam_target(model)


def choose_target(
    model: nn.Module, layer: nn.Module | None
) -> tuple[GradCamTarget, GradCamTarget | None]:
    """The target to explain and the model's own (None for a bare network with no
    ``Conv2d``). They are the same object when ``layer`` is None or the model's own module:
    then its declared reshape and ``at_input`` hold. Another ``layer`` is explained at its
    output, its reading settled by :func:`reshape_for` once it has run."""
    if layer is None:
        chosen = own_target(model)
        return chosen, chosen
    own: GradCamTarget | None
    try:
        own = own_target(model)
    except TypeError:  # a bare network without a Conv2d: nothing of its own
        own = None
    if own is not None and own.module is layer:
        return own, own
    return GradCamTarget(layer, None, False), own


def reshape_for(
    model: nn.Module,
    batch: torch.Tensor,
    activation: torch.Tensor,
    target: GradCamTarget,
    own: GradCamTarget | None,
    *,
    given: bool,
) -> Reshape | None:
    """What turns ``activation`` (the target's, for ``batch``) into ``(N, C, H, W)``: None
    when it already is, or a one-line ValueError naming the layer, its shape and the fix.

    ``given``: the layer came as ``layer=`` (the fix is named for that door).
    """
    if target is own:
        spatial = activation if target.reshape is None else target.reshape(activation)
        if spatial.dim() == 4:
            return target.reshape
        raise _not_spatial(model, target.module, activation, own, given, spatial)
    declared = None if own is None else own.reshape
    if activation.dim() == 4:
        layout = _layout(model, batch, activation, target.module)
        if layout == "last":
            return channels_last_to_first
        if layout == "first" or own is None or declared is None:
            return None  # a model without a channels-last layer: (N, C, H, W), as in 0.1
        height, width = batch.shape[-2:]
        raise ValueError(
            f"the Grad-CAM layer {layer_name(model, target.module)!r} gives shape "
            f"{tuple(activation.shape)} on {height} x {width} inputs, which cannot be told to "
            f"be (N, C, H, W) or channels-last (N, H, W, C): {_use_own(model, own)}, or pass "
            "layer= another module"
        )
    problem = None
    if declared is not None:  # a token sequence (N, L, C), or what else it takes
        try:
            spatial = declared(activation)
        except (RuntimeError, ValueError) as error:
            problem = str(error)
        else:
            if spatial.dim() == 4:
                return declared
            problem = f"it gives shape {tuple(spatial.shape)}"
    raise _not_spatial(model, target.module, activation, own, given, problem=problem)


def _not_spatial(
    model: nn.Module,
    layer: nn.Module,
    activation: torch.Tensor,
    own: GradCamTarget | None,
    given: bool,
    spatial: torch.Tensor | None = None,
    *,
    problem: str | None = None,
) -> ValueError:
    """No ``(N, C, H, W)`` map of the layer's output: the fix for the model's kind."""
    shape = tuple(activation.shape)
    start = f"the Grad-CAM layer {layer_name(model, layer)!r} gives shape {shape}"
    # a CNN: take a convolution (a token sequence needs a reshape); else the declared layer
    if own is None or own.reshape is None:
        tokens = (
            " (a transformer's tokens need Classifier(network, ..., gradcam_layer=PATH, "
            "gradcam_reshape=FUNCTION), FUNCTION making them (N, C, H, W))"
            if activation.dim() == 3
            else ""
        )
        fix = another_layer(model, given, "a convolutional module")
        return ValueError(f"{start}; it needs a spatial (N, C, H, W) activation{tokens}: {fix}")
    name = _name(own.reshape)
    if spatial is not None:  # the declared layer, whose declared reshape gives no map
        return ValueError(
            f"{start}, which its gradcam_reshape {name} turns into shape "
            f"{tuple(spatial.shape)}, not (N, C, H, W): declare a gradcam_reshape that does"
        )
    why = f" ({problem})" if problem else ""
    return ValueError(
        f"{start}, which {_who(model)}'s gradcam_reshape {name} cannot turn into an "
        f"(N, C, H, W) map{why}: {_use_own(model, own)}, or pass layer= a module giving a "
        f"4-d map or what {name} takes"
    )


def _use_own(model: nn.Module, own: GradCamTarget) -> str:
    return f"omit layer= to explain its declared layer {layer_name(model, own.module)!r}"


def _who(model: nn.Module) -> str:
    if not isinstance(model, Classifier):
        return type(model).__name__
    return type(model.network).__name__ if model.spec is None else model.spec.name


def _name(reshape: Reshape) -> str:
    return str(getattr(reshape, "__name__", type(reshape).__name__))


def _layout(
    model: nn.Module, batch: torch.Tensor, activation: torch.Tensor, layer: nn.Module
) -> str | None:
    """``"first"`` (N, C, H, W), ``"last"`` (N, H, W, C), or None when it cannot be told.

    Sides that fit the input at one stride only as ``(N, C, H, W)`` are that. Otherwise the
    layer is run on a larger input, and the axes that grow are its map's: a convolution
    of stride (2, 1) gives sides that fit one stride only as channels-last, yet its map
    is ``(H, W)``. Where the model takes no other size, the sides alone decide.
    """
    sides = (int(batch.shape[-2]), int(batch.shape[-1]))
    _, first_axis, middle, last_axis = (int(side) for side in activation.shape)
    first = _fits((middle, last_axis), sides)
    last = _fits((first_axis, middle), sides)
    if first and not last:
        return "first"
    by_sides = "last" if last and not first else None
    spec = model.spec if isinstance(model, Classifier) else None
    if spec is not None and spec.fixed_size is not None:
        return by_sides  # no other input size to probe
    device = next((parameter.device for parameter in model.parameters()), batch.device)
    grown_size = (sides[0] + _GROWTH, sides[1] + _GROWTH)
    probed = probe_activation(model, layer, False, grown_size, int(batch.shape[1]), device)
    if probed is None or probed.dim() != 4:
        return by_sides
    grown = [axis for axis in (1, 2, 3) if probed.shape[axis] != activation.shape[axis]]
    return "first" if grown == [2, 3] else "last" if grown == [1, 2] else by_sides


def _fits(map_sides: tuple[int, int], input_sides: tuple[int, int]) -> bool:
    """Whether a map of ``map_sides`` can be the input's at one stride: each side within
    :data:`_CELLS` cells of the input's side over that stride."""
    low, high = 0.0, math.inf
    for side, length in zip(map_sides, input_sides, strict=True):
        if side < 1 or side > length + _CELLS:
            return False
        low = max(low, length / (side + _CELLS))
        if side > _CELLS:
            high = min(high, length / (side - _CELLS))
    return low <= high
