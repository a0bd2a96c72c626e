"""Deployment: ONNX export with a parity check, torch-free prediction, model file facts.

:func:`to_onnx` writes a trained model as an ONNX graph that gives probabilities and carries
its class names and preprocessing as metadata; :class:`OnnxPredictor` (also
``Predictor.from_onnx``) predicts with it through onnxruntime; :func:`describe` says what a
checkpoint or an export is (``retinalnet info``). Needs the optional packages ``onnx``,
``onnxscript`` and ``onnxruntime``: ``pip install 'retinalnet[onnx]'``.

.. versionadded:: 0.2
"""

from retinalnet.export._describe import describe as describe
from retinalnet.export._export import OPSET as OPSET
from retinalnet.export._export import ExportResult as ExportResult
from retinalnet.export._export import OnnxExportError as OnnxExportError
from retinalnet.export._export import to_onnx as to_onnx
from retinalnet.export._metadata import OnnxMetadata as OnnxMetadata
from retinalnet.export._metadata import preprocessing_steps as preprocessing_steps
from retinalnet.export._metadata import read_metadata as read_metadata
from retinalnet.export._onnx_predictor import OnnxPredictor as OnnxPredictor
from retinalnet.export._parity import PARITY_TOLERANCE as PARITY_TOLERANCE
from retinalnet.export._parity import ParityError as ParityError
from retinalnet.export._parity import ParityReport as ParityReport
from retinalnet.export._parity import check_parity as check_parity
from retinalnet.export._parity import synthetic_images as synthetic_images

__all__ = [
    "OPSET",
    "PARITY_TOLERANCE",
    "ExportResult",
    "OnnxExportError",
    "OnnxMetadata",
    "OnnxPredictor",
    "ParityError",
    "ParityReport",
    "check_parity",
    "describe",
    "preprocessing_steps",
    "read_metadata",
    "synthetic_images",
    "to_onnx",
]
