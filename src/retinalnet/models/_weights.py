"""Resolving VGG16 weights: torchvision's enum or name (download), or a local file (offline)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, TypeAlias

import torch
from torchvision.models import VGG, VGG16_Weights, vgg16

from retinalnet.models._state_dict import state_dict_mismatches

__all__ = [
    "WeightsArg",
    "WeightsUnavailableError",
    "cached_weights_path",
    "load_vgg16",
    "resolve_weights",
]

WeightsArg: TypeAlias = "VGG16_Weights | str | os.PathLike[str] | None"
"""The accepted ``weights=`` values, namely the enum, its name (``"IMAGENET1K_V1"``,
``"DEFAULT"``), a local state-dict file, or ``None`` for random initialisation."""

_HEAD_KEYS = ("classifier.6.weight", "classifier.6.bias")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could neither be found locally nor downloaded."""


def cached_weights_path(weights: VGG16_Weights = VGG16_Weights.IMAGENET1K_V1) -> Path:
    """Where torchvision keeps (or would keep) the downloaded file for ``weights``.

    ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``, by default under ``~/.cache/torch``.
    Copying the file there on an offline machine makes ``weights="IMAGENET1K_V1"`` work
    without a network.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _offline_help(weights: VGG16_Weights) -> str:
    return (
        f"on a machine with internet, download {weights.url} and either copy it to "
        f"{cached_weights_path(weights)} or pass weights='/path/to/{Path(weights.url).name}'; "
        "weights=None trains from random initialisation (much worse for transfer learning)"
    )


def _check_usable(weights: VGG16_Weights) -> VGG16_Weights:
    if weights.meta.get("categories") is None:
        raise ValueError(
            f"VGG16_Weights.{weights.name} holds convolution features only: its classifier "
            "layers, which vgg16_transfer keeps, are not trained and it expects 0-255 inputs; "
            "use weights='IMAGENET1K_V1'"
        )
    return weights


def resolve_weights(weights: WeightsArg) -> VGG16_Weights | Path | None:
    """Turn a ``weights=`` argument into the enum, a file path, or ``None``.

    Raises
    ------
    FileNotFoundError
        If ``weights`` looks like a path but no such file exists.
    ValueError
        If ``weights`` is a string that is neither a known weights name nor a file.
    """
    if weights is None:
        return None
    if isinstance(weights, VGG16_Weights):
        return _check_usable(weights)
    if isinstance(weights, os.PathLike):
        path = Path(weights)
    elif isinstance(weights, str):
        name = weights.removeprefix("VGG16_Weights.")
        if name in VGG16_Weights.__members__:
            return _check_usable(VGG16_Weights[name])
        path = Path(weights).expanduser()
        looks_like_path = path.suffix or os.sep in weights or "/" in weights
        if name != weights or (not path.exists() and not looks_like_path):
            names = "DEFAULT, IMAGENET1K_V1"
            raise ValueError(
                f"weights={weights!r} is neither a VGG16 weights name ({names}) nor an "
                "existing file; pass a name, a path to a state-dict file, or None"
            )
    else:
        raise TypeError(
            "weights must be a VGG16_Weights member, its name, a file path or None, "
            f"got {type(weights).__name__}"
        )
    if path.is_dir():
        raise IsADirectoryError(
            f"weights={str(path)!r} is a folder; pass the state-dict file inside it, e.g. "
            f"{str(path / Path(VGG16_Weights.IMAGENET1K_V1.url).name)!r}"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file {str(path)!r} does not exist; "
            + _offline_help(VGG16_Weights.IMAGENET1K_V1)
        )
    return path


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure means "not a usable weights file"
        raise ValueError(
            f"cannot read weights file {str(path)!r} as a PyTorch state dict ({error}); "
            "expected torchvision's VGG16 file such as vgg16-397923af.pth, saved with "
            "torch.save(model.state_dict())"
        ) from None
    if isinstance(loaded, dict) and "format" in loaded and "model" in loaded:
        raise ValueError(
            f"{str(path)!r} is a retinalnet checkpoint, not backbone weights; load it with "
            "retinalnet.Predictor.from_checkpoint() or retinalnet.training.load_checkpoint()"
        )
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise ValueError(
            f"weights file {str(path)!r} does not hold a state dict (a dict of name -> tensor); "
            "save one with torch.save(model.state_dict(), path)"
        )
    return loaded


def _check_fits(state: dict[str, torch.Tensor], model: VGG, path: Path) -> None:
    expected = {k: v.shape for k, v in model.state_dict().items() if k not in _HEAD_KEYS}
    given = {k: v.shape for k, v in state.items() if k not in _HEAD_KEYS}
    problems = state_dict_mismatches(expected, given, given_name="file")
    if problems:
        raise ValueError(
            f"weights file {str(path)!r} does not fit VGG16: {'; '.join(problems)}. "
            "Expected torchvision's VGG16 (no batch norm) state dict, e.g. vgg16-397923af.pth "
            f"from {VGG16_Weights.IMAGENET1K_V1.url}"
        )


def load_vgg16(weights: WeightsArg, *, progress: bool = True) -> VGG:
    """Build torchvision's VGG16 with the given weights.

    Parameters
    ----------
    weights
        See :data:`WeightsArg`. A local file must be a VGG16 state dict; its 1000-class
        output layer may be missing or of any size, since it is replaced anyway.
    progress
        Show a download progress bar.

    Raises
    ------
    WeightsUnavailableError
        If the weights must be downloaded and the download fails; the message says how to
        use a local file instead.
    ValueError
        If a local file is not a VGG16 state dict.
    """
    resolved = resolve_weights(weights)
    if isinstance(resolved, Path):
        model = vgg16(weights=None)
        state = _read_state_dict(resolved)
        _check_fits(state, model, resolved)
        state = {k: v for k, v in state.items() if k not in _HEAD_KEYS}
        model.load_state_dict(state, strict=False)
        return model
    if resolved is None:
        return vgg16(weights=None)
    cached = cached_weights_path(resolved)
    was_cached = cached.is_file()
    try:
        return vgg16(weights=resolved, progress=progress)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        if was_cached:
            raise WeightsUnavailableError(
                f"the cached VGG16 weights {str(cached)!r} cannot be loaded ({error}); the file "
                "is probably incomplete or corrupt: delete it to download it again, or "
                + _offline_help(resolved)
            ) from error
        raise WeightsUnavailableError(
            f"cannot download VGG16 weights {resolved.name} ({error}); " + _offline_help(resolved)
        ) from error
