"""The recipes of ``bench_real_accuracy.py``: what each one trains, the size it trains at and
the feature cache the frozen-backbone ones train their head on."""

from __future__ import annotations

import argparse

from retinalnet.training import FeatureCacheConfig

__all__ = ["RECIPES", "RECIPE_DESCRIPTIONS", "head_feature_cache", "recipe_size"]

RECIPE_DESCRIPTIONS: dict[str, str] = {
    "tutorial": "the tutorial's head on cached un-augmented features (frozen backbone, Adam "
    "1e-3, no class weights; no augmentation reaches its training)",
    "frozen": "frozen backbone, head on cached features with --views augmented views per image "
    "(--augment), class weights",
    "finetune": "fine_tune(): a linear probe, then the last --blocks blocks (--augment)",
    "naive": "the whole network at once (Adam 3e-4, class weights, batch norms in train mode)",
    "plain": "the reference in plain PyTorch (plain_reference.py)",
}
"""Each recipe in a line, for ``--help`` and the benchmark's printout."""

RECIPES = tuple(RECIPE_DESCRIPTIONS)


def head_feature_cache(recipe: str, views: int) -> FeatureCacheConfig:
    """The feature cache a frozen-backbone recipe (``tutorial``, ``frozen``) trains its head on.

    Parameters
    ----------
    recipe
        ``"tutorial"`` or ``"frozen"``.
    views
        ``--views``: augmented views per image for ``frozen``.

    Returns
    -------
    FeatureCacheConfig
        ``tutorial``: no views, only each image's features through the evaluation
        preprocessing, so its training sees no augmentation whatever the model's preset;
        ``frozen``: those and ``views`` augmented views per image, drawn with the model's
        preset.
    """
    return FeatureCacheConfig(views=0 if recipe == "tutorial" else views)


def recipe_size(recipe: str, args: argparse.Namespace) -> int:
    """The image side ``recipe`` trains at: ``--size``, else 256 for ``finetune`` (as
    ``retinalnet train`` fine-tunes) and the tutorial's 224 for the others."""
    return int(args.size or (256 if recipe == "finetune" else 224))
