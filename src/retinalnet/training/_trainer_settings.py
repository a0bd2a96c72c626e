"""The :class:`~retinalnet.training.Trainer` settings that :func:`~retinalnet.training.fine_tune`
passes on to both of its phases, as a type: a misspelt keyword (``batch_sise=16``) is then
an error of the user's type checker, not only of the call."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypedDict

import torch

from retinalnet.precision import Precision
from retinalnet.training._callbacks import Callback
from retinalnet.training._config import FeatureCacheOption

__all__ = ["TRAINER_SETTINGS", "TrainerSettings"]


class TrainerSettings(TypedDict, total=False):
    """Keyword arguments of :func:`~retinalnet.training.fine_tune` and
    :func:`~retinalnet.training.fine_tune_trainer`, each as :class:`Trainer` takes it.

    .. versionadded:: 0.2
    """

    batch_size: int
    callbacks: Sequence[Callback]
    out_dir: str | os.PathLike[str] | None
    overwrite: bool
    precision: Precision
    device: str | torch.device
    seed: int | None
    progress: bool
    num_workers: int | None
    feature_cache: FeatureCacheOption


TRAINER_SETTINGS = frozenset(TrainerSettings.__annotations__)
"""The names of the settings, which the calls also check when they run."""
