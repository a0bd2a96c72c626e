"""What the functions a user gives a fit return, checked where the fit uses it.

A :class:`~retinalnet.training.ClassificationTask` takes functions: metrics of a validation,
and factories of the optimizer and the scheduler; :meth:`Trainer.log
<retinalnet.training.Trainer.log>` takes a value. Type hints say what each returns, but a
lambda or an untyped function is not checked by a type checker, and what came back went on
unchecked: a metric missing its ``return`` (``None``) or returning one value per class
(sklearn's ``average=None``) failed in ``float()`` once the epoch had trained, naming
neither the metric nor the fix, and ``"0.5"`` was read as ``0.5``; a factory returning
:func:`~retinalnet.training.discriminative_param_groups`' list, not an optimizer built from
it, failed as ``'list' object has no attribute 'param_groups'``, and one returning the rule
of a ``LambdaLR``, not the scheduler, as ``'function' object has no attribute 'step'``
after the first epoch. Each is refused here in one line naming the function, what it
returned and the fix.
"""

from __future__ import annotations

import inspect
import reprlib
from typing import cast

import numpy as np
import torch

from retinalnet._core.counts import as_number

__all__ = ["checked_optimizer", "checked_scheduler", "metric_number"]

Scheduler = torch.optim.lr_scheduler.LRScheduler

_SCHEDULERS = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 2, 30, 30
_LONGEST = 60
"""The longest a value is shown in a message (a list of parameter groups is long)."""


def _shown(value: object) -> str:
    """What ``value`` is, on one short line: ``None``, ``'0.5' (str)``,
    ``array([0.5, ...]) (numpy.ndarray of shape (4,))``, ``the function <lambda>``."""
    if value is None:
        return "None"
    if inspect.isroutine(value):
        return f"the function {getattr(value, '__name__', repr(value))}"
    kind = type(value)
    module = kind.__module__.split(".")[0]
    name = kind.__name__ if module == "builtins" else f"{module}.{kind.__name__}"
    if isinstance(value, np.ndarray | torch.Tensor):
        name += f" of shape {tuple(value.shape)}"
    elif isinstance(value, list | tuple):
        name += f" of {len(value)}"
    text = " ".join(_REPR.repr(value).split())
    if len(text) > _LONGEST:
        text = text[: _LONGEST - 3] + "..."
    return f"{text} ({name})"


def _many(value: object) -> bool:
    """Whether ``value`` holds several values (one per class, say)."""
    if isinstance(value, torch.Tensor):
        return value.numel() != 1
    if isinstance(value, np.ndarray):
        return value.size != 1
    return isinstance(value, list | tuple | dict)


def _one_number(value: object) -> float | None:
    """``value`` as a float if it is one real number: a Python or NumPy number (not a
    bool, as :func:`~retinalnet._core.counts.as_number` rules), or an array or tensor of
    one element of integers or floats; else ``None``."""
    number = as_number(value)
    if number is not None:
        return number
    if isinstance(value, torch.Tensor):
        real = not (value.dtype.is_complex or value.dtype == torch.bool)
        return float(value.item()) if value.numel() == 1 and real else None
    if isinstance(value, np.ndarray):
        return float(value.item()) if value.size == 1 and value.dtype.kind in "iuf" else None
    return None


def metric_number(name: str, value: object, *, logged: bool = False) -> float:
    """``value``, the value of the metric ``name``, as a float.

    Parameters
    ----------
    name
        The metric's name.
    value
        What the task's metric function returned, or (``logged``) what was given to
        :meth:`Trainer.log <retinalnet.training.Trainer.log>`.
    logged
        Whether ``value`` was logged, rather than returned by a task's metric.

    Examples
    --------
    >>> import numpy as np
    >>> metric_number("val_auc", np.float32(0.5)), metric_number("val_auc", np.array(1))
    (0.5, 1.0)
    >>> metric_number("val_recall", None)
    Traceback (most recent call last):
    ...
    TypeError: metric 'val_recall' returned None (a missing `return`?): ...

    Raises
    ------
    TypeError
        If ``value`` is not one real number (a bool, a string, ``None``, an array of more
        than one value), naming the metric, what it got and the fix.
    """
    number = _one_number(value)
    if number is not None:
        return number
    shown = _shown(value) + (" (a missing `return`?)" if value is None else "")
    if logged:
        said = f"Trainer.log({name!r}, value) got {shown}: log one number"
        per_class = f'trainer.log(f"{name}_{{class_name}}", value)'
        one = f"trainer.log({name!r}, float(value))"
    else:
        said = f"metric {name!r} returned {shown}: a metric returns one number per validation"
        per_class = (
            f'metrics={{"{name}_DRUSEN": lambda result: result.per_class_accuracy["DRUSEN"]}}'
        )
        one = "return float(...)"
    if _many(value):
        each = "log" if logged else "give"
        raise TypeError(
            f"{said}; for per-class values, {each} one metric per class, e.g. {per_class}"
        )
    raise TypeError(f"{said}, e.g. {one}")


def checked_optimizer(optimizer: object, owner: str) -> torch.optim.Optimizer:
    """``optimizer``, what ``owner``'s optimizer factory returned, if it is a torch
    optimizer.

    Raises
    ------
    TypeError
        Naming what the factory returned and how to build an optimizer (a list of
        parameter groups, as :func:`~retinalnet.training.discriminative_param_groups`
        gives, goes into one).
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    said = f"{owner}(optimizer=...) returned {_shown(optimizer)}, not a torch optimizer"
    if isinstance(optimizer, list | tuple):
        raise TypeError(
            f"{said}: put the parameter groups in one, e.g. optimizer=lambda params: "
            "torch.optim.AdamW(discriminative_param_groups(model, 2, lr=1e-4, head_lr=1e-3))"
        )
    raise TypeError(
        f"{said}: return one built from the parameters it is given, e.g. "
        "optimizer=lambda params: torch.optim.SGD(params, lr=0.01)"
    )


def checked_scheduler(scheduler: object, optimizer: torch.optim.Optimizer, owner: str) -> Scheduler:
    """``scheduler``, what ``owner``'s scheduler factory returned for ``optimizer``, if it
    is a learning-rate scheduler (``ReduceLROnPlateau`` included) of that optimizer, or an
    object of a class of its own that schedules as one (``step()``, ``state_dict()`` and
    ``load_state_dict()``: a hand-written warm-up).

    Raises
    ------
    TypeError
        Naming what the factory returned and how to build a scheduler (a function of the
        epoch goes into a ``LambdaLR``; ``None``: leave ``scheduler`` out for a constant
        rate).
    ValueError
        For a scheduler of another optimizer than ``optimizer`` (it would set the rates of
        an optimizer the fit does not step).
    """
    if isinstance(scheduler, _SCHEDULERS) or _steps_and_saves(scheduler):
        # a scheduler of the fit's optimizer; one of a class of its own may name none
        if getattr(scheduler, "optimizer", optimizer) is not optimizer:
            raise ValueError(
                f"{owner}(scheduler=...) returned a {type(scheduler).__name__} of another "
                "optimizer than the one it was given, so the fit's rate would never change: "
                "build it from its argument, e.g. scheduler=lambda optimizer: "
                "torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20)"
            )
        return cast(Scheduler, scheduler)
    said = f"{owner}(scheduler=...) returned {_shown(scheduler)}, not a learning-rate scheduler"
    if callable(scheduler):
        raise TypeError(
            f"{said}: a rule of the epoch goes into a LambdaLR, e.g. scheduler=lambda "
            "optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.9**epoch)"
        )
    constant = "; for a constant rate, leave scheduler out" if scheduler is None else ""
    raise TypeError(
        f"{said}: return one built from the optimizer it is given, e.g. scheduler=lambda "
        f"optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20){constant}"
    )


def _steps_and_saves(scheduler: object) -> bool:
    """Whether ``scheduler`` has what the fit calls on a scheduler (not a function, not an
    optimizer: its step would be a second update of the weights)."""
    if isinstance(scheduler, (type, torch.optim.Optimizer)):  # an optimizer steps and saves too
        return False
    return all(
        callable(getattr(scheduler, name, None))
        for name in ("step", "state_dict", "load_state_dict")
    )
