"""On/off options given as arguments: one rule for what is a bool.

A setting read from a YAML or INI file, an environment variable or a command line is often
the text ``"no"`` or ``"false"``, which Python reads as true: ``Trainer(overwrite="no")``
replaced an existing run's checkpoints, ``Predictor(tta="no")`` turned TTA on. Every public
bool parameter goes through :func:`check_bool`, which takes ``True`` and ``False`` (and
NumPy's ``np.True_`` / ``np.False_``, read from an array), and refuses anything else,
0 and 1 included (as :class:`~retinalnet.transforms.Preprocessing` always has).
"""

from __future__ import annotations

import numpy as np

__all__ = ["NotABoolError", "check_bool", "check_optional_bool"]


class NotABoolError(TypeError, ValueError):
    """A bool option given something else than ``True`` or ``False``.

    Both a :class:`TypeError` and a :class:`ValueError`, so code that caught either one
    (:class:`~retinalnet.transforms.Preprocessing` raised a ``ValueError``,
    :class:`~retinalnet.training.FineTune` a ``TypeError``) still catches it.
    """


def check_bool(value: object, name: str) -> bool:
    """``value`` as a Python bool if it is ``True`` or ``False`` (Python's or NumPy's).

    Examples
    --------
    >>> check_bool(np.bool_(True), "tta")
    True
    >>> check_bool("no", "overwrite")
    Traceback (most recent call last):
    ...
    retinalnet._core.bool_options.NotABoolError: overwrite must be True or False, got 'no'

    Raises
    ------
    NotABoolError
        ``{name} must be True or False, got {value!r}`` (a ``TypeError`` and a
        ``ValueError``).
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise NotABoolError(f"{name} must be True or False, got {value!r}")


def check_optional_bool(value: object, name: str) -> bool | None:
    """``value`` as for :func:`check_bool`, or ``None`` (an option whose default is decided
    elsewhere, e.g. ``create_model(freeze=None)``: the model's own default).

    Raises
    ------
    NotABoolError
        ``{name} must be True, False or None, got {value!r}``.
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise NotABoolError(f"{name} must be True, False or None, got {value!r}")
