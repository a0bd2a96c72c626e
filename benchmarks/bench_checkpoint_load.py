"""What checking a checkpoint costs: ``load_checkpoint`` against a bare ``torch.load``.

``load_checkpoint`` reads every part of the archive through its CRC-32 (``torch.load``
checks none), checks that the weights are finite and that every field is valid. On a VGG16
checkpoint (about 540 MB, random weights: the checks do not depend on the values) it times
both, ``--runs`` times each, alternating, and prints the medians and their ratio; the file is
written to ``--path`` once and kept for the next run. docs/bad_input.rst cites its numbers.

    python benchmarks/bench_checkpoint_load.py --runs 5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from retinalnet.checkpoint import load_checkpoint, save_checkpoint
from retinalnet.models import vgg16_transfer


def _seconds(load: Callable[[], Any]) -> float:
    start = time.perf_counter()
    load()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="loads of each kind")
    parser.add_argument("--path", type=Path, default=Path("/tmp/retinalnet-bench-vgg16.pt"))
    args = parser.parse_args()
    logging.getLogger("retinalnet").setLevel(logging.ERROR)  # the random weights' notice
    if not args.path.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random weights: said once, not needed here
            save_checkpoint(args.path, vgg16_transfer(weights=None))
    size = args.path.stat().st_size / 1e6
    print(f"{args.path}: {size:.0f} MB, {torch.get_num_threads()} threads")
    bare: list[float] = []
    checked: list[float] = []
    for _ in range(args.runs):
        bare.append(_seconds(lambda: torch.load(args.path, map_location="cpu", weights_only=True)))
        checked.append(_seconds(lambda: load_checkpoint(args.path)))
    base, full = statistics.median(bare), statistics.median(checked)
    print(f"torch.load       median {base:.2f} s (min {min(bare):.2f})")
    print(f"load_checkpoint  median {full:.2f} s (min {min(checked):.2f}): {full / base:.2f} x")


if __name__ == "__main__":
    main()
