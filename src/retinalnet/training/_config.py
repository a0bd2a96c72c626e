"""Small typed settings of the Trainer: the feature cache (and what ``"auto"`` chooses), and
the loop settings checked."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from torch import nn
from torch.utils.data import DataLoader

from retinalnet._core.counts import check_count
from retinalnet._core.loader_settings import check_batch_size, check_num_workers
from retinalnet._core.loaders import DataSource
from retinalnet.models import Classifier
from retinalnet.models._classifier import network_of
from retinalnet.training._feature_cache import trainable_head

__all__ = [
    "FeatureCacheChoice",
    "FeatureCacheConfig",
    "FeatureCacheOption",
    "check_loop_settings",
    "choose_feature_cache",
    "feature_cache_config",
    "why_data_is_not_cached",
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
    ``Trainer(feature_cache="runs/features")`` is ``FeatureCacheConfig(cache_dir=...)``; the
    default, ``feature_cache="auto"``, is ``FeatureCacheConfig()`` for a model whose
    parameters outside one final head are all frozen, and no cache otherwise.

    .. versionadded:: 0.2
    """

    cache_dir: Path | None = None
    views: int = 0

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, views: int = 0) -> None:
        views = check_count(views, "views", 0)
        if cache_dir is not None and not isinstance(cache_dir, str | os.PathLike):
            raise TypeError(
                f"cache_dir must be a folder path or None, got {type(cache_dir).__name__}"
            )
        object.__setattr__(self, "cache_dir", Path(cache_dir) if cache_dir is not None else None)
        object.__setattr__(self, "views", views)


FeatureCacheOption: TypeAlias = Literal["auto"] | bool | str | os.PathLike[str] | FeatureCacheConfig
"""What ``Trainer(feature_cache=...)`` takes: ``"auto"`` (the default), ``True``/``False``, a
folder, or a :class:`FeatureCacheConfig`."""


def feature_cache_config(option: FeatureCacheOption) -> FeatureCacheConfig | None:
    """The config behind an explicit ``feature_cache`` argument; ``None`` when there is no
    cache.

    Raises
    ------
    TypeError
        If ``option`` is ``"auto"`` (see :func:`choose_feature_cache`) or none of ``bool``, a
        folder path or a :class:`FeatureCacheConfig`.
    """
    if isinstance(option, str) and option == "auto":
        raise TypeError("feature_cache='auto' depends on the model: use choose_feature_cache")
    if isinstance(option, FeatureCacheConfig):
        return option
    if option is False:
        return None
    if option is True:
        return FeatureCacheConfig()
    if isinstance(option, str | os.PathLike):
        return FeatureCacheConfig(cache_dir=option)
    raise TypeError(
        f"feature_cache must be 'auto', True, False, a folder path or a FeatureCacheConfig, "
        f"got {option!r}"
    )


@dataclass(frozen=True)
class FeatureCacheChoice:
    """What a Trainer's ``feature_cache`` argument comes to for its model.

    Attributes
    ----------
    config
        The cache's settings; ``None``: no cache.
    auto
        Whether ``"auto"`` chose it: then data that cannot be cached (a DataLoader, a data
        set with its own transform, a head that is not the model's last step) is trained on
        without the cache instead of being refused.
    reason
        Why, in words, for the log line of each fit.
    """

    config: FeatureCacheConfig | None
    auto: bool
    reason: str


def choose_feature_cache(option: FeatureCacheOption, model: nn.Module) -> FeatureCacheChoice:
    """Resolve ``Trainer(feature_cache=option)`` for ``model``.

    ``"auto"`` turns the cache on, in memory and without augmented views, when ``model`` is
    a :class:`~retinalnet.models.Classifier` whose parameters outside one final head (see
    :func:`~retinalnet.training._feature_cache.trainable_head`) are all frozen, and some are
    frozen; it is off for fine-tuning, for a model that trains every parameter, and for a
    plain module. An explicit choice is checked against the model.

    The reason says when the model's preprocessing augments (:attr:`Preprocessing.augments
    <retinalnet.transforms.Preprocessing.augments>`) that the cached training images are
    not augmented, and the two ways to augment: ``FeatureCacheConfig(views=N)`` or
    ``feature_cache=False``.

    Raises
    ------
    TypeError
        For an ``option`` of another type, or an explicit cache with a plain module.
    ValueError
        For an explicit cache when trainable parameters lie outside one final head.
    """
    if isinstance(option, str) and option == "auto":
        return _auto_choice(model)
    config = feature_cache_config(option)
    if config is None:
        return FeatureCacheChoice(None, auto=False, reason="feature_cache=False")
    if not isinstance(model, Classifier):
        raise TypeError("feature_cache needs a retinalnet Classifier model")
    trainable_head(model)  # fails now if the model has no frozen part to cache
    where = f"in {str(config.cache_dir)!r}" if config.cache_dir is not None else "in memory"
    return FeatureCacheChoice(config, auto=False, reason=f"feature_cache={option!r}, {where}")


def _auto_choice(model: nn.Module) -> FeatureCacheChoice:
    if not isinstance(model, Classifier):
        return FeatureCacheChoice(None, auto=True, reason="the model is not a Classifier")
    if all(p.requires_grad for p in network_of(model).parameters()):
        reason = "every parameter trains: no frozen backbone to cache"
        return FeatureCacheChoice(None, auto=True, reason=reason)
    try:
        head_name, _ = trainable_head(model)
    except ValueError:
        reason = "parameters outside one final head train (fine-tuning): no frozen part to cache"
        return FeatureCacheChoice(None, auto=True, reason=reason)
    reason = f"the backbone is frozen and only the head {head_name!r} trains, so its features are "
    if model.preprocessing.augments:  # said, never silent: the augmentation stops at the cache
        reason += (
            "computed once, in memory, from the training images without their augmentation: "
            "FeatureCacheConfig(views=N) also caches N augmented views of each, "
            "feature_cache=False turns the cache off and augments every epoch"
        )
    else:
        reason += "computed once, in memory; feature_cache=False turns this off"
    return FeatureCacheChoice(FeatureCacheConfig(), auto=True, reason=reason)


def why_data_is_not_cached(data: DataSource) -> str | None:
    """Why ``feature_cache="auto"`` leaves ``data`` uncached, or ``None`` if it caches it.

    A DataLoader is used as it is, and a data set with its own ``transform`` (or one inside
    a ``Subset``) may augment at random: caching would keep one draw of it.
    """
    if isinstance(data, DataLoader):
        return "the data is a DataLoader, used as it is"
    inner: object = data
    while inner is not None:
        if getattr(inner, "transform", None) is not None:
            return (
                f"the {type(inner).__name__} has its own transform, which may augment at "
                "random (the cache would keep one draw of it)"
            )
        inner = getattr(inner, "dataset", None)  # a Subset's data set
    return None


def check_loop_settings(*, max_epochs: int, batch_size: int, num_workers: int | None) -> None:
    """Refuse loop settings out of range, naming the setting and the value.

    Raises
    ------
    ValueError
        If ``max_epochs`` or ``batch_size`` is not an int >= 1, or ``num_workers`` is not
        ``None`` or an int from 0 to 4 per CPU core (at least 32).
    """
    check_count(max_epochs, "max_epochs")
    check_batch_size(batch_size)
    check_num_workers(num_workers)
