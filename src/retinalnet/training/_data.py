"""The data of a fit: loaders with the model's preprocessing, the shuffle, the targets."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.classes import data_classes
from retinalnet._core.loaders import DataSource, make_loader
from retinalnet.models import Classifier
from retinalnet.training._distributed import DistributedContext

__all__ = [
    "SAMPLER_NOT_DISTRIBUTED",
    "classes_of",
    "fit_loader",
    "train_targets",
    "warn_of_missing_classes",
    "warn_of_own_transform",
]

SAMPLER_NOT_DISTRIBUTED = (
    "balance='sampler' cannot be combined with distributed training; use balance='weights'"
)


def fit_loader(
    data: DataSource,
    *,
    model: nn.Module,
    train: bool,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    seed: int | None,
    dist: DistributedContext,
    sampler: Sampler[int] | None = None,
) -> DataLoader[Any]:
    """A loader of ``data`` for training (``train=True``) or validation.

    A Classifier's preprocessing prepares PIL images (augmenting for training). With a seed
    or several processes, training batches come from an epoch-seeded
    :class:`~torch.utils.data.DistributedSampler`: the same order on every rank, a resumed run
    repeats the order of the run it continues, and N ranks together see what one process
    sees. A DataLoader is used as it is.
    """
    transform = decode = None
    if isinstance(model, Classifier):
        prep = model.preprocessing
        transform = prep.train_transform() if train else prep.eval_transform()
        decode = prep.load
    generator = None
    if train and seed is not None:
        generator = torch.Generator().manual_seed(seed)
    if train and (dist.enabled or seed is not None) and not isinstance(data, DataLoader):
        if sampler is not None and dist.enabled:
            raise ValueError(SAMPLER_NOT_DISTRIBUTED)
        if sampler is None:
            sampler = DistributedSampler(
                data,
                num_replicas=dist.world_size,
                rank=dist.rank,
                shuffle=True,
                seed=seed or 0,
            )
    return make_loader(
        data,
        batch_size=batch_size,
        shuffle=train,
        transform=transform,
        decode=decode,
        num_workers=num_workers,
        generator=generator,
        pin_memory=device.type == "cuda",
        sampler=sampler if train else None,
    )


def train_targets(train: DataSource, balance: str | None) -> list[int] | None:
    """The training targets when ``balance`` needs them; fails early without them."""
    if balance is None:
        return None
    targets = getattr(train, "targets", None)
    if targets is None and isinstance(train, TensorDataset) and len(train.tensors) == 2:
        targets = train.tensors[1].tolist()  # e.g. cached features (feature_cache)
    if isinstance(train, DataLoader) or targets is None:
        raise TypeError(
            f"balance={balance!r} needs a data set with a `targets` attribute (like "
            f"KermanyOCT), got {type(train).__name__}; pass the data set, not a DataLoader"
        )
    return [int(target) for target in targets]


def classes_of(model: nn.Module) -> tuple[str, ...]:
    """The class names a model predicts, for metrics and checkpoints.

    Raises
    ------
    TypeError
        If ``model`` is a plain module without an int ``num_classes``.
    """
    if isinstance(model, Classifier):
        return model.classes
    output = getattr(model, "num_classes", None)
    if isinstance(output, int):
        return tuple(str(i) for i in range(output))
    raise TypeError(
        "cannot tell the number of classes of a plain module; wrap it in "
        "retinalnet.models.Classifier(network, classes=[...])"
    )


def warn_of_missing_classes(train: DataSource, classes: tuple[str, ...] | None) -> None:
    """Warn when the training data (with ``targets``) holds no image of a class: the model
    can never learn to predict it, and nothing else would say so."""
    data = getattr(train, "dataset", train)  # a DataLoader's data set
    targets = getattr(data, "targets", None)
    if targets is None:
        return
    if classes is None:  # a plain module: the data's names, however it gives them
        classes = data_classes(data) or ()
    present = {int(target) for target in targets}
    missing = [name for index, name in enumerate(classes) if index not in present]
    if missing and len(targets):
        warn_caller(
            f"the training data holds no image of {', '.join(missing)} ({len(targets)} images "
            f"in all): the model cannot learn to predict {'it' if len(missing) == 1 else 'them'}; "
            "check the data's class folders or manifest",
            UserWarning,
        )


def warn_of_own_transform(model: nn.Module, data: DataSource, *, where: str) -> None:
    """Warn when data a Classifier is scored on prepares its images with a transform of its
    own (``KermanyOCT(..., transform=...)``) other than the model's evaluation pipeline: its
    images then reach the model otherwise than through the Predictor and ``retinalnet
    predict`` (another size, normalisation or decoding), so the same files get other
    probabilities there. Training data's own transform (augmentation) is not scored."""
    if not isinstance(model, Classifier):
        return
    dataset: Any = data
    for _ in range(4):  # a DataLoader's data set, a Subset's, ...
        if getattr(dataset, "transform", None) is not None or not hasattr(dataset, "dataset"):
            break
        dataset = dataset.dataset
    transform = getattr(dataset, "transform", None)
    preprocessing = model.preprocessing
    if transform is None or (
        repr(transform) == repr(preprocessing.eval_transform()) and not preprocessing.reduced_decode
    ):
        return
    warn_caller(
        f"{where}: the data set prepares its images with its own transform, not the model's "
        f"preprocessing (size {preprocessing.size}, resize {preprocessing.resize}, its mean "
        "and std): the results can differ from the Predictor's and `retinalnet predict`'s "
        "for the same files. Create the data set without transform= (e.g. KermanyOCT(root, "
        "split)) to score the images as the model predicts them",
        UserWarning,
    )
