"""Train the tutorial's VGG16 transfer model on a Kermany-layout folder.

    retinalnet split OCT2017 --val-fraction 0.1 --seed 0 --out split.csv --drop-duplicates
    python examples/train_kermany.py --data OCT2017 --manifest split.csv --out runs/vgg16

The folder holds train/, val/ and test/, each with CNV/, DME/, DRUSEN/, NORMAL/ inside
(the Kaggle OCT2017 download). The official val/ holds 32 images, too few to stop early on
(the user guide's "The validation split is tiny"), so the run trains and validates on the
patient-aware split of ``--manifest``, written by ``retinalnet split`` (or
``patient_split`` and ``write_manifest``); the test split is the folder's test/. Without
``--manifest`` it uses the folders' train/ and val/, as the tutorial did, and says so.

A second run into the same ``--out`` is refused (it would replace the first run's files):
``--resume OUT/last.pt`` continues that run, ``--overwrite`` replaces it. Without ImageNet
weights on the machine, pass ``--weights /path/to/vgg16-397923af.pth`` or ``--weights
none``. It runs unchanged under ``torchrun --nproc_per_node=N``; then rank 0 writes and
prints.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from retinalnet import EarlyStopping, KermanyOCT, Trainer, vgg16_transfer
from retinalnet.models import parameter_summary
from retinalnet.transforms import Preprocessing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/vgg16"))
    parser.add_argument(
        "--manifest", type=Path, default=None, help="train/val split from retinalnet split"
    )
    parser.add_argument("--weights", default="IMAGENET1K_V1", help="name, file, or none")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size", type=int, default=224, help="side of the model input")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resume", type=Path, default=None, help="continue this OUT/last.pt")
    parser.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    args = parser.parse_args()
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 reports
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.manifest is None:
        train, val = KermanyOCT(args.data, "train"), KermanyOCT(args.data, "val")
        if main_process:
            print(
                f"validating on the folders' val/ ({len(val)} images); for a larger, "
                "patient-aware one, pass --manifest from retinalnet split"
            )
    else:
        train = KermanyOCT.from_manifest(args.manifest, "train", root=args.data)
        val = KermanyOCT.from_manifest(args.manifest, "val", root=args.data)

    model = vgg16_transfer(
        weights=None if args.weights.lower() == "none" else args.weights,
        preprocessing=Preprocessing(size=args.size),
    )
    if main_process:
        print(parameter_summary(model))

    trainer = Trainer(
        model,
        callbacks=[EarlyStopping(monitor="val_loss", patience=3)],
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        out_dir=args.out,
        overwrite=args.overwrite,
        seed=0,
    )
    # The data sets yield PIL images; the Trainer applies the model's own preprocessing
    # (augmenting for train, deterministic for val), the same path prediction uses.
    history = trainer.fit(train, val, resume_from=args.resume)
    result = trainer.evaluate(KermanyOCT(args.data, "test"))
    if main_process:
        history.to_csv(args.out / "history.csv")
        print(history.stop_reason)
        print(result)
        print(f"best model written to {args.out / 'best.pt'}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, RuntimeError) as error:  # a bad path, no weights: say why
        # the library's advice names its arguments (weights=None): this script's --weights
        sys.exit(f"{Path(sys.argv[0]).name}: error: {error}")
