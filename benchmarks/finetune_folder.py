"""The folder of one fine-tuning run of ``bench_real_accuracy.py --out``, per seed.

Its name holds every training setting that differs from the benchmark's default
(``finetune-oct-lr0.0001-blocks12-seed0``), and the folder keeps all of them in
``settings.json``: a second experiment gets a folder of its own instead of replacing the
first one's ``best.pt`` and ``last.pt``, and a folder whose saved settings differ from the
run's is refused with one line rather than written over.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from real_accuracy_recipes import recipe_size

__all__ = ["SETTINGS_FILE", "claim_folder", "finetune_settings", "folder_name", "run_folders"]

SETTINGS_FILE = "settings.json"

NAMED_SETTINGS: dict[str, str] = {
    "size": "size",
    "batch_size": "batch",
    "epochs": "epochs",
    "blocks": "blocks",
    "lr": "lr",
    "lr_decay": "lrdecay",
    "warmup_epochs": "warmup",
    "train_bn": "trainbn",
    "schedule": "schedule",
}
"""The training settings named after the preset when they differ from the default: the
options' ``argparse`` names and their labels in the folder name."""


def finetune_settings(args: argparse.Namespace, *, seed: int) -> dict[str, Any]:
    """Every setting a fine-tuning run of the benchmark trains with, as JSON values.

    Parameters
    ----------
    args
        The parsed command line of ``bench_real_accuracy.py``.
    seed
        The run's seed.

    Returns
    -------
    dict
        ``augment``, ``without`` (sorted), the settings of :data:`NAMED_SETTINGS` (``size``
        the side it trains at: ``--size`` or the recipe's default) and ``seed``.
    """
    settings: dict[str, Any] = {"augment": args.augment, "without": sorted(args.without)}
    settings.update({name: getattr(args, name) for name in NAMED_SETTINGS})
    settings["size"] = recipe_size("finetune", args)
    settings["seed"] = seed
    return settings


def _shown(label: str, value: Any) -> str:
    if isinstance(value, bool):  # a flag: its label says it is on
        return label
    if isinstance(value, float):
        return f"{label}{value:g}"
    return f"{label}{value}"


def folder_name(settings: dict[str, Any], defaults: dict[str, Any]) -> str:
    """``finetune-<augment>[-no<augmentation>...][-<setting><value>...]-seed<N>``.

    Parameters
    ----------
    settings
        The run's :func:`finetune_settings`.
    defaults
        The same for the benchmark's default command line: a setting equal to its default
        is left out of the name.

    Returns
    -------
    str
        One name per distinct set of settings.
    """
    parts = ["finetune", str(settings["augment"])]
    parts += [f"no{name}" for name in settings["without"]]
    parts += [
        _shown(label, settings[name])
        for name, label in NAMED_SETTINGS.items()
        if settings[name] != defaults[name]
    ]
    parts.append(f"seed{settings['seed']}")
    return "-".join(parts)


def claim_folder(folder: Path, settings: dict[str, Any]) -> None:
    """Make ``folder`` this run's: refuse one that holds another run, save ``settings``.

    A folder whose ``settings.json`` holds the same settings is the same experiment again
    (the benchmark then replaces its checkpoints, as before); an empty or new one is
    written.

    Parameters
    ----------
    folder
        The run's folder (``--out`` / :func:`folder_name`).
    settings
        The run's :func:`finetune_settings`.

    Raises
    ------
    SystemExit
        With one line when ``folder`` holds a run with other settings, or files without a
        ``settings.json`` (whose settings are unknown).
    """
    if folder.exists() and not folder.is_dir():
        sys.exit(f"{folder} is a file, not a folder; pass another --out or move that file away")
    saved_file = folder / SETTINGS_FILE
    if saved_file.is_file():
        saved = json.loads(saved_file.read_text())
        differ = [
            f"{name} {saved.get(name)!r} here, {settings.get(name)!r} now"
            for name in sorted(set(saved) | set(settings))
            if saved.get(name) != settings.get(name)
        ]
        if differ:
            sys.exit(
                f"{folder} holds a fine-tuning run with other settings ({'; '.join(differ)}), "
                "which this run would replace; pass another --out or move that folder away"
            )
    elif folder.is_dir() and any(folder.iterdir()):
        sys.exit(
            f"{folder} holds files but no {SETTINGS_FILE}, so the settings of the run that "
            "wrote them are unknown and this run could replace another experiment's "
            "checkpoints; pass another --out or move that folder away"
        )
    folder.mkdir(parents=True, exist_ok=True)
    saved_file.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")


def run_folders(args: argparse.Namespace, defaults: argparse.Namespace) -> dict[int, Path]:
    """``--out``'s folder of each seed's fine-tuning run, claimed (:func:`claim_folder`)
    before any training starts.

    Parameters
    ----------
    args
        The parsed command line (``args.out`` set).
    defaults
        The default command line: settings equal to its are left out of the names.

    Returns
    -------
    dict
        Seed to folder, each holding its ``settings.json``.

    Raises
    ------
    SystemExit
        With one line when a folder holds another run (:func:`claim_folder`).
    """
    folders = {}
    for seed in args.seeds:
        settings = finetune_settings(args, seed=seed)
        folder = args.out / folder_name(settings, finetune_settings(defaults, seed=seed))
        claim_folder(folder, settings)
        folders[seed] = folder
    return folders
