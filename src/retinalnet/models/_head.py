"""Classification heads: build one, or swap one onto a torchvision-style backbone."""

from __future__ import annotations

import math
from typing import Final

from torch import nn

from retinalnet._core.bool_options import check_bool
from retinalnet._core.counts import as_number
from retinalnet.models._checks import check_int, check_module

__all__ = ["DEFAULT_DROPOUT", "build_head", "check_head_args", "find_output_layer", "replace_head"]

DEFAULT_DROPOUT: Final = 0.2
"""The head's dropout when none is given (the tutorial's run)."""


def check_head_args(hidden: int | None, dropout: float, *, saved: bool = False) -> None:
    """Refuse a ``hidden`` width or ``dropout`` that :func:`build_head` cannot take, or a
    ``dropout`` it would not use.

    ``saved=True`` lets through a dropout without a hidden layer, which configs saved
    before it was refused may hold (the head built is the same: a single ``Linear``).

    Raises
    ------
    ValueError
        If ``hidden`` is not ``None`` or an int >= 0, ``dropout`` is not a number in
        ``[0, 1)``, or ``dropout`` is neither 0 nor the default 0.2 while ``hidden`` is 0
        or ``None`` (a single ``Linear``, which has no dropout), naming ``hidden=`` as the
        fix.
    """
    if hidden is not None:
        check_int(hidden, "hidden", 0, " (0 or None: a single Linear)")
    rate = as_number(dropout)
    if rate is None or not math.isfinite(rate) or not 0 <= rate < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    # the default as float32 (a value read from a tensor or an array) is the default
    is_default = math.isclose(rate, DEFAULT_DROPOUT, rel_tol=1e-6)
    if not hidden and rate != 0 and not is_default and not saved:
        raise ValueError(
            f"dropout={dropout!r} would change nothing: the head's dropout comes after its "
            f"hidden layer, and hidden={hidden!r} gives a single Linear; pass hidden= a width "
            "too (hidden=256, as the tutorial's head), or leave dropout out"
        )


def build_head(
    in_features: int,
    num_classes: int = 4,
    *,
    hidden: int | None = 256,
    dropout: float = 0.2,
    log_softmax: bool = True,
) -> nn.Sequential:
    """The tutorial's head: ``Linear-ReLU-Dropout-Linear-LogSoftmax``.

    Parameters
    ----------
    in_features
        Width of the features fed in (4096 for VGG16's classifier).
    num_classes
        Number of outputs.
    hidden
        Width of the hidden layer; ``None`` or 0 gives a single ``Linear``.
    dropout
        Dropout probability after the hidden layer (0.2 in the tutorial's run). Without a
        hidden layer there is none: only 0 and the default are taken then.
    log_softmax
        End with ``LogSoftmax`` so the output pairs with ``NLLLoss`` (the tutorial's setup).

    Returns
    -------
    torch.nn.Sequential
        A fresh, trainable head.

    Raises
    ------
    ValueError
        If ``in_features`` is not an int >= 1, ``num_classes`` not an int >= 2, ``hidden``
        not ``None`` or an int >= 0, or ``dropout`` not a number in ``[0, 1)``, or neither
        0 nor the default 0.2 without a hidden layer (it would change nothing), or
        ``log_softmax`` is not ``True`` or ``False``.

    Examples
    --------
    >>> from retinalnet.models import build_head
    >>> head = build_head(4096, 4)
    >>> sum(p.numel() for p in head.parameters())
    1049860
    """
    check_int(in_features, "in_features", 1)
    check_int(num_classes, "num_classes", 2)
    check_head_args(hidden, dropout)
    log_softmax = check_bool(log_softmax, "log_softmax")  # "no" would add the layer
    layers: list[nn.Module] = []
    if hidden:
        layers += [nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(float(dropout))]
        in_features = hidden
    layers.append(nn.Linear(in_features, num_classes))
    if log_softmax:
        layers.append(nn.LogSoftmax(dim=1))
    return nn.Sequential(*layers)


def find_output_layer(network: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """Find a classification network's last ``Linear`` layer.

    That is ``classifier[6]`` in VGG, ``fc`` in ResNet, ``classifier[-1]`` in EfficientNet
    and MobileNet, ``heads.head`` in ViT.

    Returns
    -------
    parent : torch.nn.Module
        The module holding the layer.
    name : str
        The layer's attribute name in ``parent`` (``getattr(parent, name) is layer``).
    layer : torch.nn.Linear
        The output layer.

    Raises
    ------
    TypeError
        If ``network`` is not a module, or has no ``Linear`` layer.
    """
    check_module(network, "find_output_layer")
    found: tuple[nn.Module, str, nn.Linear] | None = None
    for parent in network.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                found = (parent, name, child)
    if found is None:
        raise TypeError(
            f"{type(network).__name__} has no nn.Linear layer to replace; pass a "
            "torchvision-style classification network (VGG, ResNet, EfficientNet, ...)"
        )
    return found


def replace_head(
    network: nn.Module,
    num_classes: int = 4,
    *,
    hidden: int | None = 256,
    dropout: float = 0.2,
    log_softmax: bool = True,
) -> nn.Sequential:
    """Replace a network's output layer with :func:`build_head`, in place.

    Parameters
    ----------
    network
        A torchvision-style classification network.
    num_classes, hidden, dropout, log_softmax
        As in :func:`build_head`; its input width is taken from the layer replaced.

    Returns
    -------
    torch.nn.Sequential
        The new head, now part of ``network``.

    Raises
    ------
    TypeError
        If ``network`` is not a module, has no ``Linear`` layer, or names its outputs (a
        :class:`~retinalnet.models.Classifier`, whose ``classes`` would then be stale).
    ValueError
        If an argument is out of range (see :func:`build_head`).

    Examples
    --------
    >>> from torchvision.models import resnet18
    >>> from retinalnet.models import replace_head
    >>> net = resnet18(weights=None)
    >>> head = replace_head(net, 4)
    >>> net.fc is head
    True
    """
    check_module(network, "replace_head")
    named = getattr(network, "classes", None)
    if named is not None:  # a Classifier: its class names would go on naming the old outputs
        raise TypeError(
            f"replace_head changes a plain network's outputs, but this {type(network).__name__} "
            f"names its outputs {list(named)}: they would then name the wrong ones. Build a "
            "model of other classes with create_model(arch, classes=[...]), or replace the head "
            "of model.network and wrap it again: Classifier(network, classes=[...])"
        )
    parent, name, layer = find_output_layer(network)
    head = build_head(
        layer.in_features, num_classes, hidden=hidden, dropout=dropout, log_softmax=log_softmax
    )
    setattr(parent, name, head)
    return head
