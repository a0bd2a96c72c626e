"""A compact CNN trained from scratch: the fallback when no pretrained weights are at hand."""

from __future__ import annotations

import torch
from torch import nn

from retinalnet.models._checks import check_int
from retinalnet.models._head import build_head

__all__ = ["SmallCNN", "small_cnn_network"]


class SmallCNN(nn.Module):
    """A compact 4-block CNN (conv-BN-ReLU-maxpool) with a :func:`build_head` head.

    Shaped like torchvision's VGG (``features``, ``avgpool``, ``classifier``) so the
    freeze and head helpers work on it.

    Parameters
    ----------
    num_classes
        Outputs of the head; ``None`` builds no head (``classifier`` is ``nn.Identity``
        and the output is the ``num_features`` pooled features), for
        :func:`~retinalnet.models.create_model` to add one.
    width
        Channels of the first block; each block doubles them.
    hidden, dropout
        As in :func:`build_head`.

    Raises
    ------
    ValueError
        If ``width`` is not an int >= 1, or a head argument is out of range or a dropout
        without a hidden layer (see :func:`build_head`).

    Attributes
    ----------
    num_features : int
        Width of the pooled features the head receives (``8 * width``).
    """

    def __init__(
        self,
        num_classes: int | None = 4,
        *,
        width: int = 16,
        hidden: int | None = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        check_int(width, "width", 1)
        layers: list[nn.Module] = []
        channels = 3
        for i in range(4):
            out = width * 2**i
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = out
        self.num_features = channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier: nn.Module = (
            nn.Identity()
            if num_classes is None
            else build_head(channels, num_classes, hidden=hidden, dropout=dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities for a batch ``(N, 3, H, W)``."""
        features = torch.flatten(self.avgpool(self.features(x)), 1)
        output: torch.Tensor = self.classifier(features)
        return output


def small_cnn_network(*, weights: None = None, progress: bool = True, width: int = 16) -> SmallCNN:
    """The headless :class:`SmallCNN` that the ``small_cnn`` registry entry builds on.

    ``weights`` and ``progress`` are there for the builder protocol of
    :class:`~retinalnet.models.ModelSpec`; there are no pretrained weights to take.

    Raises
    ------
    ValueError
        If ``weights`` is not ``None``, or ``width`` is not an int >= 1.
    """
    if weights is not None:
        raise ValueError(f"small_cnn has no pretrained weights, got weights={weights!r}")
    return SmallCNN(None, width=width)
