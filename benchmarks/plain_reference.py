"""The fine-tuning recipe written in plain PyTorch: the reference the library must match.

Issue #13 measured this recipe outside the library on the official test set (93.9% with the
last 4 blocks, 96.6-97.1% with the last 8): a linear probe on frozen features, then the last
``blocks`` MBConv blocks, the conv head and a linear head fine-tuned with batch-norm
statistics frozen, AdamW (blocks 2e-4, head 1e-3, weight decay 0.01), class weights,
``RandomResizedCrop(0.6-1)``, flips, rotation 8 degrees, brightness/contrast 0.2, cosine
decay over the epochs, the weights of the lowest validation loss kept.
``bench_real_accuracy.py --recipes plain`` trains it on the same split as the library's
recipes and evaluates it with the same code, so the two compare in one run.

Only the data split's file lists come from retinalnet; transforms, model surgery, loop and
schedule are torchvision and torch.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterator, Sequence

import torch
from PIL import Image
from torch import nn
from torch.nn import functional
from torchvision import transforms as tvt

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Samples = Sequence[tuple[str, int]]


def _transforms(size: int) -> tuple[tvt.Compose, tvt.Compose]:
    normalize = tvt.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train = tvt.Compose(
        [
            tvt.RandomResizedCrop(size, scale=(0.6, 1.0)),
            tvt.RandomHorizontalFlip(),
            tvt.RandomRotation(8),
            tvt.ColorJitter(brightness=0.2, contrast=0.2),
            tvt.ToTensor(),
            normalize,
        ]
    )
    evaluation = tvt.Compose(
        [tvt.Resize(round(size * 256 / 224)), tvt.CenterCrop(size), tvt.ToTensor(), normalize]
    )
    return train, evaluation


def _batches(
    samples: Samples, transform: tvt.Compose, batch_size: int, *, shuffle: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = list(range(len(samples)))
    if shuffle:
        random.shuffle(order)
    for start in range(0, len(order), batch_size):
        chunk = [samples[i] for i in order[start : start + batch_size]]
        images = [transform(Image.open(path).convert("RGB")) for path, _ in chunk]
        yield torch.stack(images), torch.tensor([target for _, target in chunk])


def _val_loss(network: nn.Module, samples: Samples, transform: tvt.Compose) -> float:
    network.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for images, targets in _batches(samples, transform, 64, shuffle=False):
            total += functional.cross_entropy(network(images), targets, reduction="sum").item()
            count += len(targets)
    return total / count


def fine_tune_plain(
    network: nn.Module,
    train: Samples,
    val: Samples,
    *,
    size: int,
    blocks: int = 8,
    epochs: int = 10,
    probe_epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    num_classes: int = 4,
) -> nn.Module:
    """Train an ``efficientnet_lite_pytorch.EfficientNet`` in place; return it.

    Its ``_fc`` becomes ``Linear`` then ``LogSoftmax`` (log-probabilities, as the library's
    heads give), so the library's ``evaluate`` and ``calibrate`` read it like its own models.
    """
    random.seed(seed)
    torch.manual_seed(seed)
    train_tf, eval_tf = _transforms(size)
    counts = torch.bincount(torch.tensor([t for _, t in train]), minlength=num_classes)
    weights = len(train) / (num_classes * counts.clamp_min(1).float())
    linear = nn.Linear(network._bn1.num_features, num_classes)  # the conv head's width
    network._fc = linear  # logits while training: cross-entropy

    # 1. linear probe on the frozen network's pooled features (no augmentation)
    network.requires_grad_(False).eval()
    with torch.no_grad():
        parts = [
            (functional.adaptive_avg_pool2d(network.extract_features(x), 1).flatten(1), y)
            for x, y in _batches(train, eval_tf, 64, shuffle=False)
        ]
    features = torch.cat([f for f, _ in parts])
    targets = torch.cat([y for _, y in parts])
    linear.requires_grad_(True)
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-3)
    for _ in range(probe_epochs):
        order = torch.randperm(len(targets))
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            loss = functional.cross_entropy(linear(features[index]), targets[index], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    # 2. the last `blocks` MBConv blocks + conv head + head, batch-norm statistics frozen
    unfrozen = [*list(network._blocks)[-blocks:], network._conv_head, network._bn1]
    backbone = [p for module in unfrozen for p in module.parameters()]
    for parameter in backbone:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [{"params": backbone, "lr": 2e-4}, {"params": linear.parameters(), "lr": 1e-3}],
        weight_decay=0.01,
    )
    steps = epochs * math.ceil(len(train) / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps))
    )
    best_loss, best_state = _val_loss(network, val, eval_tf), copy.deepcopy(network.state_dict())
    for _ in range(epochs):
        network.train()
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        for images, labels in _batches(train, train_tf, batch_size, shuffle=True):
            loss = functional.cross_entropy(network(images), labels, weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        loss_now = _val_loss(network, val, eval_tf)
        if loss_now < best_loss:
            best_loss, best_state = loss_now, copy.deepcopy(network.state_dict())
    network.load_state_dict(best_state)
    network._fc = nn.Sequential(linear, nn.LogSoftmax(dim=1))
    return network.requires_grad_(False).eval()
