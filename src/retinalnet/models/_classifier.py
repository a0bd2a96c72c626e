"""A network bundled with what it needs to be used: class names, preprocessing, config, and
the declaration of its parts (head, feature blocks, Grad-CAM layer).

Why this module is long: :class:`Classifier` is what every door receives, so each thing it
carries is checked where it is given, in this one class (the declared paths and blocks, the
class names, the preprocessing's size against the registered architecture, the
temperature), and its docstring is the manual of each; splitting the checks from the class
would leave one of them to be forgotten at some door.
"""

from __future__ import annotations

import logging
import math
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from retinalnet._core.counts import as_number
from retinalnet._core.python_values import python_values
from retinalnet.models._block_checks import feature_blocks_of
from retinalnet.models._checks import (
    InputSizes,
    check_batch_side,
    check_class_names,
    check_input_size,
    check_module,
    network_sizes,
)
from retinalnet.models._fallback import GradCamTarget, guess_feature_blocks, guess_gradcam_target
from retinalnet.models._head import find_output_layer
from retinalnet.models._registry import ActivationReshape, BlockSelector, ModelSpec, find_spec
from retinalnet.transforms import Preprocessing, check_preprocessing

__all__ = ["Classifier", "declared_feature_blocks", "network_of"]

logger = logging.getLogger(__name__)

_PREPARE = "prepare images with the model's preprocessing (model.preprocessing.prepare)"
"""The fix named when a batch is not of the size the network takes."""


def _check_path(network: nn.Module, path: str, argument: str) -> None:
    try:
        network.get_submodule(path)
    except AttributeError:
        children = [name for name, _ in network.named_children()]
        raise ValueError(
            f"{argument}={path!r} is not a module of {type(network).__name__}; give a dotted "
            f"path such as network.get_submodule() takes (its children: {children})"
        ) from None


def _block_paths(feature_blocks: object) -> tuple[str, ...]:
    """``feature_blocks`` given as paths, as a tuple of them.

    Raises
    ------
    TypeError
        If it is a string, or not a list of strings (modules, say).
    """
    if isinstance(feature_blocks, str):
        raise TypeError(
            f"feature_blocks must be a list of module paths, got the string "
            f"{feature_blocks!r}; write [{feature_blocks!r}]"
        )
    if not isinstance(feature_blocks, Iterable):
        raise TypeError(
            "feature_blocks must be a list of module paths or a function of the network, got "
            f"{type(feature_blocks).__name__} {reprlib.repr(feature_blocks)}"
        )
    paths = tuple(feature_blocks)
    for path in paths:
        if not isinstance(path, str):
            raise TypeError(
                f"feature_blocks must be module paths (strings), got {type(path).__name__} "
                f"{reprlib.repr(path)}; give the paths (['layer1', 'layer2']) or a function "
                "that returns the modules (lambda net: [net.layer1, net.layer2])"
            )
    return paths


def _declared_by(network: nn.Module) -> str:
    """Who declared a Classifier's own feature blocks, as errors name it."""
    return f"Classifier(feature_blocks=...) of {type(network).__name__}"


def declared_feature_blocks(model: Classifier) -> list[nn.Module] | None:
    """The feature blocks ``model`` declares (its own, else its registered spec's), a new
    list, checked (see :func:`~retinalnet.models._block_checks.feature_blocks_of`); ``None`` when
    it declares none (the structure guess applies).

    Raises
    ------
    TypeError, ValueError
        If the declaration gives what is not feature blocks of the network: names, blocks
        without parameters, overlapping blocks or blocks out of order; the message names
        the declaration (the ``ModelSpec`` of the architecture, or the Classifier's own).
    """
    if model._feature_blocks is not None:
        return feature_blocks_of(model.network, model._feature_blocks, _declared_by(model.network))
    spec = model.spec
    if spec is None:
        return None
    owner = f"ModelSpec.feature_blocks of {spec.name!r}"
    return feature_blocks_of(model.network, spec.feature_blocks, owner)


def _input_convolution(network: nn.Module) -> tuple[str, int] | None:
    """The path and ``in_channels`` of the network's first ``Conv2d`` when it is also its
    first module with parameters (its input layer, as far as registration order tells)."""
    for name, module in network.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module.in_channels
        if any(True for _ in module.parameters(recurse=False)):
            return None
    return None


class Classifier(nn.Module):
    """An image classifier that carries its class names, preprocessing and declaration.

    The class mapping and the preprocessing travel with the model, into checkpoints and
    into :class:`~retinalnet.Predictor`, so inference always prepares images the way
    training did and reports the right names.

    Tools find the network's parts through :meth:`head_module`,
    :meth:`feature_block_modules` and :meth:`gradcam_target`. Each answer comes from, in
    order: the declaration given here; the :class:`~retinalnet.models.ModelSpec` registered
    as ``arch``; the 0.1 structure guesses (:func:`~retinalnet.models.find_output_layer`,
    VGG/ResNet-style feature blocks, the last ``Conv2d``), logged at debug level as the
    fallback.

    Parameters
    ----------
    network
        Any module mapping a batch ``(N, 3, H, W)`` to ``(N, num_classes)`` scores: logits,
        or log-probabilities (the builders here end in ``LogSoftmax``); not probabilities
        (no ``Softmax`` at the end) and not a tuple or a dict. Its first convolution takes
        the 3 channels the preprocessing gives (a grayscale scan repeated).
    classes
        Class names in output order: a list (or any ordered collection) of strings.
    preprocessing
        How images are prepared for ``network``.
    arch, arch_kwargs
        Name and keyword arguments of the registered architecture that made ``network``,
        so a checkpoint can rebuild it (see :func:`retinalnet.models.build_model`). ``None``
        for a network built by hand; such a checkpoint needs the network passed in when it
        is loaded.
    head
        Path of the network's classification head (``"fc"``), for the feature cache and
        tools that reset it.
    feature_blocks
        The network's feature blocks, first to last, for :func:`freeze`: module paths
        (``["layer1", "layer2", "layer3", "layer4"]``) or a function of the network
        (``lambda net: [net.layer1, net.layer2]``). Each block holds parameters (a stage,
        not a single ``ReLU`` or ``MaxPool2d``); blocks are disjoint (no block inside
        another) and in the order the network registers its modules. Both forms are checked
        when the Classifier is built (a function is called once there) and whenever they
        are read.

        .. versionchanged:: 0.2
           A function's blocks are checked as paths are, and blocks without parameters
           are refused.
    gradcam_layer
        Path of the module whose output Grad-CAM explains (``"layer4"``).
    gradcam_reshape
        Turns that module's output into ``(N, C, H, W)`` when it is not (token outputs);
        needs ``gradcam_layer``.

        .. versionadded:: 0.2
           ``head``, ``feature_blocks``, ``gradcam_layer`` and ``gradcam_reshape``.
    temperature
        The calibration temperature ``T`` (see :attr:`temperature`); 1.0, uncalibrated, by
        default.

        .. versionadded:: 0.2

    Raises
    ------
    TypeError
        If ``network`` is not a module, ``classes`` is a string, a set or a mapping rather
        than a list of names (or holds a name that is not a string), or ``preprocessing``,
        ``arch``, ``arch_kwargs`` or ``feature_blocks`` is of the wrong type (a function
        returning names rather than modules included).
    ValueError
        If the class names are not 2 or more distinct, non-blank names, a declared path is
        not a module of ``network``, a feature block holds no parameters, feature blocks
        overlap or are not listed first to last, ``gradcam_reshape`` comes without
        ``gradcam_layer``, ``temperature`` is
        not a finite number > 0, or ``arch`` is registered and its network does not take
        ``preprocessing.size`` (ViT-B/16: 224 px only; see :attr:`preprocessing`). When
        the network fails on images ``(N, C, H, W)`` whose channels its first convolution
        does not take (a 1-channel network given the preprocessing's 3 channels), naming
        the fix.

    Attributes
    ----------
    network : torch.nn.Module
        The wrapped network (for VGG16, ``network.classifier[6]`` is the new head).

    Examples
    --------
    >>> from torchvision.models import resnet18
    >>> from retinalnet.models import Classifier, replace_head
    >>> net = resnet18(weights=None)
    >>> _ = replace_head(net, 2)
    >>> model = Classifier(
    ...     net,
    ...     classes=["NORMAL", "CNV"],
    ...     head="fc",
    ...     feature_blocks=["layer1", "layer2", "layer3", "layer4"],
    ...     gradcam_layer="layer4",
    ... )
    >>> model.head_module()[0]
    'fc'
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        classes: Sequence[str],
        preprocessing: Preprocessing | None = None,
        arch: str | None = None,
        arch_kwargs: Mapping[str, Any] | None = None,
        head: str | None = None,
        feature_blocks: BlockSelector | Sequence[str] | None = None,
        gradcam_layer: str | None = None,
        gradcam_reshape: ActivationReshape | None = None,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        check_module(network, "Classifier", "network")
        names = check_class_names(classes)
        check_preprocessing(preprocessing)
        if arch is not None and not isinstance(arch, str):
            raise TypeError(
                f"arch must be a str (a registered architecture's name) or None, got {arch!r}"
            )
        if arch_kwargs is not None and not isinstance(arch_kwargs, Mapping):
            raise TypeError(
                "arch_kwargs must be a mapping of keyword arguments or None, got "
                f"{type(arch_kwargs).__name__} {reprlib.repr(arch_kwargs)}"
            )
        if gradcam_reshape is not None and gradcam_layer is None:
            raise ValueError("gradcam_reshape needs gradcam_layer: the layer it reshapes")
        for path, argument in ((head, "head"), (gradcam_layer, "gradcam_layer")):
            if path is not None:
                _check_path(network, path, argument)
        if feature_blocks is not None and not callable(feature_blocks):
            feature_blocks = _block_paths(feature_blocks)
            for path in feature_blocks:
                _check_path(network, path, "feature_blocks")
        if feature_blocks is not None:
            feature_blocks_of(network, feature_blocks, _declared_by(network))
        self.network = network
        self.classes: tuple[str, ...] = names
        self.arch = arch  # before the preprocessing, whose size its spec checks
        self.preprocessing = preprocessing if preprocessing is not None else Preprocessing()
        self.arch_kwargs: dict[str, Any] = python_values(arch_kwargs or {})
        self._head = head
        self._feature_blocks = feature_blocks
        self._gradcam_layer = gradcam_layer
        self._gradcam_reshape = gradcam_reshape
        self.temperature = temperature

    @property
    def preprocessing(self) -> Preprocessing:
        """How images are prepared for :attr:`network`, in training and at inference.

        .. versionchanged:: 0.2
           Checked whenever it is set (``model.preprocessing = ...`` too): the registered
           architecture ``arch`` refuses an input size its network does not take (ViT-B/16
           takes 224 px only).

        Raises
        ------
        TypeError
            When set to anything but a :class:`~retinalnet.transforms.Preprocessing`.
        ValueError
            When its ``size`` is not one the registered architecture ``arch`` takes.
        """
        return self._preprocessing

    @preprocessing.setter
    def preprocessing(self, value: Preprocessing) -> None:
        value = check_preprocessing(value, optional=False)
        sizes = self._input_sizes()
        if sizes is not None:
            check_input_size(sizes, value)
        self._preprocessing = value

    @property
    def temperature(self) -> float:
        """The calibration temperature ``T``: probabilities are ``softmax(outputs / T)``.

        Fitted on validation data by :func:`~retinalnet.training.calibrate` or the
        :class:`~retinalnet.training.TemperatureScaling` callback (Guo et al., 2017), saved
        in checkpoints, and applied by the :class:`~retinalnet.engine.InferenceEngine`, so
        the :class:`~retinalnet.Predictor`, :func:`~retinalnet.training.evaluate` and the
        command line all use it. It never changes the predicted class. :meth:`forward`
        returns the raw outputs, and training never uses it. 1.0 means uncalibrated.

        .. versionadded:: 0.2

        Raises
        ------
        ValueError
            When set to anything but a finite number > 0.
        """
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        number = as_number(value)
        if number is None or not math.isfinite(number) or number <= 0:
            raise ValueError(
                f"temperature must be a finite number > 0 (1.0: uncalibrated), got {value!r}; "
                "fit one with retinalnet.training.calibrate(model, val_data)"
            )
        self._temperature = number

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return len(self.classes)

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name to output index."""
        return {name: i for i, name in enumerate(self.classes)}

    @property
    def spec(self) -> ModelSpec | None:
        """The registered :class:`~retinalnet.models.ModelSpec` of ``arch``, if any.

        .. versionadded:: 0.2
        """
        return find_spec(self.arch)

    def _input_sizes(self) -> InputSizes | None:
        """The input sizes the network takes: the registered ``arch``'s, else what a
        hand-built network says (a torchvision ViT's ``image_size``), else ``None`` (any)."""
        spec = self.spec
        return spec if spec is not None else network_sizes(self.network)

    def _fallback(self, what: str, guess: str) -> None:
        logger.debug(
            "%s (arch=%r) declares no %s; using the 0.1 fallback %s",
            type(self.network).__name__,
            self.arch,
            what,
            guess,
        )

    def head_module(self) -> tuple[str, nn.Module]:
        """The classification head: its path in :attr:`network` and the module.

        Declared head, else the spec's, else (fallback) the last ``nn.Linear`` found by
        :func:`~retinalnet.models.find_output_layer`.

        .. versionadded:: 0.2

        Raises
        ------
        TypeError
            If nothing is declared and the network has no ``nn.Linear``.

        Examples
        --------
        >>> from retinalnet.models import create_model
        >>> create_model("resnet18", weights=None).head_module()[0]
        'fc'
        """
        spec = self.spec
        path = self._head if self._head is not None else spec.head if spec else None
        if path is not None:
            return path, self.network.get_submodule(path)
        self._fallback("head", "find_output_layer (last nn.Linear)")
        parent, name, layer = find_output_layer(self.network)
        prefix = next(p for p, m in self.network.named_modules() if m is parent)
        return (f"{prefix}.{name}" if prefix else name), layer

    def feature_block_modules(self) -> list[nn.Module]:
        """The feature blocks, first to last, that fine-tuning unfreezes from the end.

        Declared blocks, else the spec's, else (fallback) the 0.1 structure guess
        (VGG-style blocks split at max-pools, ``features`` children, ResNet stages).

        A new list at each call: changing it changes nothing in the model (a declaration
        that returns the network's own ``nn.ModuleList`` is only read). Declared blocks are
        checked each time: modules of the network, each holding parameters, disjoint, first
        to last.

        .. versionadded:: 0.2

        Raises
        ------
        TypeError
            If nothing is declared and the structure is not recognised, or the declaration
            gives names or other objects than modules.
        ValueError
            If a declared block holds no parameters (a ``ReLU`` or a ``MaxPool2d`` alone:
            freezing it would change nothing) or is not part of the network, declared
            blocks overlap or are not listed first to last, or the declaration's function
            fails to find a block; the message names the declaration and the fix.
        """
        blocks = declared_feature_blocks(self)
        if blocks is not None:
            return blocks
        self._fallback("feature blocks", "structure guess (features / layer1..4)")
        return guess_feature_blocks(self.network)

    def gradcam_target(self) -> GradCamTarget:
        """Where Grad-CAM reads its activation: ``(module, reshape, at_input)``.

        A declared (or the spec's) layer is explained at its output, after ``reshape`` when
        that is not ``None``. The fallback guess takes the last module of the last feature
        block (its input when that is a pooling layer) or the last ``Conv2d``.

        .. versionadded:: 0.2

        Raises
        ------
        TypeError
            If nothing is declared and the network has no ``Conv2d``.

        Examples
        --------
        >>> from retinalnet.models import create_model
        >>> target = create_model("vit_b_16", weights=None).gradcam_target()
        >>> target.reshape.__name__, target.at_input
        ('tokens_to_map', False)
        """
        spec = self.spec
        if self._gradcam_layer is not None:
            layer, reshape = self._gradcam_layer, self._gradcam_reshape
        elif spec is not None:
            layer, reshape = spec.gradcam_layer, spec.gradcam_reshape
        else:
            self._fallback("Grad-CAM layer", "structure guess (last block or last Conv2d)")
            return guess_gradcam_target(self.network)
        return GradCamTarget(self.network.get_submodule(layer), reshape, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores for a batch of preprocessed images.

        Raises
        ------
        ValueError
            If the network fails on images whose channels its first convolution does not
            take (a 1-channel network given the preprocessing's 3 channels), or a registered
            network takes one size only and the images are of another (vit_b_16's 224 px),
            naming the fix.
        """
        if x.dim() == 4:  # a size the network takes, before its bare AssertionError
            check_batch_side(self._input_sizes(), x.shape[-2], x.shape[-1], _PREPARE)
        problem = self._channel_problem(x.shape[1]) if x.dim() == 4 else None
        if problem is None:
            output: torch.Tensor = self.network(x)
            return output
        try:  # a first convolution that is not the input layer: the network may still run
            output = self.network(x)
        except RuntimeError as error:  # torch's error names weights and shapes, not the fix
            raise ValueError(problem) from error
        return output

    def _channel_problem(self, channels: int) -> str | None:
        """Why images of ``channels`` channels do not fit the network's first convolution,
        or ``None`` when they do (or it has none)."""
        found = _input_convolution(self.network)
        if found is None or found[1] == channels:
            return None
        name, expected = found
        return (
            f"{type(self.network).__name__}'s first convolution {name!r} takes {expected} "
            f"input channel(s), but the images have {channels} (retinalnet's preprocessing "
            "gives 3, a grayscale scan repeated); give the network a 3-channel first "
            "convolution (nn.Conv2d(3, ...), or in_chans=3 for a timm model), or wrap it so "
            "its forward uses one channel: network(x[:, :1])"
        )

    def extra_repr(self) -> str:
        shown = f", temperature={self.temperature:.4g}" if self.temperature != 1.0 else ""
        return f"arch={self.arch!r}, classes={list(self.classes)!r}{shown}"


def network_of(model: nn.Module) -> nn.Module:
    """The wrapped network of a :class:`Classifier`; any other module as it is."""
    return model.network if isinstance(model, Classifier) else model
