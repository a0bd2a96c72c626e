"""Argument checks shared by the model builders: one-line errors naming the bad value."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, KeysView, Mapping, Set

from torch import nn

from retinalnet._core.counts import check_count

__all__ = ["check_class_names", "check_int", "check_module"]


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


def check_class_names(classes: object) -> tuple[str, ...]:
    """Class names as a tuple of plain, non-blank, distinct ``str`` (2 or more).

    Any ordered collection of strings works (a list, a tuple, a data set's ``classes``);
    a string (which would be split into letters), a set (no order) or a mapping is refused
    (a dict's keys, in their order, are names).

    Raises
    ------
    TypeError
        If ``classes`` is a string, bytes, a set, a mapping or not a collection, or a name
        is not a string.
    ValueError
        If a name is blank, or there are fewer than 2 or repeated names.
    """
    fix = "pass a list such as ['CNV', 'NORMAL']"
    if isinstance(classes, (str, bytes)):
        kind = "string" if isinstance(classes, str) else "bytes"
        raise TypeError(f"classes must be a list of class names, got the {kind} {classes!r}; {fix}")
    if isinstance(classes, (Set, Mapping)) and not isinstance(classes, KeysView):
        what = "a set, which has no order" if isinstance(classes, Set) else "a dict"
        raise TypeError(
            f"classes must be a list of class names in output order, got {what}: "
            f"{reprlib.repr(classes)}; {fix}"
        )
    if not isinstance(classes, Iterable):
        raise TypeError(
            f"classes must be a list of class names, got {reprlib.repr(classes)} "
            f"({type(classes).__name__}); {fix}"
        )
    names = list(classes)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f"classes must be names (strings), got {name!r} ({type(name).__name__}) in "
                f"{reprlib.repr(names)}; pass the names as strings"
            )
        if not name.strip():
            raise ValueError(
                f"classes must be non-blank names, got {name!r} in {reprlib.repr(names)}; "
                "give every class a name"
            )
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"classes must be 2 or more distinct names, got {names!r}")
    return tuple(str(name) for name in names)
