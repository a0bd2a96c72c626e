"""Small typed settings of the Trainer: the feature cache, and the loop settings checked."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

__all__ = [
    "FeatureCacheConfig",
    "FeatureCacheOption",
    "check_loop_settings",
    "feature_cache_config",
]


@dataclass(frozen=True)
class FeatureCacheConfig:
    """How the Trainer caches the frozen backbone's features (``Trainer(feature_cache=...)``).

    Parameters
    ----------
    cache_dir
        Keep the cache on disk under this folder (memory-mapped when read back) and reuse it
        in later runs; ``None`` keeps it in memory for this Trainer only. See
        :func:`~retinalnet.training.build_feature_cache`.
    views
        Also cache this many augmented copies of each training image (the model's training
        preprocessing), so some augmentation still reaches the head, at ``views`` times the
        cost of building the cache.

    Raises
    ------
    ValueError
        If ``views`` is not an int >= 0.

    Examples
    --------
    >>> from retinalnet.training import FeatureCacheConfig, Trainer
    >>> cache = FeatureCacheConfig(cache_dir="runs/features", views=2)
    >>> trainer = Trainer(model, feature_cache=cache)  # doctest: +SKIP

    ``Trainer(feature_cache=True)`` is ``FeatureCacheConfig()`` and
    ``Trainer(feature_cache="runs/features")`` is ``FeatureCacheConfig(cache_dir=...)``.

    .. versionadded:: 0.2
    """

    cache_dir: Path | None = None
    views: int = 0

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, views: int = 0) -> None:
        if isinstance(views, bool) or not isinstance(views, int) or views < 0:
            raise ValueError(f"views must be an int >= 0, got {views!r}")
        if cache_dir is not None and not isinstance(cache_dir, str | os.PathLike):
            raise TypeError(
                f"cache_dir must be a folder path or None, got {type(cache_dir).__name__}"
            )
        object.__setattr__(self, "cache_dir", Path(cache_dir) if cache_dir is not None else None)
        object.__setattr__(self, "views", views)


FeatureCacheOption: TypeAlias = bool | str | os.PathLike[str] | FeatureCacheConfig
"""What ``Trainer(feature_cache=...)`` takes."""


def feature_cache_config(option: FeatureCacheOption) -> FeatureCacheConfig | None:
    """The config behind a ``feature_cache`` argument; ``None`` when there is no cache.

    Raises
    ------
    TypeError
        If ``option`` is none of ``bool``, a folder path or a :class:`FeatureCacheConfig`.
    """
    if isinstance(option, FeatureCacheConfig):
        return option
    if option is False:
        return None
    if option is True:
        return FeatureCacheConfig()
    if isinstance(option, str | os.PathLike):
        return FeatureCacheConfig(cache_dir=option)
    raise TypeError(
        f"feature_cache must be True, False, a folder path or a FeatureCacheConfig, got {option!r}"
    )


def check_loop_settings(*, max_epochs: int, batch_size: int, num_workers: int | None) -> None:
    """Refuse loop settings out of range, naming the setting and the value.

    Raises
    ------
    ValueError
        If ``max_epochs`` or ``batch_size`` is not an int >= 1, or ``num_workers`` is not
        ``None`` or an int >= 0.
    """
    for name, value, low in (
        ("max_epochs", max_epochs, 1),
        ("batch_size", batch_size, 1),
        ("num_workers", 0 if num_workers is None else num_workers, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
