"""Building blocks of declarations: feature-block selectors and Grad-CAM reshapes.

A selector takes the network and returns its feature blocks, first to last. A block that
spans several children of a container is returned as an ``nn.Sequential`` view of them
(the modules stay where they are; only ``requires_grad_`` and parameter listing use the
view).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from retinalnet.models._registry import BlockSelector

__all__ = [
    "channels_last_to_first",
    "children_of",
    "modules_at",
    "split_at_max_pools",
    "split_children",
    "tokens_to_map",
]


def _group(modules: Sequence[nn.Module]) -> nn.Module:
    return modules[0] if len(modules) == 1 else nn.Sequential(*modules)


def modules_at(*paths: str) -> BlockSelector:
    """Blocks that are modules of the network: ``modules_at("layer1", ..., "layer4")``."""

    def select(network: nn.Module) -> list[nn.Module]:
        return [network.get_submodule(path) for path in paths]

    return select


def children_of(path: str) -> BlockSelector:
    """Every child of one container is a block (ViT's ``encoder.layers``)."""

    def select(network: nn.Module) -> list[nn.Module]:
        return list(network.get_submodule(path).children())

    return select


def split_children(path: str, starts: Sequence[int]) -> BlockSelector:
    """Group a container's children into blocks starting at the given child indices.

    ``split_children("features", (0, 2, 4, 6))`` makes ConvNeXt's four stages, each a
    downsampling layer with the blocks after it. ``starts`` must begin with 0.
    """
    if not starts or starts[0] != 0 or list(starts) != sorted(set(starts)):
        raise ValueError(f"starts must be increasing indices from 0, got {list(starts)!r}")

    def select(network: nn.Module) -> list[nn.Module]:
        children = list(network.get_submodule(path).children())
        bounds = [*starts, len(children)]
        return [_group(children[a:b]) for a, b in itertools.pairwise(bounds)]

    return select


def blocks_ending_at_max_pools(layers: Sequence[nn.Module]) -> list[nn.Module]:
    """Group layers into VGG-style blocks, each ending at a ``MaxPool2d`` (VGG16: 5)."""
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


def split_at_max_pools(path: str) -> BlockSelector:
    """VGG-style blocks: a block ends at each ``MaxPool2d`` of the container (VGG16: 5)."""

    def select(network: nn.Module) -> list[nn.Module]:
        return blocks_ending_at_max_pools(list(network.get_submodule(path).children()))

    return select


def tokens_to_map(tokens: torch.Tensor) -> torch.Tensor:
    """ViT tokens ``(N, 1 + H*W, C)`` to a map ``(N, C, H, W)``, dropping the class token.

    Raises
    ------
    ValueError
        If the tokens are not 3-d or the patch tokens do not form a square.
    """
    if tokens.dim() != 3:
        raise ValueError(f"expected ViT tokens (N, 1 + H*W, C), got shape {tuple(tokens.shape)}")
    count, length, channels = tokens.shape
    side = math.isqrt(length - 1)
    if side * side != length - 1:
        raise ValueError(
            f"expected a class token and a square grid of patch tokens, got {length} tokens"
        )
    return tokens[:, 1:, :].reshape(count, side, side, channels).permute(0, 3, 1, 2)


def channels_last_to_first(activation: torch.Tensor) -> torch.Tensor:
    """Swin's channels-last ``(N, H, W, C)`` to ``(N, C, H, W)``.

    Raises
    ------
    ValueError
        If the activation is not 4-d.
    """
    if activation.dim() != 4:
        raise ValueError(f"expected (N, H, W, C), got shape {tuple(activation.shape)}")
    return activation.permute(0, 3, 1, 2)
