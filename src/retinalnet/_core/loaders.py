"""Turning a data set or a loader into batches of tensors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias, Union

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

from retinalnet._core.images import load_image
from retinalnet._core.warning_filters import warnings_ignored
from retinalnet._core.worker_start import ExplainedLoader

__all__ = [
    "BatchedTensorDataset",
    "DataSource",
    "decoded_with",
    "make_loader",
    "shut_down_workers",
]

DataSource: TypeAlias = Union[Dataset[Any], DataLoader[Any]]  # noqa: UP007 - evaluated at runtime
"""Training or evaluation data, either a map-style data set of ``(image, target)`` pairs or a
ready DataLoader."""


class BatchedTensorDataset(TensorDataset):
    """A :class:`~torch.utils.data.TensorDataset` that a DataLoader reads a batch at a time.

    A plain TensorDataset is read one row at a time and the rows are stacked again: 128
    indexing calls and a copy per batch. Here a batch is one indexing call on the stored
    tensors, wherever they are (a GPU included), which is what makes training a head on
    cached features fast. :func:`make_loader` gives it the matching ``collate_fn``.
    """

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices)
        device = self.tensors[0].device
        if device.type == "cuda":
            # From pinned memory the copy is queued, so the host does not wait for the GPU
            # to finish the previous training step before it can start the next one.
            index = index.pin_memory().to(device, non_blocking=True)
        else:
            index = index.to(device)
        return tuple(tensor[index] for tensor in self.tensors)


def _batch_as_is(batch: Any) -> Any:
    """The collate function of :class:`BatchedTensorDataset`: its batches are ready."""
    return batch


class _Transformed(Dataset[tuple[Any, Any]]):
    """Applies ``transform`` to the images of a data set that yields PIL images."""

    def __init__(self, dataset: Dataset[Any], transform: Callable[[Image.Image], Any]) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, target = self.dataset[index]
        return self.transform(image), target


def decoded_with(data: Dataset[Any], decode: Callable[[str], Image.Image]) -> Dataset[Any]:
    """``data`` reading its files with ``decode``, when it reads them with the default loader
    and prepares no images of its own (a data set with its own transform keeps its way)."""
    with_loader = getattr(data, "with_loader", None)
    if with_loader is None or getattr(data, "transform", None) is not None:
        return data
    if getattr(data, "loader", None) is not load_image:  # the user's own loader wins
        return data
    replaced: Dataset[Any] = with_loader(decode)
    return replaced


def make_loader(
    data: DataSource,
    *,
    batch_size: int,
    shuffle: bool,
    transform: Callable[[Image.Image], Any] | None,
    decode: Callable[[str], Image.Image] | None = None,
    num_workers: int = 0,
    generator: torch.Generator | None = None,
    pin_memory: bool = False,
    sampler: Sampler[int] | None = None,
) -> DataLoader[Any]:
    """A DataLoader over ``data``; a DataLoader is returned as is.

    A data set that yields PIL images (no ``transform`` of its own) gets ``transform``
    applied, so a model's own preprocessing is used unless the data set has one. A data set
    of image files that reads them with the default loader (one with a ``with_loader``
    method, such as :class:`~retinalnet.datasets.KermanyOCT`) reads them with ``decode``
    instead: the model's own decoding (:meth:`~retinalnet.transforms.Preprocessing.load`).
    A ``sampler`` replaces ``shuffle``. A :class:`BatchedTensorDataset` (tensors already in
    memory, such as cached features) is read without worker processes, whatever
    ``num_workers`` says.

    Raises
    ------
    TypeError
        If ``data`` is neither a data set nor a loader.
    ValueError
        If ``data`` is empty, or yields PIL images and no ``transform`` is known.
    """
    if isinstance(data, DataLoader):
        return data
    if not isinstance(data, Dataset) or not hasattr(data, "__len__"):
        raise TypeError(
            "expected a map-style torch Dataset (with __len__) or a DataLoader, "
            f"got {type(data).__name__}"
        )
    if len(data) == 0:
        raise ValueError(f"the data set {data!r} is empty")
    if decode is not None and transform is not None:
        data = decoded_with(data, decode)
    # a look at what the data set yields: its warnings (a small scan, a skipped file) come
    # when the loader reads the sample, not twice; the caller's code runs in it, so no lock
    # is held for it (a data set may open images in threads of its own)
    with warnings_ignored():
        first = data[0]
    if isinstance(first, (tuple, list)) and isinstance(first[0], Image.Image):
        if transform is None:
            raise ValueError(
                f"{type(data).__name__} yields PIL images and no transform is known; pass "
                "transform=Preprocessing().eval_transform() to the data set"
            )
        data = _Transformed(data, transform)
    collate_fn = None
    if isinstance(data, BatchedTensorDataset):
        collate_fn = _batch_as_is
        # Already in memory: a batch is one indexing call, which worker processes can only
        # slow down (starting them each fit, and sending every batch back through shared
        # memory: on 2 cores, 2 workers added 0.3 s to a 32-row validation pass), whatever
        # ``num_workers`` asks for.
        num_workers = 0
        if data.tensors[0].device.type != "cpu":  # already on the GPU: nothing to copy
            pin_memory = False
    return ExplainedLoader(  # workers that cannot start under "spawn" say so in one line
        data,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def shut_down_workers(loader: DataLoader[Any] | None) -> None:
    """End the worker processes of ``loader`` now, as Lightning's teardown does.

    A loader made by :func:`make_loader` keeps its workers between epochs
    (``persistent_workers``); they would otherwise live on, with their copies of the data
    set, until the loader is garbage collected. The loader stays usable: its next epoch
    starts new workers.
    """
    iterator = getattr(loader, "_iterator", None)
    if isinstance(iterator, _MultiProcessingDataLoaderIter):
        iterator._shutdown_workers()
    if iterator is not None:
        loader._iterator = None  # type: ignore[union-attr]
