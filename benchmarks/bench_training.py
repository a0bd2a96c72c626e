"""Training speed: tutorial-style epochs vs retinalnet's feature cache, in one run.

    python benchmarks/bench_training.py --images 128

The tutorial recomputes the frozen VGG16 forward for every image in every epoch (fp32,
the whole model in train mode, augmentation on), reading images in the main process (its
DataLoaders have no worker processes). retinalnet's ``Trainer(feature_cache=True)`` runs
the frozen backbone once per image (bf16 where the hardware has it, with the DataLoader
workers retinalnet picks for the device) and then trains only the head on the cached 4096-d
features, kept on the GPU when there is one.

Both sides train for ``--epochs`` epochs, every one timed, and are compared by the same
statistic: the median epoch after the first (the first epoch alone with ``--epochs 1``), for
images/s and the ratio per epoch; and the whole fit (cache building included) against the
tutorial's whole fit, both measured. Where retinalnet's default DataLoader workers differ from
the tutorial's none (on a GPU), the tutorial-style fit is also timed with those workers, so
the gain of the cache alone shows. Weights are random (no download): speed does not depend
on their values.

Until 2026-12-02 the per-epoch ratio set the tutorial's second epoch (one sample, its later
epochs extrapolated from it) against the *fastest* of the cached run's later epochs, which
favoured the cache; ratios published before then (2,731x on a CPU, 341x on an H100) were
measured that way.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from retinalnet import KermanyOCT, Trainer, vgg16_transfer
from retinalnet._core.device import default_num_workers, resolve_device
from retinalnet.datasets import make_synthetic_kermany
from retinalnet.precision import cpu_has_native_bf16


def tutorial_epoch(
    model: nn.Module, data: KermanyOCT, device: torch.device, batch_size: int, workers: int
) -> float:
    """One epoch as the tutorial trains: full forward through frozen VGG16, fp32."""
    loader = DataLoader(
        data, batch_size=batch_size, shuffle=True, num_workers=workers, pin_memory=workers > 0
    )
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
    criterion = nn.NLLLoss()
    model.train()
    started = time.perf_counter()
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def per_epoch(seconds: Sequence[float]) -> float:
    """The statistic both sides are compared by: the median epoch after the first (which
    warms up: allocations, kernel choices), or the only epoch of a one-epoch fit."""
    later = seconds[1:] or seconds
    return statistics.median(later)


def describe(seconds: Sequence[float]) -> str:
    """Which epochs :func:`per_epoch` took, and their range."""
    if len(seconds) == 1:
        return "the only epoch"
    later = seconds[1:]
    if len(later) == 1:
        return "epoch 2"
    return f"median of epochs 2-{len(seconds)}, {min(later):.4g}-{max(later):.4g} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128, help="training images (default 128)")
    parser.add_argument("--batch-size", type=int, default=128, help="the tutorial's 128")
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    per_class = max(1, args.images // 4)

    folder = tempfile.TemporaryDirectory()
    root = make_synthetic_kermany(folder.name, train=per_class, val=0, test=0, seed=0)

    torch.manual_seed(0)
    baseline = vgg16_transfer(weights=None).to(device)
    train_tf = baseline.preprocessing.train_transform()
    data = KermanyOCT(root, "train", transform=train_tf)
    count = len(data)

    def tutorial_fit(workers: int) -> list[float]:
        """Seconds of each of the fit's ``--epochs`` epochs, every one run and timed."""
        return [
            tutorial_epoch(baseline, data, device, args.batch_size, workers)
            for _ in range(args.epochs)
        ]

    tutorial_epochs = tutorial_fit(workers=0)  # the tutorial's DataLoader
    workers = default_num_workers(device)
    same_loading = tutorial_fit(workers) if workers > 0 else None

    model = vgg16_transfer(weights=None)
    trainer = Trainer(
        model, feature_cache=True, max_epochs=args.epochs, batch_size=args.batch_size, seed=0,
        device=device, progress=False,
    )  # fmt: skip
    started = time.perf_counter()
    history = trainer.fit(KermanyOCT(root, "train"))
    if device.type == "cuda":
        torch.cuda.synchronize()
    cached_total = time.perf_counter() - started
    cached_epochs = [record.seconds for record in history]
    tutorial_per_epoch, head_epoch = per_epoch(tutorial_epochs), per_epoch(cached_epochs)
    tutorial_total = sum(tutorial_epochs)

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, device {device}, native CPU bf16: {cpu_has_native_bf16()}, "
          f"torch {torch.__version__}")  # fmt: skip
    folder.cleanup()
    print(f"images: {count} synthetic 496x512 JPEGs at 224 px, batch {args.batch_size}, "
          f"epochs: {args.epochs}")  # fmt: skip
    print(f"retinalnet: {workers} DataLoader workers, tutorial: 0")
    print(f"tutorial epoch      {tutorial_per_epoch:9.2f} s  "
          f"{count / tutorial_per_epoch:10.1f} img/s  ({describe(tutorial_epochs)})")  # fmt: skip
    print(f"cached head epoch   {head_epoch:9.4f} s  {count / head_epoch:10.1f} img/s  "
          f"({describe(cached_epochs)})")  # fmt: skip
    print(f"  ratio per epoch (the same statistic both sides): "
          f"{tutorial_per_epoch / head_epoch:,.0f}x  (target >= 1000x)")  # fmt: skip
    print(f"tutorial {args.epochs}-epoch fit {tutorial_total:9.1f} s  (every epoch run)")
    print(f"cached {args.epochs}-epoch fit   {cached_total:9.1f} s  (cache building included)")
    print(f"  ratio whole fit: {tutorial_total / cached_total:.1f}x  (target >= 20x)")
    if same_loading is not None:
        epoch_w, total_w = per_epoch(same_loading), sum(same_loading)
        print(f"tutorial-style epoch with {workers} workers {epoch_w:9.2f} s  "
              f"{count / epoch_w:10.1f} img/s  ({describe(same_loading)})")  # fmt: skip
        print(f"  ratios with the same data loading: per epoch {epoch_w / head_epoch:,.0f}x, "
              f"whole fit {total_w / cached_total:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
