"""The ``retinalnet`` command: demo, train, evaluate, predict."""

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
    from retinalnet.predictor import Prediction

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
    parser = argparse.ArgumentParser(
        prog="retinalnet",
        description="Classify retinal OCT B-scans (CNV, DME, DRUSEN, NORMAL) by transfer learning.",
    )
    parser.add_argument("--version", action="version", version=f"retinalnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps")
        sub.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")

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
    train.add_argument("--arch", choices=["vgg16_transfer", "small_cnn"], default="vgg16_transfer")
    train.add_argument(
        "--weights",
        type=_weights_arg,
        default="IMAGENET1K_V1",
        help="VGG16 weights: IMAGENET1K_V1 (download once), a local file, or none",
    )
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--patience", type=int, default=3)
    train.add_argument("--image-size", type=int, default=224)
    train.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--resume", type=Path, default=None, help="continue from OUT/last.pt")
    train.add_argument("--overwrite", action="store_true", help="replace OUT/best.pt")
    common(train)

    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint on a split")
    evaluate.add_argument("--checkpoint", required=True, type=Path)
    evaluate.add_argument("--data", required=True, type=Path)
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    common(evaluate)

    predict = commands.add_parser("predict", help="top-k classes of images or folders")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders")
    predict.add_argument("--checkpoint", required=True, type=Path)
    predict.add_argument("-k", "--topk", type=int, default=2, dest="k")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--json", action="store_true", help="print JSON")
    common(predict)
    return parser


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
    from retinalnet.models import small_cnn, vgg16_transfer
    from retinalnet.training import EarlyStopping, Trainer
    from retinalnet.transforms import Preprocessing

    preprocessing = Preprocessing(size=args.image_size)
    train = KermanyOCT(args.data, "train")
    val = KermanyOCT(args.data, "val")
    if args.arch == "vgg16_transfer":
        model = vgg16_transfer(weights=args.weights, preprocessing=preprocessing)
    else:
        model = small_cnn(preprocessing=preprocessing)
    trainer = Trainer(
        model,
        callbacks=[EarlyStopping(patience=args.patience)],
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        num_workers=args.workers,
        device=args.device,
        checkpoint_dir=args.out,
        overwrite=args.overwrite,
        seed=args.seed,
        verbose=not args.quiet,
    )
    history = trainer.fit(train, val, resume_from=args.resume)
    csv_path = history.to_csv(args.out / "history.csv")
    print(f"stopped: {history.stop_reason}")
    print(f"validation ({len(val)} images):\n{trainer.evaluate(val)}")
    print(f"best model: {args.out / 'best.pt'}  history: {csv_path}")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from retinalnet.datasets import KermanyOCT
    from retinalnet.training import evaluate, load_checkpoint

    model = load_checkpoint(args.checkpoint).build_model()
    data = KermanyOCT(args.data, args.split)
    result = evaluate(model, data, batch_size=args.batch_size, device=args.device)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"{args.split} split of {args.data}:\n{result}")
    return 0


def _print_predictions(predictions: Sequence[Prediction]) -> None:
    for prediction in predictions:
        scores = "  ".join(f"{c.name} {c.probability:6.1%}" for c in prediction.top)
        print(f"{prediction.source}  {scores}")


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
        args.checkpoint, device=args.device, batch_size=args.batch_size
    )
    predictions = predictor.topk(list(images), k=args.k)
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
    else:
        _print_predictions(predictions)
    return 0


_COMMANDS = {
    "demo": _run_demo,
    "train": _run_train,
    "evaluate": _run_evaluate,
    "predict": _run_predict,
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
