"""Feeding the feature cache from JPEG bytes: workers read, the device decodes, a batch ahead.

With the PIL path, CPU workers decode and resize every scan, and on a GPU that is what limits
building a feature cache (1,296 images/s for VGG16 on an H200, 5% of its arithmetic). Here
the workers only read each file's bytes (:func:`~retinalnet.tensor_preprocessing.read_encoded`)
and :class:`~retinalnet.tensor_preprocessing.TensorPreprocessing` decodes and prepares a whole
batch on the device, in a background thread and (on a GPU) its own CUDA stream, so the next
batch is prepared while the model runs on the current one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from retinalnet._core.images import load_image
from retinalnet._core.worker_start import ExplainedLoader
from retinalnet.tensor_preprocessing import TensorPreprocessing, read_encoded
from retinalnet.transforms import Preprocessing

__all__ = ["file_samples", "tensor_batches"]

_END = object()


def file_samples(data: object) -> list[tuple[str, int]] | None:
    """The ``(path, target)`` list of a data set the tensor path can read by itself: image
    files read with the default loader, with no transform of its own (like
    :class:`~retinalnet.datasets.KermanyOCT`); ``None`` for any other."""
    samples = getattr(data, "samples", None)
    if not isinstance(samples, list) or not samples or not isinstance(data, Dataset):
        return None
    if getattr(data, "transform", None) is not None:
        return None
    if getattr(data, "target_transform", None) is not None:
        return None
    if getattr(data, "loader", None) is not load_image:  # the user's own loader wins
        return None
    return [(str(path), int(target)) for path, target in samples]


class _EncodedFiles(Dataset[tuple[torch.Tensor, int, str]]):
    """What a worker does: read a file's bytes (or prepare it the PIL way, see
    :func:`~retinalnet.tensor_preprocessing.read_encoded`)."""

    def __init__(self, samples: Sequence[tuple[str, int]], preprocessing: Preprocessing) -> None:
        self.samples = samples
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        path, target = self.samples[index]
        return read_encoded(path, self.preprocessing), target, path


def _collate(
    batch: list[tuple[torch.Tensor, int, str]],
) -> tuple[list[torch.Tensor], torch.Tensor, list[str]]:
    items, targets, paths = zip(*batch, strict=True)
    return list(items), torch.tensor(targets), list(paths)


def tensor_batches(
    samples: Sequence[tuple[str, int]],
    preprocessing: Preprocessing,
    *,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    depth: int = 2,
) -> tuple[Iterator[tuple[torch.Tensor, torch.Tensor]], int]:
    """Batches ``(inputs, targets)`` of ``samples`` prepared on ``device``, in order, and
    how many there are.

    ``num_workers`` processes read the files; a thread decodes and prepares up to ``depth``
    batches ahead of the caller.
    """
    loader = ExplainedLoader(
        _EncodedFiles(samples, preprocessing),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    prepare = TensorPreprocessing(preprocessing, device=device)
    return _prefetched(loader, prepare, depth), len(loader)


def _prefetched(
    loader: DataLoader[Any], prepare: TensorPreprocessing, depth: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    device = prepare.device
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    stream = None
    if device.type == "cuda":
        stream = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        context: AbstractContextManager[Any] = (
            torch.cuda.stream(stream) if stream is not None else nullcontext()
        )
        try:
            with context:
                for items, targets, paths in loader:
                    if stop.is_set():
                        return
                    inputs = prepare.batch(items, names=paths)
                    event = None
                    if stream is not None:
                        event = torch.cuda.Event()  # type: ignore[no-untyped-call]
                        event.record(stream)
                    put((inputs, targets, event))
            put(_END)
        except BaseException as error:  # handed to the caller, raised there
            put(error)

    thread = threading.Thread(target=work, name="retinalnet-tensor-batches", daemon=True)
    thread.start()
    try:
        while True:
            got = ready.get()
            if got is _END:
                return
            if isinstance(got, BaseException):
                raise got
            inputs, targets, event = got
            if event is not None:  # the model's stream waits for the preparing stream
                current = torch.cuda.current_stream(device)
                current.wait_event(event)
                inputs.record_stream(current)
            yield inputs, targets
    finally:
        stop.set()
        thread.join()
