"""Argument checks shared by the model builders: one-line errors naming the bad value."""

from __future__ import annotations

import os
import reprlib
from collections.abc import Iterable, KeysView, Mapping, Set
from dataclasses import dataclass
from typing import Protocol

from torch import nn
from torchvision.models import VisionTransformer

from retinalnet._core.counts import check_count
from retinalnet._core.printable import hidden_character
from retinalnet.transforms import Preprocessing, check_preprocessing

__all__ = [
    "InputSizes",
    "NetworkSizes",
    "check_batch_side",
    "check_class_names",
    "check_input_size",
    "check_int",
    "check_module",
    "network_sizes",
]


class InputSizes(Protocol):
    """The input sizes a network takes: a :class:`~retinalnet.models.ModelSpec`, or
    :class:`NetworkSizes` read
    from a hand-built network."""

    @property
    def name(self) -> str: ...

    @property
    def min_size(self) -> int: ...

    @property
    def fixed_size(self) -> int | None: ...


@dataclass(frozen=True)
class NetworkSizes:
    """The input sizes a hand-built network takes, read from the network itself."""

    name: str
    min_size: int
    fixed_size: int | None


def network_sizes(network: nn.Module) -> NetworkSizes | None:
    """The input size a hand-built network takes only, when the network says: a torchvision
    ``VisionTransformer`` takes its ``image_size`` only, and fails on any other with a bare
    ``AssertionError`` ("Wrong image height!"). ``None`` for a network that takes any size,
    or does not say (a ViT inside another network may see another size than the input)."""
    if isinstance(network, VisionTransformer):
        size = int(network.image_size)
        name = f"the network ({type(network).__name__}, image_size={size})"
        return NetworkSizes(name, min_size=size, fixed_size=size)
    return None


def check_module(value: object, where: str, argument: str = "") -> nn.Module:
    """``value`` if it is an ``nn.Module``; a TypeError saying ``where`` takes one if not.

    ``argument`` names the parameter when it is not the first (``"network"``).
    """
    if not isinstance(value, nn.Module):
        role = f" as {argument}" if argument else ""
        raise TypeError(
            f"{where} takes a torch.nn.Module{role}, got {type(value).__name__} "
            f"{reprlib.repr(value)}"
        )
    return value


def check_int(value: object, name: str, low: int, note: str = "") -> int:
    """``value`` as an int if it is an integer (Python's or NumPy's, not a bool) >= ``low``;
    a ValueError naming it if not."""
    return check_count(value, name, low, note)


def check_input_size(spec: InputSizes, preprocessing: Preprocessing) -> None:
    """Refuse a preprocessing whose input size ``spec``'s network does not take: another
    than its ``fixed_size`` (ViT-B/16's 224), or below its ``min_size``.

    Every door where a registered model (or a hand-built one whose network says its size,
    :func:`network_sizes`) meets a preprocessing runs it
    (:func:`~retinalnet.models.create_model`, a checkpoint's rebuilt model, and
    :class:`~retinalnet.models.Classifier`, when made and when its ``preprocessing`` is
    set), so that the network never fails later on images of the wrong size.

    Raises
    ------
    ValueError
        Naming the size given, the size the network takes, and the fix.
    """
    check_preprocessing(preprocessing)  # a ViT's hand-built network, an engine's
    size = preprocessing.size
    if spec.fixed_size is not None and size != spec.fixed_size:
        raise ValueError(
            f"{spec.name} takes {spec.fixed_size} px inputs only, got preprocessing.size="
            f"{size}; pass preprocessing=Preprocessing(size={spec.fixed_size})"
        )
    if size < spec.min_size:
        raise ValueError(
            f"{spec.name} needs inputs of at least {spec.min_size} px, got preprocessing.size="
            f"{size}; pass a larger Preprocessing(size=...)"
        )


def check_batch_side(spec: InputSizes | None, height: int, width: int, fix: str) -> None:
    """Refuse a batch of ``height`` x ``width`` inputs that ``spec``'s network does not take
    (another size than its ``fixed_size``: ViT-B/16's 224), naming ``fix``; torchvision's own
    check is a bare ``AssertionError`` ("Wrong image height!"). Every batch a
    :class:`~retinalnet.models.Classifier` runs meets it (an engine's or a data set's own
    preprocessing, a Grad-CAM's inputs).

    Raises
    ------
    ValueError
        Naming the network, the size it takes, the size given and ``fix``.
    """
    fixed = None if spec is None else spec.fixed_size
    if spec is not None and fixed is not None and (height, width) != (fixed, fixed):
        raise ValueError(
            f"{spec.name} takes {fixed} x {fixed} inputs only, got {height} x {width}; {fix}"
        )


def check_class_names(
    classes: object, *, source: str | os.PathLike[str] | None = None
) -> tuple[str, ...]:
    """Class names as a tuple of plain, non-blank, distinct ``str`` (2 or more), each
    printed as it is.

    Any ordered collection of strings works (a list, a tuple, a data set's ``classes``);
    a string (which would be split into letters), a set (no order) or a mapping is refused
    (a dict's keys, in their order, are names). Names are shown on result lines (``predict``
    prints ``scan.jpeg  NORMAL  97.1%``), so one that does not print as itself on one line
    is refused: a control character (a newline, a carriage return, an escape sequence), a
    Unicode line separator or an invisible format character (a right-to-left override)
    would break, overwrite or forge those lines (see
    :func:`~retinalnet._core.printable.shown_as_is`). Spaces, commas and the letters of any
    script are names as usual (``'wet AMD'``, ``'Ödem'``).

    Parameters
    ----------
    classes
        The names, in output order.
    source
        The file the names were read from (a checkpoint, an ONNX model): the error names it.

    Raises
    ------
    TypeError
        If ``classes`` is a string, bytes, a set, a mapping or not a collection, or a name
        is not a string.
    ValueError
        If a name is blank or does not print as itself, or there are fewer than 2 or
        repeated names.
    """
    fix = "pass a list such as ['CNV', 'NORMAL']"
    lead = "classes must be"
    if source is not None:
        lead, fix = f"cannot read {os.fspath(source)!r}: its classes must be", _FILE_FIX
    if isinstance(classes, (str, bytes)):
        kind = "string" if isinstance(classes, str) else "bytes"
        raise TypeError(f"{lead} a list of class names, got the {kind} {classes!r}; {fix}")
    if isinstance(classes, (Set, Mapping)) and not isinstance(classes, KeysView):
        what = "a set, which has no order" if isinstance(classes, Set) else "a dict"
        raise TypeError(
            f"{lead} a list of class names in output order, got {what}: "
            f"{reprlib.repr(classes)}; {fix}"
        )
    if not isinstance(classes, Iterable):
        raise TypeError(
            f"{lead} a list of class names, got {reprlib.repr(classes)} "
            f"({type(classes).__name__}); {fix}"
        )
    names = list(classes)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f"{lead} names (strings), got {name!r} ({type(name).__name__}) in "
                f"{reprlib.repr(names)}; "
                + (fix if source is not None else "pass the names as strings")
            )
        if _blank(name):
            raise ValueError(
                f"{lead} non-blank names, got {name!r} in {reprlib.repr(names)}; "
                + (fix if source is not None else "give every class a name")
            )
        hidden = hidden_character(name)
        if hidden is not None:
            raise ValueError(
                f"{lead} names that print as they are, got {name!r} in "
                f"{reprlib.repr(names)}: it holds {hidden}, which would break or forge the "
                "lines that name the class; "
                + (fix if source is not None else "rename the class without it")
            )
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(
            f"{lead} 2 or more distinct names, got {names!r}"
            + (f"; {fix}" if source is not None else "")
        )
    return tuple(str(name) for name in names)


_FILE_FIX = "use another file, or ask whoever made it for one with plain class names"


def _blank(name: str) -> bool:
    """Whether ``name`` shows nothing: spaces only, or the zero-width joiners."""
    return all(character.isspace() or character in "\u200c\u200d" for character in name)
