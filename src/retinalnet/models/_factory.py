"""Building registered models: :func:`create_model`, and :func:`build_model` for checkpoints
(:mod:`._info` counts their parameters)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models import WeightsEnum

from retinalnet._core.bool_options import check_bool, check_optional_bool
from retinalnet._core.classes import KERMANY_CLASSES
from retinalnet._core.counts import as_integer
from retinalnet._core.default_dtype import in_float32
from retinalnet.models._block_checks import feature_blocks_of
from retinalnet.models._builder_options import (
    build_network,
    check_options,
    check_size_options,
)
from retinalnet.models._checks import check_class_names, check_input_size, check_int
from retinalnet.models._classifier import Classifier
from retinalnet.models._freeze import freeze as freeze_model
from retinalnet.models._head import build_head, check_head_args
from retinalnet.models._registry import (
    ModelSpec,
    check_name,
    find_spec,
    model_spec,
    unknown_arch_message,
)
from retinalnet.models._weights import WeightsArg, load_network, resolve_weights
from retinalnet.transforms import Preprocessing, check_preprocessing

__all__ = ["build_model", "class_names", "create", "create_model", "without_weights"]

logger = logging.getLogger(__name__)


def class_names(num_classes: int | None, classes: Sequence[str] | None) -> tuple[str, ...]:
    """The given names, checked against ``num_classes`` (``None``: as many as the names,
    four without names); Kermany's or ``class_<i>`` if none.

    Raises
    ------
    TypeError
        If ``classes`` is a string, a set or a mapping rather than a list of names, or
        holds a name that is not a string.
    ValueError
        If ``num_classes`` is not an int >= 2, the names are not 2 or more distinct,
        non-blank names, or their number differs from ``num_classes``.
    """
    if num_classes is not None:
        check_int(num_classes, "num_classes", 2)
    if classes is None:
        if num_classes is None or num_classes == len(KERMANY_CLASSES):
            return KERMANY_CLASSES
        return tuple(f"class_{i}" for i in range(num_classes))
    names = check_class_names(classes)  # before the network is built
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(
            f"num_classes={num_classes} but {len(names)} class names were given "
            f"({list(names)!r}); make them agree"
        )
    return names


def _in_features(old_head: nn.Module, network: nn.Module, spec: ModelSpec) -> int:
    linear = next((m for m in old_head.modules() if isinstance(m, nn.Linear)), None)
    if linear is not None:
        return int(linear.in_features)
    width = getattr(network, "num_features", None)
    if isinstance(width, int):
        return width
    raise TypeError(
        f"{spec.name}: the head {spec.head!r} ({type(old_head).__name__}) holds no nn.Linear "
        "and the network has no integer num_features: cannot tell the head's input width"
    )


def _replace(network: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    setattr(network.get_submodule(parent_path) if parent_path else network, name, module)


def _count_blocks(spec: ModelSpec, options: Mapping[str, object]) -> int | None:
    """Feature blocks of the architecture, from a structure-only build (None if impossible),
    checked as when they are read (:func:`~retinalnet.models._block_checks.feature_blocks_of`)."""
    try:
        with torch.device("meta"):
            network = build_network(spec, weights=None, progress=False, options=options)
            owner = f"ModelSpec.feature_blocks of {spec.name!r}"
            return len(feature_blocks_of(network, spec.feature_blocks, owner))
    except NotImplementedError:  # builders that compute with tensors (RegNet) need real ones
        return None


def _check_blocks(spec: ModelSpec, count: int | None, blocks: int, name: str) -> None:
    if count is not None and not 0 <= blocks <= count:
        raise ValueError(
            f"{name} must be from 0 to {count} ({spec.name}'s feature blocks), got {blocks!r}"
        )


def _check_size(spec: ModelSpec, preprocessing: Preprocessing, weights: object) -> None:
    if spec.fixed_size is not None and isinstance(weights, WeightsEnum):
        side = int(weights.meta.get("min_size", (spec.fixed_size,))[0])
        if side != spec.fixed_size:
            raise ValueError(
                f"{type(weights).__name__}.{weights.name} takes {side} px inputs, but "
                f"{spec.name} is declared for {spec.fixed_size} px; use weights='DEFAULT'"
            )
    check_input_size(spec, preprocessing)  # the Classifier checks it again, once built


def create(
    spec: ModelSpec,
    *,
    num_classes: int | None,
    weights: WeightsArg,
    freeze: bool | None,
    trainable_blocks: int,
    hidden: int | None,
    dropout: float,
    classes: Sequence[str] | None,
    preprocessing: Preprocessing | None,
    progress: bool,
    options: Mapping[str, object],
    blocks_name: str = "trainable_blocks",
    warn_random: bool = True,
    saved: bool = False,
) -> Classifier:
    """:func:`create_model` for a spec; ``blocks_name`` is the name errors give
    ``trainable_blocks`` (``except_last_blocks`` when called by the 0.1 builders).
    ``warn_random=False`` for builds whose weights come from elsewhere (a checkpoint) or
    that only count parameters. ``saved=True`` for a saved config (a checkpoint's): it
    may hold what a user is now refused for changing nothing (a dropout without a hidden
    layer, ViT's ``image_size=224``), and loads as before. The network is built in
    float32, whatever torch's default dtype is (see
    :func:`~retinalnet._core.default_dtype.in_float32`)."""
    if not saved:  # a saved config holds what built the model then ("no" froze it)
        freeze = check_optional_bool(freeze, "freeze")  # "no" read as True froze it
    progress = check_bool(progress, "progress")
    preprocessing = check_preprocessing(preprocessing)
    check_options(spec, options)  # before anything is built or downloaded
    check_size_options(spec, options, saved=saved)
    names = class_names(num_classes, classes)
    num_classes = len(names)
    freeze = spec.default_freeze if freeze is None else freeze
    hidden = spec.default_hidden if hidden is None else hidden
    check_head_args(hidden, dropout, saved=saved)  # before downloading
    blocks = as_integer(trainable_blocks)
    if blocks is None:
        raise ValueError(f"{blocks_name} must be an int >= 0, got {trainable_blocks!r}")
    trainable_blocks = blocks
    if not freeze and trainable_blocks > 0:
        raise ValueError(f"{blocks_name} needs freeze=True (nothing is frozen otherwise)")
    if trainable_blocks < 0:
        raise ValueError(f"{blocks_name} must be an int >= 0, got {trainable_blocks!r}")
    resolved = resolve_weights(weights, spec)
    prep = preprocessing if preprocessing is not None else Preprocessing()
    _check_size(spec, prep, resolved)
    if trainable_blocks and isinstance(resolved, WeightsEnum):  # fail before downloading
        _check_blocks(spec, _count_blocks(spec, options), trainable_blocks, blocks_name)
    network = load_network(spec, resolved, progress=progress, **options)
    old_head = network.get_submodule(spec.head)
    head = build_head(  # no hidden layer: no dropout (a saved config may give one)
        _in_features(old_head, network, spec),
        num_classes,
        hidden=hidden,
        dropout=dropout if hidden else 0.0,
    )
    _replace(network, spec.head, head)
    model = Classifier(
        network,
        classes=names,
        preprocessing=prep,
        arch=spec.name,
        arch_kwargs={
            "num_classes": num_classes,
            "hidden": hidden,
            "dropout": dropout,
            "freeze": freeze,
            "trainable_blocks": trainable_blocks,
            **options,
        },
    )
    # float32, as checkpoints and pretrained weights are, whatever torch's default dtype is
    # (a float64 default gives float64 modules, which every door refuses); the default is
    # the process's, shared by its threads, and is never switched
    in_float32(model)
    declared = model.feature_block_modules()  # the spec's declaration, checked here once
    if freeze:
        _check_blocks(spec, len(declared), trainable_blocks, blocks_name)
        freeze_model(model, trainable_blocks=trainable_blocks)
        head.requires_grad_(True)
        if warn_random and resolved is None and spec.default_weights is not None:
            logger.warning(
                "%s: random weights (weights=None) in a frozen backbone: only the head will "
                "learn, on features that mean nothing; fine for tests, but for results use "
                "pretrained weights (weights='DEFAULT' or a file)",
                spec.name,
            )
    return model


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    weights: WeightsArg = "DEFAULT",
    freeze: bool | None = None,
    trainable_blocks: int = 0,
    hidden: int | None = None,
    dropout: float = 0.2,
    classes: Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
    progress: bool = True,
    **options: object,
) -> Classifier:
    """Build a registered architecture with a new classification head.

    The network comes from the spec's builder with the given weights; the module at the
    spec's ``head`` path is replaced by :func:`build_head` (ending in ``LogSoftmax``);
    with ``freeze`` every other parameter stops training except the last
    ``trainable_blocks`` feature blocks. The model records ``arch=name`` and its keyword
    arguments, so a checkpoint rebuilds it by name (:func:`build_model`).

    .. versionadded:: 0.2

    Parameters
    ----------
    name
        A registered name (:func:`list_models`; ``retinalnet models`` shows them).
    num_classes
        Outputs: as many as ``classes`` when they are given, else 4 (CNV, DME, DRUSEN,
        NORMAL).
    weights
        ``"DEFAULT"`` (the architecture's best torchvision weights; random for
        ``small_cnn``, which has none), a weights name such as ``"IMAGENET1K_V1"`` or enum
        member (downloaded once, then cached by torchvision), the path of a local
        state-dict file (offline sites; see :func:`cached_weights_path`), or ``None``
        (random initialisation; for tests: with ``freeze``, a warning is logged, since only
        the head then learns, on random features).
    freeze
        Freeze everything but the new head. ``None``: the architecture's default (``True``
        for pretrained backbones, ``False`` for ``small_cnn``).
    trainable_blocks
        With ``freeze``, also leave the last this many feature blocks trainable
        (fine-tuning; :meth:`Classifier.feature_block_modules` lists them).
    hidden
        Width of the head's hidden layer; 0 for a single ``Linear``; ``None``: the
        architecture's default (256 for ``vgg16_transfer``, 64 for ``small_cnn``, 0 for the
        torchvision backbones).
    dropout
        Dropout in the head, after the hidden layer. Without one (``hidden=0``) the head
        has no dropout, so only 0 and the default are taken: pass ``hidden=`` with it.
        It is not the network's own dropout (EfficientNet's, MobileNetV3's), which stays.
    classes
        Class names in output order; the Kermany classes by default. A study of some of
        them takes the data's: ``create_model(arch, classes=train.classes)`` for
        ``KermanyOCT(root, "train", classes=["CNV", "NORMAL"])``.
    preprocessing
        Defaults to 224 px pipelines with ImageNet normalisation.
    progress
        Show a progress bar while downloading weights.
    **options
        Passed on to the architecture's builder and recorded (plain values only), e.g.
        ``width=8`` for ``small_cnn``. Options the builder sets itself (DenseNet-121's
        ``growth_rate``) cannot be changed and are refused, as are input-size options
        (``image_size``) of a fixed-size network (``vit_b_16``): its size comes from
        ``preprocessing``.

    Returns
    -------
    Classifier
        ``model.network`` is the torchvision network; ``model.head_module()`` the new head.

    Raises
    ------
    TypeError
        If ``name`` is not a str, ``classes`` is a string, a set or a mapping rather than
        a list of names (or holds a name that is not a string), or ``options`` holds one
        the architecture does not take, or whose value its builder sets itself (the
        message names those it takes, and for a preprocessing setting such as ``size=32``
        says ``preprocessing=Preprocessing(size=32)``), ``preprocessing`` is not a
        :class:`~retinalnet.transforms.Preprocessing`, or ``freeze`` or ``progress`` is
        not ``True`` or ``False`` (the text ``"no"`` included: also a ValueError).
    ValueError
        If ``name`` is unknown (the message lists the names and the closest one), an
        argument is out of range (``num_classes`` < 2, ``hidden`` < 0, ``dropout`` outside
        ``[0, 1)``, ...), ``dropout`` would change nothing (``hidden=0``), the class names
        are not 2 or more distinct, non-blank names, or ``preprocessing.size`` does not
        suit the network.
    WeightsUnavailableError
        If weights must be downloaded and cannot be; the message says how to work offline.

    Examples
    --------
    >>> from retinalnet.models import create_model, parameter_summary
    >>> model = create_model("resnet18", weights=None)  # "DEFAULT": ImageNet weights
    >>> print(parameter_summary(model))
    11,178,564 parameters, 2,052 trainable (0.02%)
    >>> tuned = create_model("resnet18", weights=None, trainable_blocks=1)  # + layer4
    """
    return create(
        model_spec(name),
        num_classes=num_classes,
        weights=weights,
        freeze=freeze,
        trainable_blocks=trainable_blocks,
        hidden=hidden,
        dropout=dropout,
        classes=classes,
        preprocessing=preprocessing,
        progress=progress,
        options=options,
    )


def build_model(
    arch: str,
    arch_kwargs: Mapping[str, Any],
    *,
    classes: Sequence[str],
    preprocessing: Preprocessing,
) -> Classifier:
    """Rebuild an untrained model from a checkpoint's architecture config.

    Any registered architecture; pretrained weights are never downloaded here (the
    checkpoint holds all weights). 0.1 configs load too (``except_last_blocks``, and
    ``hidden=None`` for a single-``Linear`` head).

    .. versionchanged:: 0.2
       Every registered architecture, not only ``vgg16_transfer`` and ``small_cnn``.

    Raises
    ------
    TypeError
        If ``arch`` is not a str, ``classes`` is not a list of names, or ``arch_kwargs``
        holds a setting the architecture does not take.
    ValueError
        If ``arch`` is not a registered architecture, or the class names or a setting are
        refused as by :func:`create_model`.
    """
    check_name(arch, "arch")
    if find_spec(arch) is None:
        raise ValueError(
            f"{unknown_arch_message(arch)}. For a network built by hand, pass it as model= "
            "when loading the checkpoint"
        )
    kwargs: dict[str, Any] = dict(arch_kwargs)
    if "except_last_blocks" in kwargs:  # 0.1 name
        kwargs["trainable_blocks"] = kwargs.pop("except_last_blocks")
    if "hidden" in kwargs and kwargs["hidden"] is None:  # 0.1: None was a single Linear
        kwargs["hidden"] = 0
    for key in ("weights", "classes", "preprocessing", "progress"):
        kwargs.pop(key, None)
    return without_weights(arch, classes=classes, preprocessing=preprocessing, **kwargs)


def without_weights(
    name: str,
    *,
    num_classes: int | None = None,
    freeze: bool | None = None,
    trainable_blocks: int = 0,
    hidden: int | None = None,
    dropout: float = 0.2,
    classes: Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
    **options: object,
) -> Classifier:
    """:func:`create_model` with random weights that are about to be replaced or only
    counted, so without the random-weights warning, for a saved config (see
    :func:`create`'s ``saved``)."""
    return create(
        model_spec(name),
        num_classes=num_classes,
        weights=None,
        freeze=freeze,
        trainable_blocks=trainable_blocks,
        hidden=hidden,
        dropout=dropout,
        classes=classes,
        preprocessing=preprocessing,
        progress=False,
        options=options,
        warn_random=False,
        saved=True,
    )
