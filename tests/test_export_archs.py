"""Every registered architecture exports to ONNX with the PyTorch model's probabilities, or
is marked ``exportable=False`` with the reason and refused.

An export takes 3 to 30 s per architecture on an idle CPU core (ViT-B/16 at its fixed
224 px the most), several minutes for all 20, over this suite's time budget. By default the
test runs a few quick architectures that cover the common operators (convolutions, batch
norm, residual adds, squeeze-excitation, hard-swish, adaptive pooling, layer norm);
``RETINALNET_EXPORT_ARCHS=all`` runs every one (before a release, or after a torch or
onnxruntime upgrade), ``RETINALNET_EXPORT_ARCHS=resnet18,swin_t`` the ones named.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from retinalnet.export import PARITY_TOLERANCE, OnnxExportError, synthetic_images, to_onnx
from retinalnet.models import create_model, list_models, model_spec
from retinalnet.transforms import Preprocessing

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("onnx")

QUICK = ("resnet18", "convnext_tiny")
"""Run by default: a residual CNN with batch norm, and a ConvNeXt (layer norm on permuted
maps, depthwise 7 x 7 convolutions, stochastic depth)."""

BIG = ("vit_b_16", "swin_t", "convnext_small")
"""The slowest to export (attention blocks, 224 px for ViT): run only when asked by name or
with ``all``."""


def _selected() -> set[str]:
    asked = os.environ.get("RETINALNET_EXPORT_ARCHS", "").strip()
    if asked == "all":
        return set(list_models())
    if asked:
        return {name.strip() for name in asked.split(",")}
    return set(QUICK)


def _case(name: str) -> object:
    if name in _selected():
        return name
    reason = (
        "slow to export; RETINALNET_EXPORT_ARCHS=all or =" + name + " runs it"
        if name in BIG
        else "RETINALNET_EXPORT_ARCHS=all (or =" + name + ") runs it"
    )
    return pytest.param(name, marks=pytest.mark.skip(reason=reason))


@pytest.mark.parametrize("arch", [_case(name) for name in list_models()])
def test_every_registered_architecture_exports_with_parity(arch: str, tmp_path: Path) -> None:
    spec = model_spec(arch)
    size = spec.fixed_size or max(32, spec.min_size)  # the smallest input it allows
    torch.manual_seed(0)
    model = create_model(arch, weights=None, preprocessing=Preprocessing(size=size))
    images = synthetic_images(3)
    if not spec.exportable:
        with pytest.raises(OnnxExportError, match=arch):
            to_onnx(model, tmp_path / "model.onnx", images=images)
        return
    result = to_onnx(model, tmp_path / "model.onnx", images=images)
    assert result.parity.max_abs_diff < PARITY_TOLERANCE
    assert result.metadata["arch"] == arch
