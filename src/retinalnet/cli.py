"""The ``retinalnet`` command: demo, train, evaluate, predict, audit, split, models."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from retinalnet._version import __version__

if TYPE_CHECKING:
    from retinalnet.predictor import Prediction, Predictor

__all__ = ["build_parser", "main"]

logger = logging.getLogger("retinalnet")

# Errors a user can fix: shown as one line, without a traceback.
_USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError)


@contextmanager
def _logging_to_stderr(quiet: bool) -> Iterator[None]:
    """Show the library's log lines on stderr while a command runs, then restore logging."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


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


def _run_demo(args: argparse.Namespace) -> int:
    from retinalnet.demo import run_demo

    result = run_demo(args.out, weights=args.weights, epochs=args.epochs, seed=args.seed)
    print(f"model: {result.model_name}")
    print(f"stopped: {result.history.stop_reason}")
    print(f"best validation accuracy: {result.best_val_accuracy:.1%}")
    print(f"\ntest set ({result.data_dir / 'test'}):\n{result.test}\n")
    print("top-2 predictions:")
    _print_predictions(result.predictions)
    print(f"\ncheckpoint: {result.checkpoint}")
    print(f"try: retinalnet predict --checkpoint {result.checkpoint} {result.data_dir / 'test'}")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from retinalnet.datasets import KermanyOCT
    from retinalnet.models import create_model
    from retinalnet.training import ClassificationTask, EarlyStopping, FeatureCacheConfig, Trainer
    from retinalnet.transforms import Preprocessing

    preprocessing = Preprocessing(size=args.size, reduced_decode=args.reduced_decode)
    if args.manifest is not None:
        train = KermanyOCT.from_manifest(args.manifest, "train", root=args.data)
        val = KermanyOCT.from_manifest(args.manifest, "val", root=args.data)
    else:
        train = KermanyOCT(args.data, "train")
        val = KermanyOCT(args.data, "val")
    model = create_model(args.arch, weights=args.weights, preprocessing=preprocessing)
    task = ClassificationTask(lr=args.lr, balance=None if args.balance == "none" else args.balance)
    cache: bool | FeatureCacheConfig = False
    if args.feature_cache is not False:
        folder = None if args.feature_cache is True else Path(args.feature_cache)
        cache = FeatureCacheConfig(cache_dir=folder, views=args.cache_views)
    elif args.cache_views:
        raise ValueError("--cache-views N needs --feature-cache (it caches augmented copies)")
    trainer = Trainer(
        model,
        task,
        callbacks=[EarlyStopping(patience=args.patience)],
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=args.device,
        precision=args.precision,
        feature_cache=cache,
        out_dir=args.out,
        overwrite=args.overwrite,
        seed=args.seed,
        progress=not args.quiet,
    )
    history = trainer.fit(train, val, resume_from=args.resume)
    csv_path = history.to_csv(args.out / "history.csv")
    print(f"stopped: {history.stop_reason}")
    print(f"validation ({len(val)} images):\n{trainer.evaluate(val)}")
    print(f"best model: {args.out / 'best.pt'}  history: {csv_path}")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from retinalnet.checkpoint import load_checkpoint
    from retinalnet.datasets import KermanyOCT
    from retinalnet.training import evaluate

    model = load_checkpoint(args.checkpoint).build_model()
    data = KermanyOCT(args.data, args.split)
    result = evaluate(
        model,
        data,
        batch_size=args.batch_size,
        device=args.device,
        tta=args.tta,
        precision=args.precision,
        num_workers=args.workers,
        feature_cache=args.feature_cache,
    )
    report = result.report(bootstrap=args.bootstrap)
    data_out = {**result.to_dict(), "tta": args.tta, "report": report.to_dict()}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data_out, indent=2, allow_nan=False) + "\n")
    if args.plots is not None:
        from retinalnet.plots import plot_confusion_matrix

        args.plots.mkdir(parents=True, exist_ok=True)
        plot_confusion_matrix(result, save=args.plots / "confusion_matrix.png")
        plot_confusion_matrix(
            result, normalize=True, save=args.plots / "confusion_matrix_normalized.png"
        )
    if args.json:
        print(json.dumps(data_out, indent=2))
    else:
        print(f"{args.split} split of {args.data}:\n{result}\n\n{report}")
    return 0


def _print_predictions(predictions: Sequence[Prediction]) -> None:
    for prediction in predictions:
        scores = "  ".join(f"{c.name} {c.probability:6.1%}" for c in prediction.top)
        print(f"{prediction.source}  {scores}")


def _write_cams(
    predictor: Predictor, images: Sequence[Path], predictions: Sequence[Prediction], folder: Path
) -> None:
    """One Grad-CAM overlay PNG per image, of its predicted class, named after the image."""
    from retinalnet.plots import plot_gradcam

    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for path, prediction in zip(images, predictions, strict=True):
        name = f"{path.stem}_cam.png"
        if name in used:  # same file name in two folders
            name = f"{path.stem}_{len(used)}_cam.png"
        used.add(name)
        # the file itself: decoded as the model's preprocessing says, the map at full size
        heatmap = predictor.gradcam(path, class_index=prediction.top[0].index)
        title = f"{path.name}: {prediction.label} {prediction.probability:.1%}"
        plot_gradcam(path, heatmap, title=title, save=folder / name)
    logger.info("Grad-CAM overlays: %s", folder)


def _run_predict(args: argparse.Namespace) -> int:
    from retinalnet.datasets import find_images
    from retinalnet.predictor import Predictor

    images: list[Path] = []
    for path in args.paths:
        images.extend(find_images(path) if path.is_dir() else [path])
    if not images:
        searched = ", ".join(map(str, args.paths))
        raise ValueError(f"no images (.jpeg, .jpg, .png) found in {searched}")
    predictor = Predictor.from_checkpoint(
        args.checkpoint,
        device=args.device,
        batch_size=args.batch_size,
        tta=args.tta,
        precision=args.precision,
        num_workers=args.workers,
    )
    predictions = predictor.topk(list(images), k=args.k)
    if args.cam is not None:
        _write_cams(predictor, images, predictions, args.cam)
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
    else:
        _print_predictions(predictions)
    return 0


def _run_audit(args: argparse.Namespace) -> int:
    from retinalnet.datasets import audit

    report = audit(args.root, progress=not args.quiet)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report.to_json() + "\n")
    print(report.to_json() if args.json else report)
    return 0 if report.ok else 1


def _run_split(args: argparse.Namespace) -> int:
    from collections import Counter

    from retinalnet.datasets import KERMANY_CLASSES, patient_split, write_manifest

    rows = patient_split(
        args.root,
        val_fraction=args.val_fraction,
        seed=args.seed,
        drop_duplicates=args.drop_duplicates,
        drop_test_patients=args.drop_test_patients,
        unparsed=args.unparsed,
    )
    path = write_manifest(rows, args.out)
    counts = Counter((row.split, row.label) for row in rows)
    splits = sorted({row.split for row in rows}, key=("train", "val", "test").index)
    keys = [(r.split, str(int(r.patient)) if r.patient else r.path) for r in rows]  # 0042 is 42
    print(f"{'':<8}" + "".join(f"{name:>8}" for name in KERMANY_CLASSES) + f"{'patients':>10}")
    for split in splits:
        cells = "".join(f"{counts[(split, name)]:>8}" for name in KERMANY_CLASSES)
        print(f"{split:<8}{cells}{len({k for s, k in keys if s == split}):>10}")
    print(f"manifest: {path}")
    return 0


def _run_models(args: argparse.Namespace) -> int:
    from retinalnet.models import list_models, model_info

    infos = [model_info(name) for name in list_models()]
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return 0
    print(f"{'name':<19}{'parameters':>12}{'trainable':>11}{'GFLOPs':>8}  description")
    for info in infos:
        gflops = "?" if info.gflops is None else f"{info.gflops:.2f}"
        print(
            f"{info.name:<19}{info.parameters:>12,}{info.trainable:>11,}{gflops:>8}  "
            f"{info.description}"
        )
    print("\n4 classes, default head and freeze; GFLOPs at 224 px (multiply-adds)")
    return 0


_COMMANDS = {
    "demo": _run_demo,
    "train": _run_train,
    "evaluate": _run_evaluate,
    "predict": _run_predict,
    "audit": _run_audit,
    "split": _run_split,
    "models": _run_models,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Exit status 0 on success, 1 when an error stops the command (shown in one line),
    2 for bad arguments, 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    try:
        with _logging_to_stderr(args.quiet):
            return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("retinalnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        return 0
    except _USER_ERRORS as error:
        print(f"retinalnet {args.command}: error: {error}", file=sys.stderr)
        return 1
