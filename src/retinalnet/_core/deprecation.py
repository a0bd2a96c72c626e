"""Deprecation aliases: 0.1 names that still work for one release, with a warning.

One mechanism for every rename, so each alias is a line in a table: renamed keyword
arguments (:func:`renamed_argument`) and moved or renamed module attributes
(:func:`module_getattr`).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["module_getattr", "renamed_argument", "warn_deprecated"]

T = TypeVar("T")

_REMOVAL = "0.3"


def warn_deprecated(old: str, advice: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated since 0.2, with what to use instead."""
    warnings.warn(
        f"{old} is deprecated since retinalnet 0.2 and will be removed in {_REMOVAL}; {advice}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_argument(
    owner: str, old: str, new: str, old_value: T | None, new_value: T, default: T
) -> T:
    """The value of a keyword argument renamed from ``old`` to ``new`` in 0.2.

    ``old_value`` is what the caller passed under the old name (``None``: nothing).

    Raises
    ------
    TypeError
        If both names were given different values.
    """
    if old_value is None:
        return new_value
    if new_value != default and new_value != old_value:
        raise TypeError(f"{owner} got both {old}= and {new}=; pass only {new}=")
    warn_deprecated(f"{owner}({old}=...)", f"use {new}=...", stacklevel=4)
    return old_value


def module_getattr(module: str, table: Mapping[str, tuple[str, str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving 0.1 names that moved or were renamed.

    ``table`` maps an old name to ``(module it lives in now, its name there, advice)``.
    """

    def getattr_(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target_module, attribute, advice = table[name]
        warn_deprecated(f"{module}.{name}", advice)
        return getattr(importlib.import_module(target_module), attribute)

    return getattr_
