"""retinalnet against its peers: the same frozen-backbone model, files and epochs, in one run.

    pip install -e ".[bench]"            # lightning and timm (never a library dependency)
    python benchmarks/bench_peers.py --images 64 --epochs 3              # a CPU-sized run
    python benchmarks/bench_peers.py --images 8192 --epochs 10 --device cuda

Each contender trains the same model (``--arch``: the tutorial's VGG16, or ResNet-18 for a
CPU-sized run; random weights, everything frozen but a new head, 4 classes) on the same
synthetic JPEG files (``bench_scale.py``'s size mix) for the same number of epochs,
validating after each, and is timed from its first line to a trained model:

- retinalnet: ``Trainer(vgg16_transfer(weights=None), feature_cache=True)``, its defaults.
- Lightning: a ``LightningModule`` with ``training_step``/``validation_step``/
  ``configure_optimizers`` and ``lightning.Trainer(max_epochs=...)``, as its docs show:
  ``precision="bf16-mixed"`` on a GPU (``"32-true"`` on a CPU), ``ImageFolder`` loaders with
  ``num_workers`` and ``pin_memory`` as retinalnet picks them (0 on a CPU, up to 8 with a GPU).
- torchvision: the "ConvNet as fixed feature extractor" loop of its transfer-learning
  tutorial (``ImageFolder``, ``requires_grad=False``, a new ``classifier[6]``, SGD), with
  the same loaders and bf16 autocast on a GPU.
- timm: ``timm.create_model("vgg16", num_classes=4)`` with all but ``head.fc`` frozen, its
  ``resolve_data_config``/``create_transform`` preprocessing and a plain loop with bf16
  autocast on a GPU (as its docs' training examples).

Prints each one's seconds and the ratio to retinalnet's.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, models
from torchvision import transforms as T  # noqa: N812 (the alias torchvision's docs use)

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import write_tree

EPOCHS = 10


def loaders(
    root: Path, transform: Any, batch: int, workers: int, cuda: bool
) -> tuple[DataLoader[Any], DataLoader[Any]]:
    train = datasets.ImageFolder(str(root / "train"), transform)
    val = datasets.ImageFolder(str(root / "val"), transform)
    options = {
        "batch_size": batch,
        "num_workers": workers,
        "pin_memory": cuda,
        "persistent_workers": workers > 0,
    }
    return DataLoader(train, shuffle=True, **options), DataLoader(val, **options)


def tutorial_transform() -> Any:
    # the transfer-learning tutorials' evaluation pipeline (no augmentation: same work as
    # retinalnet's cache, which sees each image with the evaluation preprocessing)
    return T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.Grayscale(3),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )


def tutorial_head(in_features: int) -> nn.Module:
    """The tutorial's head (logits; the losses below take them)."""
    return nn.Sequential(nn.Linear(in_features, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 4))


def frozen_torchvision(arch: str) -> tuple[nn.Module, nn.Module]:
    """torchvision's model with everything frozen and a new head; returns (model, head)."""
    model = getattr(models, arch)(weights=None)
    for parameter in model.parameters():
        parameter.requires_grad = False
    if arch == "vgg16":
        model.classifier[6] = head = tutorial_head(4096)
    else:
        model.fc = head = nn.Linear(model.fc.in_features, 4)
    return model, head


def plain_loop(
    model: nn.Module,
    train: DataLoader[Any],
    val: DataLoader[Any],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    epochs: int,
) -> None:
    criterion = nn.CrossEntropyLoss()
    model.to(device)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    for _ in range(epochs):
        model.train()
        for inputs, labels in train:
            inputs, labels = inputs.to(device, non_blocking=True), labels.to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            for inputs, labels in val:
                outputs = model(inputs.to(device, non_blocking=True))
                correct += int((outputs.argmax(1).cpu() == labels).sum())
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_torchvision(root: Path, device: torch.device, epochs: int, workers: int, arch: str) -> None:
    model, head = frozen_torchvision(arch)
    train, val = loaders(root, tutorial_transform(), 32, workers, device.type == "cuda")
    optimizer = torch.optim.SGD(head.parameters(), lr=0.001, momentum=0.9)
    plain_loop(model, train, val, optimizer, device, epochs)


def run_timm(root: Path, device: torch.device, epochs: int, workers: int, arch: str) -> None:
    import timm
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(arch, pretrained=False, num_classes=4)
    if arch == "vgg16":
        model.head.fc = tutorial_head(4096)
    for parameter in model.parameters():
        parameter.requires_grad = False
    for parameter in model.get_classifier().parameters():
        parameter.requires_grad = True
    config = resolve_data_config({}, model=model)
    transform = T.Compose([T.Grayscale(3), create_transform(**config)])
    train, val = loaders(root, transform, 32, workers, device.type == "cuda")
    optimizer = torch.optim.AdamW(model.get_classifier().parameters(), lr=1e-3)
    plain_loop(model, train, val, optimizer, device, epochs)


def run_lightning(root: Path, device: torch.device, epochs: int, workers: int, arch: str) -> None:
    import lightning as L  # noqa: N812 (the alias Lightning's docs use)

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.head = frozen_torchvision(arch)
            self.loss = nn.CrossEntropyLoss()

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            inputs, labels = batch
            loss: torch.Tensor = self.loss(self.model(inputs), labels)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            inputs, labels = batch
            outputs = self.model(inputs)
            self.log("val_loss", self.loss(outputs, labels))
            self.log("val_acc", (outputs.argmax(1) == labels).float().mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.head.parameters(), lr=1e-3)

    cuda = device.type == "cuda"
    train, val = loaders(root, tutorial_transform(), 32, workers, cuda)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        precision="bf16-mixed" if cuda else "32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Module(), train, val)
    if cuda:
        torch.cuda.synchronize()


def run_retinalnet(root: Path, device: torch.device, epochs: int, workers: int, arch: str) -> None:
    from retinalnet import KermanyOCT, Trainer, create_model, vgg16_transfer

    model = vgg16_transfer(weights=None) if arch == "vgg16" else create_model(arch, weights=None)
    trainer = Trainer(
        model,
        feature_cache=True,
        max_epochs=epochs,
        device=device,
        progress=False,
    )
    trainer.fit(KermanyOCT(root, "train"), KermanyOCT(root, "val"))
    if device.type == "cuda":
        torch.cuda.synchronize()


CONTENDERS: dict[str, Callable[[Path, torch.device, int, int, str], None]] = {
    "retinalnet": run_retinalnet,
    "lightning": run_lightning,
    "torchvision": run_torchvision,
    "timm": run_timm,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--arch", default="vgg16", choices=["vgg16", "resnet18"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--only", nargs="*", default=list(CONTENDERS), choices=list(CONTENDERS))
    args = parser.parse_args()
    from retinalnet._core.device import default_num_workers, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    workers = default_num_workers(device)
    folder = tempfile.mkdtemp(prefix="bench-peers-")
    root = Path(folder)
    try:
        write_tree(root, {"train": args.images, "val": 32})
        seconds: dict[str, float] = {}
        for name in args.only:
            torch.manual_seed(0)
            started = time.perf_counter()
            try:
                CONTENDERS[name](root, device, args.epochs, workers, args.arch)
            except ImportError as error:  # lightning and timm come with the bench extra
                print(f"  {name}: skipped ({error}; pip install -e '.[bench]')")
                continue
            seconds[name] = time.perf_counter() - started
            print(f"  {name}: {seconds[name]:.1f} s", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    )
    print(
        f"{args.images} training images + 32 validation, {args.epochs} epochs, {args.arch} "
        f"(random weights) frozen but the head, {where}, {workers} loader workers, "
        f"torch {torch.__version__}"
    )
    base = seconds.get("retinalnet")
    print(f"{'':12s} {'seconds':>9s} {'vs retinalnet':>14s}")
    for name, value in seconds.items():
        ratio = f"{value / base:.1f}x" if base else "-"
        print(f"{name:12s} {value:9.1f} {ratio:>14s}")


if __name__ == "__main__":
    main()
