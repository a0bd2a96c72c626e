"""The 0.1 structure guesses, kept as the named fallback for networks that declare nothing.

Registered architectures declare their head, feature blocks and Grad-CAM layer (see
:class:`~retinalnet.models.ModelSpec`), and a hand-built network can declare them to
:class:`~retinalnet.models.Classifier`. Only when neither happened do these guesses run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from retinalnet.models._blocks import blocks_ending_at_max_pools

__all__ = ["GradCamTarget", "guess_feature_blocks", "guess_gradcam_target"]

_POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


class GradCamTarget(NamedTuple):
    """Where Grad-CAM reads its activation, as :meth:`Classifier.gradcam_target` gives it.

    .. versionadded:: 0.2

    Parameters
    ----------
    module
        The module whose activation is explained.
    reshape
        Turns that activation into ``(N, C, H, W)`` (token outputs of ViT and Swin);
        ``None`` when it already is.
    at_input
        Explain the module's *input* rather than its output (only the fallback guess sets
        this, when it lands on a pooling layer).
    """

    module: nn.Module
    reshape: Callable[[torch.Tensor], torch.Tensor] | None
    at_input: bool


def guess_feature_blocks(network: nn.Module) -> list[nn.Module]:
    """Guess a backbone's feature blocks, first to last, from its structure (0.1 rules).

    - VGG-style (``features`` holding ``MaxPool2d``): a block ends at each max-pool
      (VGG16 has 5).
    - ``features`` without max-pools (EfficientNet, MobileNet, DenseNet): each child.
    - ResNet-style (``layer1`` ... ``layer4``): the four stages.

    Raises
    ------
    TypeError
        If the blocks cannot be found.
    """
    features = getattr(network, "features", None)
    if isinstance(features, nn.Sequential):
        layers = list(features.children())
        if not any(isinstance(layer, nn.MaxPool2d) for layer in layers):
            return layers
        return blocks_ending_at_max_pools(layers)
    stages = [getattr(network, f"layer{i}", None) for i in range(1, 5)]
    if all(isinstance(stage, nn.Module) for stage in stages):
        return [stage for stage in stages if stage is not None]
    raise TypeError(
        f"cannot find the feature blocks of {type(network).__name__}: expected a "
        "`features` nn.Sequential (VGG, EfficientNet, MobileNet, DenseNet) or "
        "`layer1`..`layer4` (ResNet); declare them with "
        "Classifier(network, feature_blocks=[...]) or register the architecture"
    )


def guess_gradcam_target(network: nn.Module) -> GradCamTarget:
    """Guess the Grad-CAM layer from the structure (0.1 rules).

    The last module of the last guessed feature block; when that is a pooling layer
    (VGG16's last ``MaxPool2d``) its *input* is explained, the rectified output of the last
    convolution. A network without guessable feature blocks falls back to its last
    ``Conv2d``, explained at its output.

    Raises
    ------
    TypeError
        If the network has no ``Conv2d``.
    """
    try:
        last_block: nn.Module | None = guess_feature_blocks(network)[-1]
    except TypeError:
        last_block = None
    if last_block is not None:
        children = list(last_block.children())
        module = children[-1] if children else last_block
        return GradCamTarget(module, None, isinstance(module, _POOLING))
    convolutions = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
    if not convolutions:
        raise TypeError(
            f"{type(network).__name__} has no Conv2d layer for Grad-CAM; pass layer=<module> "
            "with a spatial (N, C, H, W) activation, or declare "
            "Classifier(network, gradcam_layer=...)"
        )
    return GradCamTarget(convolutions[-1], None, False)
