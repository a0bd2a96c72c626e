"""What a file that holds a bare state dict is, said where a checkpoint was expected: the
registered architecture whose keys it has, and how to use it.

A state dict holds weights only: no class names, no preprocessing, no architecture name.
For its backbone, ``create_model(arch, weights=path)`` loads it; a whole trained network
is wrapped in a :class:`~retinalnet.models.Classifier`, which carries the rest.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from retinalnet._core.articles import type_with_article
from retinalnet.models._registry import ModelSpec, find_spec, list_models
from retinalnet.models._state_dict import (
    _PREFIXES,
    _strip_prefix,
    container_classes,
    fit_keys,
    is_state_dict,
    unwrap_container,
)

__all__ = [
    "WholeNetwork",
    "bare_state_dict_message",
    "guess_architecture",
    "head_outputs",
    "trained_head_message",
    "whole_network",
]

logger = logging.getLogger(__name__)

_COUNTER = ".num_batches_tracked"  # missing from files saved before torch 0.4.1


@functools.lru_cache(maxsize=64)
def _shapes_of(spec: ModelSpec) -> dict[str, tuple[int, ...]] | None:
    """``name -> shape`` of the network ``spec`` builds, without weights (on the meta
    device where the builder allows, else on the CPU); ``None`` if it cannot be built."""
    try:
        try:
            with torch.device("meta"):
                network = spec.builder(weights=None, progress=False)
        except (NotImplementedError, RuntimeError):  # a builder that reads tensor values
            network = spec.builder(weights=None, progress=False)
    except Exception as error:  # a registered builder that needs options: no guess from it
        logger.debug("cannot build %s to compare keys with: %s", spec.name, error)
        return None
    return _shapes(network.state_dict())


def _body(keys: Any, head: str) -> set[str]:
    return {k for k in keys if not k.startswith(f"{head}.") and not k.endswith(_COUNTER)}


def guess_architecture(state: Mapping[str, Any]) -> str | None:
    """The first registered architecture whose network, without its head, has the keys and
    shapes of ``state`` (with a wrapper's prefix or torchvision's older names allowed);
    ``None`` if none has.

    Builds each registered network once (on the meta device: about a second for all of
    them), so it is for error messages, not for a hot path.
    """
    for name in list_models():
        spec = find_spec(name)
        shapes = None if spec is None else _shapes_of(spec)
        if spec is None or shapes is None:
            continue
        fitted, _ = fit_keys(state, shapes)
        body = _body(shapes, spec.head)
        if _body(fitted, spec.head) == body and all(  # the shapes too: B1 and B2 share keys
            tuple(getattr(fitted[key], "shape", ())) == shapes[key] for key in body
        ):
            return name
    return None


def head_outputs(shapes: Mapping[str, Sequence[int]], head: str) -> int | None:
    """How many outputs the head ``head`` has, from a ``name -> shape`` map of a state dict:
    the rows of its last 2-D ``weight`` (a ``Linear``), ``None`` if it has none."""
    rows = [
        shape[0]
        for key, shape in shapes.items()
        if key.startswith(f"{head}.") and key.endswith("weight") and len(shape) == 2
    ]
    return int(rows[-1]) if rows else None


def _shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


# the keys of a trained Classifier's own state dict (``torch.save(model.state_dict())``)
_CLASSIFIER = "network."
# the entries only PyTorch Lightning's checkpoints have
_LIGHTNING = ("pytorch-lightning_version", "lightning_version")


def _wrapper_prefix(state: Mapping[str, Any], spec: ModelSpec | None) -> str:
    """The prefix a wrapper put on every key of ``state`` (``"model."``, ``"module."``,
    ``"model.network."``), as :func:`fit_keys` removes it for ``spec``'s network; for no
    registered architecture, the known wrappers' and a Classifier's prefixes all keys
    share."""
    shapes = None if spec is None else _shapes_of(spec)
    if shapes is not None:
        return _strip_prefix(dict(state), shapes)[1]
    prefix = ""
    for _ in range(3):
        first = {key.removeprefix(prefix).partition(".")[0] for key in state}
        if len(first) != 1 or f"{next(iter(first))}." not in (*_PREFIXES, _CLASSIFIER):
            break
        prefix += f"{first.pop()}."
    return prefix


def _state_expression(file: Path, container: str | None, strip: str) -> str:
    """Python that reads the state dict of ``file``: its ``container`` entry, ``strip``
    removed from its keys."""
    loaded = f"torch.load({str(file)!r}, weights_only=True)"
    if container is not None:
        loaded += f"[{container!r}]"
    if not strip:
        return loaded
    return f"{{k.removeprefix({strip!r}): v for k, v in {loaded}.items()}}"


def _native_head(spec: ModelSpec, state: Mapping[str, Any]) -> bool:
    """Whether ``state`` (its keys fitted) has the head ``spec``'s builder makes
    (torchvision's ``fc``), not the one :func:`create_model` puts in its place."""
    builder = {k for k in (_shapes_of(spec) or {}) if k.startswith(f"{spec.head}.")}
    return bool(builder) and builder == {k for k in state if k.startswith(f"{spec.head}.")}


def bare_state_dict_message(data: object, file: Path, marker: str) -> str:
    """The one-line error for a file that is not a retinalnet checkpoint (no ``marker``):
    for a state dict, which architecture it fits and how to use it.

    The way to the whole trained network (:func:`whole_network`, as the weights-file
    warning gives it) works as written: it names the entry a training tool's checkpoint
    keeps the state dict in (Lightning's ``'state_dict'``), the prefix a wrapper put on its
    keys (Lightning's ``'model.'``, DDP's ``'module.'``), and the class names the file
    keeps beside it (the tutorial's ``idx_to_class``), in output order. Python code is in
    backticks, which the command line shows as it is."""
    start = f"{str(file)!r} is not a retinalnet checkpoint (no {marker!r} marker)"
    state, container = unwrap_container(data)
    if not is_state_dict(state):
        return (
            f"{start}: it holds {type_with_article(data)}, not what retinalnet's training "
            "writes; pass a checkpoint written by retinalnet (best.pt or last.pt)"
        )
    notes = [] if container is None else [f"under its {container!r} key"]
    spec = find_spec(guess_architecture(state))
    prefix = _wrapper_prefix(state, spec)
    classifier = prefix.endswith(_CLASSIFIER)  # model.state_dict() of a Classifier
    strip = prefix.removesuffix(_CLASSIFIER) if classifier else prefix
    if strip:
        notes.append(f"every key prefixed {strip!r}")
    if spec is None:
        what = f"a bare state dict ({len(state)} tensors, of no registered architecture)"
        arch = "ARCH"
    else:
        fitted = fit_keys(state, _shapes_of(spec) or {})[0]
        outputs = head_outputs(_shapes(fitted), spec.head)
        if outputs is not None and outputs != head_outputs(_shapes_of(spec) or {}, spec.head):
            notes.append(f"its {spec.head} has {outputs} outputs")
        what = f"a bare {spec.name} state dict"
        arch = repr(spec.name)
    if classifier:  # a trained model's own state dict, not its network's
        what = what.replace("a bare", "a", 1).replace("state dict", "Classifier's state dict", 1)
    if isinstance(data, Mapping) and any(key in data for key in _LIGHTNING):
        what = f"a PyTorch Lightning checkpoint holding {what}"
    if notes:
        what += f" ({'; '.join(notes)})"
    whole = whole_network(file, data, spec)
    names = (
        "no class names or"
        if whole.source is None
        else f"its class names (its {whole.source!r} entry) but no"
    )
    said = (
        f"{start} but {what}: weights only, with {names} preprocessing. For its backbone "
        f"weights use create_model({arch}, weights={str(file)!r}); to use the whole trained "
        "network"
    )
    if whole.code is not None:
        return f"{said}{whole.in_python()}"
    built = "" if whole.network is None else f", net being {whole.network} with the file loaded"
    return (
        f"{said}, load the file into that network and wrap it in Python: Classifier(net, "
        f"classes={whole.classes}){built}{whole.from_file()}, which save_checkpoint() writes "
        "as a checkpoint"
    )


@dataclass(frozen=True)
class WholeNetwork:
    """How to use the whole trained network a state-dict file holds, for the messages that
    advise it (:func:`whole_network` builds it)."""

    code: str | None
    """Python in backticks that builds the trained Classifier ``model``; ``None`` when the
    file loads as it is into :attr:`network`, which the message then names."""
    network: str | None
    """The call that builds the network the file loads into (``None``: not known)."""
    classes: str
    """The ``classes=`` argument: ``"[...]"``, or the file's own names in output order."""
    source: str | None
    """The file's entry the class names came from (``"idx_to_class"``); ``None``: none."""

    def from_file(self) -> str:
        """``" (classes: from its 'idx_to_class' entry)"``, or ``""``."""
        return "" if self.source is None else f" (classes: from its {self.source!r} entry)"

    def in_python(self) -> str:
        """The advice for :attr:`code`: `` in Python: `...` (classes: ...), then ...``."""
        classes = (
            "its class names in output order"
            if self.source is None
            else f"in output order, from its {self.source!r} entry"
        )
        return (
            f" in Python: {self.code} (classes: {classes}), then "
            "save_checkpoint('model.pt', model) writes it as a checkpoint"
        )


def whole_network(file: Path, loaded: object, spec: ModelSpec | None) -> WholeNetwork:
    """How to use the whole trained network of ``file``, whose contents are ``loaded``
    (a state dict, or a training checkpoint holding one), as ``spec``'s network: Python
    that works as written, for the checkpoint and the weights-file doors alike.

    It reads the state dict from the entry a training tool keeps it in (``'state_dict'``),
    removes the prefix a wrapper put on its keys, loads a head retinalnet builds (the
    tutorial's) into :func:`create_model`'s network, with the head's width, and a
    torchvision head into torchvision's network; the class names the file keeps beside the
    state dict (``idx_to_class``, ``class_to_idx``) fill ``classes=`` in output order.
    """
    state, container = unwrap_container(loaded)
    state = state if is_state_dict(state) else {}
    prefix = _wrapper_prefix(state, spec)
    classifier = prefix.endswith(_CLASSIFIER)  # model.state_dict() of a Classifier
    strip = prefix.removesuffix(_CLASSIFIER) if classifier else prefix
    fitted = state if spec is None else fit_keys(state, _shapes_of(spec) or {})[0]
    outputs = None if spec is None else head_outputs(_shapes(fitted), spec.head)
    named = container_classes(loaded)
    printable = named is not None and all(n.isprintable() and "`" not in n for n in named[0])
    if named is not None and printable and outputs in (None, len(named[0])):
        classes, source = repr(named[0]), named[1]
    else:
        classes, source = "[...]", None
    sd = _state_expression(file, container, strip)
    network = _network_call(spec, fitted)
    built = None if spec is None else _create_model_call(spec, fitted, classes)
    if classifier:
        if built is not None:
            code = f"`model = {built}; model.load_state_dict({sd})`"
        else:
            code = (
                f"`model = Classifier(net, classes={classes}); model.load_state_dict({sd})`, "
                "net being the untrained network it was built on"
            )
    elif network is None and built is not None:  # the network create_model builds
        code = f"`model = {built}; model.network.load_state_dict({sd})`"
    elif container is None and not strip:  # the file itself loads into that network
        return WholeNetwork(None, network, classes, source)
    else:
        net = network or "the network it was saved from"
        code = (
            f"`net = {net}; net.load_state_dict({sd}); model = Classifier(net, classes={classes})`"
        )
    return WholeNetwork(code, network, classes, source)


def _create_model_call(spec: ModelSpec, fitted: Mapping[str, Any], classes: str) -> str | None:
    """``create_model('vgg16_transfer', weights=None, classes=[...])``, with ``hidden=`` where
    the head is not the default width: the call whose network a state dict (its keys
    ``fitted``) loads into, its head the one :func:`create_model` builds (``Linear``, or
    ``Linear``-``ReLU``-``Dropout``-``Linear``, as the tutorial's); ``None`` for another
    head."""
    head = f"{spec.head}."
    shapes = {k[len(head) :]: tuple(v.shape) for k, v in fitted.items() if k.startswith(head)}
    first = shapes.get("0.weight", ())
    if len(first) != 2 or shapes.get("0.bias") != first[:1]:
        return None
    if set(shapes) == {"0.weight", "0.bias"}:
        hidden = 0
    elif set(shapes) == {"0.weight", "0.bias", "3.weight", "3.bias"}:
        last = shapes["3.weight"]
        if len(last) != 2 or last[1] != first[0] or shapes["3.bias"] != last[:1]:
            return None
        hidden = first[0]
    else:
        return None
    original = [s for k, s in (_shapes_of(spec) or {}).items() if k.startswith(head)]
    features = next((s[1] for s in original if len(s) == 2), None)  # the first Linear's inputs
    if features is not None and features != first[1]:  # None: a builder without a head
        return None
    width = "" if hidden == spec.default_hidden else f", hidden={hidden}"
    return f"create_model({spec.name!r}, weights=None{width}, classes={classes})"


def _network_call(spec: ModelSpec | None, fitted: Mapping[str, Any]) -> str | None:
    """``torchvision.models.resnet18(num_classes=4)``: the call that builds the network a
    state dict (its keys ``fitted``) of torchvision's own layout loads into, its head the
    builder's (``fc``, not the one :func:`create_model` puts in its place); ``None`` for
    another network."""
    if spec is None or not _native_head(spec, fitted):
        return None
    builder = getattr(spec.builder, "__name__", "")
    module = getattr(spec.builder, "__module__", "") or ""
    outputs = head_outputs(_shapes(fitted), spec.head)
    if not module.startswith("torchvision.") or outputs is None:
        return None
    return f"torchvision.models.{builder}(num_classes={outputs})"


def trained_head_message(
    file: Path,
    spec: ModelSpec,
    given: Mapping[str, torch.Tensor],
    original: Mapping[str, torch.Tensor],
) -> str | None:
    """The warning for a weights file whose head (entries ``given``) is not the one the
    architecture's builder makes (``original``: ImageNet's 1000 outputs for torchvision's
    networks), so it was trained for another task and the new head drops it; ``None`` when
    it has no head or the original one.

    The way to the whole trained network is :func:`whole_network`'s, as the checkpoint
    door gives it: for that the file is read again (its tensors mapped, not read), as
    only its state dict reached here, without its container, prefix and class names.
    """
    if not given or _shapes(given) == _shapes(original):
        return None
    outputs = head_outputs(_shapes(given), spec.head)
    usual = head_outputs(_shapes(original), spec.head)
    reference = "ImageNet's" if spec.weights is not None else f"{spec.name}'s original"
    if outputs is not None and outputs != usual:
        has = f"has {outputs} outputs" + ("" if usual is None else f", not {reference} {usual}")
    else:
        has = f"holds {sorted(given)[:3]}, not {reference} head"
    whole = whole_network(file, _read_again(file), spec)
    if whole.code is not None:
        advice = whole.in_python()
    else:
        network = whole.network or "the network it was saved from"
        advice = (
            f", load the file into {network} and wrap it: Classifier(net, "
            f"classes={whole.classes}){whole.from_file()}"
        )
    return (
        f"weights file {str(file)!r}: its {spec.head} {has}, a head trained for some task, "
        "and only the file's backbone weights are loaded: the model's new head starts "
        f"untrained. To use the whole trained network{advice}"
    )


def _read_again(file: Path) -> object:
    """What ``file`` holds, as ``torch.load(weights_only=True)`` reads it (its tensors
    memory-mapped where its format allows); ``None`` if it cannot be read."""
    for mapped in (True, False):
        try:
            return torch.load(file, map_location="cpu", weights_only=True, mmap=mapped)
        except Exception:  # the legacy format cannot be mapped; anything else: no advice
            continue
    return None
