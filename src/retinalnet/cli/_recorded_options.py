"""The ``retinalnet train`` options a checkpoint records, by name.

Read by ``train --resume`` (which takes them back) and by ``retinalnet info`` (which shows
them); a module of its own, without torch, so that building the parser (``--help``,
``--version``) does not import torch through ``info``.
"""

from __future__ import annotations

__all__ = ["RECORDED_OPTIONS"]

RECORDED_OPTIONS: tuple[str, ...] = (
    "epochs",
    "batch_size",
    "lr",
    "balance",
    "patience",
    "augment",
    "cache_views",
    "feature_cache",
    "precision",
    "seed",
    "calibrate",
)
"""The train options that change a run's result and that the checkpoint holds nowhere else."""
