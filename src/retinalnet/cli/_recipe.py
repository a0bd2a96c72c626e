"""``retinalnet train --recipe``: the fine-tuning recipe (default) or the tutorial's.

``--recipe finetune`` (the default) runs :func:`~retinalnet.training.fine_tune_trainer`: a
linear probe on cached features, then the last ``--finetune-blocks`` blocks unfrozen with
discriminative rates. ``--recipe tutorial`` trains the tutorial's head on the frozen
backbone, as before. The settings whose best value depends on the recipe (epochs, learning
rate, class balance, patience, augmentation, image size) default to the recipe's own.

With ``--resume`` the options left out are those of the run resumed (see
:mod:`retinalnet.cli._resumed_options`), and a fine-tune goes on with its saved recipe
(:mod:`retinalnet.cli._resumed_recipe`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "DEFAULT_ARCH",
    "RECIPES",
    "add_recipe_arguments",
    "recipe_defaults",
    "recipe_trainer",
]

RECIPES: tuple[str, ...] = ("finetune", "tutorial")
"""``--recipe`` choices; the first is the default."""

DEFAULT_ARCH = "vgg16_transfer"
"""``--arch`` when neither it nor a resumed run names one: the tutorial's model."""

# the defaults of the train options that depend on the recipe: (finetune, tutorial)
_DEFAULTS: dict[str, tuple[Any, Any]] = {
    "epochs": (10, 20),
    "lr": (1e-3, 1e-3),
    "balance": ("weights", "none"),
    "patience": (None, 3),
    "augment": ("oct", "tutorial"),
    "size": (256, 224),  # measured: docs/accuracy.rst, "Image size"
}
_HELP = {
    "epochs": "maximum epochs, counting those of a resumed run (default: 10 with --recipe "
    "finetune, 20 with tutorial)",
    "lr": "learning rate of the head (default: 1e-3), or auto: run the learning-rate range "
    "test (Trainer.lr_find) on the frozen backbone's cached features first and use the rate "
    "it suggests; with --recipe finetune the unfrozen blocks get a fifth of it",
    "balance": "counter class imbalance: weighted loss or class-balanced sampler (default: "
    "weights with --recipe finetune, none with tutorial)",
    "patience": "early stopping: epochs without a lower validation loss (default: 3 with "
    "--recipe tutorial; finetune runs every epoch and keeps the best)",
    "size": "side of the square the model sees, in pixels; --image-size is its 0.1 name "
    "(default: 256 with --recipe finetune, 224 with tutorial; an architecture that takes one "
    "size only, such as vit_b_16, gets that one; with --resume, the size of the run resumed)",
}


def add_recipe_arguments(train: argparse.ArgumentParser) -> None:
    """Add ``--recipe``, ``--finetune-blocks`` and ``--augment`` to ``retinalnet train``,
    and make the recipe-dependent options default to the recipe's values."""
    from retinalnet._core.augmentation_presets import PRESETS
    from retinalnet.cli._argtypes import int_in_range

    train.add_argument(
        "--recipe",
        choices=RECIPES,
        default=None,
        help="finetune: a linear probe on cached features, then the last blocks fine-tuned "
        "(the measured best: https://retinalnet.readthedocs.io/en/latest/accuracy.html); "
        "tutorial: the tutorial's head on the frozen "
        f"backbone (default: {RECIPES[0]}; tutorial for an architecture without pretrained "
        "weights, small_cnn, which it trains whole; with --resume, the recipe of the run "
        "resumed)",
    )
    train.add_argument(
        "--finetune-blocks",
        type=int_in_range(1),
        default=None,
        metavar="N",
        help="with --recipe finetune, unfreeze the last N feature blocks (default: the last "
        "half of those the architecture declares; `retinalnet models` shows the architectures)",
    )
    train.add_argument(
        "--augment",
        choices=list(PRESETS),
        default=None,
        help="training augmentation preset (default: oct with --recipe finetune, tutorial "
        "with tutorial)",
    )
    for action in train._actions:
        if action.dest in _HELP:
            action.default = None
            action.help = _HELP[action.dest]
        elif action.dest in _PLAIN_DEFAULTS and action.default is not None:
            # None tells an option left out (a resumed run's) from one given; the help
            # still names the default a new run gets (recipe_defaults fills it in)
            if action.help is not None:
                action.help = action.help.replace("%(default)s", str(action.default))
            action.default = None


def recipe_defaults(args: argparse.Namespace) -> None:
    """Fill the recipe-dependent options the user left out with the recipe's values (with
    ``--resume``, after :func:`~retinalnet.cli._resumed_options.resumed_run_defaults` took
    the resumed run's).

    Raises
    ------
    ValueError
        If ``--finetune-blocks`` comes with ``--recipe tutorial``.
    """
    if getattr(args, "arch", "") is None:
        args.arch = DEFAULT_ARCH
    recipe = getattr(args, "recipe", None) or _default_recipe(args)
    args.recipe = recipe
    which = RECIPES.index(recipe)
    if getattr(args, "size", None) is None:
        args.size = _default_size(args, _DEFAULTS["size"][which])
    for name, values in _DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, values[which])
    for name, value in _PLAIN_DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if recipe == "tutorial" and getattr(args, "finetune_blocks", None) is not None:
        raise ValueError(
            f"--finetune-blocks {args.finetune_blocks} needs --recipe finetune (the tutorial "
            "recipe trains the head only)"
        )


# the defaults of train options that parse to None, so that a resumed run knows which were
# left out (the others are the recipe's, in _DEFAULTS, or None already)
_PLAIN_DEFAULTS: dict[str, Any] = {
    "batch_size": 32,
    "cache_views": 0,
    "precision": "auto",
    "calibrate": True,
    "reduced_decode": False,
}


def _default_recipe(args: argparse.Namespace) -> str:
    """``--recipe`` when it is left out of a new run: fine-tuning, which starts from
    pretrained weights (or asked for by ``--finetune-blocks``); the tutorial's for an
    architecture that has none (``small_cnn``), where it trains the whole network."""
    from retinalnet.models import model_spec

    if getattr(args, "finetune_blocks", None) is not None:
        return RECIPES[0]
    return RECIPES[0] if model_spec(args.arch).default_weights is not None else "tutorial"


def _default_size(args: argparse.Namespace, recipe_size: int) -> int:
    """The image size of a new run not given ``--size`` (a resumed run's is its own, see
    :func:`~retinalnet.cli._resumed_options.resumed_run_defaults`): the architecture's only
    one, or the recipe's."""
    from retinalnet.models import model_spec

    arch = getattr(args, "arch", None)
    fixed = model_spec(arch).fixed_size if arch is not None else None
    return fixed if fixed is not None else recipe_size


def recipe_trainer(
    args: argparse.Namespace, model: nn.Module, trainer: Any, train: Any, val: Any
) -> Any:
    """The Trainer of ``args.recipe``: ``trainer`` itself (tutorial), or the fine-tuning
    phase's, after the linear probe (skipped with ``--resume``), with ``trainer``'s settings.

    Raises
    ------
    ValueError
        If ``--finetune-blocks`` is out of range for the architecture.
    """
    from retinalnet.cli._resumed_recipe import resumed_recipe_settings
    from retinalnet.models import Classifier
    from retinalnet.training import EarlyStopping, FineTune, fine_tune_trainer

    if not isinstance(model, Classifier):
        return trainer
    model.preprocessing = model.preprocessing.with_augmentation(args.augment)
    if args.recipe == "tutorial":
        return trainer
    available = len(model.feature_block_modules())
    blocks = args.finetune_blocks
    if blocks is not None and not 1 <= blocks <= available:
        raise ValueError(
            f"--finetune-blocks must be in [1, {available}] for --arch {args.arch} "
            f"(it declares {available} feature blocks), got {blocks}"
        )
    given: dict[str, Any] = {
        "blocks": blocks,
        "epochs": args.epochs,
        "lr": args.lr / 5,
        "head_lr": args.lr,
        "probe_lr": args.lr,
        "balance": None if args.balance == "none" else args.balance,
        "augment": args.augment,
        "probe_views": getattr(args, "cache_views", 0),
        # --patience 0 stops at the first epoch without a lower loss, as with the tutorial
        "patience": (
            None if args.patience is None or args.patience >= args.epochs else args.patience
        ),
    }
    # with --resume, the run's recipe, whole (settings no option sets too)
    recipe = FineTune(**resumed_recipe_settings(args, given))
    return fine_tune_trainer(
        model,
        train,
        val,
        recipe,
        resume_from=args.resume,
        batch_size=trainer.batch_size,
        num_workers=trainer.num_workers,
        device=trainer.device,
        precision=trainer.precision,
        seed=trainer.seed,
        progress=trainer.progress,
        out_dir=trainer.out_dir,
        overwrite=trainer.overwrite,
        # the probe always runs on cached features; --feature-cache DIR keeps them on disk
        feature_cache=getattr(args, "feature_cache", None) or False,
        # --calibrate's TemperatureScaling; the recipe brings its own EarlyStopping
        callbacks=[c for c in trainer.callbacks if not isinstance(c, EarlyStopping)],
    )
