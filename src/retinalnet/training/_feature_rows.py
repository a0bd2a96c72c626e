"""Where a feature-cache build puts its rows: one allocation, filled batch by batch.

A build knows how many rows it makes (its images times its passes) but not how wide they
are until the first batch comes back. It used to keep every batch in a list and join them
at the end: twice the cache in memory at the peak (2.7 GB for frozen VGG16 over OCT2017's
training split, 13.7 GB with four views), reached after the last pass, and a disk cache
written only then. Here the rows are allocated once, when the first batch gives their
width (so a cache too large for the memory fails then, not after the last pass), and each
batch is copied into its place; with a cache folder, also written into its place in a
``.npy`` file there, under a temporary name until it is complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch.utils.data import DataLoader

from retinalnet._core.files import atomic_write
from retinalnet._core.temporary_names import TEMPORARY_SUFFIX, temporary_prefix
from retinalnet.training._npy_stream import npy_writer

__all__ = ["FeatureRows", "loader_rows"]


class FeatureRows:
    """The features and targets of a cache build, ``capacity`` rows allocated at once.

    Parameters
    ----------
    capacity
        How many rows the build makes (its images times its passes).
    folder
        The cache folder: the features also go to a ``.npy`` file there as they come. It is
        named as :func:`~retinalnet._core.files.atomic_write` names its temporary files
        (``.features.npy.<8 characters>.tmp``), so never read as a cache, and filled with
        zeros when the first batch comes: a full disk shows then, not after the last pass.
        ``None``: in memory only.
    grow
        Whether more rows than ``capacity`` may come (a caller's DataLoader, whose number
        of rows is only estimated): the rows then grow by half (never with a folder).
    refused
        Called once with the error when the folder refuses the file (a full disk): the
        file is removed and the rows go on in memory.
    """

    def __init__(
        self,
        capacity: int,
        *,
        folder: Path | None = None,
        grow: bool = False,
        refused: Callable[[OSError], None] | None = None,
    ) -> None:
        self.capacity = capacity
        self.end = 0
        """One past the last row written."""
        self._folder = folder
        self._grow = grow and folder is None
        self._refused = refused
        self._features: torch.Tensor | None = None
        self._targets = torch.empty(capacity, dtype=torch.int64)
        self._file: _RowFile | None = None
        self._made_folder = False

    @property
    def on_disk(self) -> bool:
        """Whether the features are also in a file of the cache folder."""
        return self._file is not None

    def put(
        self, row: int, features: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Copy a batch's ``features`` and ``targets`` to rows ``row`` onwards.

        Returns
        -------
        features, targets : torch.Tensor
            The rows written, as views of the stored ones.

        Raises
        ------
        ValueError
            If the rows run past ``capacity`` and cannot grow (a data set yielding more
            images than its length says).
        """
        stop = row + len(features)
        stored = self._features
        if stored is None:
            stored = self._allocate(tuple(features.shape[1:]), features.dtype)
        if stop > self.capacity:
            stored = self._make_room(stored, stop)
        stored[row:stop].copy_(features)
        self._targets[row:stop].copy_(targets)
        self.end = max(self.end, stop)
        if self._file is not None:
            try:
                self._file.write(row, stored[row:stop])
            except OSError as error:
                self._refuse(error)
        return stored[row:stop], self._targets[row:stop]

    def rows(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``start`` to ``stop`` as written, views of the stored ones."""
        return self.features()[start:stop], self._targets[start:stop]

    def features(self) -> torch.Tensor:
        """The features written (no copy; an empty ``(0, 0)`` tensor before any)."""
        if self._features is None:
            return torch.empty((0, 0))
        return self._features[: self.end]

    def targets(self) -> torch.Tensor:
        """The targets written (no copy)."""
        return self._targets[: self.end]

    def publish(self, path: Path) -> None:
        """Flush the features' file to disk, close it and rename it ``path``.

        Raises
        ------
        ValueError
            If there is no file, or fewer rows came than ``capacity`` (a data set yielding
            fewer images than its length says): the file would end in rows of zeros.
        OSError
            If the disk refuses.
        """
        if self._file is None:
            raise ValueError("FeatureRows.publish needs a folder that took the features")
        if self.end != self.capacity:
            raise ValueError(
                f"the data gave {self.end} feature rows where its length promised "
                f"{self.capacity}; give the feature cache a data set whose len() is the "
                "number of images it yields"
            )
        self._file.close()
        self._file.path.replace(path)
        self._file.path = path

    def discard(self) -> None:
        """Remove the features' file, and the folder if it was made for it and is empty (an
        interrupted build, a refused one); what cannot be removed is left."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close(sync=False)
            with contextlib.suppress(OSError):
                self._file.path.unlink(missing_ok=True)
            self._file = None
        if self._made_folder and self._folder is not None:
            with contextlib.suppress(OSError):  # not empty: left as it is
                self._folder.rmdir()
            self._made_folder = False

    def _refuse(self, error: OSError) -> None:
        """The folder refused the file: remove it, say so, go on in memory."""
        self.discard()
        if self._refused is not None:
            self._refused(error)

    def _allocate(self, width: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """The features' storage, ``(capacity, *width)``, and with a folder their file."""
        shape = (self.capacity, *width)
        self._features = torch.empty(shape, dtype=dtype)
        if self._folder is not None:
            try:
                self._made_folder = not self._folder.exists()
                self._folder.mkdir(parents=True, exist_ok=True)
                self._file = _RowFile.zeros(self._folder, self._features.numpy().dtype, shape)
            except OSError as error:
                self._refuse(error)
        return self._features

    def _make_room(self, stored: torch.Tensor, stop: int) -> torch.Tensor:
        """``stored`` grown to hold ``stop`` rows (by half at least)."""
        if not self._grow:
            raise ValueError(
                f"the data gave more than the {self.capacity} feature rows its length "
                "promised; give the feature cache a data set whose len() is the number of "
                "images it yields"
            )
        capacity = max(stop, self.capacity + self.capacity // 2)
        grown = torch.empty((capacity, *stored.shape[1:]), dtype=stored.dtype)
        grown[: self.end].copy_(stored[: self.end])
        targets = torch.empty(capacity, dtype=torch.int64)
        targets[: self.end].copy_(self._targets[: self.end])
        self._features, self._targets, self.capacity = grown, targets, capacity
        return grown


class _RowFile:
    """An open ``.npy`` file of rows, written row by row into place (plain writes: a disk
    error is an ``OSError``, where a memory-mapped page that cannot be written back kills
    the process with ``SIGBUS``)."""

    def __init__(self, path: Path, stream: BinaryIO, offset: int, row_bytes: int) -> None:
        self.path = path
        self._stream = stream
        self._offset = offset
        self._row_bytes = row_bytes

    @classmethod
    def zeros(cls, folder: Path, dtype: np.dtype[Any], shape: tuple[int, ...]) -> _RowFile:
        """A new file in ``folder`` of zeros of ``shape``, written in constant memory: its
        blocks are taken now, so a full disk shows at once."""
        name = f"{temporary_prefix('features.npy')}{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
        path = folder / name
        zeros = np.broadcast_to(np.zeros((), dtype), shape)
        atomic_write(path, npy_writer(zeros), sync=False)  # synced once filled
        try:
            stream = path.open("r+b")
        except OSError:
            path.unlink(missing_ok=True)
            raise
        try:
            _skip_header(stream)
        except BaseException:
            stream.close()
            path.unlink(missing_ok=True)
            raise
        row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        return cls(path, stream, stream.tell(), row_bytes)

    def write(self, row: int, rows: torch.Tensor) -> None:
        """Write ``rows`` (contiguous, on the CPU) as rows ``row`` onwards."""
        self._stream.seek(self._offset + row * self._row_bytes)
        self._stream.write(rows.contiguous().numpy().data.cast("B"))

    def close(self, *, sync: bool = True) -> None:
        """Flush the rows (to the disk itself with ``sync``) and close the file."""
        if self._stream.closed:
            return
        try:
            self._stream.flush()
            if sync:
                os.fsync(self._stream.fileno())
        finally:
            self._stream.close()


def _skip_header(stream: BinaryIO) -> None:
    """Read a ``.npy`` file's header: ``stream`` is left where its data starts."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        np.lib.format.read_array_header_1_0(stream)
    else:
        np.lib.format.read_array_header_2_0(stream)


def loader_rows(loader: DataLoader[Any]) -> int:
    """About how many rows a pass over a caller's ``loader`` gives: its batches times their
    size (exact but for a short last batch), else its data set's length."""
    if loader.batch_size is not None:
        return len(loader) * loader.batch_size
    try:
        return len(loader.dataset)  # type: ignore[arg-type]
    except TypeError:  # an iterable data set
        return len(loader)
