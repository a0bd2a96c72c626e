"""The data of a fit: loaders with the model's preprocessing, the shuffle, the targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.classes import KERMANY_CLASSES, data_classes, in_words
from retinalnet._core.listed_samples import listed_targets
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
    name: str | None = None,
) -> DataLoader[Any]:
    """A loader of ``data`` for training (``train=True``) or validation; ``name`` is the
    argument ``data`` was given as (``"train"``, ``"val"``), for the error about data that
    is no data set.

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
        name=name,
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


def warn_of_missing_classes(
    train: DataSource, classes: tuple[str, ...] | None, *, val: DataSource | None = None
) -> None:
    """Warn when the training data (with ``targets``) holds no image of a class: the model
    can never learn to predict it, and nothing else would say so; refuse training data of
    one class, from which nothing can be learnt. Warn likewise when the validation data
    ``val`` holds no image of a class: the best epoch (and a temperature fitted on it) are
    then chosen without it.

    Raises
    ------
    ValueError
        If every training image is of one class (and the model has more).
    """
    names = classes
    if names is None:  # a plain module: the data's names, however it gives them
        names = data_classes(train) or ()
    counted = _present(train)
    if counted is not None:
        present, images = counted
        if len(present) == 1 and len(names) != 1:
            (only,) = present
            name = names[only] if only < len(names) else f"class {only}"
            raise ValueError(
                f"the training data holds images of {name} only ({images} images): a "
                "classifier learns from images of at least two classes; add the other "
                "classes' images (check the data's class folders or manifest)"
            )
        _warn_of_absent(
            "training",
            names,
            counted,
            "the model cannot learn to predict {it}; check the "
            f"data's class folders or manifest{_study_hint(names, present)}",
        )
    if val is not None and (counted := _present(val)) is not None:
        _warn_of_absent(
            "validation",
            names,
            counted,
            "the best epoch, and a temperature fitted on it, "
            "are chosen without {it}; add {its} images to the validation data (check its "
            "class folders or manifest)",
        )


def _warn_of_absent(
    which: str, names: Sequence[str], counted: tuple[set[int], int], effect: str
) -> None:
    """Warn that the ``which`` data, of ``counted`` (classes present, images), holds no
    image of some of ``names``; ``effect`` says what follows, with ``{it}`` and ``{its}``
    for the missing class or classes."""
    present, images = counted
    missing = [name for index, name in enumerate(names) if index not in present]
    if not missing or not images:
        return
    one = len(missing) == 1
    said = effect.format(it="it" if one else "them", its="its" if one else "their")
    warn_caller(
        f"the {which} data holds no image of {in_words(missing)} ({images} images in all): {said}",
        UserWarning,
    )


def _present(data: DataSource) -> tuple[set[int], int] | None:
    """The class indices ``data`` holds images of, and its number of images, read through
    DataLoaders, Subsets (their own images) and ConcatDatasets; ``None`` for data that does
    not list its targets as class indices."""
    targets = listed_targets(data)
    if targets is None:
        return None
    return set(targets), len(targets)


def _study_hint(names: tuple[str, ...], present: set[int]) -> str:
    """For Kermany classes, how to study only those present (CNV and NORMAL): the command
    line's ``--classes`` and the Python ``classes=``; empty otherwise."""
    kept = [name for index, name in enumerate(names) if index in present]
    if len(kept) < 2 or not set(kept) <= set(KERMANY_CLASSES):
        return ""
    listed = f"{', '.join(kept[:-1])} and {kept[-1]}"
    return (
        f"; for a study of {listed} only, pass --classes {' '.join(kept)} "
        f"(retinalnet train) or classes={kept!r} (KermanyOCT and create_model)"
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
