"""Numeric precision of forward passes: fp32, or bf16/fp16 autocast where it pays off."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal, TypeAlias

import torch
from torch import nn

__all__ = ["Precision", "autocast", "cpu_has_native_bf16", "prepare_for_speed", "resolve_precision"]

Precision: TypeAlias = Literal["auto", "fp32", "bf16", "fp16"]
"""``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``."""

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 pays off.

    Measured on a 2-core AMD EPYC with AVX512-BF16: frozen VGG16 at 224 px ran at 4.1
    images/s in fp32 (NCHW) and 23.6 images/s with bf16 autocast and channels_last
    (``benchmarks/bench_predict.py``). Without native support, bf16 is emulated and slower.
    """
    checker = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(checker()) if checker is not None else False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; ``None`` means plain fp32.

    ``"auto"`` picks bf16 on a CUDA GPU that supports it (fp16 on older ones) and on a CPU
    with native bf16, and fp32 everywhere else (MPS included).

    Raises
    ------
    ValueError
        If ``precision`` is unknown, or asks for something the device cannot do.
    """
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    if precision not in _DTYPES:
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision='fp16' needs a GPU; on a CPU use 'bf16' or 'auto'")
    return _DTYPES[precision]


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` for ``dtype`` on ``device``, or nothing when ``dtype`` is ``None``."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def prepare_for_speed(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` in the channels-last memory layout (faster convolutions
    on CPUs and on tensor-core GPUs; the results are the same), and let cuDNN pick the
    fastest algorithms for fixed input sizes."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model.to(device).to(memory_format=torch.channels_last)
