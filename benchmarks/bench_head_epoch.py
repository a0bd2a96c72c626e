"""A head epoch on cached features: the Trainer against a bare PyTorch loop, in one run.

    python benchmarks/bench_head_epoch.py --device cuda

Once the features are cached, an epoch trains only the tutorial's head
(Linear(4096, 256)-ReLU-Dropout-Linear(256, 4)-LogSoftmax) on 4,096 numbers per image, in
batches of 128. That is so little arithmetic that the time goes to launching the few dozen
small operations of each step. A bare loop (random permutation, indexing, forward, backward,
Adam) over the same features, on the same device, is the floor the Trainer is measured
against; the loop is also timed with the fused Adam kernel. Best epoch of ten each.

Each epoch validates on ``--val-rows`` cached rows (32, Kermany's validation split), in the
Trainer and in the bare loop alike, so the ratio shows what an epoch costs beyond its steps
(issue 14: DataLoader workers, validation, logging). ``--batch-size`` is the Trainer's default,
32; the tutorial's 128 takes a quarter of the steps. On a GPU the bare loop is also timed as
one captured CUDA graph per step (static input buffers, ``torch.cuda.graphs``): the floor a
graphed head step could reach, to tell whether the Trainer should capture one.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

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
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> float:
    """Best epoch time of a minimal training loop over ``features`` (and a validation pass
    over ``val``)."""
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
        if val is not None:
            head.eval()
            with torch.no_grad():
                total += loss_function(head(val[0]), val[1])
            head.train()
        float(total)  # waits for the device
        best = min(best, time.perf_counter() - started)
    return best


def epoch_of_steps(
    order: torch.Tensor,
    batch_size: int,
    graphed_step: Callable[[torch.Tensor], torch.Tensor],
    eager_step: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """One epoch over the rows ``order`` lists, in batches of ``batch_size``: each full batch
    through ``graphed_step`` (a captured graph takes one batch shape), the last, shorter one
    through ``eager_step``, so every row is stepped on, as in the other loops. Each step takes
    the batch's row indices and returns its loss; the sum of the losses is returned."""
    total = torch.zeros((), device=order.device)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        step = graphed_step if len(index) == batch_size else eager_step
        total += step(index)
    return total


def graphed_epoch_seconds(
    head: nn.Module, features: torch.Tensor, targets: torch.Tensor, batch_size: int
) -> float:
    """Best epoch time with each full batch's step (forward, backward, fused Adam) replayed
    from one captured CUDA graph; the last, shorter batch runs eagerly (``epoch_of_steps``)."""
    optimizer = torch.optim.Adam(head.parameters(), capturable=True, fused=True)
    loss_function = nn.NLLLoss()
    static_x = features[:batch_size].clone()
    static_y = targets[:batch_size].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up before capture, as torch.cuda.graphs asks
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            loss_function(head(static_x), static_y).backward()
            optimizer.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss: torch.Tensor = loss_function(head(static_x), static_y)
        static_loss.backward()
        optimizer.step()

    def graphed_step(index: torch.Tensor) -> torch.Tensor:
        torch.index_select(features, 0, index, out=static_x)
        torch.index_select(targets, 0, index, out=static_y)
        graph.replay()
        return static_loss.detach()

    def eager_step(index: torch.Tensor) -> torch.Tensor:
        # in place: the graph reads and writes these gradient buffers, so they stay
        optimizer.zero_grad(set_to_none=False)
        loss: torch.Tensor = loss_function(head(features[index]), targets[index])
        loss.backward()
        optimizer.step()
        return loss.detach()

    best = float("inf")
    for _ in range(EPOCHS):
        torch.cuda.synchronize()
        started = time.perf_counter()
        order = torch.randperm(len(features), device=features.device)
        float(epoch_of_steps(order, batch_size, graphed_step, eager_step))  # waits for it
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2048, help="cached images (default 2048)")
    parser.add_argument("--batch-size", type=int, default=32, help="the Trainer's default")
    parser.add_argument("--val-rows", type=int, default=32, help="validation rows (32; 0: none)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    features = torch.randn(args.rows, 4096, device=device)
    targets = torch.randint(0, 4, (args.rows,), device=device)
    val = None
    if args.val_rows > 0:  # 0: no validation, as before issue 14
        val = (
            torch.randn(args.val_rows, 4096, device=device),
            torch.randint(0, 4, (args.val_rows,), device=device),
        )
    head = build_head(4096, 4, hidden=256, dropout=0.2).to(device)

    model = Classifier(head, classes=["CNV", "DME", "DRUSEN", "NORMAL"])
    trainer = Trainer(
        model, max_epochs=EPOCHS, batch_size=args.batch_size, seed=0, device=device,
        progress=False,
    )  # fmt: skip
    history = trainer.fit(
        BatchedTensorDataset(features, targets),
        BatchedTensorDataset(*val) if val is not None else None,
    )
    trainer_seconds = min(record.seconds for record in history[1:])
    bare = bare_loop_epoch_seconds(head, features, targets, args.batch_size, None, val)
    fused = bare_loop_epoch_seconds(head, features, targets, args.batch_size, True, val)
    validating = "with validation" if val is not None else "no validation"
    rows = [(f"Trainer, {validating}", trainer_seconds), ("bare loop, Adam", bare),
            ("bare loop, fused Adam", fused)]  # fmt: skip
    if device.type == "cuda":
        try:
            graphed = graphed_epoch_seconds(head, features, targets, args.batch_size)
            rows.append(("CUDA graph, no validation", graphed))
        except Exception as error:  # a benchmark row, not a failure of the others
            print(f"CUDA graph step failed: {type(error).__name__}: {error}")

    steps = -(-args.rows // args.batch_size)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, device {device}, torch {torch.__version__}")  # fmt: skip
    after = f"validation on {args.val_rows} rows after each" if val is not None else validating
    print(f"{args.rows} cached rows of 4096, batch {args.batch_size} ({steps} steps per epoch), "
          f"{after}")  # fmt: skip
    for label, seconds in rows:
        print(f"{label:26s} {seconds * 1000:8.2f} ms  {args.rows / seconds:10.0f} img/s  "
              f"{seconds / steps * 1000:6.3f} ms per step")  # fmt: skip
    both = "both with validation" if val is not None else "neither validating"
    print(f"  Trainer vs bare loop, {both}: {trainer_seconds / bare:.2f}x the time")


if __name__ == "__main__":
    main()
