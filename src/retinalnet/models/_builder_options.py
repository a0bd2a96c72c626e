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
  ``size=32`` is not silently ignored and recorded with the model;
- an input-size option (``image_size``) of a network that takes one size only (ViT-B/16):
  refused before anything is built, since the size is the preprocessing's.

The options an architecture takes are those a user may pass: a network class's parameter
that its torchvision builder sets itself (DenseNet-121's ``growth_rate``, Swin-T's
``stochastic_depth_prob``) is left out, and refused as set by the builder.

Every refusal names the option, the options the architecture takes, ``create_model``'s own
arguments, and the likely fix (``preprocessing=Preprocessing(size=32)`` for ``size=32``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import re
import reprlib
from collections.abc import Callable, Mapping
from typing import Final

import torch
import torchvision.models as tvm
from torch import nn
from torchvision.models import WeightsEnum

from retinalnet.models._registry import ModelSpec, built
from retinalnet.transforms import Preprocessing

__all__ = ["CREATE_MODEL_ARGUMENTS", "build_network", "check_options", "check_size_options"]

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
_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")
_SET_BY_BUILDER = re.compile(r"multiple values for (?:keyword )?argument '(\w+)'")
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
    set_by_builder: frozenset[str] = frozenset()
    """Parameters of the network class that the builder sets itself: not options."""


def check_size_options(
    spec: ModelSpec, options: Mapping[str, object], *, saved: bool = False
) -> None:
    """Refuse an input-size option (``image_size``) of a network that takes one size only
    (ViT-B/16): its size is the preprocessing's, checked against the network's.

    ``saved=True`` (a checkpoint's config) lets through one equal to the fixed size, which
    changes nothing and which configs saved before it was refused may hold.

    Raises
    ------
    TypeError
        Naming the option, the options the architecture takes, and
        ``preprocessing=Preprocessing(size=<the fixed size>)``.
    """
    fixed_size = spec.fixed_size
    for name, value in options.items():
        if fixed_size is not None and name in _SIZE_NAMES and not (saved and value == fixed_size):
            raise TypeError(_refusal(spec, name, value, _options(spec)))


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
    # one the builder sets itself is refused by its call, as one it does not take
    taken = _options(spec, find_set_by_builder=False)
    if not taken.checked_first or taken.names is None:  # the builder's call refuses it
        return
    for name, value in options.items():
        if name not in taken.names:
            raise TypeError(_refusal(spec, name, value, _options(spec)))


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
        Naming the option, the options the architecture takes, and the likely fix; or, if
        the builder returns no network, naming the architecture and what it returned.
    """
    try:
        network = spec.builder(weights=weights, progress=progress, **options)
    except (TypeError, KeyError) as error:
        found = _UNEXPECTED.search(str(error)) if isinstance(error, TypeError) else None
        name = found.group(1) if found is not None else _set_option(error, options)
        if name is None or name not in options:
            raise
        raise TypeError(_refusal(spec, name, options[name], _options(spec))) from None
    return built(spec, network)  # every door: a weights file is loaded into a network


def _set_option(error: BaseException, options: Mapping[str, object]) -> str | None:
    """The option of ``options`` that a builder's call refused as one it passes itself:
    "got multiple values for argument 'x'", or ``KeyError('x')``, which CPython 3.11
    raises in its place when the call is made while another exception is handled."""
    if isinstance(error, TypeError):
        found = _SET_BY_BUILDER.search(str(error))
        return found.group(1) if found is not None and found.group(1) in options else None
    if isinstance(error, KeyError) and len(error.args) == 1 and error.args[0] in options:
        return str(error.args[0])
    return None


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


def _options(spec: ModelSpec, *, find_set_by_builder: bool = True) -> _Options:
    """The options ``spec`` takes; with ``find_set_by_builder=False``, quickly (no builds
    to find the parameters its builder sets itself, which are then among the names)."""
    named = _named_options(spec.builder)
    if named is not None:
        return _Options(named, spec.builder, checked_first=True)
    network_class = _network_class(spec.builder)
    if network_class is None:
        return _Options(None, spec.builder, checked_first=False)
    try:
        parameters = list(inspect.signature(network_class).parameters.values())
    except (TypeError, ValueError):
        return _Options(None, network_class, checked_first=False)
    fixed = _set_by_builder(spec.builder) if find_set_by_builder else frozenset()
    names = tuple(name for name in _defaults(parameters) if name not in fixed)
    swallows = any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters)
    names += _READ_BY_BUILDER.get(spec.builder, ())
    return _Options(names, network_class, checked_first=swallows, set_by_builder=fixed)


def _defaults(parameters: list[inspect.Parameter]) -> dict[str, object]:
    """The network class's parameters that may be options, with their defaults: those
    without one are set by the builder, and ``create_model``'s own never reach it."""
    return {
        parameter.name: parameter.default
        for parameter in parameters
        if parameter.default is not inspect.Parameter.empty
        and parameter.kind in _BY_NAME
        and parameter.name not in (*_BUILDER_PROTOCOL, *CREATE_MODEL_ARGUMENTS)
    }


@functools.cache
def _set_by_builder(builder: Callable[..., nn.Module]) -> frozenset[str]:
    """The parameters of the builder's network class that the builder passes itself:
    given one, at its default, the call fails with "multiple values for argument"
    (structure-only builds, or real ones for builders that compute with tensors; once per
    builder)."""
    network_class = _network_class(builder)
    if network_class is None:
        return frozenset()
    fixed: set[str] = set()
    parameters = list(inspect.signature(network_class).parameters.values())
    for name, default in _defaults(parameters).items():
        option = {name: default}
        try:
            try:
                with torch.device("meta"):
                    builder(weights=None, progress=False, **option)
            except NotImplementedError:
                builder(weights=None, progress=False, **option)
        except Exception as error:  # its refusal of the option, or a failure of its own
            if _set_option(error, option) == name:
                fixed.add(name)
    return frozenset(fixed)


@functools.cache
def _network_class(builder: Callable[..., nn.Module]) -> type[nn.Module] | None:
    """The class of the network the builder makes, from a structure-only build (a real one
    for builders that compute with tensors: RegNet); ``None`` when it cannot be built."""
    try:
        try:
            with torch.device("meta"):
                return type(builder(weights=None, progress=False))
        except NotImplementedError:
            return type(builder(weights=None, progress=False))
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
    given = f"{name}={reprlib.repr(value)}"
    if name in taken.set_by_builder:
        module = getattr(spec.builder, "__module__", "")
        builder = f"{module}.{getattr(spec.builder, '__qualname__', spec.builder)}"
        return (
            f"create_model({spec.name!r}) cannot change {given}: retinalnet builds "
            f"{spec.name} with {builder}, which fixes {name} itself; {takes}, besides "
            f"create_model's own {', '.join(CREATE_MODEL_ARGUMENTS)}; leave {name} out"
        )
    return (
        f"create_model({spec.name!r}) does not take {given}: {takes}, "
        "besides create_model's own "
        f"{', '.join(CREATE_MODEL_ARGUMENTS)}; {_fix(spec, name, value, taken.names or ())}"
    )


def _fix(spec: ModelSpec, name: str, value: object, accepted: tuple[str, ...]) -> str:
    """The likely fix: a preprocessing setting, a misspelt option, or none."""
    fields = [field.name for field in dataclasses.fields(Preprocessing)]
    if spec.fixed_size is not None and (name == "size" or name in _SIZE_NAMES):
        return (
            f"input sizes are preprocessing settings, and {spec.name} takes "
            f"{spec.fixed_size} px inputs only: pass "
            f"preprocessing=Preprocessing(size={spec.fixed_size})"
        )
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
