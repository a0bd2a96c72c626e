"""Prediction speed: the tutorial's one-image-at-a-time predict vs Predictor.topk, one run.

    python benchmarks/bench_predict.py --images 48

The tutorial's ``predict`` opened each image, resized it to 256x256 (squashing the aspect
ratio), converted it by hand, and ran the model on a batch of one in fp32. ``Predictor.topk``
takes the whole list, prepares each image with the model's own preprocessing and runs
batches under inference mode, channels-last and (where the hardware has it) bf16 autocast.
It also reports the largest probability difference between bf16 and fp32 on the same images.
Weights are random (no download): speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from image_folder import images_in_folder
from PIL import Image

from retinalnet import Predictor, vgg16_transfer
from retinalnet._core.device import resolve_device
from retinalnet.datasets import find_images, make_synthetic_kermany
from retinalnet.models import Classifier
from retinalnet.precision import cpu_has_native_bf16


def tutorial_predict(path: Path, model: Classifier, device: torch.device, k: int) -> None:
    """The tutorial's process_image + predict, for one image."""
    image = Image.open(path).convert("RGB").resize((256, 256))
    left = (256 - 224) // 2
    image = image.crop((left, left, left + 224, left + 224))
    array = np.array(image).transpose((2, 0, 1)) / 256
    means = np.array([0.485, 0.456, 0.406]).reshape((3, 1, 1))
    stds = np.array([0.229, 0.224, 0.225]).reshape((3, 1, 1))
    tensor = torch.Tensor((array - means) / stds).view(1, 3, 224, 224).to(device)
    with torch.no_grad():
        model.eval()
        torch.exp(model(tensor)).topk(k, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--images-from", type=Path, default=None,
        help="predict these real images (a folder, searched recursively) instead of synthetic ones",
    )  # fmt: skip
    args = parser.parse_args()
    real = None if args.images_from is None else images_in_folder(args.images_from)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = vgg16_transfer(weights=None).to(device)

    with tempfile.TemporaryDirectory() as folder:
        if real is not None:
            paths = real
        else:
            per_class = max(1, args.images // 4)
            root = make_synthetic_kermany(folder, train=per_class, val=0, test=0, seed=0)
            paths = find_images(Path(root) / "train")

        tutorial_predict(paths[0], model, device, 2)  # warm-up
        started = time.perf_counter()
        for path in paths:
            tutorial_predict(path, model, device, 2)
        if device.type == "cuda":
            torch.cuda.synchronize()
        tutorial_seconds = time.perf_counter() - started

        fast = Predictor(model, device=device, batch_size=args.batch_size)
        fast.topk(list(paths[: args.batch_size]), k=2)  # warm-up
        started = time.perf_counter()
        fast.topk(list(paths), k=2)
        if device.type == "cuda":
            torch.cuda.synchronize()
        fast_seconds = time.perf_counter() - started

        exact = Predictor(model, device=device, batch_size=args.batch_size, precision="fp32")
        difference = (fast.predict_proba(paths) - exact.predict_proba(paths)).abs().max()

    count = len(paths)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, device {device}, native CPU bf16: {cpu_has_native_bf16()}, "
          f"torch {torch.__version__}")  # fmt: skip
    source = args.images_from or "synthetic 496x512 scans"
    print(f"images: {count} from {source}, VGG16 at 224 px, precision {fast.precision}")
    print(f"tutorial predict   {tutorial_seconds:8.2f} s  {count / tutorial_seconds:8.1f} img/s")
    print(f"Predictor.topk     {fast_seconds:8.2f} s  {count / fast_seconds:8.1f} img/s")
    print(f"  ratio: {tutorial_seconds / fast_seconds:.1f}x  (target >= 3x)")
    print(f"  largest probability difference vs fp32: {float(difference):.4f}")


if __name__ == "__main__":
    main()
