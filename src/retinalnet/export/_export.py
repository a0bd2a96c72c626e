"""ONNX export of a trained model: probabilities out, metadata in, parity checked.

The exported graph is the network with its softmax: ``softmax(log_probabilities /
temperature)``, float32 ``(batch, num_classes)``. It carries its class names and its
preprocessing as metadata (:mod:`retinalnet.export._metadata`), and is written only after
onnxruntime has been checked to give the PyTorch model's probabilities.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from retinalnet._core.files import atomic_write
from retinalnet._core.images import ImageInput
from retinalnet._core.model_outputs import class_scores
from retinalnet._core.model_use import check_float32_weights, exclusive_use
from retinalnet._core.output_kinds import check_output_file
from retinalnet._core.warning_filters import warnings_ignored
from retinalnet._version import __version__
from retinalnet.checkpoint import checkpoint_epoch, load_checkpoint
from retinalnet.export._metadata import INPUT_NAME, OUTPUT_NAME, metadata_props
from retinalnet.export._onnx_runtime import require
from retinalnet.export._parity import (
    PARITY_TOLERANCE,
    ParityReport,
    check_parity,
    check_tolerance,
)
from retinalnet.export._temporary import temporary_folder, temporary_write_error, write_error_of
from retinalnet.models import Classifier
from retinalnet.precision import autocast
from retinalnet.predictor import check_image_list

__all__ = ["OPSET", "ExportResult", "OnnxExportError", "to_onnx"]

logger = logging.getLogger(__name__)

OPSET = 18
"""The ONNX opset of every export.

18 is the oldest opset torch's dynamo-based exporter writes natively (older ones go through
a version converter), and onnxruntime has run it since 1.14 (2023): a model exported here
runs on deployment machines two years behind. Every registered architecture exports at 18
with the probabilities of the PyTorch model (see ``tests/test_export_archs.py``).
"""

EXPORTER = "torch.onnx.export(dynamo=True)"
"""The exporter used: torch's dynamo-based one (``torch.export`` + onnxscript).

The classic TorchScript-based exporter (``dynamo=False``) fails on two registered
architectures: ``vit_b_16`` (``aten::_native_multi_head_attention``, the fused attention of
``nn.MultiheadAttention`` in eval mode, has no ONNX conversion) and ``vgg16_transfer`` below
224 px (``adaptive_avg_pool2d`` to 7 x 7 from a map that 7 does not divide).
"""


class OnnxExportError(RuntimeError):
    """A model cannot be exported to ONNX: the exporter failed on one of its operations,
    or its architecture is marked not exportable.

    .. versionadded:: 0.2
    """


@dataclass(frozen=True)
class ExportResult:
    """What :func:`to_onnx` wrote.

    .. versionadded:: 0.2

    Attributes
    ----------
    path : pathlib.Path
        The ONNX file.
    parity : ParityReport
        The parity check it passed.
    opset : int
        Its ONNX opset.
    metadata : dict of str to str
        Its ``metadata_props``.
    """

    path: Path
    parity: ParityReport
    opset: int
    metadata: dict[str, str]


class _Probabilities(nn.Module):
    """The exported graph: the network, its outputs divided by the temperature, softmax."""

    def __init__(self, network: nn.Module, temperature: float) -> None:
        super().__init__()
        self.network = network
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(x) / self.temperature, dim=1)


def _load(model: Classifier | str | os.PathLike[str]) -> tuple[Classifier, str | None]:
    """The classifier to export, and the sha256 of its checkpoint file (if from a file)."""
    if isinstance(model, Classifier):
        return model, None
    if isinstance(model, (str, os.PathLike)):
        checkpoint = load_checkpoint(model)  # its sha256: of the bytes the model is made of
        return checkpoint.build_model(), checkpoint.sha256
    raise TypeError(
        f"to_onnx takes a retinalnet Classifier or a checkpoint path, got {type(model).__name__}"
    )


def _temperature(model: Classifier) -> float:
    temperature = float(getattr(model, "temperature", 1.0))
    if not temperature > 0 or temperature == float("inf"):
        raise ValueError(f"the model's temperature must be a positive number, got {temperature!r}")
    return temperature


def _check_exportable(model: Classifier) -> None:
    check_float32_weights(model, "exported")
    spec = model.spec
    if spec is not None and not spec.exportable:
        raise OnnxExportError(
            f"architecture {spec.name!r} cannot be exported to ONNX: {spec.export_problem} "
            "(its ModelSpec says exportable=False)"
        )


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OPERATORS = (
    re.compile(r"OpOverload\(op='([\w.]+)'"),  # dynamo exporter: no ONNX function for it
    re.compile(r"torch\.ops\.([\w.]+)"),
    re.compile(r"(aten::\w+)"),  # TorchScript names
)
_SUMMARY = re.compile(r"<class '[\w.]+'>: ([^\n]+)")


def _export_failure(model: Classifier, error: Exception) -> OnnxExportError:
    """An error naming the architecture and, when the exporter says it, the operator."""
    text = _ANSI.sub("", str(error))
    operator = ""
    for pattern in _OPERATORS:
        found = pattern.search(text)
        if found:
            operator = f" at operator {found.group(1)!r}"
            break
    summary = _SUMMARY.search(text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = summary.group(1) if summary else (lines[0] if lines else type(error).__name__)
    name = model.arch or type(model.network).__name__
    return OnnxExportError(
        f"cannot export {name!r} to ONNX opset {OPSET}{operator}: {reason[:400]}. Replace "
        "that operation in the network, or mark the architecture exportable=False with the "
        "reason in its ModelSpec"
    )


def _check_exporter() -> None:
    """torch's dynamo-based exporter with the options used here (torch 2.6 and later)."""
    options = inspect.signature(torch.onnx.export).parameters
    missing = [name for name in ("dynamo", "external_data", "optimize") if name not in options]
    if missing:
        raise OnnxExportError(
            f"ONNX export needs torch 2.6 or later (its dynamo-based exporter); this is torch "
            f"{torch.__version__}: pip install -U torch"
        )


_ONE_EXPORT_AT_A_TIME = threading.Lock()
"""torch's exporter is not thread-safe: two exports at once in two threads failed with
errors blaming an operator of the network (``aten.max_pool2d``). Exports take turns; other
work (predictions on the same models too) goes on meanwhile."""


def _export_graph(model: Classifier, temperature: float, folder: Path) -> bytes:
    """The serialised ONNX graph of ``model`` with its softmax, fp32, batch axis dynamic."""
    _check_exporter()
    with exclusive_use(model):  # not mid-way through another thread's pass (a ViT's swap)
        network = copy.deepcopy(model.network).cpu().float().eval()
    graph = _Probabilities(network, temperature).eval()
    size = model.preprocessing.size
    example = torch.zeros(2, 3, size, size, dtype=torch.float32)  # not the default dtype
    with torch.no_grad():  # probabilities or a tuple would export a graph wrong throughout
        class_scores(network(example), model.num_classes, model_name=type(network).__name__)
    target = folder / "graph.onnx"
    batch = torch.export.Dim("batch", min=1)
    try:
        with (
            _ONE_EXPORT_AT_A_TIME,
            warnings_ignored(),  # the exporter's notes on its own internals, in this thread
            torch.no_grad(),
            autocast(torch.device("cpu"), None),  # fp32, whatever a caller's autocast says
        ):
            torch.onnx.export(
                graph,
                (example,),
                str(target),
                verbose=False,  # its progress lines went to stdout, where results go
                dynamo=True,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": {0: batch}},
                external_data=False,
                optimize=True,
            )
    except Exception as error:  # any exporter failure: named, with the operator it hit
        refused = write_error_of(error)
        if refused is not None:  # the disk's failure, not the network's
            raise temporary_write_error(target, refused) from error
        raise _export_failure(model, error) from error
    try:
        return target.read_bytes()
    except OSError as error:
        raise temporary_write_error(target, error) from error


def to_onnx(
    model: Classifier | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    images: Sequence[ImageInput] | None = None,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportResult:
    """Export a trained model to ONNX, with its softmax, its metadata and a parity check.

    The graph takes float32 images ``(batch, 3, size, size)`` prepared as the model's
    preprocessing says (the batch axis is dynamic) and gives probabilities
    ``(batch, num_classes)``: ``softmax(log_probabilities / temperature)``, with the
    model's calibration ``temperature`` (1.0 if it has none). It is exported in fp32 and
    eval mode at ONNX opset :data:`OPSET`, by torch's dynamo-based exporter; the model
    passed in is not changed.

    The file's ``metadata_props`` carry the class names in output order, the preprocessing
    (as JSON, and step by step), the temperature, the architecture, the library version, the
    checkpoint's sha256 and the parity measured (schema: docs page "Deploying a model";
    :func:`read_metadata` reads it back).

    Before anything is written, onnxruntime runs the export on ``images`` and its
    probabilities are compared with the PyTorch model's (:func:`check_parity`); the file is
    written, atomically, only if none differs by more than ``tolerance``.

    .. versionadded:: 0.2

    Parameters
    ----------
    model
        A trained :class:`~retinalnet.models.Classifier`, or the path of a checkpoint
        written by retinalnet (its sha256 then goes into the metadata).
    path
        The ONNX file to write (``model.onnx``).
    images
        Images for the parity check (paths, PIL images or tensors): a few real scans are
        best; a few synthetic images when ``None``.
    tolerance
        The largest probability difference allowed, a fraction in (0, 1)
        (:data:`PARITY_TOLERANCE`, 1e-4).

    Returns
    -------
    ExportResult
        The file, the parity measured, the opset and the metadata.

    Raises
    ------
    OnnxExportError
        If the architecture is marked not exportable, or the exporter fails; the message
        names the operator it failed on when the exporter says it.
    OSError
        If the disk refuses a write (a full disk, the file size limit): that of ``path``,
        or that of the graph to the temporary folder, where it is exported first. The
        message names the file and the cause; for the temporary folder, it says to free
        space there or set ``TMPDIR`` to a folder with room.
    ParityError
        If onnxruntime's probabilities differ from PyTorch's by more than ``tolerance``;
        the message names the image and the difference. Nothing is written.
    ValueError
        If the suffix of ``path`` names another kind of file (``best.pt``,
        ``history.csv``), or ``tolerance`` is not in (0, 1) (at 1 or more the check could
        never fail); refused before any work.
    TypeError
        If ``path`` is not a file path (``to_onnx(path, model)``: the order is
        ``to_onnx(model, path)``), or ``tolerance`` is not a number; refused before any work.
    FileExistsError
        If ``path`` is a checkpoint (the one exported too), another PyTorch file or an
        image, which the ONNX file would replace; refused before any work. An ONNX file
        there is replaced.
    ModuleNotFoundError
        If ``onnx``, ``onnxscript`` or ``onnxruntime`` is missing
        (``pip install 'retinalnet[onnx]'``).

    Examples
    --------
    >>> from retinalnet.export import to_onnx
    >>> result = to_onnx("runs/best.pt", "model.onnx")  # doctest: +SKIP
    >>> result.parity.max_abs_diff < 1e-4  # doctest: +SKIP
    True
    """
    # before any work: never ONNX into history.csv, nor over a checkpoint (the one exported)
    check_output_file(
        path, "ONNX", writer="to_onnx", call="to_onnx(model, path)", epoch_of=checkpoint_epoch
    )
    tolerance = check_tolerance(tolerance)  # a check that could never fail is no check
    if images is not None:  # a path is a sequence of letters: refused before the export
        check_image_list(images, method="to_onnx")
    onnx = require("onnx")
    require("onnxscript")
    require("onnxruntime")
    classifier, sha256 = _load(model)
    _check_exportable(classifier)
    # the graph and its parity check see one model: a calibrate() or a training step in
    # another thread waits (the check would fail, blaming the export, or pass another model)
    with exclusive_use(classifier):
        temperature = _temperature(classifier)
        with temporary_folder() as folder:
            graph = _export_graph(classifier, temperature, Path(folder))
        parity = check_parity(classifier, graph, images, tolerance=tolerance)
    proto: Any = onnx.load_from_string(graph)
    props = metadata_props(
        classes=classifier.classes,
        preprocessing=classifier.preprocessing,
        temperature=temperature,
        arch=classifier.arch,
        version=__version__,
        checkpoint_sha256=sha256,
        opset=OPSET,
        exporter=f"{EXPORTER}, torch {torch.__version__}",
        parity_max_abs_diff=parity.max_abs_diff,
        parity_images=parity.images,
        parity_tolerance=tolerance,
    )
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = (
        f"retinalnet {__version__} export of {classifier.arch or 'a hand-built network'}: "
        f"{INPUT_NAME} float32 (batch, 3, {classifier.preprocessing.size}, "
        f"{classifier.preprocessing.size}) -> {OUTPUT_NAME} (batch, {len(classifier.classes)})"
    )
    data: bytes = proto.SerializeToString()

    def write(stream: BinaryIO) -> None:
        stream.write(data)

    written = atomic_write(path, write)
    logger.info(
        "exported %s to %s (opset %d); parity on %d image(s): max difference %.2g",
        classifier.arch or "the model",
        written,
        OPSET,
        parity.images,
        parity.max_abs_diff,
    )
    return ExportResult(written, parity, OPSET, props)
