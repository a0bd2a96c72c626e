"""Choosing the device to run on."""

from __future__ import annotations

import os

import torch

from retinalnet._core.loader_settings import check_num_workers

__all__ = ["default_num_workers", "resident_device", "resolve_device"]


_DEVICE_NAMES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` into a device.

    ``"auto"`` picks CUDA if available, then Apple's MPS, then the CPU. These are the only
    device types retinalnet runs on: other types torch can parse (``"meta"``, ``"xpu"``,
    ``"hpu"``, ...) are refused here, the one door every ``device=`` and ``--device`` goes
    through, rather than failing deep inside torch.

    Raises
    ------
    ValueError
        If the name is not a device, is a device type retinalnet does not run on, or names
        one this machine does not have (including a ``cuda:N`` past the GPUs it has).
    """
    if isinstance(device, torch.device):
        chosen = device
    elif device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    else:
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(
                f"device {device!r} is not a device name; use {_DEVICE_NAMES}"
            ) from None
    if chosen.type not in ("cpu", "cuda", "mps"):
        raise ValueError(
            f"device {str(device)!r} is not supported: retinalnet runs on the CPU, CUDA GPUs "
            f"and Apple MPS, not {chosen.type!r}; use {_DEVICE_NAMES}"
        )
    if chosen.type == "cuda":
        _check_cuda(device, chosen)
    if chosen.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(
                f"device {str(device)!r} asks for Apple MPS, which is not available; "
                "use device='auto' or 'cpu'"
            )
        if chosen.index not in (None, 0):
            raise ValueError(
                f"device {str(device)!r} asks for MPS device {chosen.index}, but Apple MPS "
                "has one device; use device='mps'"
            )
    return chosen


def _check_cuda(device: str | torch.device, chosen: torch.device) -> None:
    """Refuse CUDA on a machine without it, and a ``cuda:N`` past the GPUs it has."""
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} asks for CUDA, which this machine does not have; "
            "use device='auto' or 'cpu'"
        )
    if chosen.index is None:
        return
    count = torch.cuda.device_count()
    if chosen.index >= count:
        have = "1 GPU (cuda:0)" if count == 1 else f"{count} GPUs (cuda:0 to cuda:{count - 1})"
        raise ValueError(
            f"device {str(device)!r} asks for CUDA GPU {chosen.index}, but this machine has "
            f"{have}; use device='cuda' or a cuda:N with N below {count}"
        )


def resident_device(nbytes: int, device: torch.device) -> torch.device | None:
    """Where to keep ``nbytes`` of training data for ``device``: on the GPU itself when it
    fits in half of the GPU's free memory (no copy per batch), else ``None`` (host memory).

    On a CPU the data already is where it is used, so the answer is ``None`` too.
    """
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return device if 2 * nbytes <= free else None


def default_num_workers(device: torch.device, requested: int | None = None) -> int:
    """DataLoader worker processes that keep the model fed on ``device``: the one rule.

    ``requested`` (a caller's ``num_workers``) wins when it is not ``None``; one that is not
    an int from 0 to :func:`~retinalnet._core.loader_settings.max_num_workers` raises a
    ValueError naming it.

    0 on a CPU: the model needs every core, and worker processes only take them away (on 2
    cores, training ``small_cnn`` ran at 290 images/s with 0 workers, 209 with 1 and 229 with
    2; building a VGG16 feature cache at 19.8, 19.2 and 19.3). With a GPU, decoding JPEGs in
    the main process starves it, so up to 8 workers, leaving one core for the main process.
    """
    checked = check_num_workers(requested)
    if checked is not None:
        return checked
    if device.type == "cpu":
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))
