"""``retinalnet train --resume`` of a fine-tune: the run's own recipe.

A fine-tune resumed from the command line goes on with the :class:`~retinalnet.training.FineTune`
settings saved in its checkpoint, all of them: those no flag sets too (``lr_decay``,
``weight_decay``, ``warmup_epochs``, ``schedule``, ``freeze_bn``, rates whose ratio is not
the command line's), as a run started in Python has them. Only an option given with another
value than the run's changes its settings, and the fine-tune then refuses the other recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retinalnet.transforms import Preprocessing

__all__ = ["ResumedRecipe", "resumed_recipe_settings", "take_resumed_recipe"]

# the FineTune settings each train option sets (see recipe_trainer); the probe's are the run's
# (a resumed fine-tune skips the probe)
_OPTION_SETTINGS: dict[str, tuple[str, ...]] = {
    "epochs": ("epochs",),
    "finetune_blocks": ("blocks",),
    "lr": ("lr", "head_lr"),
    "balance": ("balance",),
    "augment": ("augment",),
    "patience": ("patience",),
}


@dataclasses.dataclass(frozen=True)
class ResumedRecipe:
    """The recipe of the fine-tune resumed.

    Attributes
    ----------
    settings
        Its saved :class:`~retinalnet.training.FineTune` settings.
    options
        The train options that give them (``--epochs``, ``--lr``, ...), as
        :func:`resumed_recipe_settings` compares the options given with them.
    """

    settings: Mapping[str, Any]
    options: Mapping[str, Any]


def take_resumed_recipe(
    args: argparse.Namespace,
    recipe: Mapping[str, Any],
    preprocessing: Preprocessing,
    resumed: str,
) -> None:
    """Fill the train options of a fine-tune's saved ``recipe`` that were left out with the
    run's values, and keep the recipe as ``args.resumed_recipe`` (a :class:`ResumedRecipe`)
    for :func:`resumed_recipe_settings`.

    A recipe of ``augment=None`` (the model's own augmentation) is the preset that
    ``preprocessing`` (the checkpoint's) has.

    Raises
    ------
    ValueError
        If ``--augment`` is left out and the run's own augmentation is no preset: no option
        repeats it.
    """
    options = {
        "epochs": recipe.get("epochs"),
        "finetune_blocks": recipe.get("blocks"),
        "lr": recipe.get("head_lr"),
        "balance": recipe.get("balance") or "none",
        "augment": recipe.get("augment") or _preset(preprocessing),
        "patience": recipe.get("patience"),  # None: every epoch runs (the run's epochs)
    }
    if options["augment"] is None and getattr(args, "augment", None) is None:
        raise ValueError(
            f"{resumed} continues a fine-tune of the model's own augmentation "
            "(FineTune(augment=None)), which no --augment preset is: continue it in Python "
            "(fine_tune(..., resume_from=...)), or start a new run without --resume"
        )
    for name, value in options.items():
        if getattr(args, name, "") is None:  # left out: the run's
            setattr(args, name, value)
    args.resumed_recipe = ResumedRecipe(settings=dict(recipe), options=options)


def _preset(preprocessing: Preprocessing) -> str | None:
    """The augmentation preset ``preprocessing`` has, or ``None`` if none is it."""
    from retinalnet.transforms import AUGMENTATION_PRESETS

    found = [n for n in AUGMENTATION_PRESETS if preprocessing.with_augmentation(n) == preprocessing]
    return found[0] if len(found) == 1 else None


def resumed_recipe_settings(args: argparse.Namespace, given: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`~retinalnet.training.FineTune` settings of ``retinalnet train``: ``given``
    (those of the options) for a new run; for a resumed fine-tune, its saved recipe, with the
    settings of the options given with another value than the run's taken from ``given``
    (the fine-tune then refuses the other recipe, naming both values)."""
    from retinalnet.training import FineTune

    resumed: ResumedRecipe | None = getattr(args, "resumed_recipe", None)
    if resumed is None:
        return dict(given)
    known = {field.name for field in dataclasses.fields(FineTune)}
    settings = {name: value for name, value in resumed.settings.items() if name in known}
    for option, names in _OPTION_SETTINGS.items():
        if getattr(args, option, None) != resumed.options[option]:
            settings.update({name: given[name] for name in names})
    return settings
