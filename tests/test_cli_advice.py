"""The library's advice said with the command's flags (``cli/_advice.py``'s table): the
feature cache's."""

from __future__ import annotations

import pytest

from retinalnet.cli._advice import cli_text
from retinalnet.models import create_model
from retinalnet.training import Trainer


def test_the_feature_cache_refused_for_a_model_that_trains_whole_is_said_with_flags() -> None:
    # `evaluate --feature-cache` of a small_cnn checkpoint, and any train door the command's
    # own check does not catch first; was: "(e.g. except_last_blocks > 0 or freeze=False);
    # train without the cache, or freeze the backbone"
    model = create_model("small_cnn", weights=None, classes=["CNV", "DME", "DRUSEN", "NORMAL"])
    with pytest.raises(ValueError, match="feature cache needs") as refused:
        Trainer(model, feature_cache=True, device="cpu")

    assert cli_text(str(refused.value)) == (
        "the feature cache needs every parameter outside one final head frozen, but trainable "
        "parameters are spread over the network (a model such as small_cnn trains whole); "
        "leave out --feature-cache"
    )


def test_the_ways_to_augment_past_the_feature_cache_are_said_with_flags() -> None:
    said = cli_text(
        "FeatureCacheConfig(views=N) also caches N augmented views of each, feature_cache=False "
        "turns the cache off"
    )
    assert said == (
        "--cache-views N also caches N augmented views of each, --no-feature-cache turns the "
        "cache off"
    )
