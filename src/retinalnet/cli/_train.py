"""The model commands: demo, train, models (predict: ``_predict.py``; evaluate:
``_evaluate.py``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from retinalnet._core.classes import kermany_subset
from retinalnet._core.folders import check_folder
from retinalnet._core.json_text import strict_json
from retinalnet._core.proportion_text import percent

if TYPE_CHECKING:
    from retinalnet.datasets import KermanyOCT
    from retinalnet.models import Classifier
    from retinalnet.predictor import SkippedImage
    from retinalnet.training import Callback, DataSource, FeatureCacheConfig, Trainer

__all__ = ["run_demo", "run_models", "run_train"]

logger = logging.getLogger("retinalnet")

DEFAULT_OUT = Path("runs/retinalnet")
"""``train --out`` when neither it nor ``--resume`` says where."""


def run_demo(args: argparse.Namespace) -> int:
    from retinalnet.cli._predict import print_predictions
    from retinalnet.demo import run_demo, write_demo_data

    if args.data_only:
        data = write_demo_data(args.out, seed=args.seed)
        print(f"synthetic scans in the Kermany layout: {data}")
        print(f"try: retinalnet train --data {data} --arch small_cnn --size 64")
        return 0
    result = run_demo(args.out, weights=args.weights, epochs=args.epochs, seed=args.seed)
    print(f"model: {result.model_name}")
    print(f"stopped: {result.history.stop_reason}")
    print(f"best validation accuracy: {percent(result.best_val_accuracy)}")
    print(f"\ntest set ({result.data_dir / 'test'}):\n{result.test}\n")
    print("top-2 predictions:")
    print_predictions(result.predictions)
    print(f"\ncheckpoint: {result.checkpoint}")
    print(f"try: retinalnet predict --checkpoint {result.checkpoint} {result.data_dir / 'test'}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from retinalnet._core.torchrun import torchrun_rank_and_size
    from retinalnet.checkpoint import checkpoint_epoch
    from retinalnet.cli._advice import require_tensorboard
    from retinalnet.cli._recipe import recipe_defaults, recipe_trainer
    from retinalnet.cli._resumed_options import (
        TrainOptions,
        check_same_training_images,
        resumed_run_defaults,
        training_images,
    )
    from retinalnet.cli._saved_history import SavedEpochs
    from retinalnet.cli._skip import print_skipped
    from retinalnet.cli._split_data import read_splits
    from retinalnet.datasets._sample_names import sample_names_digest
    from retinalnet.models import build_model, create_model
    from retinalnet.training import (
        ClassificationTask,
        EarlyStopping,
        FeatureCacheConfig,
        RunLock,
        TemperatureScaling,
        TensorBoardLogger,
        Trainer,
        seed_everything,
    )
    from retinalnet.training._config import choose_feature_cache
    from retinalnet.training._run_files import replace_foreign_link
    from retinalnet.transforms import Preprocessing

    if args.tensorboard is not None:
        require_tensorboard("--tensorboard")
    augment_given = args.augment is not None  # before a resumed run's or the recipe's fills it
    _check_train_options(args)
    # with --resume, the options left out are the run resumed's (another value is refused
    # here, before any work); then --recipe finetune (default) or tutorial: epochs, lr...
    resumed_run_defaults(args)
    recipe_defaults(args)
    preprocessing = Preprocessing(size=args.size, reduced_decode=args.reduced_decode)
    # one reading of --manifest for both: train and val are one version of its split
    splits = read_splits(
        args.data, ("train", "val"), args.manifest, args.classes, on_error=args.on_error
    )
    train, val = splits.data
    images, names = training_images(train), sample_names_digest(train)
    check_same_training_images(args, images, names)  # --resume: the run's, before any work
    cache: Literal["auto"] | bool | FeatureCacheConfig = "auto"  # on for a frozen backbone
    if args.feature_cache is False:
        cache = False
    elif args.feature_cache is not None or args.cache_views:
        folder = args.feature_cache if isinstance(args.feature_cache, str) else None
        cache = FeatureCacheConfig(cache_dir=folder, views=args.cache_views)
    # under torchrun rank 0 writes to --out (and the Trainer stops every rank if it cannot)
    writes = torchrun_rank_and_size()[0] == 0
    scratch = contextlib.ExitStack()
    # one run at a time writes to --out; whatever can refuse the run does so before any work
    # (the weights, the image check, --lr auto's range test, the linear probe, the cache)
    with RunLock(args.out) if writes else contextlib.nullcontext(), scratch:
        _check_best_is_free(args)
        if args.seed is not None:
            seed_everything(args.seed)  # before the model: its new head starts the same
        resumed = getattr(args, "resumed_network", None)
        if resumed is not None and args.arch is not None:  # its weights are in --resume
            model = build_model(
                args.arch, resumed[0], classes=resumed[1], preprocessing=preprocessing
            )
        else:
            model = create_model(
                args.arch, weights=args.weights, classes=train.classes, preprocessing=preprocessing
            )
        # before any features are cached: augmented views follow it
        model.preprocessing = model.preprocessing.with_augmentation(args.augment)
        if (
            args.lr == "auto"
            and args.recipe == "finetune"
            and args.feature_cache in (None, True)
            and choose_feature_cache("auto", model).config is not None  # a frozen backbone
        ):  # the range test and the linear probe read one set of features from disk
            folder = scratch.enter_context(tempfile.TemporaryDirectory(prefix="retinalnet-"))
            args.feature_cache = folder
            cache = FeatureCacheConfig(cache_dir=folder, views=args.cache_views)
        # finetune: the probe builds its own cache; this one serves --lr auto only
        trainer_cache = cache if args.recipe == "tutorial" or args.lr == "auto" else False
        _check_cache_fits(args, model, trainer_cache)
        if augment_given and args.recipe == "tutorial":
            _warn_if_augmentation_is_cached_away(args, model, trainer_cache)
        task = ClassificationTask(
            lr=1e-3 if args.lr == "auto" else args.lr,
            balance=None if args.balance == "none" else args.balance,
        )
        # --recipe finetune without --patience trains every epoch (its own EarlyStopping
        # keeps the best): None, as recorded
        callbacks: list[Callback] = (
            [EarlyStopping(patience=args.patience)] if args.patience is not None else []
        )
        calibration = TemperatureScaling() if args.calibrate else None
        if calibration is not None:  # after EarlyStopping: it calibrates the restored weights
            callbacks.append(calibration)
        if args.tensorboard is not None:
            callbacks.append(TensorBoardLogger(args.tensorboard))
        # in each checkpoint: --resume repeats the run with them (the cache as on or off)
        options = TrainOptions(
            args,
            auto_cache=choose_feature_cache("auto", model).config is not None,
            train_images=images,
            train_names=names,
        )
        if splits.manifest_sha256 is not None:  # that of the rows trained on, not a later read
            options.options["manifest"]["sha256"] = splits.manifest_sha256
        callbacks.append(options)
        trainer = Trainer(
            model,
            task,
            callbacks=callbacks,
            max_epochs=args.epochs,
            batch_size=args.batch_size,
            num_workers=args.workers,
            device=args.device,
            precision=args.precision,
            feature_cache=trainer_cache,
            out_dir=args.out,
            overwrite=args.overwrite,
            seed=args.seed,
            progress=not args.quiet,
        )
        skipped: list[SkippedImage] = []
        if args.on_error == "skip":  # each image decoded once, as the model will decode it
            train, val, skipped = _readable(train, val, model, trainer, progress=writes)
        if args.lr == "auto":  # the range test on the frozen backbone's cached features
            args.lr = options.options["lr"] = _find_lr(trainer, train)
        trainer = recipe_trainer(args, model, trainer, train, val)  # the probe runs here
        scratch.close()  # the features of --lr auto's range test and the probe are done with
        csv_path = args.out / "history.csv"
        if writes and (args.resume is None or args.resume.resolve().parent != args.out.resolve()):
            replace_foreign_link(csv_path)  # --overwrite: another run's, not written through
        saved = SavedEpochs(args.out, args.resume) if writes else None
        try:
            history = trainer.fit(train, val, resume_from=args.resume)
        except BaseException:
            # the epochs that finished and a checkpoint holds (not one whose checkpoint a
            # full disk refused); the error is what is reported
            if saved is not None:
                saved.write_history(trainer.history, csv_path)
            raise
        if writes:
            history.to_csv(csv_path)
        print(f"stopped: {history.stop_reason}")
        if calibration is not None and calibration.result is not None:
            print(f"calibration: {calibration.result}")
        print(f"validation ({len(val)} images):\n{trainer.evaluate(val)}")
        best = args.out / "best.pt"
        epoch = checkpoint_epoch(best)
        if epoch is None:  # never claim a file that is not there
            print(f"no best model was written  history: {csv_path}")
        else:
            print(f"best model: {best} (epoch {epoch})  history: {csv_path}")
    if writes:
        print_skipped("train", skipped)
    return 0


def _check_train_options(args: argparse.Namespace) -> None:
    """Refuse ``train`` options that do not go together, or a ``--resume`` file that is not
    there, before anything is read or written; ``--out`` left out is the resumed run's folder
    (else ``runs/retinalnet``).

    Raises
    ------
    ValueError
        If ``--cache-views`` comes with ``--no-feature-cache``, or ``--lr auto`` with
        ``--resume``.
    FileNotFoundError
        If the ``--resume`` file does not exist.
    """
    if args.classes is not None:  # --classes CNV NORMAL: checked names, in the Kermany order
        args.classes = kermany_subset(args.classes, name="--classes")
    if args.out is None:  # a resumed run goes on in its own folder
        args.out = args.resume.parent if args.resume is not None else DEFAULT_OUT
        check_folder(args.out, name="--out", fix="pass a folder that can be written")
    if args.feature_cache is False and args.cache_views:
        raise ValueError(
            "--cache-views N caches augmented copies, but --no-feature-cache turns the "
            "cache off; leave one of them out"
        )
    if args.resume is not None:
        if args.lr == "auto":
            raise ValueError(
                "--lr auto finds a rate for a new run; a resumed run (--resume) continues with "
                "the rate saved in its checkpoint: leave out --lr auto"
            )
        if args.resume.is_dir():  # the run's folder: its checkpoint files named
            from retinalnet.checkpoint import folder_given_message

            raise IsADirectoryError(f"--resume {folder_given_message(args.resume, 'last.pt')}")
        if not args.resume.is_file():
            raise FileNotFoundError(
                f"--resume {str(args.resume)!r}: no checkpoint file there; pass the last.pt of "
                "the run to continue (OUT/last.pt), or leave --resume out to start a new run"
            )


def _check_cache_fits(
    args: argparse.Namespace, model: Classifier, cache: Literal["auto"] | bool | FeatureCacheConfig
) -> None:
    """Refuse ``--feature-cache`` or ``--cache-views`` for a model that trains more than its
    head (``small_cnn`` trains whole), in the command's words, before any work: the Trainer
    would refuse them with its Python advice.

    Raises
    ------
    ValueError
        Naming ``--arch`` and the flags to leave out.
    """
    from retinalnet.models._classifier import network_of
    from retinalnet.training import FeatureCacheConfig
    from retinalnet.training._feature_cache import trainable_head

    if not isinstance(cache, FeatureCacheConfig):  # "auto" turns itself off for such a model
        return
    try:
        trainable_head(model)
    except ValueError:
        given = ["--feature-cache"] if args.feature_cache not in (None, False) else []
        given += ["--cache-views"] if args.cache_views else []
        flags = " and ".join(given)
        whole = all(p.requires_grad for p in network_of(model).parameters())
        raise ValueError(
            f"--arch {args.arch} trains {'the whole network' if whole else 'more than its head'}"
            f", and the feature cache that {flags} {'ask' if len(given) > 1 else 'asks'} for "
            "serves a frozen backbone only (its features computed once, for the head to train "
            f"on): leave out {flags}"
        ) from None


def _warn_if_augmentation_is_cached_away(
    args: argparse.Namespace, model: Classifier, cache: Literal["auto"] | bool | FeatureCacheConfig
) -> None:
    """Warn that an ``--augment`` given reaches no training image when the feature cache is
    on without views (``--recipe tutorial`` on a frozen backbone, the default): the features
    are computed once, from images without augmentation. A run that asked for nothing is not
    warned (the feature cache's log line says it)."""
    from retinalnet.training._config import choose_feature_cache

    if not model.preprocessing.augments or args.cache_views:  # views: some of it is cached
        return
    if cache is False or (cache == "auto" and choose_feature_cache("auto", model).config is None):
        return
    warnings.warn(
        f"--augment {args.augment} does not reach the training images: the feature cache "
        "computes their features once, without augmentation; --cache-views N also caches N "
        "augmented views of each image, --no-feature-cache augments every epoch",
        UserWarning,
        stacklevel=1,
    )


def _check_best_is_free(args: argparse.Namespace) -> None:
    """A new run into ``--out`` never replaces a run's ``best.pt``, ``last.pt`` or
    ``history.csv`` there without ``--overwrite``: said before any work (a resumed run owns
    its files; the Trainer checks them once the run's state is loaded).

    Raises
    ------
    FileExistsError
        The Trainer's own words (:meth:`ModelCheckpoint.check_best_is_free
        <retinalnet.training.ModelCheckpoint.check_best_is_free>`), said with flags.
    """
    from retinalnet.training import ModelCheckpoint
    from retinalnet.training._run_files import RUN_FILES

    if args.resume is None:
        ModelCheckpoint(args.out, overwrite=args.overwrite).check_best_is_free()
        return
    home = args.resume.parent
    moved = Path(args.out).resolve() != home.resolve()
    found = [name for name in RUN_FILES if (Path(args.out) / name).exists()]
    if moved and not args.overwrite and found:
        raise FileExistsError(
            f"--out {str(args.out)!r} holds another run's {found[0]}, which "
            f"resuming {str(args.resume)!r} there would replace; leave --out out (the run "
            f"goes on in {str(home)!r}), choose another folder, or allow it (--overwrite)"
        )


def _readable(
    train: KermanyOCT, val: KermanyOCT, model: Classifier, trainer: Trainer, *, progress: bool
) -> tuple[KermanyOCT, KermanyOCT, list[SkippedImage]]:
    """``train --on-error skip``: both splits without the images the model cannot read, and
    those images (listed at the end, as evaluate and predict list theirs)."""
    from retinalnet.cli._skip import readable_split

    kept: list[KermanyOCT] = []
    skipped: list[SkippedImage] = []
    for data in (train, val):
        readable, left_out = readable_split(
            data,
            model.preprocessing.load,
            progress=progress and trainer.progress,
            num_workers=trainer.num_workers,
        )
        kept.append(readable)
        skipped += left_out
    return kept[0], kept[1], skipped


def _find_lr(trainer: Trainer, train: DataSource) -> float:
    """``train --lr auto``: the range test sets the rate, which is printed in one line and
    returned (with ``--recipe finetune`` it is the head's rate, the blocks get a fifth)."""
    found = trainer.lr_find(train, apply=True)  # raises when the curve suggests nothing
    rate = found.suggestion
    if rate is None:  # pragma: no cover - apply=True has raised already
        raise ValueError("lr_find suggested no learning rate: give --lr a number")
    print(f"learning rate: {rate:.2e} (lr_find, {found.rule} rule; {found.stop_reason})")
    return float(rate)


def run_models(args: argparse.Namespace) -> int:
    from retinalnet.models import list_models, model_info

    infos = [model_info(name) for name in list_models()]
    if args.json:
        print(strict_json([info.to_dict() for info in infos], indent=2))
        return 0
    print(f"{'name':<19}{'parameters':>12}{'trainable':>11}{'GFLOPs':>8}  description")
    for info in infos:
        gflops = "?" if info.gflops is None else f"{info.gflops:.2f}"
        print(
            f"{info.name:<19}{info.parameters:>12,}{info.trainable:>11,}{gflops:>8}  "
            f"{info.description}"
        )
    print(
        "\n4 classes, default head, backbone frozen (what --recipe tutorial and the linear "
        "probe train;\nthe default fine-tuning also trains the last half of the blocks); "
        "GFLOPs at 224 px (multiply-adds)"
    )
    return 0
