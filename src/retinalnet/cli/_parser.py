"""The command line's argument parser."""

from __future__ import annotations

import argparse
from pathlib import Path

from retinalnet._version import __version__

__all__ = ["build_parser"]


def _weights_arg(value: str) -> str | None:
    return None if value.lower() == "none" else value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    from retinalnet.models import list_models

    parser = argparse.ArgumentParser(
        prog="retinalnet",
        description="Classify retinal OCT B-scans (CNV, DME, DRUSEN, NORMAL) by transfer learning.",
    )
    parser.add_argument("--version", action="version", version=f"retinalnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps")
        sub.add_argument(
            "--precision",
            default="auto",
            choices=["auto", "fp32", "bf16", "fp16"],
            help="auto (default): bf16 where the hardware has it (training stays fp32 on a "
            "CPU); fp32 for exact fp32 numbers; fp16 needs a GPU",
        )
        sub.add_argument(
            "--workers",
            type=int,
            default=None,
            help="DataLoader worker processes (default: 0 on a CPU, up to 8 with a GPU)",
        )
        sub.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")

    def feature_cache(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--feature-cache",
            nargs="?",
            const=True,
            default=False,
            metavar="DIR",
            help="run the frozen backbone once per image and only the head on its features "
            "(in memory, or kept in DIR for later runs)",
        )

    def on_error(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--on-error",
            choices=["raise", "skip"],
            default="raise",
            help="what to do with an image that cannot be read: stop with an error naming it "
            "(raise, the default), or leave it out and list it at the end, on stderr (skip)",
        )

    demo = commands.add_parser(
        "demo", help="synthetic scans -> train -> evaluate -> predict (offline, ~1 min on a CPU)"
    )
    demo.add_argument("--out", default="retinalnet-demo", help="output folder (retinalnet-demo)")
    demo.add_argument("--epochs", type=int, default=12)
    demo.add_argument(
        "--weights", default=None, help="local VGG16 state-dict file (default: torchvision cache)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")

    train = commands.add_parser("train", help="train on a Kermany-layout folder")
    train.add_argument("--data", required=True, type=Path, help="folder with train/ val/ test/")
    train.add_argument("--out", type=Path, default=Path("runs/retinalnet"), help="checkpoints")
    train.add_argument(
        "--arch",
        choices=list_models(),
        default="vgg16_transfer",
        metavar="NAME",
        help="registered architecture (vgg16_transfer; `retinalnet models` lists them)",
    )
    train.add_argument(
        "--weights",
        type=_weights_arg,
        default="DEFAULT",
        help="DEFAULT (download once), a weights name such as IMAGENET1K_V1, a local "
        "state-dict file, or none",
    )
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--patience", type=int, default=3)
    train.add_argument(
        "--size",
        "--image-size",
        type=int,
        default=224,
        dest="size",
        help="side of the square the model sees (224); --image-size is its 0.1 name",
    )
    train.add_argument(
        "--reduced-decode",
        action="store_true",
        help="decode large JPEGs at 1/2, 1/4 or 1/8 scale (faster; check it on your data)",
    )
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--resume", type=Path, default=None, help="continue from OUT/last.pt")
    train.add_argument("--overwrite", action="store_true", help="replace OUT/best.pt")
    train.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="take train/val from this manifest (from `retinalnet split`) instead of the folders",
    )
    train.add_argument(
        "--balance",
        choices=["none", "weights", "sampler"],
        default="none",
        help="counter class imbalance: weighted loss or class-balanced sampler (default none)",
    )
    feature_cache(train)
    train.add_argument(
        "--cache-views",
        type=int,
        default=0,
        metavar="N",
        help="with --feature-cache, also cache N augmented copies of each training image",
    )
    common(train)

    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint on a split")
    evaluate.add_argument("--checkpoint", required=True, type=Path)
    evaluate.add_argument("--data", required=True, type=Path)
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    evaluate.add_argument(
        "--plots", type=Path, default=None, metavar="DIR", help="write confusion-matrix PNGs here"
    )
    evaluate.add_argument(
        "--tta", action="store_true", help="average each image with its mirror (2x the time)"
    )
    evaluate.add_argument(
        "--bootstrap", type=int, default=0, metavar="N", help="95%% intervals from N resamples"
    )
    on_error(evaluate)
    feature_cache(evaluate)
    common(evaluate)

    predict = commands.add_parser("predict", help="top-k classes of images or folders")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders")
    predict.add_argument("--checkpoint", required=True, type=Path)
    predict.add_argument(
        "-k", "--topk", type=int, default=2, dest="k", help="classes per image (2); --topk: 0.1"
    )
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.add_argument(
        "--cam", type=Path, default=None, metavar="DIR", help="write a Grad-CAM overlay per image"
    )
    predict.add_argument(
        "--tta", action="store_true", help="average each image with its mirror (2x the time)"
    )
    on_error(predict)
    common(predict)
    _add_data_commands(commands)

    models = commands.add_parser("models", help="list the registered architectures")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(quiet=False)
    return parser


def _add_data_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``audit`` and ``split`` subcommands."""
    audit = commands.add_parser(
        "audit",
        help="check a Kermany-layout folder: layout, names, pixels, leakage (exit 1 on problems)",
    )
    audit.add_argument("root", type=Path, metavar="ROOT", help="folder with train/ val/ test/")
    audit.add_argument("--json", action="store_true", help="print JSON instead of the table")
    audit.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    audit.add_argument("-q", "--quiet", action="store_true", help="no progress, only the report")

    split = commands.add_parser(
        "split", help="patient-aware validation split from train, written to a manifest"
    )
    split.add_argument("root", type=Path, metavar="ROOT", help="folder with train/ (and test/)")
    split.add_argument("--val-fraction", type=float, default=0.1, help="default 0.1")
    split.add_argument("--seed", type=int, default=0, help="default 0")
    split.add_argument("--out", type=Path, required=True, help="manifest file (.csv or .json)")
    split.add_argument(
        "--drop-duplicates", action="store_true", help="drop exact duplicate files (sha256)"
    )
    split.add_argument(
        "--drop-test-patients",
        action="store_true",
        help="drop training images of patients who are also in test/",
    )
    split.add_argument(
        "--unparsed", choices=["refuse", "own-group"], default="refuse", help="names without an id"
    )
    split.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
