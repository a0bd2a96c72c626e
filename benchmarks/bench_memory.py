"""Inference memory: peak memory of Predictor.topk stays flat as the number of images grows.

    python benchmarks/bench_memory.py --counts 100 300 1000

Each count runs in a fresh Python process (so peaks do not mix) that predicts the first N of
1,000 synthetic 496x512 scans and reports its peak resident memory. The baseline is the
smallest count, measured in the same run; a flat profile means images are read, prepared and
released batch by batch rather than all held at once.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def measure(folder: str, count: int, model: str) -> None:
    """Child process: predict ``count`` images, print the peak RSS in MiB as JSON."""
    import torch

    from retinalnet import Predictor
    from retinalnet.datasets import find_images
    from retinalnet.models import small_cnn, vgg16_transfer

    torch.manual_seed(0)
    network = vgg16_transfer(weights=None) if model == "vgg16" else small_cnn()
    paths = find_images(folder)[:count]
    Predictor(network, device="cpu", batch_size=32).topk(list(paths), k=2)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"count": len(paths), "peak_mib": peak_kib / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--model", choices=["small_cnn", "vgg16"], default="small_cnn")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.child[0], int(args.child[1]), args.model)
        return

    from retinalnet.datasets import make_synthetic_kermany

    with tempfile.TemporaryDirectory() as folder:
        per_class = -(-max(args.counts) // 4)
        make_synthetic_kermany(folder, train=per_class, val=0, test=0, seed=0)
        images = str(Path(folder) / "train")
        results = []
        for count in args.counts:
            out = subprocess.run(
                [sys.executable, __file__, "--model", args.model, "--child", images, str(count)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = results[0]["peak_mib"]
    print(f"model {args.model}, batch 32, CPU")
    for result in results:
        ratio = result["peak_mib"] / base
        print(f"{result['count']:6d} images  peak {result['peak_mib']:8.1f} MiB  {ratio:5.2f}x")


if __name__ == "__main__":
    main()
