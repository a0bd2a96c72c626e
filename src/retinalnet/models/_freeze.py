"""Freezing a backbone, whole or all but its last blocks."""

from __future__ import annotations

from torch import nn

from retinalnet.models._classifier import network_of

__all__ = ["feature_blocks", "freeze"]


def feature_blocks(model: nn.Module) -> list[nn.Module]:
    """Split a backbone's feature extractor into its blocks, first to last.

    - VGG-style (``features`` holding ``MaxPool2d``): a block ends at each max-pool
      (VGG16 has 5).
    - ``features`` without max-pools (EfficientNet, MobileNet, DenseNet): each child.
    - ResNet-style (``layer1`` ... ``layer4``): the four stages.

    Parameters
    ----------
    model
        A torchvision-style network, or a :class:`~retinalnet.models.Classifier`.

    Raises
    ------
    TypeError
        If the blocks cannot be found.
    """
    network = network_of(model)
    features = getattr(network, "features", None)
    if isinstance(features, nn.Sequential):
        layers = list(features.children())
        if not any(isinstance(layer, nn.MaxPool2d) for layer in layers):
            return layers
        blocks: list[nn.Module] = []
        current: list[nn.Module] = []
        for layer in layers:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                blocks.append(nn.Sequential(*current))
                current = []
        if current:
            blocks.append(nn.Sequential(*current))
        return blocks
    stages = [getattr(network, f"layer{i}", None) for i in range(1, 5)]
    if all(isinstance(stage, nn.Module) for stage in stages):
        return [stage for stage in stages if stage is not None]
    raise TypeError(
        f"cannot find the feature blocks of {type(network).__name__}: expected a "
        "`features` nn.Sequential (VGG, EfficientNet, MobileNet, DenseNet) or "
        "`layer1`..`layer4` (ResNet)"
    )


def freeze(model: nn.Module, *, except_last_blocks: int = 0) -> nn.Module:
    """Stop gradients for every parameter, optionally keeping the last blocks trainable.

    Parameters
    ----------
    model
        The network (or :class:`~retinalnet.models.Classifier`) to freeze, in place.
    except_last_blocks
        Number of final feature blocks (see :func:`feature_blocks`) left trainable, for
        fine-tuning. 0 freezes everything, as the tutorial did.

    Returns
    -------
    torch.nn.Module
        ``model``, for chaining.

    Examples
    --------
    >>> from torchvision.models import vgg16
    >>> from retinalnet.models import freeze, parameter_summary
    >>> net = freeze(vgg16(weights=None), except_last_blocks=1)
    >>> parameter_summary(net).trainable  # the last conv block: 3 convs of 512x512x3x3
    7079424
    """
    if isinstance(except_last_blocks, bool) or except_last_blocks < 0:
        raise ValueError(f"except_last_blocks must be an int >= 0, got {except_last_blocks!r}")
    blocks = feature_blocks(model) if except_last_blocks else []
    if except_last_blocks > len(blocks):
        raise ValueError(
            f"except_last_blocks={except_last_blocks} but {type(network_of(model)).__name__} "
            f"has only {len(blocks)} feature blocks"
        )
    model.requires_grad_(False)
    for block in blocks[len(blocks) - except_last_blocks :]:
        block.requires_grad_(True)
    return model
