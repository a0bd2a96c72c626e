"""Model builders, and the registry that rebuilds a model from a checkpoint's config."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from retinalnet._core.classes import KERMANY_CLASSES
from retinalnet.models._classifier import Classifier
from retinalnet.models._freeze import freeze as freeze_model
from retinalnet.models._head import build_head, replace_head
from retinalnet.models._weights import WeightsArg, load_vgg16
from retinalnet.transforms import Preprocessing

__all__ = ["SmallCNN", "build_model", "small_cnn", "vgg16_transfer"]

_VGG16_BLOCKS = 5


def _class_names(num_classes: int, classes: Sequence[str] | None) -> tuple[str, ...]:
    if classes is None:
        if num_classes == len(KERMANY_CLASSES):
            return KERMANY_CLASSES
        return tuple(f"class_{i}" for i in range(num_classes))
    if len(classes) != num_classes:
        raise ValueError(
            f"num_classes={num_classes} but {len(classes)} class names were given "
            f"({list(classes)!r}); make them agree"
        )
    return tuple(classes)


def vgg16_transfer(
    *,
    num_classes: int = 4,
    weights: WeightsArg = "IMAGENET1K_V1",
    hidden: int = 256,
    dropout: float = 0.2,
    freeze: bool = True,
    except_last_blocks: int = 0,
    classes: Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
    progress: bool = True,
) -> Classifier:
    """The tutorial's model: ImageNet VGG16, frozen, with a new 2-layer head.

    ``classifier[6]`` (ImageNet's 1000-way layer) is replaced by
    ``Linear(4096, hidden) - ReLU - Dropout - Linear(hidden, num_classes) - LogSoftmax``.
    With the defaults the model has 135,310,404 parameters, of which 1,049,860 (the head)
    are trainable.

    Parameters
    ----------
    num_classes
        Outputs (4: CNV, DME, DRUSEN, NORMAL).
    weights
        ``"IMAGENET1K_V1"`` / ``"DEFAULT"`` / a :class:`torchvision.models.VGG16_Weights`
        member (downloaded once, then cached by torchvision), a path to a local VGG16 state
        dict (offline sites), or ``None`` (random initialisation; for tests).
    hidden
        Width of the head's hidden layer.
    dropout
        Dropout in the head (0.2 as in the tutorial's run; its article used 0.4).
    freeze
        Freeze every pretrained parameter, as the tutorial did.
    except_last_blocks
        With ``freeze``, keep this many final conv blocks trainable (fine-tuning).
    classes
        Class names in output order; the Kermany classes by default.
    preprocessing
        Defaults to the tutorial's 224 px pipelines with ImageNet normalisation.
    progress
        Show a progress bar while downloading weights.

    Returns
    -------
    Classifier
        ``model.network`` is the torchvision VGG; the head is ``model.network.classifier[6]``.

    Raises
    ------
    retinalnet.models.WeightsUnavailableError
        If weights must be downloaded and cannot be; the message says how to work offline.

    Examples
    --------
    >>> from retinalnet.models import parameter_summary, vgg16_transfer
    >>> model = vgg16_transfer(weights=None)  # ImageNet weights: the default
    >>> print(parameter_summary(model))
    135,310,404 parameters, 1,049,860 trainable (0.78%)
    """
    names = _class_names(num_classes, classes)
    if not freeze and except_last_blocks:
        raise ValueError("except_last_blocks needs freeze=True (nothing is frozen otherwise)")
    if not 0 <= except_last_blocks <= _VGG16_BLOCKS:
        raise ValueError(
            f"except_last_blocks must be from 0 to {_VGG16_BLOCKS} (VGG16's conv blocks), "
            f"got {except_last_blocks!r}"
        )
    network = load_vgg16(weights, progress=progress)
    if freeze:
        freeze_model(network, except_last_blocks=except_last_blocks)
    replace_head(network, num_classes, hidden=hidden, dropout=dropout)
    return Classifier(
        network,
        classes=names,
        preprocessing=preprocessing,
        arch="vgg16_transfer",
        arch_kwargs={
            "num_classes": num_classes,
            "hidden": hidden,
            "dropout": dropout,
            "freeze": freeze,
            "except_last_blocks": except_last_blocks,
        },
    )


class SmallCNN(nn.Module):
    """A compact 4-block CNN (conv-BN-ReLU-maxpool) with a :func:`build_head` head.

    Shaped like torchvision's VGG (``features``, ``avgpool``, ``classifier``) so the
    freeze and head helpers work on it.
    """

    def __init__(
        self, num_classes: int = 4, *, width: int = 16, hidden: int = 64, dropout: float = 0.2
    ) -> None:
        super().__init__()
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
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = build_head(channels, num_classes, hidden=hidden, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities for a batch ``(N, 3, H, W)``."""
        features = torch.flatten(self.avgpool(self.features(x)), 1)
        output: torch.Tensor = self.classifier(features)
        return output


def small_cnn(
    *,
    num_classes: int = 4,
    width: int = 16,
    hidden: int = 64,
    dropout: float = 0.2,
    classes: Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
) -> Classifier:
    """A small CNN trained from scratch: the fallback when no pretrained weights are at hand.

    About 100k parameters at ``width=16``; trains on a laptop CPU in seconds per epoch at
    128 px. It is what ``retinalnet demo`` uses offline; for the real Kermany data use
    :func:`vgg16_transfer`.

    Examples
    --------
    >>> from retinalnet.models import small_cnn
    >>> model = small_cnn()
    >>> model.classes
    ('CNV', 'DME', 'DRUSEN', 'NORMAL')
    """
    names = _class_names(num_classes, classes)
    return Classifier(
        SmallCNN(num_classes, width=width, hidden=hidden, dropout=dropout),
        classes=names,
        preprocessing=preprocessing,
        arch="small_cnn",
        arch_kwargs={
            "num_classes": num_classes,
            "width": width,
            "hidden": hidden,
            "dropout": dropout,
        },
    )


_ARCHITECTURES: dict[str, Callable[..., Classifier]] = {
    "vgg16_transfer": vgg16_transfer,
    "small_cnn": small_cnn,
}


def build_model(
    arch: str,
    arch_kwargs: Mapping[str, Any],
    *,
    classes: Sequence[str],
    preprocessing: Preprocessing,
) -> Classifier:
    """Rebuild an untrained model from a checkpoint's architecture config.

    Pretrained weights are never downloaded here (the checkpoint holds all weights).

    Raises
    ------
    ValueError
        If ``arch`` is not a known architecture.
    """
    builder = _ARCHITECTURES.get(arch)
    if builder is None:
        raise ValueError(
            f"unknown architecture {arch!r}; known: {', '.join(sorted(_ARCHITECTURES))}. "
            "For a network built by hand, pass it as model= when loading the checkpoint"
        )
    kwargs = dict(arch_kwargs)
    if arch == "vgg16_transfer":
        kwargs["weights"] = None
    return builder(**kwargs, classes=classes, preprocessing=preprocessing)
