"""PIL against tensor preprocessing of JPEG files, in one run: which decodes faster here.

    python benchmarks/bench_tensor_preprocessing.py --images-from ../shared/data/kermany-sample
    python benchmarks/bench_tensor_preprocessing.py --device cuda --images-from DIR

The PIL path is ``Preprocessing.prepare(path)`` per file (what CPU workers run). The tensor
path is ``TensorPreprocessing``: read the bytes (``read_encoded``, what workers run), then one
``batch`` call per 64 files (decode, resize, crop, normalise on ``--device``). Best of three
interleaved passes over the same files, with the largest difference between the two. The
files are the JPEGs (``.jpeg``, ``.jpg``, any case) that ``find_images`` finds under the folder.
"""

from __future__ import annotations

import argparse
import time

import torch
from image_folder import JPEG_SUFFIXES, images_in_folder

from retinalnet.tensor_preprocessing import TensorPreprocessing, read_encoded
from retinalnet.transforms import Preprocessing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-from", required=True, help="a folder of JPEG files")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = images_in_folder(
        args.images_from, suffixes=JPEG_SUFFIXES, what="JPEG files (.jpeg, .jpg)"
    )
    prep = Preprocessing()
    tensor = TensorPreprocessing(prep, device=args.device)
    best = {"pil": float("inf"), "tensor": float("inf")}
    for _ in range(3):
        started = time.perf_counter()
        expected = torch.stack([prep.prepare(path) for path in paths])
        best["pil"] = min(best["pil"], time.perf_counter() - started)
        started = time.perf_counter()
        parts = []
        for start in range(0, len(paths), args.batch_size):
            chunk = paths[start : start + args.batch_size]
            parts.append(tensor.batch([read_encoded(p, prep) for p in chunk], names=chunk))
        got = torch.cat(parts).cpu()
        best["tensor"] = min(best["tensor"], time.perf_counter() - started)
    print(f"{len(paths)} files from {args.images_from}, device {args.device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    for name, seconds in best.items():
        print(f"{name:7s} {seconds:7.2f} s  {len(paths) / seconds:8.0f} img/s")
    print(f"tensor vs PIL: {best['pil'] / best['tensor']:.2f}x the speed; largest difference "
          f"{float((got - expected).abs().max()):.4f} (normalised units)")  # fmt: skip


if __name__ == "__main__":
    main()
