"""The options ``create_model(name, **options)`` passes to an architecture's builder, and
the one-line refusal of an option the architecture does not take.

Where an option goes decides where it is checked:

- a builder with a signature of its own (``small_cnn``'s ``width``): checked against it
  before anything is built;
- a torchvision builder passes its options on to its network class
  (``ResNet(zero_init_residual=...)``), which refuses an unknown one when the builder
  is called, before any download: the builder's ``TypeError`` is said again in our words
  (:func:`build_network`);
- a class that swallows unknown options (``ConvNeXt`` and ``MobileNetV3`` take
  ``**kwargs`` and ignore them): checked against its parameters, and the options its
  builders read first (:data:`_READ_BY_BUILDER`), before anything is built, so that
  ``size=32`` is not silently ignored and recorded with the model.

Every refusal names the option, the options the architecture takes, ``create_model``'s own
arguments, and the likely fix (``preprocessing=Preprocessing(size=32)`` for ``size=32``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import reprlib
from collections.abc import Callable, Mapping
from typing import Final

import torch
import torchvision.models as tvm
from torch import nn
from torchvision.models import WeightsEnum

from retinalnet.models._registry import ModelSpec
from retinalnet.transforms import Preprocessing

__all__ = ["CREATE_MODEL_ARGUMENTS", "build_network", "check_options"]

CREATE_MODEL_ARGUMENTS: Final = (
    "num_classes",
    "weights",
    "freeze",
    "trainable_blocks",
    "hidden",
    "dropout",
    "classes",
    "preprocessing",
    "progress",
)
"""``create_model``'s own keyword arguments: never passed on to a builder."""

_BUILDER_PROTOCOL: Final = ("weights", "progress")
_REFUSED = re.compile(r"(?:unexpected|multiple values for) keyword argument '(\w+)'")
_BY_NAME: Final = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_SIZE_NAMES: Final = frozenset({"image_size", "img_size", "input_size", "resolution", "crop"})

_READ_BY_BUILDER: Final[dict[Callable[..., nn.Module], tuple[str, ...]]] = {
    tvm.mobilenet_v3_large: ("width_mult", "reduced_tail", "dilated"),
    tvm.mobilenet_v3_small: ("width_mult", "reduced_tail", "dilated"),
}
"""Options torchvision builders read themselves before passing the rest to a network class
that swallows unknown ones (``_mobilenet_v3_conf``)."""


@dataclasses.dataclass(frozen=True)
class _Options:
    """The options an architecture takes, as far as they can be told."""

    names: tuple[str, ...] | None
    """Their names (``None``: not known, the builder could not be looked into)."""
    taker: Callable[..., object]
    """Where they are declared: the builder, or the network class it passes them to."""
    checked_first: bool
    """Whether an unknown one is refused before building (nothing else would refuse it)."""


def check_options(spec: ModelSpec, options: Mapping[str, object]) -> None:
    """Refuse, before anything is built or downloaded, an option that a builder with a
    signature of its own, or a network class that swallows unknown options, does not take.

    Raises
    ------
    TypeError
        Naming the option, the options the architecture takes, and the likely fix.
    """
    if not options:
        return
    taken = _options(spec)
    if not taken.checked_first or taken.names is None:  # the builder's call refuses it
        return
    for name, value in options.items():
        if name not in taken.names:
            raise TypeError(_refusal(spec, name, value, taken))


def build_network(
    spec: ModelSpec,
    *,
    weights: WeightsEnum | None,
    progress: bool,
    options: Mapping[str, object],
) -> nn.Module:
    """``spec.builder(weights=weights, progress=progress, **options)``, an option that the
    builder or its network class does not take refused in one line.

    Raises
    ------
    TypeError
        Naming the option, the options the architecture takes, and the likely fix.
    """
    try:
        return spec.builder(weights=weights, progress=progress, **options)
    except TypeError as error:
        found = _REFUSED.search(str(error))
        if found is None or found.group(1) not in options:
            raise
        name = found.group(1)
        raise TypeError(_refusal(spec, name, options[name], _options(spec))) from None


def _named_options(function: Callable[..., object]) -> tuple[str, ...] | None:
    """The keyword arguments ``function`` names (less the builder protocol's and
    ``create_model``'s own); ``None`` when it also takes ``**kwargs`` or has no signature."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return tuple(
        parameter.name
        for parameter in parameters
        if parameter.kind in _BY_NAME
        and parameter.name not in (*_BUILDER_PROTOCOL, *CREATE_MODEL_ARGUMENTS)
    )


def _options(spec: ModelSpec) -> _Options:
    named = _named_options(spec.builder)
    if named is not None:
        return _Options(named, spec.builder, checked_first=True)
    network_class = _network_class(spec)
    if network_class is None:
        return _Options(None, spec.builder, checked_first=False)
    try:
        parameters = list(inspect.signature(network_class).parameters.values())
    except (TypeError, ValueError):
        return _Options(None, network_class, checked_first=False)
    names = tuple(
        parameter.name
        for parameter in parameters
        if parameter.default is not inspect.Parameter.empty  # the builder sets the others
        and parameter.kind in _BY_NAME
        and parameter.name not in (*_BUILDER_PROTOCOL, *CREATE_MODEL_ARGUMENTS)
    )
    swallows = any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters)
    names += _READ_BY_BUILDER.get(spec.builder, ())
    return _Options(names, network_class, checked_first=swallows)


def _network_class(spec: ModelSpec) -> type[nn.Module] | None:
    """The class of the network the builder makes, from a structure-only build (a real one
    for builders that compute with tensors: RegNet); ``None`` when it cannot be built."""
    try:
        try:
            with torch.device("meta"):
                return type(spec.builder(weights=None, progress=False))
        except NotImplementedError:
            return type(spec.builder(weights=None, progress=False))
    except Exception:  # a builder that needs options: nothing to name
        return None


def _refusal(spec: ModelSpec, name: str, value: object, taken: _Options) -> str:
    taker = taken.taker
    where = f"{getattr(taker, '__module__', '')}.{getattr(taker, '__qualname__', taker)}"
    if taken.names is None:
        takes = f"its options are those of {where}"
    elif taken.names:
        takes = f"its options are {', '.join(taken.names)} ({where})"
    else:
        takes = f"it takes no options ({where})"
    return (
        f"create_model({spec.name!r}) does not take {name}={reprlib.repr(value)}: {takes}, "
        "besides create_model's own "
        f"{', '.join(CREATE_MODEL_ARGUMENTS)}; {_fix(name, value, taken.names or ())}"
    )


def _fix(name: str, value: object, accepted: tuple[str, ...]) -> str:
    """The likely fix: a preprocessing setting, a misspelt option, or none."""
    fields = [field.name for field in dataclasses.fields(Preprocessing)]
    if name in fields or name in _SIZE_NAMES:
        field = name if name in fields else "size"
        return (
            f"input sizes and augmentation are preprocessing settings: pass "
            f"preprocessing=Preprocessing({field}={reprlib.repr(value)})"
        )
    close = difflib.get_close_matches(name, [*accepted, *CREATE_MODEL_ARGUMENTS], n=1)
    if close:
        return f"did you mean {close[0]}=?"
    return "remove it, or register an architecture whose builder takes it (register_model)"
