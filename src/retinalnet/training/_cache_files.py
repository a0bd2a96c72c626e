"""The files of a feature-cache folder: where it lies, how they are written (``meta.json``,
which marks the cache complete, last) and removed, and its features read back
memory-mapped."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch

from retinalnet._core.files import atomic_write
from retinalnet.training._npy_stream import npy_writer

if TYPE_CHECKING:
    from retinalnet.training._feature_cache import FeatureCache

__all__ = [
    "CACHE_FILES",
    "FORMAT_VERSION",
    "cache_folder",
    "memory_mapped",
    "meta_bytes",
    "remove_cache_files",
    "write_files",
]

FORMAT_VERSION = 1
"""The version of the files' layout, in ``meta.json`` and in every fingerprint."""

CACHE_FILES = ("meta.json", "features.npy", "targets.npy")
"""The files of a cache folder, ``meta.json`` (which marks it complete) first."""


def cache_folder(cache_dir: str | os.PathLike[str], fingerprint: str) -> Path:
    """The folder of the cache of ``fingerprint`` in ``cache_dir``."""
    return Path(cache_dir) / fingerprint[:24]


def memory_mapped(cache: FeatureCache, cache_dir: str | os.PathLike[str] | None) -> FeatureCache:
    """``cache`` with its features memory-mapped from its folder in ``cache_dir`` (as a later
    run reads them): training on it holds no second copy of them in memory. ``cache`` itself
    where the folder holds no such features (no ``cache_dir``, a save the disk refused)."""
    if cache_dir is None:
        return cache
    folder = cache_folder(cache_dir, cache.fingerprint)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        features = np.load(folder / "features.npy", mmap_mode="c")  # copy-on-write
    except (OSError, ValueError, EOFError):
        return cache
    mapped = torch.from_numpy(features)
    same = (mapped.shape, mapped.dtype) == (cache.features.shape, cache.features.dtype)
    if meta.get("fingerprint") != cache.fingerprint or not same:
        return cache
    return replace(cache, features=mapped)


def meta_bytes(fingerprint: str, head_name: str, views: int) -> bytes:
    """The ``meta.json`` of a cache, which marks it complete."""
    meta = {
        "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "head_name": head_name,
        "views": views,
    }
    return json.dumps(meta, indent=2).encode()


def write_files(
    out: Path, meta: bytes, write_features: Callable[[Path], object], targets: torch.Tensor
) -> None:
    """Write a cache's files into ``out``: ``meta.json`` removed first (not complete while
    the arrays change), the features (``write_features(path)``), the targets, and
    ``meta.json`` last, marking it done. Each is written whole or not at all."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)
    write_features(out / "features.npy")
    atomic_write(out / "targets.npy", npy_writer(targets.numpy()))
    atomic_write(out / "meta.json", _bytes_writer(meta))


def _bytes_writer(data: bytes) -> Callable[[BinaryIO], None]:
    """``write(stream)`` for :func:`~retinalnet._core.files.atomic_write`: ``data``."""

    def write(stream: BinaryIO) -> None:
        stream.write(data)

    return write


def remove_cache_files(folder: Path, *, folder_too: bool) -> None:
    """Remove the cache files in ``folder`` (``meta.json`` first), and ``folder`` itself if
    ``folder_too`` and it is empty; what cannot be removed is left."""
    for name in CACHE_FILES:
        with contextlib.suppress(OSError):
            (folder / name).unlink(missing_ok=True)
    if folder_too:
        with contextlib.suppress(OSError):  # not empty, or gone: left as it is
            folder.rmdir()
