"""The features the Trainer built last, kept for reuse while they stay valid.

``retinalnet train`` evaluates the validation data once more after the fit: with the feature
cache, that would run the frozen backbone over every validation image again, minutes for a
large split. The Trainer keeps the features it built last, with what they came from, and
uses them again for the same data object while the weights outside the head are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from retinalnet._core.loaders import DataSource
from retinalnet.models import Classifier
from retinalnet.models._classifier import network_of
from retinalnet.training._feature_cache import _frozen_state_digest, preprocessing_key

__all__ = ["CachedData"]


@dataclass(eq=False)
class CachedData:
    """Features built from ``source`` (with ``views``), the preprocessing that made them, and
    the frozen weights they came from: where each tensor outside the head lives and how often
    it changed in place (cheap to compare), and a hash of their values (for when a tensor was
    written with the same values, as restoring the best epoch's weights does)."""

    source: DataSource
    views: int
    features: DataSource
    versions: tuple[tuple[int, int], ...]
    digest: str
    preprocessing: str

    @classmethod
    def of(
        cls, model: Classifier, head_name: str, source: DataSource, views: int, features: DataSource
    ) -> CachedData:
        versions = _frozen_versions(model, head_name)
        digest = _frozen_state_digest(model, head_name).hexdigest()
        preprocessing = preprocessing_key(model.preprocessing, views)
        return cls(source, views, features, versions, digest, preprocessing)

    def unchanged(self, model: Classifier, head_name: str) -> bool:
        """Whether the weights outside the head are still those the features came from, and
        the model's preprocessing (its augmentation too, for views) still makes them."""
        if preprocessing_key(model.preprocessing, self.views) != self.preprocessing:
            return False
        versions = _frozen_versions(model, head_name)
        if versions == self.versions:
            return True
        if _frozen_state_digest(model, head_name).hexdigest() != self.digest:
            return False
        self.versions = versions
        return True


def _frozen_versions(model: Classifier, head_name: str) -> tuple[tuple[int, int], ...]:
    prefix = f"{head_name}."
    return tuple(
        (tensor.data_ptr(), tensor._version)
        for name, tensor in network_of(model).state_dict(keep_vars=True).items()
        if not name.startswith(prefix)
    )
