"""Full JPEG decode + resize against reduced-scale (draft) decode + the same resize.

Writes synthetic 512 x 496 grayscale B-scans as JPEGs, then, in the same run and on one
core, times ``PIL.Image.open(path).load()`` followed by torchvision's ``Resize(256)`` against
``load_image(path, target_size=256)`` (which lets libjpeg decode at 1/2 scale) followed by the
same resize, and prints images per second for each, the speed-up and the mean absolute
difference of the results in grey levels.

``--images-from FOLDER`` times real JPEGs instead (the ``.jpeg`` and ``.jpg`` files under it,
e.g. the 80 Kermany scans in ``../shared/data/kermany-sample``, 512 to 1536 px wide); a
folder without any ends the run with one line saying so.

Run: ``python benchmarks/bench_decode.py [--images 200] [--size 256] [--images-from DIR]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from image_folder import JPEG_SUFFIXES, images_in_folder
from PIL import Image
from torchvision import transforms as tvt

from retinalnet.datasets import load_image, render_bscan


def _time(paths: list[Path], read: Callable[[Path], Image.Image], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for path in paths:
            read(path)
        best = min(best, time.perf_counter() - started)
    return len(paths) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=256, help="shorter side after resizing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images-from", type=Path, default=None, help="time these JPEGs")
    args = parser.parse_args()
    real: list[Path] = []
    if args.images_from is not None:
        real = images_in_folder(
            args.images_from, suffixes=JPEG_SUFFIXES, what="JPEG files (.jpeg, .jpg)"
        )
    elif args.images < 1:
        sys.exit(f"--images {args.images}: needs at least 1 synthetic scan to time; pass 1 or more")
    if args.repeats < 1:
        sys.exit(f"--repeats {args.repeats}: needs at least 1 pass to time; pass 1 or more")
    torch.set_num_threads(1)
    resize = tvt.Resize(args.size)

    def full(path: Path) -> Image.Image:
        with Image.open(path) as image:
            image.load()
            return resize(image)

    def draft(path: Path) -> Image.Image:
        return resize(load_image(path, target_size=args.size))

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        paths = list(real)
        for i in range(0 if real else args.images):
            pixels, _ = render_bscan(
                ("CNV", "DME", "DRUSEN", "NORMAL")[i % 4], rng, shape=(496, 512)
            )
            path = Path(tmp) / f"scan{i}.jpeg"
            Image.fromarray(pixels, "L").save(path, format="JPEG", quality=90)
            paths.append(path)
        full_rate = _time(paths, full, args.repeats)
        draft_rate = _time(paths, draft, args.repeats)
        difference = np.mean(
            [
                np.abs(
                    np.asarray(full(p), dtype=np.float32) - np.asarray(draft(p), dtype=np.float32)
                ).mean()
                for p in paths[:20]
            ]
        )
    source = str(args.images_from) if args.images_from else "synthetic 512x496"
    print(f"{len(paths)} JPEGs ({source}) -> shorter side {args.size}, one core:")
    print(f"  plain PIL decode + resize: {full_rate:7.1f} img/s")
    print(f"  draft decode + resize:     {draft_rate:7.1f} img/s")
    print(
        f"  speed-up: {draft_rate / full_rate:.2f}x; mean |difference| {difference:.2f} grey levels"
    )


if __name__ == "__main__":
    main()
