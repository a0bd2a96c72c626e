"""Frozen VGG16 forward speed by precision, memory layout and batch size, in one run.

    python benchmarks/bench_precision.py

The tutorial-style baseline is fp32 in the default (NCHW) layout. Against it, the same
forward pass with channels-last, with bf16 autocast, and with bf16 autocast on weights cast
to bf16 once (:func:`retinalnet.precision.low_precision_forward`, what ``Predictor`` and the
feature cache do): autocast alone casts VGG16's 138 million weights again in every batch.
Random inputs and weights: speed does not depend on their values. Images/s of the model
only; no image decoding.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch

from retinalnet import vgg16_transfer
from retinalnet._core.device import resolve_device
from retinalnet.precision import autocast, cpu_has_native_bf16, low_precision_forward


def images_per_second(
    forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch_size: int
) -> float:
    """Best of two passes over ``inputs`` in batches, after one warm-up batch."""
    forward(inputs[:batch_size])
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        for start in range(0, len(inputs), batch_size):
            forward(inputs[start : start + batch_size])
        if inputs.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return len(inputs) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = vgg16_transfer(weights=None).to(device).eval()
    inputs = torch.randn(args.images, 3, 224, 224, device=device)
    channels_last = inputs.contiguous(memory_format=torch.channels_last)
    bf16_ok = device.type != "cuda" or torch.cuda.is_bf16_supported()
    low = torch.bfloat16 if bf16_ok else torch.float16

    def fp32(batch: torch.Tensor) -> torch.Tensor:
        return model(batch)

    def under_autocast(
        forward: Callable[[torch.Tensor], torch.Tensor],
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        def run(batch: torch.Tensor) -> torch.Tensor:
            with autocast(device, low):
                return forward(batch)

        return run

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, device {device}, native CPU bf16: {cpu_has_native_bf16()}, "
          f"torch {torch.__version__}")  # fmt: skip
    print(f"frozen VGG16 forward at 224 px, {args.images} images, images/s; low precision: {low}")
    print("batch  fp32 NCHW  fp32 ch-last  autocast ch-last  weights cast once ch-last")
    with torch.inference_mode():
        for batch_size in args.batch_sizes:
            model.to(memory_format=torch.contiguous_format)
            nchw = images_per_second(fp32, inputs, batch_size)
            model.to(memory_format=torch.channels_last)
            rates = [
                nchw,
                images_per_second(fp32, channels_last, batch_size),
                images_per_second(under_autocast(model), channels_last, batch_size),
                images_per_second(
                    under_autocast(low_precision_forward(model, low)), channels_last, batch_size
                ),
            ]
            cells = "".join(f"{rate:11.1f} ({rate / nchw:.1f}x)" for rate in rates[1:])
            print(f"{batch_size:5d}  {nchw:9.1f}{cells}")


if __name__ == "__main__":
    main()
