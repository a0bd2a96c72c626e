"""``retinalnet train --recipe``: the fine-tuning recipe (default) or the tutorial's.

``--recipe finetune`` (the default) runs :func:`~retinalnet.training.fine_tune_trainer`: a
linear probe on cached features, then the last ``--finetune-blocks`` blocks unfrozen with
discriminative rates. ``--recipe tutorial`` trains the tutorial's head on the frozen
backbone, as before. The settings whose best value depends on the recipe (epochs, learning
rate, class balance, patience, augmentation, image size) default to the recipe's own.

With ``--resume`` the options left out are those of the run resumed, read from its
checkpoint (:class:`TrainOptions` keeps them there), and one given with another value is
refused before any work: a resumed run repeats the run it continues.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from retinalnet.training import Callback

if TYPE_CHECKING:
    from retinalnet.checkpoint import Checkpoint

__all__ = [
    "DEFAULT_ARCH",
    "RECIPES",
    "TrainOptions",
    "add_recipe_arguments",
    "recipe_defaults",
    "recipe_trainer",
]

logger = logging.getLogger("retinalnet")

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
    from retinalnet.cli._argtypes import int_in_range
    from retinalnet.transforms import AUGMENTATION_PRESETS

    train.add_argument(
        "--recipe",
        choices=RECIPES,
        default=None,
        help="finetune: a linear probe on cached features, then the last blocks fine-tuned "
        "(the measured best, docs/accuracy.rst); tutorial: the tutorial's head on the frozen "
        f"backbone (default: {RECIPES[0]}; with --resume, the recipe of the run resumed)",
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
        choices=list(AUGMENTATION_PRESETS),
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
    """Fill the recipe-dependent options the user left out with the recipe's values.

    Raises
    ------
    ValueError
        If ``--finetune-blocks`` comes with ``--recipe tutorial``, or an option given with
        ``--resume`` differs from the resumed run's (see :func:`_resumed_run_defaults`).
    """
    _resumed_run_defaults(args)
    recipe = getattr(args, "recipe", None) or RECIPES[0]
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
    if args.patience is None:
        args.patience = args.epochs  # the callback never stops the run; it keeps the best


def _resumed_run_defaults(args: argparse.Namespace) -> None:
    """With ``--resume``, the options left out are those of the run resumed, and one given
    with another value than the run's is refused, before any work.

    The architecture, image size, decoding and recipe are read from the checkpoint itself,
    a fine-tune's epochs, blocks, balance, augmentation, rate and patience from its recipe
    (:func:`~retinalnet.training._finetune.saved_recipe`, which the fine-tune checks), and
    the other train options from the record :class:`TrainOptions` keeps in it. ``--epochs``
    of a ``--recipe tutorial`` run may be raised (to train longer); ``--workers``,
    ``--device``, ``-q`` and ``--tensorboard`` may change freely.

    Raises
    ------
    ValueError
        If an option given differs from the resumed run's; the message names the option,
        both values and the fix.
    """
    if getattr(args, "resume", None) is None or not Path(args.resume).is_file():
        if getattr(args, "arch", "") is None:
            args.arch = DEFAULT_ARCH
        return
    from retinalnet.checkpoint import load_checkpoint
    from retinalnet.training._finetune import saved_recipe

    checkpoint = load_checkpoint(args.resume, map_location="cpu")  # read once for all of them
    resumed = f"--resume {str(args.resume)!r}"
    # the network is rebuilt as the run built it, without downloading weights: every
    # weight comes from the checkpoint (an offline machine resumes a run it started)
    args.resumed_network = (checkpoint.arch_kwargs, checkpoint.classes)
    if getattr(args, "size", "") is None:
        args.size = checkpoint.preprocessing.size
    if getattr(args, "reduced_decode", "") is None:  # another one the Trainer refuses
        args.reduced_decode = checkpoint.preprocessing.reduced_decode
    if getattr(args, "arch", "") is None:
        args.arch = checkpoint.arch or DEFAULT_ARCH
    elif checkpoint.arch is not None and args.arch != checkpoint.arch:
        raise ValueError(
            f"{resumed} continues a {checkpoint.arch} run, not --arch {args.arch}: a resumed "
            "run keeps its architecture; leave --arch out, or start a new run without --resume"
        )
    recipe = saved_recipe(checkpoint)
    kind = RECIPES[0] if recipe is not None else "tutorial"
    if getattr(args, "recipe", "") is None:
        args.recipe = kind
    elif args.recipe != kind:
        raise ValueError(
            f"{resumed} continues a --recipe {kind} run, not --recipe {args.recipe}: a resumed "
            "run keeps its recipe; leave --recipe out, or start a new run without --resume"
        )
    saved = _saved_options(checkpoint)
    if args.recipe == RECIPES[0] and recipe is not None:
        # the fine-tune compares these with its recipe, and refuses what differs
        for name, value in _recipe_options(recipe).items():
            if getattr(args, name, "") is None:
                setattr(args, name, value)
        checked: tuple[str, ...] = _FINETUNE_CHECKED
    else:
        checked = _TUTORIAL_CHECKED
    unknown: list[str] = []
    for name in checked:
        if name not in saved:
            if getattr(args, name, "") is None:
                unknown.append(_flag(name))
            continue
        run_value, given = saved[name], getattr(args, name, None)
        if given is None:  # left out: the run's
            setattr(args, name, _from_saved(name, run_value))
            continue
        if _as_saved(name, given) == run_value:
            continue
        if name == "epochs" and isinstance(run_value, int) and given > run_value:
            continue  # a tutorial run may train longer; fewer epochs are refused below
        more = " (or more epochs, to train longer)" if name == "epochs" else ""
        raise ValueError(
            f"{resumed} continues a run of {_shown(name, run_value)}, not "
            f"{_shown(name, _as_saved(name, given))}: a resumed run keeps the settings it was "
            f"started with{more}; leave {_flag(name)} out, or start a new run without --resume"
        )
    if unknown:
        logger.warning(
            "%s does not record the run's %s (written before retinalnet kept its train "
            "options): those left out take their defaults; give the values the run was "
            "started with to repeat it",
            resumed,
            ", ".join(unknown),
        )


class TrainOptions(Callback):
    """Keeps the options of ``retinalnet train`` that change a run's result in its
    checkpoints (``callbacks.TrainOptions``), so that ``--resume`` repeats the run with
    them (see :func:`_resumed_run_defaults`).

    Parameters
    ----------
    args
        The options, after :func:`recipe_defaults`; ``options`` holds them as saved.
    """

    KEY = "TrainOptions"

    def __init__(self, args: argparse.Namespace) -> None:
        self.options: dict[str, Any] = {
            name: _as_saved(name, getattr(args, name, None)) for name in _RECORDED
        }

    @property
    def state_key(self) -> str:
        return self.KEY

    def state_dict(self) -> dict[str, Any]:
        return dict(self.options)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore: :func:`recipe_defaults` read the options before the run."""


# the train options that change a run's result and that the checkpoint holds nowhere else
_RECORDED = (
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
# a tutorial run: all of them; a fine-tune: those its recipe does not hold (the probe, which
# --cache-views and the feature cache serve, is not resumed)
_TUTORIAL_CHECKED: tuple[str, ...] = _RECORDED
_FINETUNE_CHECKED: tuple[str, ...] = ("batch_size", "precision", "seed", "calibrate")
# the defaults of the options above that parse to None, so that a resumed run knows which
# were left out (the others are the recipe's, in _DEFAULTS, or None already)
_PLAIN_DEFAULTS: dict[str, Any] = {
    "batch_size": 32,
    "cache_views": 0,
    "precision": "auto",
    "calibrate": True,
    "reduced_decode": False,
}


def _saved_options(checkpoint: Checkpoint) -> dict[str, Any]:
    """The train options of the run in ``checkpoint``: its :class:`TrainOptions` record, or
    what a checkpoint without one still tells (the seed, calibration, augmentation and the
    head's rate)."""
    from retinalnet.transforms import AUGMENTATION_PRESETS

    record = checkpoint.callback_states.get(TrainOptions.KEY)
    if isinstance(record, Mapping):
        return {name: record[name] for name in _RECORDED if name in record}
    derived: dict[str, Any] = {}
    saved = checkpoint.preprocessing
    presets = [name for name in AUGMENTATION_PRESETS if saved.with_augmentation(name) == saved]
    if len(presets) == 1:  # the preprocessing keeps the augmentation's settings
        derived["augment"] = presets[0]
    if checkpoint.loop_state:  # written by a fit of 0.2 or later
        derived["seed"] = checkpoint.loop_state.get("seed")
        derived["calibrate"] = "TemperatureScaling" in checkpoint.callback_states
    groups = (checkpoint.optimizer_state or {}).get("param_groups")
    if checkpoint.scheduler_state is None and isinstance(groups, list) and len(groups) == 1:
        rate = groups[0].get("lr") if isinstance(groups[0], Mapping) else None
        if isinstance(rate, int | float):  # the tutorial's Adam, at a constant rate
            derived["lr"] = float(rate)
    return derived


def _recipe_options(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The train options a fine-tune's saved recipe holds (see :func:`recipe_trainer`)."""
    return {
        "epochs": recipe.get("epochs"),
        "finetune_blocks": recipe.get("blocks"),
        "lr": recipe.get("head_lr"),
        "balance": recipe.get("balance") or "none",
        "augment": recipe.get("augment"),
        "patience": recipe.get("patience"),  # None: every epoch runs (the run's epochs)
    }


def _as_saved(name: str, value: Any) -> Any:
    """An option as :class:`TrainOptions` saves it: the feature cache as on, off or auto
    (its folder may change), a rate as a float."""
    if name == "feature_cache":
        return "auto" if value is None else "off" if value is False else "on"
    if name == "lr" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def _from_saved(name: str, value: Any) -> Any:
    """The option of a resumed run, from the value :func:`_as_saved` saved."""
    if name == "feature_cache":
        return {"auto": None, "off": False}.get(value, True)
    return value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _shown(name: str, value: Any) -> str:
    """An option's value as it is written on the command line."""
    if name == "calibrate":
        return "--calibrate" if value else "--no-calibrate"
    if name == "feature_cache":
        shown = {"on": "--feature-cache", "off": "--no-feature-cache"}
        return shown.get(value, "the default feature cache (auto)")
    if value is None:
        return f"no {_flag(name)}"
    return f"{_flag(name)} {value:g}" if isinstance(value, float) else f"{_flag(name)} {value}"


def _default_size(args: argparse.Namespace, recipe_size: int) -> int:
    """The image size of a new run not given ``--size`` (a resumed run's is its own, see
    :func:`_resumed_run_defaults`): the architecture's only one, or the recipe's."""
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
    recipe = FineTune(
        blocks=blocks,
        epochs=args.epochs,
        lr=args.lr / 5,
        head_lr=args.lr,
        probe_lr=args.lr,
        balance=None if args.balance == "none" else args.balance,
        augment=args.augment,
        probe_views=getattr(args, "cache_views", 0),
        patience=None if args.patience >= args.epochs else args.patience,
    )
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
