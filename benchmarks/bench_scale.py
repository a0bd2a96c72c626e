"""Training at scale: `retinalnet train`'s work on N synthetic scans, phase by phase.

    python benchmarks/bench_scale.py --images 16384 --device cuda
    python benchmarks/bench_scale.py --images 1024 --arch small_cnn      # a CPU-sized run

Writes N JPEG files in Kermany's size mix (about 60% 512x496, 15% 768x496, 15% 1536x496 and
10% 512x512; textured grey scans, about 20 distinct images per size repeated), a 32-image
validation split and a test split, then times what ``retinalnet train`` does: index the
files, build the feature cache (train and validation), train the head for ``--epochs``
epochs with validation after each, and evaluate on the test split. Prints each phase's
seconds, images/s, the process's peak resident memory after it, and the fraction of the
GPU's dense bf16 peak the cache build reaches (the backbone's FLOPs per image counted by
``torch.utils.flop_counter``; "n/a" on a CPU or an unknown GPU).

``--data DIR`` writes the files there and keeps them; a later run with the same ``--images``
and ``--test`` reuses them. A DIR holding anything else (files written for other counts, or
anyone's scans) is refused, never added to or emptied, and every rate is divided by the
images indexed, so a printed rate always counts the images timed.

Works with retinalnet 0.1 too (``PYTHONPATH=../wt-old/src``), for before/after runs.
Weights are random (no download): speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter

import retinalnet
from retinalnet import KermanyOCT, Trainer
from retinalnet.training import Callback

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
SIZE_MIX = (((512, 496), 0.60), ((768, 496), 0.15), ((1536, 496), 0.15), ((512, 512), 0.10))
VARIANTS = 20

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), from the vendors' data sheets; the
# first name found in torch.cuda.get_device_name() wins.
BF16_PEAK_TFLOPS = (
    ("H200", 989.0),  # the H100 SXM's silicon with more memory
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM / HBM3
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 70.0),
    ("L4", 121.0),
)


def bf16_peak(device: torch.device) -> float | None:
    """FLOP/s of the GPU's dense bf16 peak, or ``None`` (a CPU, an unknown GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in BF16_PEAK_TFLOPS:
        if key in name:
            return tflops * 1e12
    return None


def _texture(size: tuple[int, int], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    width, height = size
    rows = np.linspace(0, 6 * np.pi, height)[:, None] + rng.uniform(0, 6)
    cols = np.linspace(0, 2 * np.pi, width)[None, :]
    base = 100 + 60 * np.sin(rows + 2 * np.sin(cols)) + rng.normal(0, 30, (height, width))
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def planned_files(counts: dict[str, int]) -> dict[str, int]:
    """The files :func:`write_tree` writes for ``counts``: each path, relative to the root
    (``split/CLASS/CLASS-i-variant.jpeg``), and the index of the encoded variant it holds."""
    weights = np.array([share for _, share in SIZE_MIX for _ in range(VARIANTS)])
    rng = np.random.default_rng(0)
    plan: dict[str, int] = {}
    for split, count in counts.items():
        picks = rng.choice(len(weights), size=count, p=weights / weights.sum())
        for i, pick in enumerate(picks):
            cls = CLASSES[i % 4]
            plan[f"{split}/{cls}/{cls}-{i}-{pick}.jpeg"] = int(pick)
    return plan


def write_tree(root: Path, counts: dict[str, int]) -> int:
    """Write the split folders; returns the bytes written."""
    encoded = [
        _texture(size, seed=s * 100 + v)
        for s, (size, _) in enumerate(SIZE_MIX)
        for v in range(VARIANTS)
    ]
    total = 0
    for relative, pick in planned_files(counts).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded[pick])
        total += len(encoded[pick])
    return total


def check_reusable(root: Path, counts: dict[str, int]) -> bool:
    """Whether ``root`` already holds exactly the files :func:`write_tree` writes for
    ``counts`` (``True``: reuse them), or is missing or empty (``False``: write them).

    Raises
    ------
    SystemExit
        If ``root`` holds anything else: files written for other counts (a reused folder
        would time more or fewer images than the rates are divided by) or someone's data.
    """
    if not root.exists():
        return False
    if not root.is_dir():
        raise SystemExit(f"--data {root} is a file, not a folder; pass a folder")
    found = {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}
    if not found and not any(root.iterdir()):
        return False
    if found == set(planned_files(counts)):
        return True
    held = {split: sum(f.startswith(f"{split}/") for f in found) for split in counts}
    other = len(found) - sum(held.values())
    wanted = ", ".join(f"{n} {split}" for split, n in counts.items())
    holds = ", ".join(f"{n} {split}" for split, n in held.items())
    advice = "pass a new or empty folder to --data"
    if other == 0 and found == set(planned_files(held)):
        advice += (
            f", or --images {held['train']} --test {held['test']} (the counts it was written for)"
        )
    raise SystemExit(
        f"--data {root} holds {holds} files{f' and {other} others' if other else ''}, not the "
        f"{wanted} this run would write: the benchmark would time other images than its "
        f"rates count. It never adds to or deletes from a folder; {advice}"
    )


def backbone_flops(arch: str, size: int) -> float:
    """FLOPs of one image's forward pass (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(arch, meta=True)
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size, device="meta"))
    return float(counter.get_total_flops())


def build_model(arch: str, *, meta: bool = False) -> torch.nn.Module:
    from retinalnet.models import small_cnn, vgg16_transfer

    with torch.device("meta") if meta else torch.device("cpu"):
        torch.manual_seed(0)
        if arch == "vgg16":
            return vgg16_transfer(weights=None)
        if arch == "small_cnn":
            return _frozen_small_cnn(small_cnn)
        if arch == "tiny":
            return _tiny()
    raise SystemExit(f"--arch must be vgg16, small_cnn or tiny, got {arch!r}")


def _tiny() -> torch.nn.Module:
    """A frozen two-convolution trunk (no batch norm: 0.1's cache cannot hash its 0-dim
    counters) and the tutorial's head on its 512 features: cheap enough on a CPU that the
    pipeline around the model (decoding, loaders, epochs) is what is timed."""
    from retinalnet.models import Classifier, build_head

    trunk = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
    )
    for p in trunk.parameters():
        p.requires_grad_(False)
    head = build_head(512, 4, hidden=256, dropout=0.2)
    return Classifier(torch.nn.Sequential(trunk, head), classes=list(CLASSES))


def _frozen_small_cnn(builder: Any) -> torch.nn.Module:
    """small_cnn with everything frozen but its head (the last Sequential ending in
    LogSoftmax), so the feature cache applies as to the frozen VGG16."""
    model = builder()
    heads = [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.Sequential) and isinstance(m[-1], torch.nn.LogSoftmax)
    ]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in heads[-1].parameters():
        p.requires_grad_(True)
    return model


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Marks(Callback):
    """When the first epoch starts: the cache is built by then (0.2 builds it after
    ``on_fit_start``, once every check of the fit has passed; 0.1 before it)."""

    def __init__(self) -> None:
        self.fit_start = 0.0
        self.fit_start_cpu = 0.0

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        if not self.fit_start:
            self.fit_start = time.perf_counter()
            self.fit_start_cpu = time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024, help="training images")
    parser.add_argument("--test", type=int, default=None, help="test images (N/16, <= 968)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32, help="the Trainer's default")
    parser.add_argument("--arch", default="vgg16", choices=["vgg16", "small_cnn", "tiny"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers")
    parser.add_argument("--decode", default=None, help="build_feature_cache decode (0.2)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--data",
        default=None,
        help="write the files here, or reuse those an earlier run with the same --images and "
        "--test wrote (any other content is refused)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    test_count = args.test if args.test is not None else max(32, min(968, args.images // 16))
    counts = {"train": args.images, "val": 32, "test": test_count}

    temporary = None
    if args.data is None:
        temporary = tempfile.mkdtemp(prefix="bench-scale-")
        root = Path(temporary)
    else:
        root = Path(args.data)
    results: dict[str, Any] = {"images": args.images, "arch": args.arch, "rows": []}
    try:
        started = time.perf_counter()
        reused = check_reusable(root, counts)
        written = 0 if reused else write_tree(root, counts)
        how = (
            "reused, written by an earlier run"
            if reused
            else f"{written / 2**20:.0f} MiB written in {time.perf_counter() - started:.1f} s"
        )
        print(f"files: {args.images} train, 32 val, {test_count} test in {root} ({how})")
        run(args, root, results)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def run(args: argparse.Namespace, root: Path, results: dict[str, Any]) -> None:
    try:
        from retinalnet._core.device import resolve_device  # 0.2
    except ImportError:
        from retinalnet.training._device import resolve_device  # 0.1
    device = resolve_device(args.device)
    rows: list[tuple[str, float, int]] = []
    baseline = peak_rss_mib()

    cpu: list[float] = []  # CPU seconds of this process per phase: steadier on a shared machine
    started, started_cpu = time.perf_counter(), time.process_time()
    train, val, test = (KermanyOCT(root, split) for split in ("train", "val", "test"))
    # Every rate is divided by the images indexed, so it can never disagree with what was timed.
    counts = {"train": len(train), "val": len(val), "test": len(test)}
    rows.append(("index", time.perf_counter() - started, sum(counts.values())))
    cpu.append(time.process_time() - started_cpu)
    rss = [peak_rss_mib()]

    model = build_model(args.arch)
    marks = _Marks()
    options: dict[str, Any] = {
        "feature_cache": True,
        "max_epochs": args.epochs,
        "batch_size": args.batch_size,
        "device": device,
        "seed": 0,
        "callbacks": [marks],
        "num_workers": args.workers,
    }
    parameters = inspect.signature(Trainer).parameters
    options["progress" if "progress" in parameters else "verbose"] = False
    trainer = Trainer(model, **options)
    if args.decode is not None:  # a setting of build_feature_cache (0.2), given through it
        import retinalnet.training._trainer as trainer_module

        original = trainer_module.build_feature_cache
        trainer_module.build_feature_cache = lambda *a, **k: original(*a, decode=args.decode, **k)  # type: ignore[assignment]
    started, started_cpu = time.perf_counter(), time.process_time()
    history = trainer.fit(train, val)
    if device.type == "cuda":
        torch.cuda.synchronize()
    ended, ended_cpu = time.perf_counter(), time.process_time()
    cpu += [marks.fit_start_cpu - started_cpu, ended_cpu - marks.fit_start_cpu]
    cache_seconds = marks.fit_start - started
    rows.append(("cache build (train + val)", cache_seconds, counts["train"] + counts["val"]))
    rss.append(peak_rss_mib())
    epochs = [record.seconds for record in history]
    rows.append(
        (
            f"{len(epochs)} head epochs + validation",
            ended - marks.fit_start,
            counts["train"] * len(epochs),
        )
    )
    rss.append(peak_rss_mib())

    started, started_cpu = time.perf_counter(), time.process_time()
    result = trainer.evaluate(test)
    rows.append(("test evaluation (cache + head)", time.perf_counter() - started, counts["test"]))
    cpu.append(time.process_time() - started_cpu)
    rss.append(peak_rss_mib())
    total = sum(seconds for _, seconds, _ in rows)

    flops = backbone_flops(args.arch, 224)
    peak = bf16_peak(device)
    cache_rate = (counts["train"] + counts["val"]) / cache_seconds
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    source = Path(retinalnet.__file__).parent.parent
    print(
        f"retinalnet {retinalnet.__version__} from {source}, torch {torch.__version__}, "
        f"{name}, device {device}, "
        f"{torch.get_num_threads()} threads, arch {args.arch} at {224} px, batch {args.batch_size}"
    )
    print(f"{'phase':34s} {'seconds':>9s} {'img/s':>10s} {'peak RSS MiB':>13s} {'CPU s':>8s}")
    for (label, seconds, images), memory, used in zip(rows, rss, cpu, strict=True):
        print(f"{label:34s} {seconds:9.2f} {images / seconds:10.0f} {memory:13.0f} {used:8.2f}")
    print(f"{'total (index to test result)':34s} {total:9.2f} {counts['train'] / total:10.0f}")
    later = epochs[1:] or epochs
    print(
        f"head epoch: first {epochs[0] * 1000:.0f} ms, then mean {np.mean(later) * 1000:.1f} ms "
        f"(min {min(later) * 1000:.1f}); test accuracy {result.accuracy:.2%} (random weights)"
    )
    fraction = "n/a" if peak is None else f"{cache_rate * flops / peak:.1%}"
    print(
        f"cache build: {cache_rate:.0f} img/s x {flops / 1e9:.1f} GFLOP/img = "
        f"{cache_rate * flops / 1e12:.2f} TFLOP/s; fraction of bf16 peak: {fraction}"
    )
    per_image = total / counts["train"] * 1000
    print(
        f"per training image, end to end: {per_image:.2f} ms; peak RSS {rss[-1]:.0f} MiB "
        f"(at start {baseline:.0f}); features in memory "
        f"{counts['train'] * 4096 * 4 / 2**20:.0f} MiB for VGG16"
    )
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    results.update(
        device=str(device),
        name=name,
        version=retinalnet.__version__,
        source=str(source),
        phases={label: seconds for label, seconds, _ in rows},
        total=total,
        cache_img_s=cache_rate,
        bf16_fraction=None if peak is None else cache_rate * flops / peak,
        head_epoch_s=float(np.mean(later)),
        rss_mib=rss,
        cpu_s=cpu,
        per_image_ms=per_image,
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
