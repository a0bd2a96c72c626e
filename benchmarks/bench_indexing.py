"""How long indexing an OCT2017-sized tree takes, and how much memory the data set holds.

Writes 84,484 empty ``.jpeg`` files in the Kaggle train/val/test counts to a temporary
folder (indexing never opens a file, so empty files are enough), then times
``KermanyOCT(root, "train")`` and measures the memory it keeps with tracemalloc.

Run: ``python benchmarks/bench_indexing.py [--files 84484]``
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

from retinalnet.datasets import KERMANY_CLASSES, KermanyOCT

# Kaggle OCT2017: train 83,484 (CNV 37,205 / DME 11,348 / DRUSEN 8,616 / NORMAL 26,315),
# val 32, test 968.
_TRAIN = {"CNV": 37_205, "DME": 11_348, "DRUSEN": 8_616, "NORMAL": 26_315}


def write_tree(root: Path, files: int) -> int:
    """Empty files named like Kermany scans, ``files`` in all (about 99.4% in train)."""
    scale = files / 84_484
    written = 0
    for split, per_class in (
        ("train", {name: round(n * scale) for name, n in _TRAIN.items()}),
        ("val", dict.fromkeys(KERMANY_CLASSES, max(1, round(8 * scale)))),
        ("test", dict.fromkeys(KERMANY_CLASSES, max(1, round(242 * scale)))),
    ):
        for name, count in per_class.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                patient = 1_000_000 + i // 20
                with open(folder / f"{name}-{patient}-{i}.jpeg", "wb"):
                    pass
            written += count
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=84_484)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "OCT2017"
        started = time.perf_counter()
        written = write_tree(root, args.files)
        print(f"wrote {written} empty files in {time.perf_counter() - started:.1f} s")
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            data = KermanyOCT(root, "train")
            times.append(time.perf_counter() - started)
        del data
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        data = KermanyOCT(root, "train")
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        print(f"KermanyOCT(root, 'train'): {len(data)} images")
        print(
            f"  index time: best {min(times):.3f} s, worst {max(times):.3f} s "
            f"({args.repeats} runs, warm file-system cache)"
        )
        print(
            f"  memory held (tracemalloc): {held / 2**20:.1f} MiB, "
            f"{held / len(data):.0f} bytes per image"
        )
        print(f"  ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
