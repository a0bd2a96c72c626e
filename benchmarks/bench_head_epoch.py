"""A head epoch on cached features: the Trainer against a bare PyTorch loop, in one run.

    python benchmarks/bench_head_epoch.py --device cuda

Once the features are cached, an epoch trains only the tutorial's head
(Linear(4096, 256)-ReLU-Dropout-Linear(256, 4)-LogSoftmax) on 4,096 numbers per image, in
batches of 128. That is so little arithmetic that the time goes to launching the few dozen
small operations of each step. A bare loop (random permutation, indexing, forward, backward,
Adam) over the same features, on the same device, is the floor the Trainer is measured
against; the loop is also timed with the fused Adam kernel. Best epoch of ten each.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn

from retinalnet._core.device import resolve_device
from retinalnet._core.loaders import BatchedTensorDataset
from retinalnet.models import Classifier, build_head
from retinalnet.training import Trainer

EPOCHS = 10


def bare_loop_epoch_seconds(
    head: nn.Module,
    features: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
    fused: bool | None,
) -> float:
    """Best epoch time of a minimal training loop over ``features``."""
    optimizer = torch.optim.Adam(head.parameters(), fused=fused)
    loss_function = nn.NLLLoss()
    head.train()
    best = float("inf")
    for _ in range(EPOCHS):
        if features.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        order = torch.randperm(len(features), device=features.device)
        total = torch.zeros((), device=features.device)
        for start in range(0, len(features), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(head(features[index]), targets[index])
            loss.backward()
            optimizer.step()
            total += loss.detach()
        float(total)  # waits for the device
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2048, help="cached images (default 2048)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    features = torch.randn(args.rows, 4096, device=device)
    targets = torch.randint(0, 4, (args.rows,), device=device)
    head = build_head(4096, 4, hidden=256, dropout=0.2).to(device)

    model = Classifier(head, classes=["CNV", "DME", "DRUSEN", "NORMAL"])
    trainer = Trainer(
        model, max_epochs=EPOCHS, batch_size=args.batch_size, seed=0, device=device,
        progress=False,
    )  # fmt: skip
    history = trainer.fit(BatchedTensorDataset(features, targets))
    trainer_seconds = min(record.seconds for record in history[1:])
    bare = bare_loop_epoch_seconds(head, features, targets, args.batch_size, fused=None)
    fused = bare_loop_epoch_seconds(head, features, targets, args.batch_size, fused=True)

    steps = -(-args.rows // args.batch_size)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, device {device}, torch {torch.__version__}")  # fmt: skip
    print(f"{args.rows} cached rows of 4096, batch {args.batch_size} ({steps} steps per epoch)")
    for label, seconds in (
        ("Trainer", trainer_seconds),
        ("bare loop, Adam", bare),
        ("bare loop, fused Adam", fused),
    ):
        print(f"{label:22s} {seconds * 1000:8.2f} ms  {args.rows / seconds:10.0f} img/s  "
              f"{seconds / steps * 1000:6.3f} ms per step")  # fmt: skip
    print(f"  Trainer vs bare loop: {trainer_seconds / bare:.2f}x the time")


if __name__ == "__main__":
    main()
