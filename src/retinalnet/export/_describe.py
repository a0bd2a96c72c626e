"""What a model file is: a checkpoint's or an ONNX export's contents as plain data, for
``retinalnet info`` and for anyone filing a model before it is deployed."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from retinalnet._core.files import file_digest
from retinalnet.checkpoint import Checkpoint, load_checkpoint
from retinalnet.export._metadata import read_metadata
from retinalnet.export._onnx_runtime import require
from retinalnet.models import parameter_summary

__all__ = ["describe"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _best(history: Sequence[Mapping[str, Any]], key: str, lowest: bool) -> dict[str, Any] | None:
    """The epoch with the lowest (or highest) ``key``, and its value."""
    scored = [
        (value, record.get("epoch"))
        for record in history
        if (value := _number(record.get(key))) is not None
    ]
    if not scored:
        return None
    pick = min if lowest else max
    value, epoch = pick(scored, key=lambda item: item[0])  # the first epoch of a tie
    return {"epoch": epoch, "value": value}


def _training(checkpoint: Checkpoint) -> dict[str, Any]:
    history = checkpoint.history
    last = history[-1] if history else {}
    seconds = [s for record in history if (s := _number(record.get("seconds"))) is not None]
    return {
        "epochs": checkpoint.epoch,
        "seed": checkpoint.loop_state.get("seed"),
        "best_val_loss": _best(history, "val_loss", lowest=True),
        "best_val_accuracy": _best(history, "val_accuracy", lowest=False),
        "last_epoch": dict(last) if last else None,
        "seconds": sum(seconds) if seconds else None,
        "callbacks": sorted(checkpoint.callback_states),
        "resumable": checkpoint.optimizer_state is not None,
    }


def _describe_checkpoint(file: Path) -> dict[str, Any]:
    checkpoint = load_checkpoint(file)
    parameters: dict[str, int] | None = None
    temperature = _number(getattr(checkpoint, "temperature", None))
    if temperature == 1.0:  # what every uncalibrated checkpoint carries
        temperature = None
    try:
        model = checkpoint.build_model()
    except ValueError:  # a network built by hand: only the stored tensors can be counted
        pass
    else:
        summary = parameter_summary(model)
        parameters = {"total": summary.total, "trainable": summary.trainable}
    stored = sum(tensor.numel() for tensor in checkpoint.state_dict.values())
    return {
        "file": str(file),
        "kind": "checkpoint",
        "sha256": file_digest(file).hex(),
        "arch": checkpoint.arch,
        "arch_kwargs": dict(checkpoint.arch_kwargs),
        "classes": list(checkpoint.classes),
        "preprocessing": checkpoint.preprocessing.to_dict(),
        "parameters": parameters,
        "stored_values": stored,
        "temperature": temperature,
        "training": _training(checkpoint),
        "retinalnet_version": checkpoint.retinalnet_version,
    }


def _describe_onnx(file: Path) -> dict[str, Any]:
    metadata = read_metadata(file)
    onnx = require("onnx")
    graph = onnx.load(str(file), load_external_data=False).graph
    total = sum(math.prod(tensor.dims) for tensor in graph.initializer)
    return {
        "file": str(file),
        "kind": "onnx",
        "sha256": file_digest(file).hex(),
        **metadata.to_dict(),
        "parameters": {"total": total},
    }


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a model file is, as plain data: a retinalnet checkpoint or ONNX export.

    For a checkpoint: the architecture, classes, preprocessing, parameter counts, the
    calibration temperature (``None`` if it has none), the training it records (epochs,
    seed, best validation loss and accuracy with their epochs, the last epoch's metrics,
    the training time, the callbacks, whether it can be resumed), the library version that
    wrote it and its sha256. For an ONNX file written by
    :func:`~retinalnet.export.to_onnx`: its metadata, parameter count and sha256.

    .. versionadded:: 0.2

    Parameters
    ----------
    path
        A checkpoint (``best.pt``) or an ONNX file (``model.onnx``, by its suffix).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is not a retinalnet checkpoint or export; the message names it.

    Examples
    --------
    >>> from retinalnet.export import describe
    >>> describe("runs/best.pt")["training"]["best_val_accuracy"]  # doctest: +SKIP
    {'epoch': 7, 'value': 0.96875}
    """
    file = Path(path)
    if file.suffix.lower() == ".onnx":
        return _describe_onnx(file)
    return _describe_checkpoint(file)
