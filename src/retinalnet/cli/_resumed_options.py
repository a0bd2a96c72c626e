"""``retinalnet train --resume``: the resumed run's options.

A resumed run repeats the run it continues: the options left out are the run's, read from
its checkpoint (the architecture, size, decoding and recipe from the checkpoint itself, a
fine-tune's settings from its saved recipe, the other train options from the record
:class:`TrainOptions` keeps in every checkpoint), and one given with another value than
the run's is refused before any work.

Why this module is long: the record of a run's options (:class:`TrainOptions`), the reading
of it back (the options, the split, the training images) and the checks of what it records
belong together, so that what is recorded is read back in the same change.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retinalnet._core.checkpoint_format import TRAIN_OPTIONS_KEY, train_record
from retinalnet._core.utf_8_names import named_here, utf_8_text
from retinalnet.cli._recipe import DEFAULT_ARCH, RECIPES
from retinalnet.cli._recorded_options import RECORDED_OPTIONS
from retinalnet.cli._resumed_recipe import take_resumed_recipe
from retinalnet.cli._split_data import study_classes
from retinalnet.training import Callback, class_counts

if TYPE_CHECKING:
    from retinalnet.checkpoint import Checkpoint

__all__ = [
    "TrainOptions",
    "check_same_training_images",
    "manifest_places",
    "resumed_run_defaults",
    "run_manifest",
    "training_images",
]

logger = logging.getLogger("retinalnet")


def resumed_run_defaults(args: argparse.Namespace) -> None:
    """With ``--resume``, the options left out are those of the run resumed, and one given
    with another value than the run's is refused, before any work.

    The architecture, classes, image size, decoding and recipe are read from the checkpoint
    itself,
    a fine-tune's whole recipe (:func:`~retinalnet.training._finetune.saved_recipe`, which
    the fine-tune checks; see :func:`~retinalnet.cli._resumed_recipe.take_resumed_recipe`),
    and the other train options from the record :class:`TrainOptions` keeps in it. ``--epochs``
    of a ``--recipe tutorial`` run may be raised (to train longer); ``--workers``,
    ``--device``, ``-q`` and ``--tensorboard`` may change freely.

    Raises
    ------
    ValueError
        If an option given differs from the resumed run's; the message names the option,
        both values and the fix.
    """
    if getattr(args, "resume", None) is None or not Path(args.resume).is_file():
        return  # a new run: recipe_defaults gives the rest
    from retinalnet.checkpoint import load_checkpoint
    from retinalnet.training._finetune import saved_recipe

    checkpoint = load_checkpoint(args.resume, map_location="cpu")  # read once for all of them
    resumed = f"--resume {str(args.resume)!r}"
    # the network is rebuilt as the run built it, without downloading weights: every
    # weight comes from the checkpoint (an offline machine resumes a run it started)
    args.resumed_network = (checkpoint.arch_kwargs, checkpoint.classes)
    _resumed_classes(args, tuple(checkpoint.classes), resumed)
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
    _resumed_split(args, checkpoint, resumed)
    record = train_record(checkpoint.callback_states) or {}
    # the run's training images per class, which check_same_training_images compares with
    # --data's once it is read (not recorded before 0.2's record of them: not checked)
    counts = record.get("train_images")
    args.resumed_train_images = dict(counts) if isinstance(counts, Mapping) else None
    names = record.get("train_names_sha256")
    args.resumed_train_names = names if isinstance(names, str) else None
    saved = _saved_options(checkpoint)
    if args.recipe == RECIPES[0] and recipe is not None:
        # the run's recipe, whole; the fine-tune compares it with the options given
        take_resumed_recipe(args, recipe, checkpoint.preprocessing, resumed)
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
            "%s does not record the run's %s (written by the Python API, or by a retinalnet "
            "before 0.2, which keep no train options): those left out take their defaults; "
            "give the values the run was started with to repeat it",
            resumed,
            ", ".join(unknown),
        )


def _resumed_classes(args: argparse.Namespace, run: tuple[str, ...], resumed: str) -> None:
    """The resumed run's classes (``--classes``), taken when left out; others are refused:
    its network has one output per class of the run."""
    given = getattr(args, "classes", ())
    if given is None:
        args.classes = study_classes(run)
    elif given != () and tuple(given) != run:
        raise ValueError(
            f"{resumed} continues a run of the classes {' '.join(run)}, not --classes "
            f"{' '.join(given)}: its network has one output per class of the run; leave "
            "--classes out, or start a new run without --resume"
        )


def _resumed_split(args: argparse.Namespace, checkpoint: Checkpoint, resumed: str) -> None:
    """The resumed run's train/val split: its ``--manifest`` (recorded by path and SHA-256),
    taken again when left out and still there unchanged; another split is refused, as the
    folders' split would validate on images the run trained on, and train on its
    validation images."""
    from retinalnet._core.files import file_digest

    record = train_record(checkpoint.callback_states)
    if record is None or "manifest" not in record:
        return  # not recorded (the Python API, an older retinalnet): nothing to check
    run = record["manifest"]
    given = getattr(args, "manifest", None)
    if given is None and run is None:
        return
    if run is None:
        raise ValueError(
            f"{resumed} was trained on the folders' train/val split, not on --manifest "
            f"{str(given)!r}: another split would validate on images the run trained on; "
            "leave --manifest out, or start a new run without --resume"
        )
    was = f"--manifest {run['path']!r} (SHA-256 {run['sha256'][:12]}...)"
    if given is None:  # where it is now: its real path, or as given from this cwd
        found = run_manifest(run)
        if found is not None:
            args.manifest = found
            return
    elif Path(given).is_file() and file_digest(Path(given)).hex() == run["sha256"]:
        args.manifest = Path(given)
        return
    if given is None:
        raise ValueError(
            f"{resumed} was trained on the split of {was}, which is not there as it was: give "
            "that manifest again (--manifest FILE); the folders' split would validate on "
            "images the run trained on"
        )
    raise ValueError(
        f"{resumed} was trained on the split of {was}, not on --manifest {str(given)!r} "
        "(other contents): another split would validate on images the run trained on; give "
        "the run's manifest, or start a new run without --resume"
    )


def run_manifest(run: Mapping[str, Any]) -> Path | None:
    """The file of a run's recorded ``--manifest`` (``run``: its ``path`` as given, its
    ``real_path`` since it is recorded, its ``sha256``), found at its real path or as given
    (from the current directory) with the SHA-256 recorded; ``None`` if neither is it."""
    from retinalnet._core.files import file_digest

    for path in manifest_places(run):
        if path.is_file() and file_digest(path).hex() == run.get("sha256"):
            return path
    return None


def manifest_places(run: Mapping[str, Any]) -> list[Path]:
    """Where a run's recorded ``--manifest`` may be: its ``real_path`` (when recorded), then
    its ``path`` as given, each as this process names the file. They are recorded as UTF-8
    text (:func:`~retinalnet._core.utf_8_names.utf_8_text`), so a run recorded under one
    locale finds its manifest under another: ``'dé/split.csv'`` is
    ``'d\\udcc3\\udca9/split.csv'`` under ``LANG=C``."""
    places = [run.get("real_path"), run.get("path")]
    names = dict.fromkeys(named_here(place) for place in places if isinstance(place, str))
    return [Path(name) for name in names]


def check_same_training_images(
    args: argparse.Namespace, counts: Mapping[str, int], names_digest: str | None
) -> None:
    """With ``--resume``, refuse training images other than the run's (``--data`` another
    folder, or the folder changed), as another ``--batch-size`` is refused: the epochs
    left would differ from the run's, and a fine-tune's per-step schedule would no longer
    fit them. ``counts`` are the training images per class of ``--data``, ``names_digest``
    the digest of their names and classes
    (:func:`~retinalnet.datasets._sample_names.sample_names_digest`): another folder with as
    many images per class is refused too.

    Raises
    ------
    ValueError
        Naming both counts and the fix.
    """
    run = getattr(args, "resumed_train_images", None)
    if getattr(args, "resume", None) is None or run is None:
        return  # a new run, or a checkpoint that does not record them
    given = dict(counts)
    fix = (
        "a resumed run keeps its training images; give the run's --data (and --manifest), or "
        "start a new run without --resume"
    )
    if {str(k): int(v) for k, v in run.items()} != given:
        raise ValueError(
            f"--resume {str(args.resume)!r} continues a run trained on {_images(run)}, not on "
            f"the {_images(given)} of --data {str(args.data)!r}: {fix}"
        )
    names = getattr(args, "resumed_train_names", None)  # recorded since 0.2's names digest
    if names is not None and names != names_digest:
        raise ValueError(
            f"--resume {str(args.resume)!r} continues a run trained on other images than "
            f"those of --data {str(args.data)!r} (as many per class, {_images(given)}, but "
            f"other file names or classes): {fix}"
        )


def training_images(data: Any) -> dict[str, int]:
    """The training images per class of a Kermany-layout split (``classes``,
    ``targets``), as :class:`TrainOptions` records them."""
    classes = [str(name) for name in data.classes]
    return dict(zip(classes, class_counts(data.targets, len(classes)), strict=True))


def _images(counts: Mapping[str, int]) -> str:
    parts = ", ".join(f"{name} {count}" for name, count in counts.items())
    return f"{sum(counts.values())} images ({parts})"


class TrainOptions(Callback):
    """Keeps the options of ``retinalnet train`` that change a run's result in its
    checkpoints (``callbacks.TrainOptions``), so that ``--resume`` repeats the run with
    them (see :func:`resumed_run_defaults`).

    A ``--manifest`` is recorded by its path as given, its real path (links followed, so
    that it is found from another working directory: :func:`run_manifest`) and its SHA-256;
    a record written before the real path was has the other two. Paths (the manifest's and
    the real path of ``--data``) are recorded as UTF-8 text, the same under every locale
    (:func:`~retinalnet._core.utf_8_names.utf_8_text`).

    Parameters
    ----------
    args
        The options, after :func:`~retinalnet.cli._recipe.recipe_defaults`; ``options``
        holds them as saved.
    auto_cache
        What the default feature cache ("auto") is for the run's model: on (a frozen
        backbone) or off. It is recorded so, and a resumed run given the same as a flag
        (``--no-feature-cache`` for a run whose cache was off) is not refused.
    train_images
        The training images per class (:func:`training_images`), recorded so that a
        resumed run on other images is refused (:func:`check_same_training_images`).
    train_names
        Their names' digest
        (:func:`~retinalnet.datasets._sample_names.sample_names_digest`), recorded for the
        same check: another folder
        with as many images per class is refused too.
    """

    KEY = TRAIN_OPTIONS_KEY

    def __init__(
        self,
        args: argparse.Namespace,
        *,
        auto_cache: bool | None = None,
        train_images: Mapping[str, int] | None = None,
        train_names: str | None = None,
    ) -> None:
        from retinalnet._core.files import file_digest

        self.options: dict[str, Any] = {
            name: _as_saved(name, getattr(args, name, None)) for name in RECORDED_OPTIONS
        }
        if self.options["feature_cache"] == "auto" and auto_cache is not None:
            self.options["feature_cache"] = "on" if auto_cache else "off"
        manifest = getattr(args, "manifest", None)  # the train/val split, when not the folders'
        self.options["manifest"] = (
            None
            if manifest is None
            else {
                # as UTF-8 text: the same under every locale, valid in JSON (see
                # manifest_places for the way back to the file)
                "path": utf_8_text(str(manifest)),  # as given, maybe relative to the run's cwd
                "real_path": utf_8_text(os.path.realpath(manifest)),  # found from another cwd
                "sha256": file_digest(manifest).hex(),
            }
        )
        if train_images is not None:
            self.options["train_images"] = {str(k): int(v) for k, v in train_images.items()}
        if train_names is not None:
            self.options["train_names_sha256"] = train_names
        data = getattr(args, "data", None)  # where the manifest's relative paths start
        if data is not None:
            self.options["data"] = utf_8_text(os.path.realpath(data))

    @property
    def state_key(self) -> str:
        return self.KEY

    def state_dict(self) -> dict[str, Any]:
        return dict(self.options)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore: :func:`resumed_run_defaults` read the options before the run."""


# a tutorial run: all of them; a fine-tune: those its recipe does not hold (the probe, which
# --cache-views and the feature cache serve, is not resumed)
_TUTORIAL_CHECKED: tuple[str, ...] = RECORDED_OPTIONS
_FINETUNE_CHECKED: tuple[str, ...] = ("batch_size", "precision", "seed", "calibrate")


def _saved_options(checkpoint: Checkpoint) -> dict[str, Any]:
    """The train options of the run in ``checkpoint``: its :class:`TrainOptions` record, or
    what a checkpoint without one still tells (the seed, calibration, augmentation and the
    head's rate)."""
    from retinalnet.transforms import AUGMENTATION_PRESETS

    record = train_record(checkpoint.callback_states)
    if record is not None:
        return {name: record[name] for name in RECORDED_OPTIONS if name in record}
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
