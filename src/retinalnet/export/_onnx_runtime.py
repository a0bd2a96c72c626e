"""The optional ``onnx`` and ``onnxruntime`` packages, imported on first use with an error
that says how to install them."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["inference_session", "require"]


def require(name: str) -> Any:
    """Import the optional package ``name`` (``"onnx"`` or ``"onnxruntime"``).

    Raises
    ------
    ModuleNotFoundError
        If it is not installed; the message gives the pip command.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"ONNX export and prediction need the {name!r} package: "
            f"pip install 'retinalnet[onnx]' (or pip install {name})"
        ) from None


def inference_session(model: str | bytes, *, threads: int | None = None) -> Any:
    """An onnxruntime session on the CPU for a model file or its serialised bytes.

    Parameters
    ----------
    model
        A file path or the model's bytes.
    threads
        Intra-op threads; onnxruntime's default (one per core) when ``None``.
    """
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no notices about unused initialisers
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
