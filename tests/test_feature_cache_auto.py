"""What ``feature_cache="auto"`` says when it caches a frozen backbone's features: that the
training images are cached without the model's augmentation, and the two ways to keep it."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from _training_helpers import CLASSES, separable_data
from retinalnet.models import Classifier
from retinalnet.training import Trainer
from retinalnet.transforms import Preprocessing


def _frozen_trunk(preset: str) -> Classifier:
    """A frozen ``Linear(8, 8)`` trunk and a trainable head, preprocessing with ``preset``."""
    torch.manual_seed(0)
    trunk = nn.Linear(8, 8)
    trunk.requires_grad_(False)
    head = nn.Sequential(nn.Linear(8, 4), nn.LogSoftmax(dim=1))
    preprocessing = Preprocessing(size=32).with_augmentation(preset)
    return Classifier(nn.Sequential(trunk, head), classes=CLASSES, preprocessing=preprocessing)


def _said_by_the_fit(model: Classifier, caplog: pytest.LogCaptureFixture) -> list[str]:
    trainer = Trainer(model, device="cpu", max_epochs=1, batch_size=8, seed=0, progress=True)
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        trainer.fit(separable_data(16), separable_data(8, seed=1))
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("feature cache")]


@pytest.mark.parametrize("preset", ["tutorial", "oct-strong"])
def test_auto_says_the_cached_training_images_miss_the_augmentation_and_the_two_fixes(
    preset: str, caplog: pytest.LogCaptureFixture
) -> None:
    # was: "... computed once, in memory; feature_cache=False turns this off", and the
    # preset (the default Preprocessing's "tutorial" included) reached no training image
    assert _said_by_the_fit(_frozen_trunk(preset), caplog) == [
        "feature cache: on (the backbone is frozen and only the head '1' trains, so its "
        "features are computed once, in memory, from the training images without their "
        "augmentation: FeatureCacheConfig(views=N) also caches N augmented views of each, "
        "feature_cache=False turns the cache off and augments every epoch)"
    ]


def test_auto_without_augmentation_says_only_how_to_turn_the_cache_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _said_by_the_fit(_frozen_trunk("none"), caplog) == [
        "feature cache: on (the backbone is frozen and only the head '1' trains, so its "
        "features are computed once, in memory; feature_cache=False turns this off)"
    ]
