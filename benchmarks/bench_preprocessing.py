"""Image preparation: the tutorial's RGB pipelines against retinalnet's, in one run.

    python benchmarks/bench_preprocessing.py --images-from ../shared/data/kermany-sample

The tutorial's ``ImageFolder`` converted every grayscale scan to RGB before its transforms,
so each resize, rotation and crop worked on three identical channels. ``Preprocessing``
keeps a gray scan in one channel until it is a tensor and repeats it into three only then:
the same numbers (checked here on every image, and by the tests) for less work. Times the
evaluation and the training pipelines on decoded images (no JPEG decoding), on one core,
best of three passes; images/s and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from image_folder import images_in_folder
from PIL import Image
from torchvision import transforms as tvt

from retinalnet.datasets import render_bscan
from retinalnet.transforms import Preprocessing


def tutorial_pipelines(prep: Preprocessing) -> tuple[tvt.Compose, tvt.Compose]:
    """The tutorial's evaluation and training pipelines, after ImageFolder's RGB conversion
    (its no-op ``ColorJitter()`` left out, as in ``Preprocessing``)."""
    rgb = tvt.Lambda(lambda image: image.convert("RGB"))
    tail = [tvt.CenterCrop(prep.size), tvt.ToTensor(), tvt.Normalize(prep.mean, prep.std)]
    evaluation = tvt.Compose([rgb, tvt.Resize(prep.resize), *tail])
    training = tvt.Compose(
        [
            rgb,
            tvt.RandomResizedCrop(prep.resize, scale=prep.scale),
            tvt.RandomRotation(prep.rotation),
            tvt.RandomHorizontalFlip(),
            *tail,
        ]
    )
    return evaluation, training


def images_per_second(
    images: list[Image.Image], pipeline: Callable[[Image.Image], object]
) -> float:
    best = float("inf")
    for _ in range(3):
        torch.manual_seed(0)
        started = time.perf_counter()
        for image in images:
            pipeline(image)
        best = min(best, time.perf_counter() - started)
    return len(images) / best


def same_numbers(
    images: list[Image.Image], first: Callable[[Image.Image], torch.Tensor],
    second: Callable[[Image.Image], torch.Tensor],
) -> bool:  # fmt: skip
    for seed, image in enumerate(images):
        torch.manual_seed(seed)
        expected = first(image)
        torch.manual_seed(seed)
        if not torch.equal(second(image), expected):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="synthetic scans to time")
    parser.add_argument("--images-from", type=Path, default=None, help="time these images")
    args = parser.parse_args()
    if args.images_from is None and args.images < 1:
        sys.exit(f"--images {args.images}: needs at least 1 synthetic scan to time; pass 1 or more")
    torch.set_num_threads(1)
    if args.images_from is not None:
        images = []
        for path in images_in_folder(args.images_from):
            with Image.open(path) as image:
                image.load()
                images.append(image.copy())
        source = str(args.images_from)
    else:
        rng = np.random.default_rng(0)
        classes = ("CNV", "DME", "DRUSEN", "NORMAL")
        images = [
            Image.fromarray(render_bscan(classes[i % 4], rng)[0], "L") for i in range(args.images)
        ]
        source = "synthetic 512x496 scans"

    prep = Preprocessing()
    tutorial_eval, tutorial_train = tutorial_pipelines(prep)
    ours_eval, ours_train = prep.eval_transform(), prep.train_transform()
    print(f"{len(images)} images from {source}, modes {sorted({i.mode for i in images})}, 1 core")
    for name, theirs, ours in (
        ("evaluation", tutorial_eval, ours_eval),
        ("training", tutorial_train, ours_train),
    ):
        before = images_per_second(images, theirs)
        after = images_per_second(images, ours)
        identical = same_numbers(images, theirs, ours)
        print(f"{name:10s}  tutorial {before:7.0f} img/s  retinalnet {after:7.0f} img/s  "
              f"{after / before:.2f}x  identical: {identical}")  # fmt: skip


if __name__ == "__main__":
    main()
