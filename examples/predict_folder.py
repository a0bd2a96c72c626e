"""Top-k predictions for every image in a folder, from a trained checkpoint.

    python examples/predict_folder.py --checkpoint runs/vgg16/best.pt scans/ -k 2

Works on a CPU-only machine whatever device the model was trained on. A file that cannot
be read (damaged, not an image, an OCT volume) is left out and listed at the end, on
stderr; the others are predicted. For volumes (multi-frame DICOM or TIFF), use
``retinalnet predict``, which summarises each volume.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retinalnet import Predictor
from retinalnet.datasets import find_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("-k", type=int, default=2)
    args = parser.parse_args()

    images = find_images(args.folder)
    if not images:
        sys.exit(f"{Path(sys.argv[0]).name}: error: no images under {str(args.folder)!r}")
    predictor = Predictor.from_checkpoint(args.checkpoint, on_error="skip")
    predictions = predictor.topk(list(images), k=args.k)
    for prediction in predictions:
        print(prediction)  # "scans/a.jpeg: CNV 97.2%, DME 2.5%" (never rounded to 100.0%)
    for skipped in predictor.skipped:  # unreadable files and volumes: left out, said why
        print(f"skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
    if not predictions:
        sys.exit(f"{Path(sys.argv[0]).name}: error: none of the {len(images)} images was read")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, RuntimeError) as error:  # a bad path or -k: say why
        sys.exit(f"{Path(sys.argv[0]).name}: error: {error}")
