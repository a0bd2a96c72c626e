"""Top-k predictions for every image in a folder, from a trained checkpoint.

    python examples/predict_folder.py --checkpoint runs/vgg16/best.pt scans/ -k 2

Works on a CPU-only machine whatever device the model was trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from retinalnet import Predictor
from retinalnet.datasets import find_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("-k", type=int, default=2)
    args = parser.parse_args()

    predictor = Predictor.from_checkpoint(args.checkpoint)
    images = find_images(args.folder)
    for prediction in predictor.topk(list(images), k=args.k):
        print(prediction)  # "scans/a.jpeg: CNV 97.2%, DME 2.5%" (never rounded to 100.0%)


if __name__ == "__main__":
    main()
