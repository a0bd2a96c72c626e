"""A network bundled with what it needs to be used: class names, preprocessing, config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from retinalnet.transforms import Preprocessing

__all__ = ["Classifier", "network_of"]


class Classifier(nn.Module):
    """An image classifier that carries its class names and preprocessing.

    The class mapping and the preprocessing travel with the model, into checkpoints and
    into :class:`~retinalnet.Predictor`, so inference always prepares images the way
    training did and reports the right names.

    Parameters
    ----------
    network
        Any module mapping a batch ``(N, 3, H, W)`` to ``(N, num_classes)`` scores
        (log-probabilities for the builders here, logits also work).
    classes
        Class names in output order.
    preprocessing
        How images are prepared for ``network``.
    arch, arch_kwargs
        Name and keyword arguments of the builder that made ``network``, so a checkpoint
        can rebuild it (see :func:`retinalnet.models.build_model`). ``None`` for a network
        built by hand; such a checkpoint needs the network passed in when it is loaded.

    Attributes
    ----------
    network : torch.nn.Module
        The wrapped network (for VGG16, ``network.classifier[6]`` is the new head).
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        classes: Sequence[str],
        preprocessing: Preprocessing | None = None,
        arch: str | None = None,
        arch_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be 2 or more distinct names, got {list(classes)!r}")
        self.network = network
        self.classes: tuple[str, ...] = tuple(classes)
        self.preprocessing = preprocessing if preprocessing is not None else Preprocessing()
        self.arch = arch
        self.arch_kwargs: dict[str, Any] = dict(arch_kwargs or {})

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return len(self.classes)

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name to output index."""
        return {name: i for i, name in enumerate(self.classes)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores for a batch of preprocessed images."""
        output: torch.Tensor = self.network(x)
        return output

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, classes={list(self.classes)!r}"


def network_of(model: nn.Module) -> nn.Module:
    """The wrapped network of a :class:`Classifier`; any other module as it is."""
    return model.network if isinstance(model, Classifier) else model
