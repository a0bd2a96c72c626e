"""Freezing a backbone, whole or all but its last blocks."""

from __future__ import annotations

from torch import nn

from retinalnet._core.counts import check_count
from retinalnet.models._checks import check_module
from retinalnet.models._classifier import Classifier, network_of
from retinalnet.models._fallback import guess_feature_blocks

__all__ = ["feature_blocks", "freeze", "trainable_blocks_arg"]


def feature_blocks(model: nn.Module) -> list[nn.Module]:
    """A backbone's feature blocks, first to last.

    For a :class:`~retinalnet.models.Classifier`, its declaration
    (:meth:`~retinalnet.models.Classifier.feature_block_modules`: declared blocks, else the
    registered spec's). For a bare network, or a Classifier that declares nothing, the 0.1
    structure guess:

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
        If ``model`` is not a module, or its blocks are neither declared nor recognisable.

    Examples
    --------
    >>> from retinalnet.models import create_model, feature_blocks
    >>> len(feature_blocks(create_model("convnext_tiny", weights=None)))  # its 4 stages
    4
    """
    check_module(model, "feature_blocks")
    if isinstance(model, Classifier):
        return model.feature_block_modules()
    return guess_feature_blocks(model)


def trainable_blocks_arg(
    trainable_blocks: int | None, except_last_blocks: int | None, *, default: int = 0
) -> tuple[int, str]:
    """Merge the 0.2 name and its 0.1 alias: ``(value, name the caller used)``.

    Raises
    ------
    ValueError
        If both are given.
    """
    if trainable_blocks is not None and except_last_blocks is not None:
        raise ValueError(
            f"pass trainable_blocks (got {trainable_blocks!r}) or its 0.1 name "
            f"except_last_blocks (got {except_last_blocks!r}), not both"
        )
    if except_last_blocks is not None:
        return except_last_blocks, "except_last_blocks"
    return (default if trainable_blocks is None else trainable_blocks), "trainable_blocks"


def freeze(
    model: nn.Module,
    *,
    except_last_blocks: int | None = None,
    trainable_blocks: int | None = None,
) -> nn.Module:
    """Stop gradients for every parameter, optionally keeping the last blocks trainable.

    Parameters
    ----------
    model
        The network (or :class:`~retinalnet.models.Classifier`) to freeze, in place.
    trainable_blocks
        Number of final feature blocks (see :func:`feature_blocks`) left trainable, for
        fine-tuning. 0 (the default) freezes everything, as the tutorial did.

        .. versionadded:: 0.2
    except_last_blocks
        The 0.1 name of ``trainable_blocks``.

    Returns
    -------
    torch.nn.Module
        ``model``, for chaining.

    Raises
    ------
    TypeError
        If ``model`` is not a module, or (with blocks left trainable) its feature blocks
        are not recognisable.
    ValueError
        If the block count is negative, not an int, or more than the model has.

    Examples
    --------
    >>> from torchvision.models import vgg16
    >>> from retinalnet.models import freeze, parameter_summary
    >>> net = freeze(vgg16(weights=None), trainable_blocks=1)
    >>> parameter_summary(net).trainable  # the last conv block: 3 convs of 512x512x3x3
    7079424
    """
    check_module(model, "freeze")
    count, name = trainable_blocks_arg(trainable_blocks, except_last_blocks)
    count = check_count(count, name, 0)
    blocks = feature_blocks(model) if count else []
    if count > len(blocks):
        raise ValueError(
            f"{name}={count} but {type(network_of(model)).__name__} "
            f"has only {len(blocks)} feature blocks"
        )
    model.requires_grad_(False)
    for block in blocks[len(blocks) - count :]:
        block.requires_grad_(True)
    return model
