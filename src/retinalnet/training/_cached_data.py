"""The features the Trainer built last, kept for reuse while they stay valid.

``retinalnet train`` evaluates the validation data once more after the fit: with the feature
cache, that would run the frozen backbone over every validation image again, minutes for a
large split. The Trainer keeps the features it built last, with what they came from, and
uses them again for the same data object while it holds the same images (its length, its
samples, its files' sizes and times) and the weights outside the head are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from retinalnet._core.loaders import DataSource
from retinalnet._core.tensor_stamp import TensorStamp, all_match, tensor_stamps
from retinalnet.models import Classifier
from retinalnet.models._classifier import network_of
from retinalnet.training._feature_cache import (
    _frozen_state_digest,
    data_fingerprint,
    preprocessing_key,
)

__all__ = ["CachedData"]


@dataclass(eq=False)
class CachedData:
    """Features built from ``source`` (with ``views``), the preprocessing that made them, and
    the frozen weights they came from: a stamp of each tensor outside the head (which tensor,
    on which storage, changed in place how often: cheap to compare, and a tensor put in its
    place, even at its address, does not match it; ``None`` for one that cannot be stamped),
    and a hash of their values (for when a tensor was written or replaced with the same
    values, as restoring the best epoch's weights does). ``data`` is
    what ``source`` held (:func:`_data_state`); ``seed`` drew the augmented views."""

    source: DataSource
    views: int
    features: DataSource
    versions: tuple[TensorStamp | None, ...]
    digest: str
    preprocessing: str
    data: tuple[object, ...] | None = None
    seed: int = 0

    @classmethod
    def of(
        cls,
        model: Classifier,
        head_name: str,
        source: DataSource,
        views: int,
        features: DataSource,
        *,
        seed: int = 0,
    ) -> CachedData:
        versions = tensor_stamps(_frozen_tensors(model, head_name))
        digest = _frozen_state_digest(model, head_name).hexdigest()
        preprocessing = preprocessing_key(model.preprocessing, views)
        data = _data_state(source)
        return cls(source, views, features, versions, digest, preprocessing, data, seed)

    def unchanged(self, model: Classifier, head_name: str) -> bool:
        """Whether the data set holds the images the features came from (its length; for a
        file-backed one its samples' paths, classes, file sizes and times; else its
        ``samples``), the weights outside the head are still those they came
        from, and the model's preprocessing (its augmentation too, for views) still makes
        them."""
        if preprocessing_key(model.preprocessing, self.views) != self.preprocessing:
            return False
        if self.data is None or _data_state(self.source) != self.data:
            return False
        frozen = _frozen_tensors(model, head_name)
        if all_match(self.versions, frozen):
            return True
        if _frozen_state_digest(model, head_name).hexdigest() != self.digest:
            return False
        self.versions = tensor_stamps(frozen)
        return True


def _data_state(data: object) -> tuple[object, ...] | None:
    """What ``data`` holds, cheaply: its length and, for a file-backed data set, the
    fingerprint of its files (paths, classes, sizes, times); for another, a copy of its
    ``samples`` list (a ``Subset``: its indices and its data set's). ``None`` when a file
    cannot be read (the features are then built again, which reports it)."""
    length = len(data)  # type: ignore[arg-type]
    indices, inner = getattr(data, "indices", None), getattr(data, "dataset", None)
    if indices is not None and inner is not None:  # a Subset
        return (length, tuple(indices), _data_state(inner))
    samples = getattr(data, "samples", None)
    try:
        return (length, data_fingerprint(data))  # type: ignore[arg-type]
    except TypeError:  # not file-backed
        return (length, tuple(samples) if isinstance(samples, list | tuple) else None)
    except OSError:
        return None


def _frozen_tensors(model: Classifier, head_name: str) -> list[torch.Tensor]:
    """The tensors of ``model``'s state outside its head, in ``state_dict`` order."""
    prefix = f"{head_name}."
    return [
        tensor
        for name, tensor in network_of(model).state_dict(keep_vars=True).items()
        if not name.startswith(prefix)
    ]
