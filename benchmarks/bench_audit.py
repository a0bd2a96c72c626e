"""Time and memory of ``audit()`` on a generated tree of small, distinct JPEGs.

Every file is read, hashed and decoded, so the time depends on the images; the memory the
audit needs per file does not (a digest and a relative path), and that is what this
measures, with tracemalloc's peak over the whole audit.

Run: ``python benchmarks/bench_audit.py [--files 20000]`` (84484 for the Kaggle count)
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

from retinalnet.datasets import KERMANY_CLASSES, audit


def write_tree(root: Path, files: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(files):
        split = "test" if i % 100 == 0 else "train"
        name = KERMANY_CLASSES[i % 4]
        folder = root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (8, 8), np.uint8)
        Image.fromarray(pixels, "L").save(folder / f"{name}-{1_000_000 + i // 20}-{i}.jpeg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "OCT2017"
        started = time.perf_counter()
        write_tree(root, args.files)
        print(f"wrote {args.files} JPEGs (8x8) in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        report = audit(root)
        seconds = time.perf_counter() - started
        tracemalloc.start()
        report = audit(root)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(f"audit: {report.total} files in {seconds:.1f} s ({report.total / seconds:.0f} files/s)")
    print(f"  patients in two splits: {len(report.cross_split_patients)}")
    print(
        f"  peak memory (tracemalloc): {peak / 2**20:.1f} MiB, {peak / report.total:.0f} "
        "bytes per file"
    )


if __name__ == "__main__":
    main()
