"""Turning a data set or a loader into batches of tensors."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset
from torch.utils.data._utils.collate import default_collate
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.data_source_errors import not_a_data_source
from retinalnet._core.decoding_mismatch import warn_of_other_decoding
from retinalnet._core.images import MIN_IMAGE_SIDE, load_image
from retinalnet._core.model_inputs import describe, refuse_unprepared, warn_if_unnormalised
from retinalnet._core.warning_filters import warnings_ignored
from retinalnet._core.worker_start import ExplainedLoader

if TYPE_CHECKING:
    from retinalnet.transforms import Preprocessing

__all__ = [
    "BatchedTensorDataset",
    "DataSource",
    "decoded_with",
    "make_loader",
    "shut_down_workers",
    "unchecked_samples",
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


_PREPARE = (
    "yield PIL images (Image.fromarray(array) for a NumPy array) or file paths, which the "
    "model's preprocessing prepares, or prepare each image with "
    "model.preprocessing.eval_transform() (train_transform() for training data)"
)
"""The fix for a data set whose images reach a model unprepared."""


class _Transformed(Dataset[tuple[Any, Any]]):
    """Applies ``transform`` to the images of a data set that yields PIL images or file
    paths (read with ``decode``)."""

    def __init__(
        self,
        dataset: Dataset[Any],
        transform: Callable[[Image.Image], Any],
        decode: Callable[[str], Image.Image] | None = None,
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        self.decode = decode

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, target = self.dataset[index]
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            image = self.decode(path) if self.decode is not None else load_image(path)
        return self.transform(image), target


def _check_sample(
    first: Any, data: object, preprocessing: Preprocessing | None, *, transformable: bool
) -> str:
    """What the first sample of ``data`` holds: ``"image"`` (a PIL image), ``"path"`` or
    ``"input"`` (a tensor taken as the model's input), or a one-line error.

    Targets must be class indices. With ``preprocessing`` (the model's), a tensor that is an
    image rather than a prepared input is refused (:func:`refuse_unprepared`): only the
    model's own preprocessing makes inputs, so training and prediction see a scan the same
    way. A NumPy array channels last (``(H, W, 3)``, as images are read from arrays) is
    such an image. A 1-D tensor or array (features) or one with a side under
    ``MIN_IMAGE_SIDE`` pixels is no image (the library's image gate refuses those): it is
    the network's input as it is. A data set with a transform of its own chose how to
    prepare its images: another size is its choice (scoring such data warns,
    ``warn_of_own_transform``); only what is no float input at all is refused, and inputs
    with no negative value are warned about.
    """
    where = f"sample 0 of {type(data).__name__}"
    pair = isinstance(first, (tuple, list))
    image = first[0] if pair and len(first) else first
    if (
        preprocessing is not None
        and pair
        and len(first) >= 2
        and isinstance(first[1], (str, bytes))
    ):
        raise TypeError(
            f"{where} has the target {first[1]!r}; targets must be class indices (ints, "
            "0 for the first of the model's classes), as KermanyOCT yields them: map names "
            "with classes.index(name)"
        )
    if isinstance(image, Image.Image):
        return "image"
    if isinstance(image, (str, os.PathLike)):
        return "path"
    if preprocessing is None:
        return "input"
    name = f"the image of {where}"
    fix = _PREPARE if transformable else f"a DataLoader is used as it is: {_PREPARE}"
    if _channels_last_image(image):  # (H, W, 3): its smallest side is no image side
        refuse_unprepared(image, preprocessing, name=name, fix=fix)
    if isinstance(image, (torch.Tensor, np.ndarray)):
        if image.ndim <= 1 or min(image.shape[-2:]) < MIN_IMAGE_SIDE:
            return "input"  # no image: features, logits shaped by hand
        if isinstance(image, torch.Tensor) and image.is_floating_point():
            size = preprocessing.size
            if tuple(image.shape) == (3, size, size) or _has_own_transform(data):
                warn_if_unnormalised(image, preprocessing, name=name, fix=fix)
            elif image.shape[0] == 1 or (
                image.shape[0] == 3 and image.amin() >= 0 and image.amax() <= 1 + 1e-3
            ):  # a grey image, or an RGB one in [0, 1]: images, never prepared
                refuse_unprepared(image, preprocessing, name=name, fix=fix)
            else:  # prepared by the user at another size, or cached feature maps
                warn_caller(
                    f"{name} is {describe(image)}, not the model's prepared inputs (3, "
                    f"{size}, {size}): it is given to the network as it is; if it is an image, "
                    f"{fix}",
                    UserWarning,
                )
            return "input"
        refuse_unprepared(image, preprocessing, name=name, fix=fix)
        return "input"
    raise TypeError(
        f"{name} is {describe(image)}; expected a PIL image, a file path or a prepared "
        f"model input (a float tensor): {fix}"
    )


def _channels_last_image(image: object) -> bool:
    """Whether ``image`` is a NumPy image as the image gate reads arrays, channels last
    (``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``, each side at least ``MIN_IMAGE_SIDE``)."""
    return (
        isinstance(image, np.ndarray)
        and image.ndim == 3
        and image.shape[-1] in (1, 3, 4)
        and min(image.shape[:2]) >= MIN_IMAGE_SIDE
    )


def _has_own_transform(data: object) -> bool:
    """Whether ``data``, or a data set it wraps (a Subset's), has a ``transform`` of its
    own."""
    for _ in range(4):
        if getattr(data, "transform", None) is not None:
            return True
        data = getattr(data, "dataset", None)
    return False


def _check_loader(loader: DataLoader[Any], preprocessing: Preprocessing | None) -> None:
    """:func:`_check_sample` on the first sample of a loader's data set, when the loader
    stacks samples as they are (torch's default ``collate_fn``)."""
    data = loader.dataset
    if (
        preprocessing is None
        or loader.collate_fn is not default_collate
        or not isinstance(data, Dataset)
        or not hasattr(data, "__len__")
        or len(data) == 0
    ):
        return
    with warnings_ignored():
        first = data[0]
    _check_sample(first, data, preprocessing, transformable=False)


def unchecked_samples(loader: object) -> bool:
    """Whether ``loader`` is a user's DataLoader whose samples :func:`make_loader` could not
    check (a ``collate_fn`` of its own may turn them into anything): its batches are then
    checked, warnings included, by the loops'
    :func:`~retinalnet._core.model_inputs.check_batch`."""
    collate_fn = getattr(loader, "collate_fn", default_collate)
    return isinstance(loader, DataLoader) and collate_fn not in (default_collate, _batch_as_is)


def decoded_with(data: Dataset[Any], decode: Callable[[str], Image.Image]) -> Dataset[Any]:
    """``data`` reading its files with ``decode``, when it reads them with the default loader
    and prepares no images of its own (a data set with its own transform keeps its way).

    The user's own loader wins. One that is the ``load`` of another
    :class:`~retinalnet.transforms.Preprocessing` decoding otherwise than ``decode`` (the
    model's: ``with_loader(Preprocessing(reduced_decode=True).load)`` for a model without
    reduced decoding) is warned of, once per data set: the model would train or be scored on
    other pixels than those prediction decodes, which follows the model's own settings (its
    checkpoint records them).
    """
    with_loader = getattr(data, "with_loader", None)
    if with_loader is None or getattr(data, "transform", None) is not None:
        return data
    loader = getattr(data, "loader", None)
    if loader is not load_image:  # the user's own loader wins
        warn_of_other_decoding(data, loader, decode)
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
    name: str | None = None,
    checked: bool = False,
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

    A loader that does not shuffle (inference, evaluation) and is given no ``generator``
    gets one of its own: each pass over it draws its workers' base seed from that, not from
    torch's global generator, so predicting or evaluating leaves the random numbers of the
    program that calls it as they were (a seeded host draws the same numbers with or
    without a prediction in between). A shuffling loader without a ``generator`` shuffles
    with torch's global one, as a DataLoader does.

    A data set that yields file paths gets them read with ``decode``, then ``transform``
    applied. With a model's ``transform`` (made by a
    :class:`~retinalnet.transforms.Preprocessing`), the first sample is checked: a tensor
    image that is not the model's prepared input (an integer tensor, a NumPy array, another
    shape than ``(3, size, size)``) is refused, and a float one with no negative value is
    warned about (see :mod:`retinalnet._core.model_inputs`); the data set's (or loader's)
    images would otherwise reach the network unprepared.

    ``name`` is the argument ``data`` came in as (``"train"``, ``"val"``), which an error
    about it names (see :func:`not_a_data_source`).

    ``checked=True`` is for the library's own callers only, over a data set the library
    built whose items are known to be right: the model's own prepared inputs (a
    Predictor's images) or items of a data set this function checked already. It is then
    neither looked at nor transformed (``transform`` must be ``None``): the look at its
    first sample decodes and prepares that image a second time (for one image at a time,
    nearly half the cost of a prediction), and only data a user gives needs it, for its
    errors. A user's data set or DataLoader is always checked.

    Raises
    ------
    TypeError
        If ``data`` is neither a data set nor a loader (a folder path, a list: the message
        says what to pass instead), yields a target that is a string (not a class index),
        or an image of a type the model cannot take.
    ValueError
        If ``data`` is empty, yields PIL images or paths and no ``transform`` is known, or
        yields image tensors that are not the model's prepared inputs.
    """
    preprocessing: Preprocessing | None = getattr(transform, "preprocessing", None)
    if isinstance(data, DataLoader):
        _check_loader(data, preprocessing)
        return data
    if not isinstance(data, Dataset) or not hasattr(data, "__len__"):
        raise TypeError(not_a_data_source(data, name))
    if len(data) == 0:
        raise ValueError(f"the data set {data!r} is empty")
    if checked and transform is not None:
        raise ValueError(
            f"make_loader(checked=True) takes no transform (got a {type(transform).__name__}): "
            "a checked data set yields the model's inputs already; pass transform=None"
        )
    if decode is not None and transform is not None:
        data = decoded_with(data, decode)
    # cached features are prepared by the cache, and a checked data set by the library
    if not checked and not isinstance(data, BatchedTensorDataset):
        # a look at what the data set yields: its warnings (a small scan, a skipped file)
        # come when the loader reads the sample, not twice; the caller's code runs in it, so
        # no lock is held for it (a data set may open images in threads of its own)
        with warnings_ignored():
            first = data[0]
        holds = _check_sample(first, data, preprocessing, transformable=True)
        if holds in ("image", "path") and isinstance(first, (tuple, list)):
            if transform is None:
                what = "PIL images" if holds == "image" else "file paths"
                raise ValueError(
                    f"{type(data).__name__} yields {what} and no transform is known; pass "
                    "transform=Preprocessing().eval_transform() to the data set"
                )
            data = _Transformed(data, transform, decode)
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
    if generator is None and not shuffle and sampler is None:
        generator = torch.Generator()  # the workers' base seeds: the caller's RNG left alone
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
