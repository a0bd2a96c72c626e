"""ONNX export: onnxruntime's prediction speed against the torch Predictor's, on the CPU.

    python benchmarks/bench_onnx.py --arch resnet18 --images-from ../shared/data/kermany-sample

Exports a model (random weights: speed does not depend on their values) with
``retinalnet.export.to_onnx``, then predicts the same images with the same batch size and the
same number of threads through ``Predictor`` (fp32, the default ``precision="auto"`` too when
it differs) and ``Predictor.from_onnx`` (onnxruntime, CPU). Both include reading and
preparing the files. The runs are interleaved and each is repeated; the best of the repeats is
reported (other jobs sharing the cores only slow a run down). Prints images per second, the
ratio and the largest probability difference between the two on those images.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from image_folder import images_in_folder

from retinalnet import Predictor
from retinalnet.datasets import find_images, make_synthetic_kermany
from retinalnet.export import to_onnx
from retinalnet.models import create_model
from retinalnet.transforms import Preprocessing


def _timed(run: Callable[[], Any], times: list[float]) -> None:
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=48, help="synthetic images to predict")
    parser.add_argument(
        "--images-from", type=Path, default=None,
        help="predict these real images (a folder, searched recursively) instead",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    real = None if args.images_from is None else images_in_folder(args.images_from)
    if args.repeats < 1:
        sys.exit(f"--repeats {args.repeats}: needs at least 1 timed pass; pass 1 or more")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.arch, weights=None, preprocessing=Preprocessing(size=args.size))

    with tempfile.TemporaryDirectory() as folder:
        if real is not None:
            images = real
        else:
            per_class = max(1, args.images // 4)
            root = make_synthetic_kermany(
                Path(folder) / "data", train=per_class, val=0, test=0, shape=(496, 512)
            )
            images = find_images(root)
        start = time.perf_counter()
        result = to_onnx(model, Path(folder) / "model.onnx", images=images[:8])
        export_seconds = time.perf_counter() - start

        predictors: dict[str, Any] = {
            "torch fp32": Predictor(
                model, device="cpu", precision="fp32", batch_size=args.batch_size
            ),
        }
        auto = Predictor(model, device="cpu", precision="auto", batch_size=args.batch_size)
        if auto.engine.dtype is not None:
            predictors["torch auto"] = auto
        predictors["onnxruntime"] = Predictor.from_onnx(
            result.path, batch_size=args.batch_size, threads=args.threads
        )
        for predictor in predictors.values():  # warm-up: first-call costs out of the timing
            predictor.predict_proba(images[: args.batch_size])
        times: dict[str, list[float]] = {name: [] for name in predictors}
        for _ in range(args.repeats):
            for name, predictor in predictors.items():
                _timed(lambda p=predictor: p.predict_proba(images), times[name])
        reference = predictors["torch fp32"].predict_proba(images)
        onnx_probabilities = predictors["onnxruntime"].predict_proba(images)
        difference = (reference - onnx_probabilities).abs().max().item()

    print(
        f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch "
        f"{torch.__version__}; {args.arch} at {args.size} px, {len(images)} images, batch "
        f"{args.batch_size}, best of {args.repeats}"
    )
    print(
        f"export: {export_seconds:.1f} s (parity {result.parity.max_abs_diff:.2g} on "
        f"{result.parity.images} images)"
    )
    speeds = {name: len(images) / min(seconds) for name, seconds in times.items()}
    for name, speed in speeds.items():
        ratio = speed / speeds["torch fp32"]
        print(f"{name:12s} {speed:7.1f} images/s  ({ratio:.2f}x torch fp32)")
    print(f"largest probability difference, onnxruntime vs torch fp32: {difference:.2g}")


if __name__ == "__main__":
    main()
