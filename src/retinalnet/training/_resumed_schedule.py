"""A resumed fit's learning-rate schedule: refused when it is not the run's, and its rate
said when the fit was given another.

A checkpoint's scheduler state loads only into a scheduler of the run's kind: a fit without
a scheduler would drop it (the rate stays where the run's schedule had taken it, for every
epoch left), and one of another kind would take the foreign state into its attributes
(``LRScheduler.load_state_dict`` updates them whatever they are). Both are refused before
any epoch, as another optimizer is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from retinalnet.training._history import History

__all__ = ["SCHEDULER_CLASS_KEY", "check_resumed_schedule", "start_rates", "warn_of_other_rates"]

logger = logging.getLogger(__name__)

SCHEDULER_CLASS_KEY = "scheduler_class"
"""The loop state's entry naming the class of the run's scheduler (``None``: none)."""

# public entries of a scheduler's state that a torch version added or dropped
_VERSIONED_ENTRIES = frozenset({"verbose", "default_min_lr"})  # not in every torch

_FIX = (
    "resume with the run's scheduler (the task it was trained with: "
    "ClassificationTask(scheduler=...)), or start a new run"
)


def check_resumed_schedule(
    source: str,
    *,
    saved_state: Mapping[str, Any] | None,
    training_state: bool,
    loop_state: Mapping[str, Any],
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
) -> None:
    """Refuse to resume a run whose learning-rate schedule this fit does not have: a
    checkpoint with a scheduler state and a fit without a scheduler, a fit with a scheduler
    and a checkpoint of a run without one (``training_state``: it holds an optimizer state,
    so the run trained; a checkpoint of weights alone is not checked), or schedulers of
    other classes (named in the loop state since this check; before, told apart by the
    entries of their states: a state lacking this one's settings, or holding others where
    this one is torch's own).

    Raises
    ------
    ValueError
        Naming the file, what its run and this fit have, and the fix.
    """
    if saved_state is None:
        if scheduler is not None and training_state:
            raise ValueError(
                f"cannot resume from {source}: its run had no learning-rate scheduler; this "
                f"fit steps a {type(scheduler).__name__}; resume without a scheduler (the "
                "run's task), or start a new run"
            )
        return
    saved_class = loop_state.get(SCHEDULER_CLASS_KEY)
    run = f"a {saved_class}" if isinstance(saved_class, str) else "a learning-rate scheduler"
    if scheduler is None:
        raise ValueError(
            f"cannot resume from {source}: its run stepped {run}; this fit has no scheduler "
            f"(its rate would stay where the run's schedule left it); {_FIX}"
        )
    this_class = type(scheduler).__name__
    if isinstance(saved_class, str):
        if saved_class != this_class:
            raise ValueError(
                f"cannot resume from {source}: its run stepped a {saved_class}; this fit "
                f"steps a {this_class}; {_FIX}"
            )
        return
    # a checkpoint from before the class was recorded: another scheduler's state lacks
    # settings of this one, or holds others (which a scheduler of your own may add after
    # its first step, but none of torch's: their version-dependent entries are left out)
    saved, now = _public_entries(saved_state), _public_entries(scheduler.state_dict())
    extra, missing = sorted(saved - now), sorted(now - saved)
    torch_own = type(scheduler).__module__.startswith("torch.")
    if missing or (extra and torch_own):
        if extra and missing:
            held = f"its state holds {', '.join(extra)}, a {this_class}'s {', '.join(missing)}"
        elif missing:
            held = f"its state lacks a {this_class}'s {', '.join(missing)}"
        else:
            held = f"its state holds {', '.join(extra)}, which a {this_class} has not"
        raise ValueError(
            f"cannot resume from {source}: its run stepped another scheduler than this fit's "
            f"{this_class} ({held}); {_FIX}"
        )


def _public_entries(state: Mapping[str, Any]) -> set[str]:
    return {str(key) for key in state if not str(key).startswith("_")} - _VERSIONED_ENTRIES


def start_rates(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's rate at its run's start: a scheduler keeps it as ``initial_lr`` and
    scales ``lr`` (a warm-up starts ``lr`` at a hundredth of it); without ``initial_lr``,
    ``lr`` (see :func:`warn_of_other_rates` for a run whose scheduler kept none)."""
    return [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]


def warn_of_other_rates(
    source: str,
    optimizer: torch.optim.Optimizer,
    *,
    given: Sequence[float],
    history: History,
    scheduled: bool,
) -> None:
    """Warn once when the resumed optimizer's run started at other rates than this fit was
    ``given`` (:func:`start_rates` before the run's state was loaded): the run's rates win.
    The warning names the rates in use (each group's ``lr``) and, where they differ, the
    run's starting rates. A run whose scheduler keeps no starting rate
    (``ReduceLROnPlateau``, ``scheduled``) started its first group at the rate its first
    epoch records; its other groups' starting rates are unknown and not compared."""
    in_use = [float(group["lr"]) for group in optimizer.param_groups]
    started: list[float | None] = list(start_rates(optimizer))
    for index, group in enumerate(optimizer.param_groups):
        if scheduled and "initial_lr" not in group:
            started[index] = history[0].lr if index == 0 and len(history) else None
    # the groups are as many: the optimizer refuses a state of other groups
    if all(run is None or run == this for run, this in zip(started, given, strict=True)):
        return
    known = [rate for rate in started if rate is not None]
    given_text = _rates(given)
    if known == in_use:
        rates = f"{_rates(in_use)}, not the {given_text} this fit was given"
    else:  # its schedule has moved the rates on
        rates = (
            f"{_rates(in_use)} in use now (the run started at {_rates(known)}, not at the "
            f"{given_text} this fit was given)"
        )
    logger.warning(
        "resumed the optimizer of %s with its learning rate %s: a resumed fit continues the "
        "run as it was. To train on with another learning rate, start a new run",
        source,
        rates,
    )


def _rates(rates: Sequence[float]) -> str:
    return ", ".join(f"{rate:g}" for rate in rates)
