"""The command line's argument parser.

Why this module is long: every option of every command, each with its help text and default,
is declared here in one place, so ``--help``, the docs and the tests read one parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retinalnet._version import __version__
from retinalnet.cli._argtypes import (
    SEED_MAX,
    bootstrap_resamples,
    file_argument,
    int_in_range,
    path_argument,
)
from retinalnet.cli._export import add_export_command
from retinalnet.cli._image_paths import image_suffixes
from retinalnet.cli._info import add_info_command
from retinalnet.cli._recipe import DEFAULT_ARCH, add_recipe_arguments
from retinalnet.cli._split_data import add_manifest_argument
from retinalnet.cli._volume import add_volume_flags

__all__ = ["build_parser"]


def _weights_arg(value: str) -> str | None:
    return None if value.lower() == "none" else value


def _architecture(value: str) -> str:
    """An argparse type: ``--arch NAME``, a registered architecture.

    The registry is imported here, when ``--arch`` is given (the command then needs torch
    anyway), not when the parser is built: ``retinalnet --help`` and a mistyped option do not
    wait seconds for torch.
    """
    from retinalnet.models._registry import find_spec, unknown_arch_message

    if find_spec(value) is None:
        raise argparse.ArgumentTypeError(unknown_arch_message(value))
    return value


_architecture.__name__ = "architecture"  # how argparse names the type in its messages


def _demo_weights(value: str) -> str:
    """An argparse type: ``demo --weights``, a VGG16 file or weights name (not ``none``)."""
    if value.lower() == "none":
        raise argparse.ArgumentTypeError(
            "the demo takes a VGG16 state-dict file or weights name, got 'none'; leave "
            "--weights out: the demo then uses the VGG16 weights in torchvision's cache, or "
            "trains small_cnn from scratch when there are none"
        )
    return value


def _feature_cache_folder(value: str) -> str:
    """An argparse type: ``--feature-cache DIR``, a :func:`path_argument` (``~`` expanded)
    kept as text: without ``DIR`` the option's value is ``True``."""
    return str(path_argument(value))


_feature_cache_folder.__name__ = "path"  # how argparse names the type in its messages


def _fraction(value: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return number


def _lr_arg(value: str) -> float | str:
    """An argparse type: ``auto`` or a learning rate > 0."""
    if value.lower() == "auto":
        return "auto"
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number such as 1e-3, or auto, got {value!r}"
        ) from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, or auto, got {value}")
    return number


class _RenamedOption(argparse.Action):
    """Stores the option's value, as the plain option does; given by its 0.1 name
    (``--topk``, ``--image-size``), it first says so in one line on stderr,
    ``retinalnet predict: warning: --topk is deprecated since retinalnet 0.2 and will be
    removed in 0.3; use -k``, as argparse says its errors and the commands their warnings.

    It is said when the arguments are read, before the command runs, so on stderr
    directly: a Python ``DeprecationWarning`` is hidden by default outside ``__main__``,
    and a shell user is who has to change the script."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        self.renamed: dict[str, str] = kwargs.pop("renamed")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        new = self.renamed.get(option_string or "")
        if new is not None:
            print(
                f"{parser.prog}: warning: {option_string} is deprecated since retinalnet 0.2 "
                f"and will be removed in 0.3; use {new}",
                file=sys.stderr,
            )
        setattr(namespace, self.dest, values)


_POSITIVE = int_in_range(1)
_NON_NEGATIVE = int_in_range(0)
_SEED = int_in_range(0, SEED_MAX)
_MIN_SIZE, _MAX_SIZE = 32, 2048  # the smallest and largest model input (Preprocessing)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="retinalnet",
        description="Classify retinal OCT B-scans (CNV, DME, DRUSEN, NORMAL) by transfer learning.",
        epilog="`retinalnet COMMAND --help` describes a command's options and their defaults.",
    )
    parser.add_argument("--version", action="version", version=f"retinalnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--device",
            default="auto",
            help="auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps "
            "(default: %(default)s)",
        )
        sub.add_argument(
            "--precision",
            default="auto",
            choices=["auto", "fp32", "bf16", "fp16"],
            help="auto: bf16 where the hardware has it (training stays fp32 on a CPU); fp32 "
            "for exact fp32 numbers; fp16 needs a GPU (default: %(default)s)",
        )
        sub.add_argument(
            "--workers",
            type=_NON_NEGATIVE,
            default=None,
            help="processes that read images while the model runs (default: none on a CPU, "
            "up to 8 with a GPU)",
        )
        sub.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")

    def feature_cache(sub: argparse.ArgumentParser, default: str) -> None:
        cache = sub.add_mutually_exclusive_group()
        cache.add_argument(
            "--feature-cache",
            nargs="?",
            const=True,
            default=None,
            type=_feature_cache_folder,
            metavar="DIR",
            help="run the frozen backbone once per image and only the head on its features "
            f"(in memory, or kept in DIR for later runs; default: {default})",
        )
        cache.add_argument(
            "--no-feature-cache",
            dest="feature_cache",
            action="store_const",
            const=False,
            help="run the whole model on every image",
        )

    def on_error(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--on-error",
            choices=["raise", "skip"],
            default="raise",
            help="an image that cannot be read stops the command with an error naming it "
            "(raise), or is left out and listed at the end, on stderr (skip) "
            "(default: %(default)s)",
        )

    demo = commands.add_parser(
        "demo", help="synthetic scans -> train -> evaluate -> predict (offline, ~40 s on 2 cores)"
    )
    demo.add_argument(
        "--out",
        type=path_argument,
        default=Path("retinalnet-demo"),
        help="output folder: scans in OUT/data, checkpoints in OUT/checkpoints "
        "(default: %(default)s)",
    )
    demo.add_argument(
        "--epochs",
        type=_POSITIVE,
        default=12,
        help="maximum epochs; the learning rate decays over them and early stopping may end "
        "the run sooner (default: %(default)s)",
    )
    demo.add_argument(
        "--weights",
        type=_demo_weights,
        default=None,
        metavar="FILE",
        help="a local VGG16 state-dict file (default: the one in torchvision's cache; "
        "without it the demo trains a small CNN from scratch)",
    )
    demo.add_argument(
        "--seed",
        type=_SEED,
        default=0,
        help="seeds the synthetic scans and the training (default: %(default)s)",
    )
    demo.add_argument(
        "--data-only",
        action="store_true",
        help="only write the synthetic scans to OUT/data (to try train, evaluate or audit on)",
    )
    demo.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")

    train = commands.add_parser("train", help="train on a Kermany-layout folder")
    train.add_argument(
        "--data", required=True, type=path_argument, help="folder with train/ val/ test/"
    )
    train.add_argument(
        "--out",
        type=path_argument,
        default=None,
        help="folder for best.pt, last.pt and history.csv (default: runs/retinalnet; with "
        "--resume, the folder of the run resumed)",
    )
    train.add_argument(
        "--arch",
        type=_architecture,
        default=None,
        metavar="NAME",
        help="registered architecture; `retinalnet models` lists them (default: "
        f"{DEFAULT_ARCH}; with --resume, the architecture of the run resumed)",
    )
    train.add_argument(
        "--weights",
        type=_weights_arg,
        default="DEFAULT",
        help="DEFAULT (the architecture's ImageNet weights, downloaded once), a weights name "
        "such as IMAGENET1K_V1, a local state-dict file, or none (random) "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--epochs",
        type=_POSITIVE,
        default=20,
        help="maximum epochs, counting those of a resumed run (default: %(default)s)",
    )
    train.add_argument(
        "--batch-size", type=_POSITIVE, default=32, help="images per step (default: %(default)s)"
    )
    train.add_argument(
        "--lr",
        type=_lr_arg,
        default=1e-3,
        help="Adam learning rate, or auto: run the learning-rate range test (Trainer.lr_find) "
        "first and train with the rate it suggests (default: %(default)s)",
    )
    train.add_argument(
        "--tensorboard",
        type=path_argument,
        default=None,
        metavar="DIR",
        help="also log each epoch to TensorBoard in DIR: metrics, confusion matrix, Grad-CAM "
        'of 4 validation images (needs pip install "retinalnet[tensorboard]"; default: off)',
    )
    train.add_argument(
        "--patience",
        type=_NON_NEGATIVE,
        default=3,
        help="early stopping: epochs without a lower validation loss (default: %(default)s)",
    )
    train.add_argument(
        "--size",
        "--image-size",
        type=int_in_range(_MIN_SIZE, _MAX_SIZE),
        default=224,
        dest="size",
        action=_RenamedOption,
        renamed={"--image-size": "--size"},
        help="side of the square the model sees, in pixels; --image-size is its 0.1 name "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--reduced-decode",
        action="store_true",
        help="decode large JPEGs at 1/2, 1/4 or 1/8 scale (faster; check it on your data; "
        "default: off)",
    )
    train.add_argument(
        "--seed", type=_SEED, default=None, help="seed for a reproducible run (default: none)"
    )
    train.add_argument(
        "--resume",
        type=path_argument,
        default=None,
        help="continue the run saved in this last.pt (e.g. OUT/last.pt)",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="let a new run replace an existing run's OUT/best.pt, last.pt and history.csv "
        "(default: refuse)",
    )
    add_manifest_argument(train, "train/val")
    train.add_argument(
        "--classes",
        nargs="+",
        default=None,
        metavar="CLASS",
        help="train for some of the classes only, e.g. --classes CNV NORMAL: the other class "
        "folders are not read, evaluate and calibrate read only these (default: all four; "
        "with --resume, the run's)",
    )
    train.add_argument(
        "--balance",
        choices=["none", "weights", "sampler"],
        default="none",
        help="counter class imbalance: weighted loss or class-balanced sampler "
        "(default: %(default)s)",
    )
    feature_cache(train, "on, in memory, when only the head trains: all models but small_cnn")
    train.add_argument(
        "--cache-views",
        type=_NON_NEGATIVE,
        default=0,
        metavar="N",
        help="with the feature cache, also cache N augmented copies of each training image "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after training, fit the temperature on the validation split and store it in "
        "best.pt: calibrated probabilities, the same predicted classes; --no-calibrate leaves "
        "them raw (default: %(default)s)",
    )
    on_error(train)
    common(train)
    add_recipe_arguments(train)  # --recipe, --finetune-blocks, --augment

    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint on a split")
    evaluate.add_argument(
        "--checkpoint", required=True, type=path_argument, help="a checkpoint written by retinalnet"
    )
    evaluate.add_argument(
        "--data",
        required=True,
        type=path_argument,
        help="the Kermany-layout folder (with the split)",
    )
    add_manifest_argument(evaluate, "the split's images")
    evaluate.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test"],
        help="the split to evaluate (default: %(default)s)",
    )
    evaluate.add_argument(
        "--batch-size",
        type=_POSITIVE,
        default=64,
        help="images per forward pass (default: %(default)s)",
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of tables")
    evaluate.add_argument(
        "--out",
        type=file_argument("results.json"),
        default=None,
        metavar="FILE",
        help="also write the JSON report here",
    )
    evaluate.add_argument(
        "--plots",
        type=path_argument,
        default=None,
        metavar="DIR",
        help="write confusion-matrix, ROC, precision-recall and reliability PNGs here "
        "(needs matplotlib)",
    )
    evaluate.add_argument(
        "--tta", action="store_true", help="average each image with its mirror (2x the time)"
    )
    evaluate.add_argument(
        "--bootstrap",
        type=bootstrap_resamples,
        default=0,
        metavar="N",
        help="95%% confidence intervals: Wilson score for proportions, N stratified bootstrap "
        "resamples for F1 and AUC; N is 0 (none, the default) or 40 to 100000, e.g. 1000",
    )
    evaluate.add_argument(
        "--report",
        type=file_argument("report.html"),
        default=None,
        metavar="FILE",
        help="also write a self-contained HTML report for clinicians here: metrics, curves, "
        "the most confident mistakes with Grad-CAM; opens offline (needs matplotlib)",
    )
    on_error(evaluate)
    feature_cache(evaluate, "off: a single pass gains nothing from a cache in memory")
    common(evaluate)

    calibrate = commands.add_parser(
        "calibrate", help="fit a checkpoint's temperature on a split (calibrated probabilities)"
    )
    calibrate.add_argument(
        "--checkpoint", required=True, type=path_argument, help="a checkpoint written by retinalnet"
    )
    calibrate.add_argument(
        "--data",
        required=True,
        type=path_argument,
        help="the Kermany-layout folder (with the split)",
    )
    add_manifest_argument(calibrate, "the split's images")
    calibrate.add_argument(
        "--split",
        default="val",
        choices=["train", "val", "test"],
        help="the split to fit on; not the one you report on (default: %(default)s)",
    )
    calibrate.add_argument(
        "--out",
        type=file_argument("calibrated.pt"),
        default=None,
        metavar="FILE",
        help="write the calibrated checkpoint here (default: the checkpoint itself, atomically)",
    )
    calibrate.add_argument(
        "--overwrite",
        action="store_true",
        help="let --out replace an existing checkpoint (an earlier calibrated copy; default: "
        "refuse)",
    )
    calibrate.add_argument(
        "--batch-size",
        type=_POSITIVE,
        default=64,
        help="images per forward pass (default: %(default)s)",
    )
    calibrate.add_argument("--json", action="store_true", help="print JSON instead of a line")
    on_error(calibrate)
    common(calibrate)

    predict = commands.add_parser("predict", help="top-k classes of images or folders")
    predict.add_argument(
        "paths",
        nargs="+",
        type=path_argument,
        metavar="PATH",
        help=f"image files, or folders searched for {image_suffixes()} files; a multi-frame "
        "file (DICOM, multi-page TIFF, animated PNG, GIF or WebP) is an OCT volume, "
        "summarised per volume",
    )
    predict.add_argument(
        "--checkpoint", required=True, type=path_argument, help="a checkpoint written by retinalnet"
    )
    predict.add_argument(
        "-k",
        "--topk",
        type=_POSITIVE,
        default=2,
        dest="k",
        action=_RenamedOption,
        renamed={"--topk": "-k"},
        help="classes to list per image, 1 to the number of classes; --topk is its 0.1 name "
        "(default: %(default)s)",
    )
    predict.add_argument(
        "--batch-size",
        type=_POSITIVE,
        default=32,
        help="images per forward pass (default: %(default)s)",
    )
    predict.add_argument("--json", action="store_true", help="print JSON instead of lines")
    predict.add_argument(
        "--csv",
        type=file_argument("predictions.csv"),
        default=None,
        metavar="FILE",
        help="also write the predictions to this CSV file, one row per image: path, then "
        "class_1, probability_1, ... class_k, probability_k",
    )
    predict.add_argument(
        "--cam",
        type=path_argument,
        default=None,
        metavar="DIR",
        help="write a Grad-CAM overlay per image here, and for each volume of its driving "
        "B-scans (at most 3) (needs matplotlib)",
    )
    predict.add_argument(
        "--tta", action="store_true", help="average each image with its mirror (2x the time)"
    )
    add_volume_flags(predict)
    on_error(predict)
    common(predict)
    _add_data_commands(commands)

    models = commands.add_parser("models", help="list the registered architectures")
    models.add_argument(
        "--json", action="store_true", help="print JSON, with head and Grad-CAM layer paths"
    )
    models.set_defaults(quiet=False)
    add_export_command(commands)
    add_info_command(commands)
    return parser


def _add_data_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``audit`` and ``split`` subcommands."""
    audit = commands.add_parser(
        "audit",
        help="check a Kermany-layout folder: layout, names, pixels, leakage (exit 1 on problems)",
    )
    audit.add_argument(
        "root",
        type=path_argument,
        metavar="ROOT",
        help="folder with train/ val/ test/ (those there are)",
    )
    audit.add_argument(
        "--classes",
        nargs="+",
        default=None,
        metavar="CLASS",
        help="check a study of some of the classes only, e.g. --classes CNV NORMAL: the other "
        "class folders are listed, not read (default: all four; a class with no folder in any "
        "split is then a note, not a problem)",
    )
    audit.add_argument("--json", action="store_true", help="print JSON instead of the table")
    audit.add_argument(
        "--out",
        type=file_argument("audit.json"),
        default=None,
        metavar="FILE",
        help="also write the JSON report here",
    )
    audit.add_argument("-q", "--quiet", action="store_true", help="no progress, only the report")

    split = commands.add_parser(
        "split", help="patient-aware validation split from train, written to a manifest"
    )
    split.add_argument(
        "root", type=path_argument, metavar="ROOT", help="folder with train/ (and test/)"
    )
    split.add_argument(
        "--val-fraction",
        type=_fraction,
        default=0.1,
        help="fraction of each class's patients moved to validation (default: %(default)s)",
    )
    split.add_argument(
        "--seed",
        type=_NON_NEGATIVE,
        default=0,
        help="the same seed gives the same split (default: %(default)s)",
    )
    split.add_argument(
        "--out",
        type=file_argument("split.csv"),
        required=True,
        metavar="FILE",
        help="manifest file (.csv or .json)",
    )
    split.add_argument(
        "--drop-duplicates",
        action="store_true",
        help="drop exact duplicate files (sha256; the copy in test/ is kept)",
    )
    split.add_argument(
        "--drop-test-patients",
        action="store_true",
        help="drop training images of patients who are also in test/",
    )
    split.add_argument(
        "--unparsed",
        choices=["refuse", "own-group"],
        default="refuse",
        help="file names without a patient id: stop with an error (refuse), or make each a "
        "patient of its own (own-group) (default: %(default)s)",
    )
    split.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
