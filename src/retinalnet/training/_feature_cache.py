"""Frozen-feature cache: compute a frozen backbone's output once, train only the head on it.

With every parameter below the head frozen (the tutorial's setup), each epoch recomputes the
same backbone features: on a 2-core CPU one pass of frozen VGG16 over Kermany's 83k training
images takes hours. Kermany et al. computed these "bottlenecks" once and trained the top
layers on them; this module does the same.

The trade-off: features are computed with the evaluation preprocessing, so random
augmentation no longer reaches the backbone. ``views=`` keeps some of it by also caching a
few augmented copies of each training image.

Why this module is long: it is the cache's one entry point and its file format together
(the fingerprint, save and load, and the build with its two decoding paths, its augmented
views seeded image by image and its share of a distributed run); the decoding paths and the
process group's helpers live in ``_tensor_batches`` and ``_distributed``, the rows'
storage (one allocation, and its file) in ``_feature_rows`` and the folder's files in
``_cache_files``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from retinalnet._core.bool_options import check_bool
from retinalnet._core.class_labels import class_labels
from retinalnet._core.classes import check_same_classes
from retinalnet._core.counts import check_count
from retinalnet._core.device import default_num_workers, resolve_device
from retinalnet._core.files import atomic_write
from retinalnet._core.loader_settings import check_batch_size
from retinalnet._core.loaders import BatchedTensorDataset, DataSource, decoded_with, make_loader
from retinalnet._core.model_outputs import class_scores
from retinalnet._core.printable import one_line
from retinalnet._core.progress import progress_bar
from retinalnet._core.seeds import check_seed
from retinalnet._core.value_equality import fields_equal
from retinalnet.datasets._linked_files import real_path
from retinalnet.datasets._readable import readable_for_scoring
from retinalnet.engine import InferenceEngine
from retinalnet.models import Classifier
from retinalnet.models._classifier import network_of
from retinalnet.precision import Precision, resolve_precision
from retinalnet.training._cache_files import (
    CACHE_FILES,
    FORMAT_VERSION,
    cache_folder,
    memory_mapped,
    meta_bytes,
    remove_cache_files,
    write_files,
)
from retinalnet.training._distributed import DistributedContext, current_context
from retinalnet.training._feature_rows import FeatureRows, loader_rows
from retinalnet.training._npy_stream import npy_writer
from retinalnet.training._tensor_batches import file_samples, tensor_batches
from retinalnet.training._unsaved_cache import warn_unsaved
from retinalnet.transforms import Preprocessing

__all__ = [
    "FeatureCache",
    "HeadNotLastError",
    "build_feature_cache",
    "data_fingerprint",
    "memory_mapped",
    "trainable_head",
]

logger = logging.getLogger(__name__)

_IN_USE: set[Path] = set()
"""The cache folders this process wrote or read: not "other" caches in the count of
:func:`_log_other_caches` (a fit writes its training split's cache, then its validation
split's, beside it)."""

Decode = Literal["auto", "pil", "tensor"]
"""How the feature cache reads image files: ``"pil"`` (the model's
:class:`~retinalnet.transforms.Preprocessing` in CPU workers), ``"tensor"`` (workers read
bytes, :class:`~retinalnet.tensor_preprocessing.TensorPreprocessing` decodes and prepares
batches on the device) or ``"auto"`` (``"tensor"`` on a GPU, ``"pil"`` elsewhere)."""


def trainable_head(model: nn.Module) -> tuple[str, nn.Module]:
    """The part that is trained: a :class:`~retinalnet.models.Classifier`'s declared head
    (:meth:`~retinalnet.models.Classifier.head_module`) when its parameters are just the
    trainable ones, else the largest submodule whose parameters are (so a head's
    parameter-free last steps, such as ``LogSoftmax``, are part of it) and that a forward
    can call (not a ``ModuleDict`` or ``ModuleList``, which only hold modules).

    For ``vgg16_transfer()`` that is ``classifier.6``, the new head; for a ResNet,
    ``fc``.

    .. versionchanged:: 0.2
       The declared head first; containers are never taken.

    Returns
    -------
    name : str
        Its dotted name inside the network.
    head : torch.nn.Module
        The module itself.

    Raises
    ------
    ValueError
        If nothing is trainable, or if trainable parameters lie outside one submodule (for
        example ``except_last_blocks=1``): then there is no frozen part to cache.
    """
    network = network_of(model)
    trainable = {id(p) for p in network.parameters() if p.requires_grad}
    if not trainable:
        raise ValueError("the model has no trainable parameters, so there is nothing to train")
    declared = _declared_head(model, trainable)
    if declared is not None:
        return declared
    # the largest submodule whose parameters are exactly the trainable ones: it takes in the
    # parameter-free steps around them (a head's LogSoftmax); parents come before children
    found = next(
        (
            (name, module)
            for name, module in network.named_modules()
            if name
            and not isinstance(module, _CONTAINERS)
            and {id(p) for p in module.parameters()} == trainable
        ),
        None,
    )
    if found is None:
        raise ValueError(
            "the feature cache needs every parameter outside one final head frozen, but "
            "trainable parameters are spread over the network (e.g. except_last_blocks > 0 "
            "or freeze=False); train without the cache, or freeze the backbone"
        )
    return found


_CONTAINERS = (nn.ModuleDict, nn.ModuleList, nn.ParameterDict, nn.ParameterList)
"""Modules that hold others but have no forward: never the head a forward runs."""


def _declared_head(model: nn.Module, trainable: set[int]) -> tuple[str, nn.Module] | None:
    """A Classifier's head (declared, registered or guessed) when its parameters are the
    ``trainable`` ones, widened to its largest enclosing module with the same parameters
    (a ``Sequential(Linear, LogSoftmax)`` around a declared ``Linear``); else ``None``."""
    if not isinstance(model, Classifier):
        return None
    try:
        path, head = model.head_module()
    except (TypeError, AttributeError):  # no nn.Linear to guess; a path gone since
        return None
    if {id(p) for p in head.parameters()} != trainable:
        return None
    parts = path.split(".")
    for end in range(1, len(parts)):  # the outermost first
        outer = ".".join(parts[:end])
        module = model.network.get_submodule(outer)
        if (
            not isinstance(module, _CONTAINERS)
            and {id(p) for p in module.parameters()} == trainable
        ):
            return outer, module
    return path, head


def _frozen_state_digest(model: nn.Module, head_name: str) -> hashlib._Hash:
    digest = hashlib.sha256(f"retinalnet-feature-cache-{FORMAT_VERSION}".encode())
    prefix = f"{head_name}."
    for name, tensor in network_of(model).state_dict().items():
        if name.startswith(prefix):
            continue
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        # hashed in place (no copy of the bytes): about half the time for VGG16's 540 MB;
        # reshape(-1) lets 0-dim tensors (BatchNorm's num_batches_tracked) be viewed as bytes
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy())
    return digest


def preprocessing_key(preprocessing: Preprocessing, views: int) -> str:
    """The part of ``preprocessing`` that cached features depend on, as JSON.

    Without augmented views only the evaluation pipeline runs, so the training augmentation
    changes nothing stored and is left out (with the seed, in the fingerprint): one cache
    serves every augmentation; with views, all of it counts.
    """
    used = preprocessing if views else preprocessing.with_augmentation("none")
    return json.dumps(used.to_dict(), sort_keys=True)


def data_fingerprint(data: Dataset[Any]) -> str:
    """Identify a file-backed data set by its files' real paths, labels (as its
    ``target_transform`` gives them), sizes and times.

    A path counts as the file it names, links followed (:func:`os.path.realpath`): a root
    given as ``base``, ``../base`` (a job started in another folder), an absolute path or
    through a link gives one fingerprint, so one disk cache. A file changed in place (its
    size or modification time), another file put in its place, or a link pointed elsewhere
    gives another.

    Raises
    ------
    TypeError
        If the data set has no ``samples`` list of existing files (a disk cache needs to
        know its files to never serve stale features).
    """
    samples = getattr(data, "samples", None)
    if not isinstance(samples, list) or not samples or not Path(samples[0][0]).is_file():
        raise TypeError(
            f"{type(data).__name__} is not file-backed (no `samples` list of files), so a disk "
            "cache could not tell when it goes stale; use cache_dir=None (in memory)"
        )
    digest = hashlib.sha256()
    real_folders: dict[str, str] = {}  # one realpath a folder, one lstat a file
    # the labels the data set gives, not those of its files: a cache built before another
    # target_transform (3 - t, float) served the old labels, which no check then saw
    relabel = getattr(data, "target_transform", None)
    for path, label in samples:
        target = relabel(label) if callable(relabel) else label
        real = real_path(os.fspath(path), real_folders)
        status = os.stat(real)  # noqa: PTH116 - no Path a file
        # the name's bytes: the same key under every locale (LANG=C decodes 'é' as surrogates)
        digest.update(os.fsencode(real))
        digest.update(f"\0{target}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class FeatureCache:
    """Backbone outputs and targets of a data set, to train or evaluate the head on.

    Attributes
    ----------
    features : torch.Tensor
        ``(rows, feature_size)`` float32; memory-mapped when loaded from disk.
    targets : torch.Tensor
        ``(rows,)`` class indices.
    head_name : str
        The module the features feed (see :func:`trainable_head`).
    fingerprint : str
        Hash of the frozen weights, the preprocessing, the data and the views.
    views : int
        Augmented copies per image stored after the plain rows (0: none).
    """

    features: torch.Tensor
    targets: torch.Tensor
    head_name: str
    fingerprint: str
    views: int = 0

    def __eq__(self, other: object) -> bool:
        return fields_equal(self, other)

    __hash__ = None  # type: ignore[assignment]  # holds tensors

    def dataset(self, device: str | torch.device | None = None) -> TensorDataset:
        """``(feature, target)`` pairs, for a DataLoader or :meth:`Trainer.fit`.

        Parameters
        ----------
        device
            Where to keep the pairs; on a GPU, training batches need no copy from the
            host. ``None`` (default) keeps them where they are (memory-mapped from disk for
            a disk cache).

        A DataLoader made by retinalnet reads a batch of rows in one indexing call, not one
        row at a time.
        """
        features, targets = self.features, self.targets
        if device is not None:
            features, targets = features.to(device), targets.to(device)
        return BatchedTensorDataset(features, targets)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``features.npy``, ``targets.npy`` and, last, ``meta.json`` into ``folder``.

        Each file is written whole or not at all (to a temporary file beside it, renamed into
        place), and ``meta.json``, which marks the cache complete for :meth:`load`, is removed
        first and written last: a reader never takes a half-written cache for a complete one.

        Returns
        -------
        pathlib.Path
            The folder.

        Raises
        ------
        OSError
            If the disk refuses a write (a full disk, no permission, a read-only file system):
            a :class:`~retinalnet._core.files.FileWriteError` naming the file and the cause
            for a file, the plain ``OSError`` for the folder. The cache files in ``folder``
            are removed first (none of them could be read without ``meta.json``), and
            ``folder`` too if this call made it and it is left empty.
        """
        out = Path(folder)
        meta = meta_bytes(self.fingerprint, self.head_name, self.views)
        made = not out.exists()
        features = self.features.numpy()
        try:
            write_files(
                out, meta, lambda path: atomic_write(path, npy_writer(features)), self.targets
            )
        except OSError:
            remove_cache_files(out, folder_too=made)
            raise
        return out

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        *,
        fingerprint: str,
        num_classes: int | None = None,
    ) -> FeatureCache | None:
        """The cache in ``folder`` if it is complete and has ``fingerprint``; else ``None``.

        A folder whose arrays are missing or cut short (a copy or a disk cleanup), or whose
        ``targets.npy`` holds something else than class indices of ``num_classes`` classes
        (a label the model has none for, floats), is a miss too, with a warning naming the
        file: the caller rebuilds it, as Lightning and fastai treat a bad cache.

        .. versionchanged:: 0.2
           ``num_classes``: the targets are checked.
        """
        path = Path(folder)
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if meta.get("format_version") != FORMAT_VERSION or meta.get("fingerprint") != fingerprint:
            return None
        try:
            features = np.load(path / "features.npy", mmap_mode="c")  # copy-on-write
            targets = np.load(path / "targets.npy")
        except (OSError, ValueError, EOFError) as error:  # missing, cut short
            logger.warning(
                "feature cache %s is damaged (%s); it is rebuilt", path, one_line(str(error))
            )
            return None
        if len(features) != len(targets):
            logger.warning(
                "feature cache %s is damaged (%d feature rows, %d targets); it is rebuilt",
                path,
                len(features),
                len(targets),
            )
            return None
        damage = _damaged_targets(targets, num_classes)
        if damage is not None:
            logger.warning(
                "feature cache %s is damaged (its targets.npy holds %s); it is rebuilt",
                path,
                damage,
            )
            return None
        _IN_USE.add(_resolved(path))
        return cls(
            features=torch.from_numpy(features),
            targets=torch.from_numpy(targets),
            head_name=str(meta["head_name"]),
            fingerprint=fingerprint,
            views=int(meta["views"]),
        )


def _damaged_targets(targets: np.ndarray[Any, Any], num_classes: int | None) -> str | None:
    """What is wrong with a cache's targets read from disk (``"label 9 at row 3, but the
    model has 4 classes"``), or ``None``: integer class indices, one per row, of
    ``num_classes`` classes (any integers when it is ``None``)."""
    if targets.ndim != 1 or targets.dtype.kind not in "iu":
        return f"an array of {targets.dtype} of shape {targets.shape}, not class indices"
    if num_classes is None or not len(targets):
        return None
    outside = np.flatnonzero((targets < 0) | (targets >= num_classes))
    if not len(outside):
        return None
    row = int(outside[0])
    return (
        f"label {int(targets[row])} at row {row}, but the model has {num_classes} classes "
        f"(labels 0 to {num_classes - 1})"
    )


def _resolved(folder: Path) -> Path:
    """``folder`` as an absolute path without links (as given where it cannot be read)."""
    try:
        return folder.resolve()
    except OSError:
        return folder.absolute()


def _save_built(rows: FeatureRows, folder: Path, meta: bytes) -> None:
    """Make the file ``rows`` filled ``folder``'s cache, with its targets and ``meta``.

    Where the disk refuses (a full disk, a read-only or foreign folder), the cache's files
    are removed and a warning given once: the run uses the features in memory all the same
    and builds them again next time.
    """
    try:
        write_files(folder, meta, rows.publish, rows.targets())
    except BaseException as error:
        remove_cache_files(folder, folder_too=False)
        rows.discard()  # and the folder, if made for it
        if not isinstance(error, OSError):
            raise
        warn_unsaved(folder, error)
        return
    logger.info("wrote %d cached feature rows to %s", rows.end, folder)
    _IN_USE.add(_resolved(folder))
    _log_other_caches(folder)


def _log_other_caches(folder: Path) -> None:
    """Log, at INFO, how many other caches ``folder``'s parent holds and their total size.

    Each change to the files (one added or removed, a copy that did not keep the times)
    gives a new fingerprint, so a new full copy beside the old ones. They are not removed
    here: another run, on other data or another model, may be reading them. The caches this
    process wrote or read are not counted: a fit's training and validation caches sit side
    by side, and a scratch folder (``retinalnet train --feature-cache`` without a folder)
    holds only this run's.
    """
    others: list[Path] = []
    with contextlib.suppress(OSError):  # an unlistable folder: nothing to say
        others = [
            entry
            for entry in folder.parent.iterdir()
            if entry != folder and _iscache_folder(entry) and _resolved(entry) not in _IN_USE
        ]
    if not others:
        return
    size = 0
    for other in others:
        for name in CACHE_FILES:
            with contextlib.suppress(OSError):
                size += (other / name).stat().st_size
    logger.info(
        "the feature cache folder %s holds %d other cache(s) besides %s (%s in all): "
        "each change to the data's files (one added or removed, a copy that did not keep "
        "the modification times), the model or the settings gives a new one, and none is "
        "removed automatically, since another run may be using it; delete the ones you "
        "no longer use",
        folder.parent,
        len(others),
        folder.name,
        _readable_size(size),
    )


def _iscache_folder(path: Path) -> bool:
    """Whether ``path`` is a cache folder (a fingerprint's 24 hex digits, holding cache files)."""
    name = path.name
    if len(name) != 24 or any(char not in "0123456789abcdef" for char in name):
        return False
    return path.is_dir() and any((path / file).is_file() for file in CACHE_FILES)


def _readable_size(size: int) -> str:
    """``size`` bytes as ``"0.5 kB"``, ``"12.3 MB"`` or ``"1.4 GB"``."""
    if size >= 10**9:
        return f"{size / 1e9:.1f} GB"
    if size >= 10**6:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e3:.1f} kB"


def _extract(
    engine: InferenceEngine,
    head: nn.Module,
    num_classes: int,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    total: int,
    description: str,
    progress: bool,
    *,
    into: FeatureRows,
    at: int,
    first_row: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Put the features and targets of ``batches`` (in data order, from the data's image
    ``first_row``) into ``into``'s rows from ``at`` on, batch by batch; the rows written
    (views). Each batch's labels are checked as they come, so a label the model has no
    class for stops the build at its batch, naming the image, not after the pass."""
    shown = progress_bar(batches, total=total, description=description, enabled=progress)
    row, place = first_row, at
    for step, (inputs, batch_targets) in enumerate(shown):
        on_host = batch_targets.cpu() if isinstance(batch_targets, torch.Tensor) else batch_targets
        labels = class_labels(on_host, num_classes, where="the feature cache", first_row=row)
        row += len(labels)
        if step == 0:  # the head on the features, as the engine runs it, gives the outputs
            batch_features = _first_batch_features(engine, head, inputs, num_classes)
        else:
            batch_features, _ = engine.features(inputs, head)
        into.put(place, batch_features, labels)
        place += len(labels)
    return into.rows(at, place)


class HeadNotLastError(ValueError):
    """The trainable head is not the last step of the model's forward, or cannot run alone
    on the features before it (a module the forward never calls, a middle stage), so
    features before it cannot stand in for the model (raised on the first batch of a cache
    build; ``feature_cache="auto"`` then trains without the cache)."""


def _first_batch_features(
    engine: InferenceEngine, head: nn.Module, inputs: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """The first batch's features, once the model's outputs proved class scores (see
    :func:`~retinalnet._core.model_outputs.class_scores`) and the head alone on the
    features gave them.

    Raises
    ------
    HeadNotLastError
        If the head's outputs differ, or the head cannot stand alone: it does not run once
        in the model's forward (a module the forward never calls), or fails on the
        flattened features (a convolution).
    TypeError, ValueError
        If the model's outputs are no class scores; the model's own errors as they are.
    """
    finished: list[bool] = []  # whether the model's forward returned
    handle = engine.model.register_forward_hook(lambda *_: finished.append(True))
    try:
        batch_features, outputs = engine.features(inputs, head)
    except Exception as error:
        if not finished:  # the model failed by itself: its own error
            raise
        raise _head_cannot_stand_alone(head, error) from error
    finally:
        handle.remove()
    class_scores(outputs, num_classes, model_name=type(network_of(engine.model)).__name__)
    try:
        head_engine = InferenceEngine(head, device=engine.device, precision=engine.precision)
        head_outputs = head_engine.outputs(batch_features)
        _check_head_is_last(head_outputs, outputs, exact=engine.dtype is None)
    except (HeadNotLastError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as error:
        raise _head_cannot_stand_alone(head, error) from error
    return batch_features


def _head_cannot_stand_alone(head: nn.Module, error: Exception) -> HeadNotLastError:
    text = str(error).strip()
    cause = f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
    return HeadNotLastError(
        f"the trainable part {type(head).__name__} cannot be run alone on the features "
        f"before it ({cause}), so features before it cannot stand in for the model; train "
        "without the feature cache (feature_cache=False), or freeze all but the network's "
        "last layer"
    )


def _check_head_is_last(head_outputs: torch.Tensor, outputs: torch.Tensor, *, exact: bool) -> None:
    tolerance = 1e-4 if exact else 5e-2  # bf16/fp16 autocast rounds the head's inputs too
    if not torch.allclose(head_outputs.float(), outputs.float(), atol=tolerance, rtol=tolerance):
        raise HeadNotLastError(
            "the trainable head is not the last step of the model's forward (its output "
            "differs from the model's), so features before it cannot stand in for the model; "
            "train without the feature cache (feature_cache=False), or end the head module "
            "with what the forward does after it (nn.LogSoftmax(dim=1) in place of "
            "F.log_softmax)"
        )


def build_feature_cache(
    model: Classifier,
    data: DataSource,
    *,
    views: int = 0,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device = "auto",
    precision: Precision = "auto",
    progress: bool = True,
    decode: Literal["auto", "pil", "tensor"] = "auto",
    shard: bool = False,
) -> FeatureCache:
    """Run the frozen part of ``model`` once over ``data`` and keep what the head receives.

    Parameters
    ----------
    model
        A Classifier whose parameters are all frozen except one final head (the default
        :func:`~retinalnet.vgg16_transfer`).
    data
        A data set yielding PIL images, which get the model's evaluation preprocessing (give
        it no ``transform`` of its own: a random one would make the cache random), or
        prepared tensors, or a DataLoader.
    views
        Also store this many augmented copies of each image (the model's training
        preprocessing, seeded by ``seed``); they follow the plain rows.
    seed
        Seeds the augmented views, an int from 0 to 2**32 - 1: view ``v`` of image ``i``
        draws its augmentation from torch's generator seeded from ``(seed, v, i)``, so the
        same seed gives the same views whatever ``num_workers`` and, with ``shard``, however
        many processes share the work.

        .. versionchanged:: 0.2
           Seeded per image; the views drawn before depended on the number of workers.
    cache_dir
        Keep the cache on disk under ``cache_dir/<fingerprint>/`` (memory-mapped when read
        back) and reuse it in later runs. The fingerprint covers the frozen weights, the
        preprocessing, the files (real paths, sizes, modification times) and ``views`` (with
        views, also the training augmentation and ``seed``; without, one cache serves every
        seed and augmentation), so a stale cache is never used. ``None``: in memory only.
        The features go into a file there as they come (``.features.npy.<8 characters>.tmp``,
        filled with zeros at the first batch, so a full disk shows then), renamed
        ``features.npy`` once whole; ``meta.json`` (which marks the cache complete) is
        written last. A build interrupted, or a cache that cannot be saved (a full disk),
        leaves no file behind.
        Any change to the files gives a new folder beside the old ones, which are never
        removed: after writing one, the others ``cache_dir`` holds are counted, with their
        size, in an INFO log line.
    batch_size, num_workers, device, progress
        How the backbone is run (``num_workers=None``: by device, none on a CPU and up to 8
        with a GPU).
    precision
        ``"auto"`` (bf16 autocast on GPUs and on CPUs with native bf16, where it is several
        times faster; fp32 elsewhere), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (GPU). The
        features are stored as fp32 either way. Part of the fingerprint.
    decode
        How image files are decoded and prepared: ``"pil"`` (the model's preprocessing,
        image by image), ``"tensor"`` (batches decoded and prepared as tensors on the device,
        within :data:`~retinalnet.tensor_preprocessing.TOLERANCE` of PIL; for data sets of
        files, such as :class:`~retinalnet.datasets.KermanyOCT`), or ``"auto"``: the tensor
        path on a CUDA device, PIL elsewhere (docs page "Performance"). Part of the
        fingerprint.
    shard
        In a process group already started (``torchrun``), each process computes its share
        of the images and the rows are gathered, so every process gets the whole cache;
        ``False`` (the default): each process computes every row itself. A DataLoader, or
        fewer images than processes, is never shared out.

    Returns
    -------
    FeatureCache
        One row per image (and view); a :class:`~retinalnet.datasets.KermanyOCT` with
        ``on_error="skip"`` has its unreadable images left out (each image is decoded once
        first; those left out are logged as a warning naming them), never replaced by the
        next readable one, so a cache of validation data scores each image once.

    Raises
    ------
    ValueError
        If ``views``, ``seed``, ``batch_size`` or ``decode`` is out of range, the data's
        classes are not the model's (name and order), no image of ``data`` can be read, or
        ``data`` is a DataLoader (or a ``Subset``) over a ``KermanyOCT(on_error="skip")``,
        whose unreadable images could not be left out: pass the data set itself. On the
        first batch: a :class:`HeadNotLastError` when the head cannot stand in for the
        model's last step, or the model's outputs are no class scores (see
        :func:`~retinalnet._core.model_outputs.class_scores`).
    TypeError
        If a disk cache is asked for data that is not file-backed, or ``decode="tensor"``
        for data the tensor path cannot read; or the model returns a tuple or a dict.
    NotADirectoryError, PermissionError
        If ``cache_dir`` is a file or cannot be written: checked before the backbone runs.

    Warns
    -----
    UserWarning
        If the cache cannot be saved in ``cache_dir`` (a full disk, found at the first batch
        or at the end): once, naming the folder, the cause and the fix; the features in
        memory are returned all the same.

    Notes
    -----
    The cache takes ``(views + 1) * len(data) * feature_width * 4`` bytes, in memory and on
    disk (1.37 GB a pass for frozen VGG16 over OCT2017's 83,484 training images). It is
    allocated once, when the first batch gives the feature width, and filled in place.

    Examples
    --------
    >>> from retinalnet import KermanyOCT, vgg16_transfer
    >>> from retinalnet.training import build_feature_cache
    >>> model = vgg16_transfer()  # doctest: +SKIP
    >>> cache = build_feature_cache(model, KermanyOCT("OCT2017", "train"))  # doctest: +SKIP
    >>> cache.features.shape  # doctest: +SKIP
    torch.Size([83484, 4096])
    """
    views = check_count(views, "views", low=0)
    progress, shard = check_bool(progress, "progress"), check_bool(shard, "shard")
    seed = check_seed(seed, allow_none=False)  # an int: torch's generators refuse NumPy's
    check_batch_size(batch_size)
    # its targets are the data's indices: another class list would cache them under the
    # model's other names (a CNV-NORMAL study's NORMAL as DME), as evaluate and fit refuse
    check_same_classes(model.classes, data, where="build_feature_cache")
    if decode not in ("auto", "pil", "tensor"):
        raise ValueError(f"decode must be 'auto', 'pil' or 'tensor', got {decode!r}")
    head_name, head = trainable_head(model)
    target_device = resolve_device(device)
    data, _ = readable_for_scoring(
        data,
        model.preprocessing.load,
        where="build_feature_cache()",
        progress=progress,
        num_workers=default_num_workers(target_device, num_workers),
    )
    digest = _frozen_state_digest(model, head_name)
    digest.update(preprocessing_key(model.preprocessing, views).encode())
    dtype = resolve_precision(precision, target_device)
    samples = _tensor_path_samples(model, data, decode, target_device)
    if samples is not None:  # its numbers differ from PIL's within a tolerance
        digest.update(b"decode=tensor ")
    digest.update(f"views={views} seed={seed if views else 0} dtype={dtype}".encode())
    if views:  # seeded per image, not by worker as before: a folder of the old ones is not reused
        digest.update(b" views seeded per image")
    folder: Path | None = None
    if cache_dir is not None:
        if isinstance(data, DataLoader):
            raise TypeError("a disk cache needs the data set itself, not a DataLoader")
        digest.update(data_fingerprint(data).encode())
        fingerprint = digest.hexdigest()
        folder = cache_folder(cache_dir, fingerprint)
        cached = FeatureCache.load(folder, fingerprint=fingerprint, num_classes=model.num_classes)
        if cached is not None:
            logger.info("using cached features from %s", folder)
            return cached
        from retinalnet._core.folders import check_folder  # before the pass, not at the save

        check_folder(
            cache_dir,
            name="cache_dir",
            fix="pass a folder that can be written, or cache_dir=None to keep them in memory",
        )
    else:
        fingerprint = digest.hexdigest()

    engine = InferenceEngine(model, device=target_device, precision=precision)
    context = current_context(target_device) if shard else DistributedContext()
    if isinstance(data, DataLoader) or len(data) < context.world_size:  # type: ignore[arg-type]
        context = DistributedContext()  # nothing to share out: every process runs it all
    workers = default_num_workers(target_device, num_workers)
    passes: list[tuple[str, Any]] = [("features", model.preprocessing.eval_transform())]
    passes += [
        (f"view {i + 1}/{views}", model.preprocessing.train_transform()) for i in range(views)
    ]
    length = len(samples) if samples is not None else len(data)  # type: ignore[arg-type]
    rows = FeatureRows(  # allocated at once, filled in place: no second copy at the end
        len(passes) * (loader_rows(data) if isinstance(data, DataLoader) else length),
        folder=folder if context.is_main else None,  # only rank 0 writes the cache
        grow=isinstance(data, DataLoader),
        refused=None if folder is None else partial(warn_unsaved, folder),
    )
    try:
        with _own_random_state(seed + context.rank):  # a DataLoader of the caller's draws from it
            for index, (description, transform) in enumerate(passes):
                first = rows.end  # this pass's first row
                batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
                if index == 0 and samples is not None:
                    share = context.share(len(samples))
                    start = share.start
                    batches, total = tensor_batches(
                        samples[share.start : share.stop],
                        model.preprocessing,
                        device=target_device,
                        batch_size=batch_size,
                        num_workers=workers,
                    )
                else:
                    shared, start = data, 0
                    if context.enabled and isinstance(data, Dataset):
                        # the model's decoding first: a Subset has no `with_loader` to take it
                        decoded = decoded_with(data, model.preprocessing.load)
                        share = context.share(len(data))  # type: ignore[arg-type]
                        shared, start = Subset(decoded, share), share.start
                    loader = make_loader(
                        shared,
                        batch_size=batch_size,
                        shuffle=False,
                        transform=transform,
                        decode=model.preprocessing.load,
                        num_workers=workers,
                        pin_memory=target_device.type == "cuda",
                    )
                    if index > 0:  # a view: each image's draws seeded by itself
                        loader = _seeded_views(loader, shared, seed=seed, view=index, start=start)
                    batches, total = loader, len(loader)
                written = _extract(
                    engine,
                    head,
                    model.num_classes,
                    batches,
                    total,
                    description,
                    progress,
                    into=rows,
                    at=first + start,
                    first_row=start,
                )
                if context.enabled:  # every process's share, in every process
                    rows.put(first, *(context.gather_rows(part, length) for part in written))
    except BaseException:
        rows.discard()  # an interrupted build leaves no file behind
        raise
    if folder is not None:
        if rows.on_disk:  # rank 0, and the folder took the file
            _save_built(rows, folder, meta_bytes(fingerprint, head_name, views))
        elif context.is_main:  # the disk refused it: a damaged cache there is not left (a
            remove_cache_files(folder, folder_too=False)  # fit would read it back)
        context.barrier()  # the others return once it is on disk (or given up)
    return FeatureCache(
        features=rows.features(),
        targets=rows.targets(),
        head_name=head_name,
        fingerprint=fingerprint,
        views=views,
    )


class _SeededViews(Dataset[Any]):
    """The items of ``dataset`` (a pass of augmented views: reading, decoding, the training
    augmentation), each drawn with torch's CPU generator seeded from ``(seed, view, start +
    index)``: an image's view depends on the seed, the view and the image's place in the
    data, never on which worker process reads it, how many there are, or in what order.

    torchvision's transforms, and the model's own, draw from torch's global generator; it is
    forked for each item, so the process's own state is given back afterwards.
    """

    def __init__(self, dataset: Dataset[Any], *, seed: int, view: int, start: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.view = view
        self.start = start

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(
                _view_seed(self.seed, self.view, self.start + index)
            )
            return self.dataset[index]


def _view_seed(seed: int, view: int, index: int) -> int:
    """The seed of image ``index``'s ``view``: NumPy's ``SeedSequence`` mixes the three, so
    neighbouring images and views get unrelated streams."""
    state = np.random.SeedSequence((int(seed), view, index)).generate_state(1, np.uint64)
    return int(state[0])


def _seeded_views(
    loader: DataLoader[Any], data: DataSource, *, seed: int, view: int, start: int
) -> DataLoader[Any]:
    """``loader`` (made by ``make_loader`` from ``data``) with each item drawn by
    :class:`_SeededViews`; the caller's own DataLoader is kept as it is (its draws come from
    the state :func:`_own_random_state` sets), and so are tensors already in memory (nothing
    is drawn for them)."""
    if loader is data or isinstance(loader.dataset, BatchedTensorDataset):
        return loader
    seeded = _SeededViews(loader.dataset, seed=seed, view=view, start=start)
    return make_loader(  # its items are the prepared inputs: no transform left to apply
        seeded,
        batch_size=loader.batch_size or 1,
        shuffle=False,
        transform=None,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        checked=True,  # make_loader looked at these items: not one more draw and decode
    )


@contextlib.contextmanager
def _own_random_state(seed: int) -> Iterator[None]:
    """Seed torch's generators for the block, and give the caller's back afterwards: the
    CPU generator's and, where CUDA is started, every GPU's. On a machine where CUDA is not
    started only the CPU generator is seeded: ``torch.manual_seed`` would queue a seeding of
    the GPUs for when CUDA starts, replacing the caller's own seed (``seed=None`` too)."""
    devices = list(range(torch.cuda.device_count())) if _cuda_started() else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if devices:  # started: seeded now, not queued
            torch.cuda.manual_seed_all(seed)
        yield


def _cuda_started() -> bool:
    started: bool = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    return started


def _tensor_path_samples(
    model: Classifier, data: DataSource, decode: Decode, device: torch.device
) -> list[tuple[str, int]] | None:
    """The files to read by the tensor path, or ``None`` for the PIL path.

    Raises
    ------
    TypeError
        If ``decode="tensor"`` and ``data`` is not a data set of files the tensor path can
        read by itself.
    """
    if decode == "pil" or (decode == "auto" and device.type != "cuda"):
        return None
    if model.preprocessing.reduced_decode:  # libjpeg's reduced scale: PIL only
        return None
    samples = file_samples(data)
    if samples is None and decode == "tensor":
        raise TypeError(
            f"decode='tensor' reads image files itself, but {type(data).__name__} is not a "
            "data set of image files read with the default loader and no transform of its "
            "own (like KermanyOCT); pass decode='pil' (or 'auto')"
        )
    return samples
