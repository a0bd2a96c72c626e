"""The Trainer's 0.1 keyword arguments, folded into the 0.2 ones with a DeprecationWarning.

Each alias is a line of :data:`OLD_TRAINER_ARGUMENTS`; :func:`trainer_arguments` is the one
place that reads them. The warning comes from :mod:`retinalnet._core.deprecation`, as for
every other 0.1 name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retinalnet._core.bool_options import check_bool
from retinalnet._core.deprecation import warn_deprecated
from retinalnet.training._config import FeatureCacheConfig, FeatureCacheOption, feature_cache_config
from retinalnet.training._task import ClassificationTask

__all__ = ["OLD_TRAINER_ARGUMENTS", "TrainerArguments", "trainer_arguments"]

OLD_TRAINER_ARGUMENTS: dict[str, str] = {
    # 0.1 keyword argument of Trainer: what to pass instead
    "checkpoint_dir": "out_dir=...",
    "verbose": "progress=...",
    "optimizer": "a task: Trainer(model, ClassificationTask(optimizer=...))",
    "scheduler": "a task: Trainer(model, ClassificationTask(scheduler=...))",
    "loss": "a task: Trainer(model, ClassificationTask(loss=...))",
    "lr": "a task: Trainer(model, ClassificationTask(lr=...))",
    "balance": "a task: Trainer(model, ClassificationTask(balance=...))",
    "cache_views": "feature_cache=FeatureCacheConfig(cache_dir=..., views=...)",
}

_TASK_ARGUMENTS = ("optimizer", "scheduler", "loss", "lr", "balance")


@dataclass(frozen=True)
class TrainerArguments:
    """The Trainer arguments that 0.1 keywords feed."""

    task: ClassificationTask | None
    out_dir: str | os.PathLike[str] | None
    progress: bool
    feature_cache: FeatureCacheOption


def trainer_arguments(old: Mapping[str, Any], new: TrainerArguments) -> TrainerArguments:
    """``new`` with the 0.1 keyword arguments in ``old`` folded in, each with a warning.

    Called by ``Trainer.__init__`` itself: the warnings point at the line that built the
    Trainer.

    Raises
    ------
    TypeError
        For a keyword the Trainer never took, or an old name given with its replacement.
    NotABoolError
        For a ``verbose`` that is not ``True``, ``False`` or an int (0.1's ``verbose=1``):
        ``"no"`` was read as ``True``.
    """
    unknown = [name for name in old if name not in OLD_TRAINER_ARGUMENTS]
    if unknown:
        raise TypeError(f"Trainer() got an unexpected keyword argument {unknown[0]!r}")
    for name in old:
        warn_deprecated(f"Trainer({name}=...)", f"pass {OLD_TRAINER_ARGUMENTS[name]}", stacklevel=4)
    out_dir, progress, feature_cache, task = new.out_dir, new.progress, new.feature_cache, new.task
    if "checkpoint_dir" in old:
        if out_dir is not None:
            raise TypeError("Trainer got both checkpoint_dir= and out_dir=; pass only out_dir=")
        out_dir = old["checkpoint_dir"]
    if "verbose" in old:
        verbose = old["verbose"]
        if type(verbose) is int:  # 0.1's verbose=1 kept working, as for run_demo
            verbose = bool(verbose)
        verbose = check_bool(verbose, "verbose")  # "no" is not read as True
        if not check_bool(progress, "progress") and verbose:
            raise TypeError("Trainer got both verbose= and progress=; pass only progress=")
        progress = verbose
    task_arguments = {name: old[name] for name in _TASK_ARGUMENTS if name in old}
    if task_arguments:
        if task is not None:
            raise TypeError(
                f"Trainer got a task and the 0.1 arguments {', '.join(task_arguments)}: "
                "pass them to ClassificationTask(...) only"
            )
        if task_arguments.get("optimizer") is not None:
            task_arguments.pop("lr", None)  # 0.1 ignored lr next to an optimizer
        task = ClassificationTask(**task_arguments)
    if "cache_views" in old:
        if isinstance(feature_cache, FeatureCacheConfig):
            raise TypeError(
                "Trainer got a FeatureCacheConfig and cache_views=: set "
                "FeatureCacheConfig(views=...) only"
            )
        # 0.1 ignored cache_views without a feature cache (and "auto" sets no views)
        config = None if feature_cache == "auto" else feature_cache_config(feature_cache)
        if config is not None:
            feature_cache = FeatureCacheConfig(config.cache_dir, views=old["cache_views"])
    return TrainerArguments(
        task=task, out_dir=out_dir, progress=progress, feature_cache=feature_cache
    )
