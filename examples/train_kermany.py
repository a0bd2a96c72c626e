"""Train the tutorial's VGG16 transfer model on a Kermany-layout folder.

    python examples/train_kermany.py --data OCT2017 --out runs/vgg16

The folder holds train/, val/ and test/, each with CNV/, DME/, DRUSEN/, NORMAL/ inside
(the Kaggle OCT2017 download). Without ImageNet weights on the machine, pass
``--weights /path/to/vgg16-397923af.pth`` or ``--weights none``. It runs unchanged under
``torchrun --nproc_per_node=N``; then rank 0 writes and prints.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from retinalnet import EarlyStopping, KermanyOCT, Trainer, vgg16_transfer
from retinalnet.models import parameter_summary
from retinalnet.transforms import Preprocessing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/vgg16"))
    parser.add_argument("--weights", default="IMAGENET1K_V1", help="name, file, or none")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size", type=int, default=224, help="side of the model input")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 reports
    logging.basicConfig(level=logging.INFO, format="%(message)s")

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
        seed=0,
    )
    # The data sets yield PIL images; the Trainer applies the model's own preprocessing
    # (augmenting for train, deterministic for val), the same path prediction uses.
    history = trainer.fit(KermanyOCT(args.data, "train"), KermanyOCT(args.data, "val"))
    result = trainer.evaluate(KermanyOCT(args.data, "test"))
    if main_process:
        history.to_csv(args.out / "history.csv")
        print(history.stop_reason)
        print(result)
        print(f"best model written to {args.out / 'best.pt'}")


if __name__ == "__main__":
    main()
