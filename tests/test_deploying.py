"""The plain-PyTorch recipe of docs/deploying.rst gives retinalnet's probabilities."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from retinalnet import Predictor
from retinalnet.checkpoint import save_checkpoint
from retinalnet.models import create_model
from retinalnet.transforms import Preprocessing

_PAGE = Path(__file__).resolve().parents[1] / "docs" / "deploying.rst"
_NETWORK = "# -- the network: the architecture, its head ending in LogSoftmax --"
_WEIGHTS = "# -- the weights and the temperature --"


def _recipe() -> str:
    from test_docs import page_blocks

    (block,) = [b for b in page_blocks(_PAGE) if "torch.load(" in b.code and _NETWORK in b.code]
    return block.code


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18"])
def test_the_plain_pytorch_recipe_gives_the_predictors_probabilities(
    arch: str, tmp_path: Path
) -> None:
    """The block as printed for resnet18; for small_cnn (built from retinalnet's code, as
    the page says) with its network part replaced."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights in a frozen backbone: fine here
        model = create_model(arch, weights=None, preprocessing=Preprocessing(size=32))
    model.temperature = 2.5  # calibrated: the recipe must apply it
    checkpoint = save_checkpoint(tmp_path / "best.pt", model)
    scan = tmp_path / "scan.png"
    pixels = np.random.default_rng(0).integers(0, 256, (48, 56), dtype=np.uint8)
    Image.fromarray(pixels).save(scan)

    code = _recipe()
    if arch == "small_cnn":  # the architecture from retinalnet, the rest as printed
        start, end = code.index(_NETWORK), code.index(_WEIGHTS)
        built = 'network = create_model("small_cnn", weights=None).network\n'
        code = code[:start] + built + code[end:]
    code = code.replace('"best.pt"', repr(str(checkpoint)))
    code = code.replace('"CNV-1016042-1.jpeg"', repr(str(scan)))
    names: dict[str, Any] = {
        "prepare": lambda path: model.preprocessing.prepare(path).numpy(),  # the ONNX block's
        "create_model": create_model,
    }
    exec(code, names)

    expected = Predictor(model, device="cpu", precision="fp32").predict_proba([scan])[0].numpy()
    assert names["classes"] == list(model.classes)
    np.testing.assert_allclose(names["probabilities"][0].numpy(), expected, atol=1e-6)
    uncalibrated = torch.softmax(names["log_probabilities"], dim=1)[0].numpy()
    assert np.abs(uncalibrated - expected).max() > 1e-3  # the temperature made a difference
