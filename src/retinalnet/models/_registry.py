"""The model registry: one declaration (:class:`ModelSpec`) per architecture name.

Tools read the declaration instead of guessing from the module tree: the head that is
replaced, the feature blocks that fine-tuning unfreezes, the layer Grad-CAM explains.
"""

from __future__ import annotations

import difflib
import inspect
import re
import reprlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
from torch import nn
from torchvision.models import WeightsEnum

from retinalnet._core.bool_options import check_bool

__all__ = [
    "ActivationReshape",
    "BlockSelector",
    "ModelSpec",
    "built",
    "check_name",
    "find_spec",
    "list_models",
    "model_spec",
    "register_model",
    "unknown_arch_message",
]

BlockSelector: TypeAlias = Callable[[Any], Iterable[nn.Module]]
"""Takes the network, gives its feature blocks, first to last.

The network comes in as ``Any``, so ``lambda net: [net.layer1, net.layer2]`` type-checks
(torch types an attribute of an ``nn.Module`` as ``Tensor | Module``); what it gives is
checked whenever it is read: modules of the network holding parameters, disjoint, first to
last.
"""

ActivationReshape: TypeAlias = Callable[[torch.Tensor], torch.Tensor]
"""Turns a layer's activation into ``(N, C, H, W)`` for Grad-CAM."""

_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """The declaration of one architecture: how to build it and where its parts are.

    .. versionadded:: 0.2

    Paths are dotted module names inside the network, as ``network.get_submodule`` takes
    them (``"classifier.6"``, ``"heads.head"``).

    Parameters
    ----------
    name
        Registered name: lower case letters, digits and ``_`` (``"resnet18"``).
    builder
        Makes the network with its original head, torchvision-style:
        ``builder(weights=None | <weights member>, progress=bool, **options)``, e.g.
        :func:`torchvision.models.resnet18`.
    head
        Path of the module that :func:`create_model` replaces by a new head
        (``"fc"`` for ResNet, ``"classifier.6"`` for VGG16).
    feature_blocks
        Takes the network and gives its feature blocks (stages), first to last:
        ``create_model(trainable_blocks=N)`` leaves the last N trainable. Each block is a
        module of the network that holds parameters (a stage, not a single ``ReLU`` or
        ``MaxPool2d``), none inside another, listed in the order the network registers
        them; what it gives is checked wherever it is read (``create_model``, ``freeze``,
        fine-tuning, training), and the network's own containers are never changed.

        .. versionchanged:: 0.2
           Blocks without parameters, names instead of modules, overlapping blocks and
           blocks out of order are refused in one line naming the architecture.
    gradcam_layer
        Path of the module whose output Grad-CAM explains.
    weights
        The builder's torchvision weights enum (``ResNet18_Weights``), or ``None`` for an
        architecture without pretrained weights.
    gradcam_reshape
        Turns the Grad-CAM layer's output into ``(N, C, H, W)`` when it is not (token
        sequences of ViT, channels-last maps of Swin).
    min_size
        Smallest input side the network accepts.
    fixed_size
        The only input side the network accepts (ViT's 224), or ``None``.
    gflops
        Multiply-adds of one forward pass at 224 px, in billions, as torchvision counts
        its ``GFLOPS`` (``None`` if unknown).
    description
        One line for ``retinalnet models`` and the docs.
    default_hidden
        :func:`create_model`'s head width when ``hidden=None``: 0 is a single ``Linear``.
    default_freeze
        :func:`create_model`'s ``freeze`` when ``freeze=None``: ``True`` for pretrained
        backbones, ``False`` for networks trained from scratch.
    exportable
        Whether :func:`retinalnet.export.to_onnx` can export the architecture (checked for
        every registered one by ``tests/test_export_archs.py``). ``False`` needs
        ``export_problem``.

        .. versionadded:: 0.2
    export_problem
        Why the architecture does not export: the layer or operator that fails, said in
        the error :func:`~retinalnet.export.to_onnx` raises.

        .. versionadded:: 0.2

    Raises
    ------
    ValueError
        If the name (not a str, or not lower case) or a size is malformed, ``fixed_size``
        is below ``min_size``, ``default_hidden`` is not an int >= 0, or a path is empty.
    TypeError
        If ``builder`` is not callable or does not take the keyword arguments ``weights``
        and ``progress``.

    Examples
    --------
    >>> from torchvision.models import ResNet18_Weights, resnet18
    >>> from retinalnet.models import ModelSpec, register_model
    >>> spec = ModelSpec(
    ...     name="my_resnet18",
    ...     builder=resnet18,
    ...     weights=ResNet18_Weights,
    ...     head="fc",
    ...     feature_blocks=lambda net: [net.layer1, net.layer2, net.layer3, net.layer4],
    ...     gradcam_layer="layer4",
    ...     min_size=1,
    ... )
    >>> register_model(spec)  # doctest: +SKIP
    """

    name: str
    builder: Callable[..., nn.Module]
    head: str
    feature_blocks: BlockSelector
    gradcam_layer: str
    weights: type[WeightsEnum] | None = None
    gradcam_reshape: ActivationReshape | None = None
    min_size: int = 32
    fixed_size: int | None = None
    gflops: float | None = None
    description: str = ""
    default_hidden: int = 0
    default_freeze: bool = True
    exportable: bool = True
    export_problem: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(
                f"model name {self.name!r} must be lower case letters, digits and _, starting "
                "with a letter (like 'resnet18')"
            )
        if not self.head or not self.gradcam_layer:
            raise ValueError(f"{self.name}: head and gradcam_layer must be module paths")
        _check_builder(self.name, self.builder)
        if self.min_size < 1 or (self.fixed_size is not None and self.fixed_size < self.min_size):
            raise ValueError(
                f"{self.name}: need min_size >= 1 and fixed_size >= min_size, got "
                f"min_size={self.min_size!r}, fixed_size={self.fixed_size!r}"
            )
        for flag in ("default_freeze", "exportable"):
            object.__setattr__(self, flag, check_bool(getattr(self, flag), flag))
        hidden = self.default_hidden
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"{self.name}: default_hidden must be an int >= 0, got {hidden!r}")
        if not self.exportable and not self.export_problem:
            raise ValueError(
                f"{self.name}: exportable=False needs export_problem, the layer or operator "
                "that fails to export (it goes into the error message)"
            )

    @property
    def default_weights(self) -> WeightsEnum | None:
        """The weights ``weights="DEFAULT"`` means (``None``: no pretrained weights)."""
        return None if self.weights is None else self.weights.DEFAULT


def _check_builder(name: str, builder: object) -> None:
    """Refuse a builder that ``create_model`` could not call as
    ``builder(weights=..., progress=..., **options)`` (one whose signature cannot be read
    is taken as it is).

    Raises
    ------
    TypeError
        Naming the architecture, the builder and its signature.
    """
    fix = (
        "a builder takes them as keywords, torchvision-style: "
        "def build(*, weights=None, progress=True, **options) -> nn.Module"
    )
    if not callable(builder):
        raise TypeError(
            f"{name}: ModelSpec.builder must be a function that makes the network, got "
            f"{type(builder).__name__} {' '.join(reprlib.repr(builder).split())}; {fix}"
        )
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # a builtin or an object without a readable signature
        return
    parameters = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    keywords = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    taken = {p.name for p in parameters if p.kind in keywords}
    missing = [keyword for keyword in ("weights", "progress") if keyword not in taken]
    if missing:
        label = getattr(builder, "__name__", type(builder).__name__)
        raise TypeError(
            f"{name}: ModelSpec.builder {label}{signature} does not take "
            f"{' and '.join(f'{keyword}=' for keyword in missing)}, which create_model "
            f"passes; {fix}"
        )


def built(spec: ModelSpec, network: object) -> nn.Module:
    """What ``spec``'s builder returned, if it is a network.

    Raises
    ------
    TypeError
        Naming the architecture, the ``ModelSpec`` field and what the builder returned.
    """
    if not isinstance(network, nn.Module):
        shown = type(network).__name__
        if isinstance(network, tuple | list):
            shown += f" of {', '.join(type(item).__name__ for item in network[:4])}"
            shown += ", ..." if len(network) > 4 else ""
        else:
            shown += f" {' '.join(reprlib.repr(network).split())}"
        raise TypeError(
            f"{spec.name}: ModelSpec.builder returned {shown}, not a torch.nn.Module; a "
            "builder returns the network itself (return Net(), not (net, extra))"
        )
    return network


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add an architecture to the registry, so that :func:`create_model`, checkpoints and
    ``retinalnet train --arch`` know it by name.

    .. versionadded:: 0.2

    Returns
    -------
    ModelSpec
        ``spec``, unchanged.

    Raises
    ------
    ValueError
        If an architecture of that name is already registered.
    TypeError
        If ``spec`` is not a :class:`ModelSpec`.

    Examples
    --------
    >>> from retinalnet.models import list_models, register_model
    >>> register_model(spec)  # doctest: +SKIP
    >>> "my_resnet18" in list_models()  # doctest: +SKIP
    True
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"register_model takes a ModelSpec, got {type(spec).__name__}")
    existing = _REGISTRY.get(spec.name)
    if existing is not None:
        raise ValueError(
            f"a model named {spec.name!r} is already registered "
            f"({existing.description or 'no description'}); register yours under another name"
        )
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    """Names of the registered architectures, sorted.

    .. versionadded:: 0.2

    Examples
    --------
    >>> from retinalnet.models import list_models
    >>> list_models()[:3]
    ['convnext_small', 'convnext_tiny', 'densenet121']
    """
    return sorted(_REGISTRY)


def find_spec(name: str | None) -> ModelSpec | None:
    """The spec registered as ``name``, or ``None`` (never raises; ``None`` for a name that
    is not a str)."""
    return _REGISTRY.get(name) if isinstance(name, str) else None


def check_name(name: object, argument: str = "name") -> str:
    """``name`` if it is a str; a TypeError naming ``argument`` if not (before any lookup).

    Raises
    ------
    TypeError
        If ``name`` is not a str.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"{argument} must be a str naming a registered architecture, got "
            f"{type(name).__name__} {name!r}; list_models() gives the names"
        )
    return name


def unknown_arch_message(name: str) -> str:
    """``unknown architecture 'x'; did you mean 'y'? known: a, b, ...`` (no final stop)."""
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    guess = f"; did you mean {close[0]!r}?" if close else ";"
    return f"unknown architecture {name!r}{guess} known: {', '.join(list_models())}"


def model_spec(name: str) -> ModelSpec:
    """The declaration registered as ``name``.

    .. versionadded:: 0.2

    Raises
    ------
    TypeError
        If ``name`` is not a str.
    ValueError
        If no architecture has that name; the message lists the registered names and
        the closest one.

    Examples
    --------
    >>> from retinalnet.models import model_spec
    >>> model_spec("resnet18").head
    'fc'
    >>> model_spec("resnet18").gradcam_layer
    'layer4'
    """
    spec = _REGISTRY.get(check_name(name))
    if spec is None:
        raise ValueError(
            f"{unknown_arch_message(name)}. Register a new one with register_model(ModelSpec(...))"
        )
    return spec
