"""Which way a monitored metric is better: the ``monitor`` and ``mode`` of
:class:`EarlyStopping`, :class:`ModelCheckpoint` and :meth:`History.best`, checked and
resolved in one place.

``mode="auto"`` (their default, as Keras') takes lower as better for a loss and ``lr``, and
higher for an accuracy; for any other name (a metric of your own) it cannot tell, and asks
for ``mode="min"`` or ``mode="max"``.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from retinalnet._core.caller_warnings import warn_caller

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "MODES",
    "check_mode",
    "check_monitor_and_mode",
    "check_monitor_name",
    "judged_otherwise",
    "known_mode",
    "nan_monitor_message",
    "never_a_number",
    "refuse_unknown_direction",
    "resolve_mode",
    "warn_no_best",
]

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("auto", "min", "max")
"""The values of ``mode``: ``"auto"`` decides from the metric's name."""

_AUTO_RULE = "mode='auto' decides only for lr and names ending in '_loss' or '_accuracy'"


def known_mode(monitor: str) -> str | None:
    """Which way ``monitor`` is better, from its name: ``"min"`` for a loss (a name ending in
    ``_loss``) and ``lr``, ``"max"`` for an accuracy (ending in ``_accuracy``), ``None`` for
    any other name.

    Examples
    --------
    >>> known_mode("val_loss"), known_mode("val_accuracy"), known_mode("val_auc")
    ('min', 'max', None)
    """
    if monitor in ("loss", "lr") or monitor.endswith("_loss"):
        return "min"
    if monitor == "accuracy" or monitor.endswith("_accuracy"):
        return "max"
    return None


def check_monitor_name(monitor: object, owner: str) -> str:
    """``monitor``, if it is a metric name (a non-empty string).

    Parameters
    ----------
    monitor
        What was passed as ``monitor``.
    owner
        Who is asking, for the message (``"EarlyStopping"``, ``"History.best"``).

    Raises
    ------
    TypeError
        If ``monitor`` is not a string; for a whole number given to ``EarlyStopping`` (its
        first positional parameter is ``monitor``), the message points to ``patience=``.
    ValueError
        If ``monitor`` is an empty string.
    """
    if isinstance(monitor, str):
        if monitor:
            return monitor
        raise ValueError(f"{owner}: monitor must be a metric name such as 'val_loss', got ''")
    hint = _patience_hint(monitor, owner)
    raise TypeError(
        f"{owner}: monitor must be a metric name such as 'val_loss', got {monitor!r}{hint}"
    )


def _patience_hint(value: object, owner: str) -> str:
    """For a whole number given to ``EarlyStopping`` where a name goes (``EarlyStopping(5)``,
    ``EarlyStopping("val_loss", 5)``): the pointer to ``patience=``; else nothing."""
    if owner != "EarlyStopping" or not isinstance(value, numbers.Integral):
        return ""
    if isinstance(value, bool):
        return ""
    return f"; for the patience, pass EarlyStopping(patience={int(value)})"


def check_mode(mode: object, owner: str) -> str:
    """``mode``, if it is one of :data:`MODES`.

    Raises
    ------
    ValueError
        Naming the value and the modes; for a whole number given to ``EarlyStopping``
        (``EarlyStopping("val_loss", 5)``), the message points to ``patience=``.
    """
    if isinstance(mode, str) and mode in MODES:
        return mode
    hint = _patience_hint(mode, owner)
    raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}{hint}")


def resolve_mode(monitor: str, mode: str, owner: str) -> str:
    """The mode to compare ``monitor`` with: ``mode`` when it is ``"min"`` or ``"max"``; for
    ``"auto"``, :func:`known_mode`'s, or ``"auto"`` still when the name tells nothing (see
    :func:`refuse_unknown_direction`).

    A ``mode`` against the known direction (``mode="min"`` for an accuracy, ``"max"`` for a
    loss) is kept, with a ``UserWarning`` saying which epoch it keeps.
    """
    known = known_mode(monitor)
    if mode == "auto":
        return known or "auto"
    if known is not None and mode != known:
        extreme = "lowest" if mode == "min" else "highest"
        better = "higher" if known == "max" else "lower"
        warn_caller(
            f"{owner}: mode={mode!r} keeps the epoch with the {extreme} {monitor!r}, of which "
            f"{better} is better; pass mode={known!r}, or leave mode out ('auto' picks it)",
            UserWarning,
        )
    return mode


def refuse_unknown_direction(monitor: str, mode: str, owner: str) -> None:
    """Refuse ``mode="auto"`` for a metric whose name does not tell which way is better.

    Raises
    ------
    ValueError
        Asking for ``mode="max"`` or ``mode="min"``.
    """
    if mode == "auto":
        raise ValueError(
            f"{owner}: retinalnet cannot tell whether a higher or a lower {monitor!r} is "
            f"better; pass mode='max' or mode='min' ({_AUTO_RULE})"
        )


def check_monitor_and_mode(monitor: object, mode: object, owner: str) -> tuple[str, str, str]:
    """``(monitor, mode, given)``: :func:`check_monitor_name`, then :func:`check_mode`, then
    the mode :func:`resolve_mode` gives; ``given`` is the mode as passed."""
    name = check_monitor_name(monitor, owner)
    given = check_mode(mode, owner)
    return name, resolve_mode(name, given, owner), given


def judged_otherwise(
    state: Mapping[str, Any], monitor: str, mode: str, given: str, owner: str
) -> str | None:
    """How the best value of a resumed callback ``state`` was judged, against this
    callback's ``monitor`` and ``mode`` (``given``: the mode it was built with): ``None``,
    the same way; ``"mode"``, on the same metric the other way round; ``"monitor"``, on
    another metric. A difference is logged as a warning.

    A state written before 0.2 records neither: its metric and mode are taken to be this
    one's. Its mode cannot be told (``mode="max"`` then, or the default ``"min"``): a run
    that passed ``mode="max"`` for an accuracy, the only right way then, resumes as it ran.
    """
    recorded_monitor = state.get("monitor", monitor)
    recorded_mode = state.get("mode", mode)
    best, epoch = state["best_score"], state["best_epoch"]
    if best is None or (recorded_monitor, recorded_mode) == (monitor, mode):
        return None
    if recorded_monitor != monitor:
        logger.warning(
            "the resumed %s state is of %r, and this one monitors %r: its best (%s at epoch "
            "%s) is left out, and the next epoch starts the best afresh",
            owner,
            recorded_monitor,
            monitor,
            f"{best:.4g}",
            epoch,
        )
        return "monitor"
    logger.warning(
        "the resumed %s state kept the %s %r (mode=%r), and this one keeps the %s "
        "(mode=%r): its epoch %s (%s) stays the one to beat%s",
        owner,
        "lowest" if recorded_mode == "min" else "highest",
        monitor,
        recorded_mode,
        "lowest" if mode == "min" else "highest",
        mode,
        epoch,
        f"{best:.4g}",
        ", and patience counts again from here" if owner == "EarlyStopping" else "",
    )
    return "mode"


_NAN_CAUSE = (
    "a metric is NaN where the data cannot define it, as an AUC on validation data without "
    "images of both classes (or of every class)"
)


def nan_monitor_message(monitor: str, epoch: int, owner: str) -> str:
    """What a callback logs, once per fit, at the first NaN of the metric it monitors: the
    epoch, what the NaN does (it never counts as an improvement), the likely cause and the
    fix.

    Examples
    --------
    >>> nan_monitor_message("val_auc", 1, "EarlyStopping")[:64]
    'EarlyStopping: val_auc is NaN (undefined) at epoch 1, so it coun'
    """
    effect = "it counts as no improvement"
    if owner == "ModelCheckpoint":
        effect += " and best.pt is not written for it"
    return (
        f"{owner}: {monitor} is NaN (undefined) at epoch {epoch}, so {effect}; {_NAN_CAUSE}: "
        "give the validation data images of every class, or monitor another metric (such as "
        "'val_loss'). Said once per fit"
    )


def never_a_number(monitor: str) -> str:
    """Why no epoch was best: ``monitor`` was NaN in every epoch of the fit (a resumed fit's
    epochs since the resume; see :func:`nan_monitor_message`)."""
    return f"{monitor} was NaN (undefined) in every epoch of this fit, so no epoch was best"


def warn_no_best(monitor: str, last: Path | None, epoch: int, earlier: Path | None) -> None:
    """Warn, at the end of a fit, that a :class:`ModelCheckpoint` wrote no ``best.pt``
    because ``monitor`` was NaN in every epoch; ``last`` is the ``last.pt`` it wrote
    (holding ``epoch``, the last), if any, and ``earlier`` a ``best.pt`` an earlier run
    left in the folder, if any."""
    if last is not None:
        left = f"{str(last)!r} holds the last epoch ({epoch})"
    else:
        left = "no last.pt was written either (save_last=False)"
    if earlier is not None:
        left += f", and {str(earlier)!r} is an earlier run's"
    warn_caller(
        f"ModelCheckpoint wrote no best.pt: {never_a_number(monitor)}; {left}. Monitor a "
        "metric the validation data defines (such as 'val_loss'), or give the validation "
        "data images of every class",
        UserWarning,
    )
