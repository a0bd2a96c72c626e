"""Resolving pretrained weights for any registered architecture.

One resolver for every :class:`~retinalnet.models.ModelSpec`: a torchvision weights enum
member or its name (downloaded once, then cached by torchvision), ``"DEFAULT"``, a local
state-dict file (offline sites), or ``None`` for random initialisation.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import tempfile
import urllib.error
from pathlib import Path
from typing import TypeAlias

import torch
from torch import nn
from torchvision.models import VGG, VGG16_Weights, WeightsEnum

from retinalnet._core.bool_options import check_bool
from retinalnet._core.regular_files import check_regular_file
from retinalnet._core.torch_load import torch_load_reason
from retinalnet.models._builder_options import build_network, check_options
from retinalnet.models._registry import ModelSpec, model_spec
from retinalnet.models._weights_file import load_file, read_state_dict, weights_label

logger = logging.getLogger(__name__)

__all__ = [
    "WeightsArg",
    "WeightsUnavailableError",
    "cached_weights_path",
    "load_network",
    "load_vgg16",
    "read_state_dict",
    "resolve_weights",
]

WeightsArg: TypeAlias = "WeightsEnum | str | os.PathLike[str] | None"
"""The accepted ``weights=`` values: a torchvision weights enum member, its name
(``"IMAGENET1K_V1"``, ``"DEFAULT"``), a local state-dict file, or ``None`` for random
initialisation."""


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could neither be found locally nor downloaded."""


def _spec(arch: str | ModelSpec) -> ModelSpec:
    return arch if isinstance(arch, ModelSpec) else model_spec(arch)


def cached_weights_path(
    weights: WeightsEnum | str = VGG16_Weights.IMAGENET1K_V1,
) -> Path:
    """Where torchvision keeps (or would keep) the downloaded file for ``weights``.

    ``$TORCH_HOME/hub/checkpoints/<file name of weights.url>``, by default under
    ``~/.cache/torch``. Copying the file there on an offline machine makes
    ``weights="DEFAULT"`` work without a network.

    Parameters
    ----------
    weights
        A torchvision weights enum member, or a registered architecture name for its
        default weights. VGG16's ImageNet weights by default (0.1 behaviour).

        .. versionchanged:: 0.2
           Any weights enum member, or an architecture name.

    Raises
    ------
    ValueError
        If the architecture is unknown or has no pretrained weights.

    Examples
    --------
    >>> from retinalnet.models import cached_weights_path
    >>> cached_weights_path("resnet18").name
    'resnet18-f37072fd.pth'
    """
    if isinstance(weights, str):
        spec = model_spec(weights)
        default = spec.default_weights
        if default is None:
            raise ValueError(f"{spec.name} has no pretrained weights, so nothing is cached")
        weights = default
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _download(weights: WeightsEnum, cached: Path, *, progress: bool) -> None:
    """Download ``weights``' file to torch's cache as torchvision does on first use (its
    hash checked; written whole or not at all), then torchvision finds it there.

    torchvision's own download announces itself on stdout, where a command's results go;
    swapping ``sys.stdout`` around it took the prints of every thread of the process (a host's
    service) for as long as the download ran. Here the notice is a log line, and torch's
    progress bar goes to stderr."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    hashed = torch.hub.HASH_REGEX.search(cached.name)
    logger.info("downloading %s to %s", weights.url, cached)
    torch.hub.download_url_to_file(
        weights.url, str(cached), hashed.group(1) if hashed else None, progress=progress
    )


def _offline_help(weights: WeightsEnum) -> str:
    return (
        f"on a machine with internet, download {weights.url} and either copy it to "
        f"{cached_weights_path(weights)} or pass weights='/path/to/{Path(weights.url).name}'; "
        "weights=None trains from random initialisation (much worse for transfer learning)"
    )


def _usable_names(spec: ModelSpec) -> list[str]:
    if spec.weights is None:
        return []
    members = spec.weights.__members__
    return [name for name, w in members.items() if w.meta.get("categories") is not None]


def _check_usable(spec: ModelSpec, weights: WeightsEnum) -> WeightsEnum:
    if spec.weights is None or not isinstance(weights, spec.weights):
        expected = "None or a state-dict file" if spec.weights is None else spec.weights.__name__
        raise TypeError(
            f"{spec.name} takes {expected}, got {type(weights).__name__}.{weights.name}"
        )
    if weights.meta.get("categories") is None:
        raise ValueError(
            f"{spec.weights.__name__}.{weights.name} holds backbone features only: the layers "
            f"{spec.name} keeps before its head are not trained with it; use "
            f"weights='DEFAULT' ({spec.weights.DEFAULT.name})"
        )
    return weights


def resolve_weights(
    weights: WeightsArg, arch: str | ModelSpec = "vgg16_transfer"
) -> WeightsEnum | Path | None:
    """Turn a ``weights=`` argument into the enum member, a file path, or ``None``.

    Parameters
    ----------
    weights
        See :data:`WeightsArg`. ``"DEFAULT"`` is ``None`` for an architecture without
        pretrained weights (``small_cnn``).
    arch
        Registered architecture name or spec (VGG16 by default, as in 0.1).

    Raises
    ------
    FileNotFoundError
        If ``weights`` looks like a path but no such file exists.
    IsADirectoryError
        If ``weights`` is a folder.
    ValueError
        If ``weights`` is a string that is neither a weights name of ``arch`` nor a file,
        or names features-only weights.
    TypeError
        If ``weights`` is of another type, or a member of another architecture's enum.
    """
    spec = _spec(arch)
    if weights is None:
        return None
    if isinstance(weights, WeightsEnum):
        return _check_usable(spec, weights)
    if isinstance(weights, os.PathLike):
        path = Path(weights)
    elif isinstance(weights, str):
        prefix = f"{spec.weights.__name__}." if spec.weights is not None else ""
        name = weights.removeprefix(prefix) if prefix else weights
        if spec.weights is None and name == "DEFAULT":
            return None
        if spec.weights is not None and name in spec.weights.__members__:
            return _check_usable(spec, spec.weights[name])
        path = Path(weights).expanduser()
        looks_like_path = path.suffix or os.sep in weights or "/" in weights
        if name != weights or (not path.exists() and not looks_like_path):
            if spec.weights is None:
                raise ValueError(
                    f"weights={weights!r}: {spec.name} has no pretrained weights and this is "
                    "no existing file; pass None, 'DEFAULT' (both random initialisation) or "
                    "the path of a state-dict file"
                )
            raise ValueError(
                f"weights={weights!r} is neither a {weights_label(spec)} weights name "
                f"({', '.join(sorted(_usable_names(spec)))}) nor an existing file; pass a "
                "name, a path to a state-dict file, or None"
            )
    else:
        member = "" if spec.weights is None else f"a {spec.weights.__name__} member, its name, "
        raise TypeError(
            f"weights must be {member}a file path or None, got {type(weights).__name__}"
        )
    if path.is_dir():
        example = "" if spec.default_weights is None else Path(spec.default_weights.url).name
        raise IsADirectoryError(
            f"weights={str(path)!r} is a folder; pass the state-dict file inside it, e.g. "
            f"{str(path / (example or 'weights.pth'))!r}"
        )
    check_regular_file(path)  # a named pipe or a device: refused, not "does not exist"
    if not path.is_file():
        default = spec.default_weights
        help_text = (
            _offline_help(default)
            if default is not None
            else f"pass a state dict saved from a {spec.name} network"
        )
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist; {help_text}")
    return path


def load_network(
    arch: str | ModelSpec, weights: WeightsArg, *, progress: bool = True, **options: object
) -> nn.Module:
    """Build an architecture's network, with its original head, and the given weights.

    A local file must hold the network's state dict; the entries of the declared head
    (``spec.head``) may be missing or of any size, since the head is replaced anyway. It is
    read as torch and torchvision read it: torchvision's released key names (DenseNet's
    ``norm.1``, ViT's ``mlp.linear_1``) and missing ``num_batches_tracked`` entries (files
    saved before torch 0.4.1) are accepted; so are a training tool's checkpoint holding the
    state dict (Lightning's ``{"state_dict": ...}``, timm's ``{"model": ...}``) and a prefix
    every key has (``module.`` from DistributedDataParallel), each said in an info log line.

    .. versionchanged:: 0.2
       Accepts the layouts above, and warns when the file's head was trained for another
       task (other outputs than the original head's), since only its backbone is loaded.

    Parameters
    ----------
    arch
        Registered name or spec.
    weights
        See :func:`resolve_weights`.
    progress
        Show a download progress bar.
    **options
        Passed on to the spec's builder.

    Raises
    ------
    WeightsUnavailableError
        If the weights must be downloaded and the download fails, or torch's cache folder
        (``$TORCH_HOME/hub/checkpoints``) cannot be written (read-only, a file in its place,
        a full disk; said before any download); the message says how to use a local file
        instead.
    ValueError
        If a local file is not a state dict of this network.
    TypeError
        If ``options`` holds one that the builder (or the network class it passes its
        options to) does not take; the message names the options it takes.

    Warns
    -----
    UserWarning
        If a local file's head has other outputs than the original head (a network
        fine-tuned for some task): its trained head is not loaded, and the message says how
        to use the whole network (:class:`~retinalnet.models.Classifier`).
    """
    spec = _spec(arch)
    check_options(spec, options)  # before anything is downloaded
    resolved = resolve_weights(weights, spec)
    if not isinstance(resolved, WeightsEnum):
        network = build_network(spec, weights=None, progress=progress, options=options)
        if isinstance(resolved, Path):
            load_file(network, resolved, spec)
        return network
    cached = cached_weights_path(resolved)
    was_cached = cached.is_file()
    if not was_cached:
        _check_cache_folder(cached.parent, resolved, spec)
    try:
        if not was_cached:
            _download(resolved, cached, progress=progress)
        return build_network(spec, weights=resolved, progress=progress, options=options)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        label = weights_label(spec)
        reason = torch_load_reason(error)  # one line, without torch's advice to load unsafely
        if was_cached:
            raise WeightsUnavailableError(
                f"the cached {label} weights {str(cached)!r} cannot be loaded ({reason}); the "
                "file is probably incomplete or corrupt: delete it to download it again, or "
                + _offline_help(resolved)
            ) from error
        if isinstance(error, OSError) and _cache_fault(error, cached.parent):
            raise _cache_error(cached.parent, resolved, spec, error, "was stopped") from error
        raise WeightsUnavailableError(
            f"cannot download {label} weights {resolved.name} ({reason}); "
            + _offline_help(resolved)
        ) from error


# what writing into the cache folder may fail with, and a network never does
_DISK_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS) if code is not None
)


def _check_cache_folder(folder: Path, weights: WeightsEnum, spec: ModelSpec) -> None:
    """Make torch's checkpoint folder and write a file in it, as its download will, so that a
    folder that cannot be written is said before anything is downloaded."""
    try:
        folder.mkdir(parents=True, exist_ok=True)  # what torch.hub does first (os.makedirs)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise _cache_error(folder, weights, spec, error, "was not tried") from error


def _cache_fault(error: OSError, folder: Path) -> bool:
    """Whether ``error`` came from writing the cache folder (a full disk, a read-only file
    system, a file there), not from the network."""
    if isinstance(error, urllib.error.URLError):  # its filename is the URL, for HTTPError
        return False
    if error.errno in _DISK_ERRNOS:
        return True
    if error.filename is None or isinstance(error.filename, int):
        return False
    written, folder = Path(os.fsdecode(error.filename)).absolute(), folder.absolute()
    return written == folder or folder in written.parents or written in folder.parents


def _cache_error(
    folder: Path, weights: WeightsEnum, spec: ModelSpec, error: OSError, download: str
) -> WeightsUnavailableError:
    """The error for a cache folder torch cannot keep a download in: the folder, the reason
    and the two ways on."""
    file_name = Path(weights.url).name
    return WeightsUnavailableError(
        f"cannot keep {weights_label(spec)} weights {weights.name} in torch's cache folder "
        f"{str(folder)!r}: {_folder_reason(folder, error)} (the download {download}); set "
        "TORCH_HOME to a writable folder (torch keeps downloads in $TORCH_HOME/hub/"
        f"checkpoints), or download {weights.url} on a machine with internet and pass "
        f"weights='/path/to/{file_name}'"
    )


def _folder_reason(folder: Path, error: OSError) -> str:
    """Why ``folder`` cannot be written, in the OS's words, naming a file that stands where
    a folder should be."""
    for place in (folder, *folder.parents):
        if place.exists() or place.is_symlink():
            if place.is_symlink() and not place.exists():
                return f"{str(place)!r} is a broken symbolic link"
            if not place.is_dir():
                return f"{str(place)!r} is a file, not a folder"
            break
    words = error.strerror or type(error).__name__
    if error.filename is None or isinstance(error.filename, int):
        return words
    written = Path(os.fsdecode(error.filename))
    if written.parent == folder:  # a file of the folder's own (the test file), not the folder
        return words
    return f"{words}: {str(written)!r}"


def load_vgg16(weights: WeightsArg, *, progress: bool = True) -> VGG:
    """Build torchvision's VGG16 with the given weights (its 1000-class layer kept).

    Same as ``load_network("vgg16_transfer", weights)``.

    Raises
    ------
    WeightsUnavailableError
        If the weights must be downloaded and the download fails, or torch's cache folder
        cannot be written.
    ValueError
        If a local file is not a VGG16 state dict.
    """
    network: VGG = load_network(
        "vgg16_transfer", weights, progress=check_bool(progress, "progress")
    )
    return network
