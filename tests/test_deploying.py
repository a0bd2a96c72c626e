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


_PREPARE_FROM = "def grey_levels("
_PREPARE_TO = "# -- prediction --"


def _page_prepare(preprocessing: Preprocessing) -> Any:
    """The ``prepare`` of the page's torch-free block (with its helpers), run on the settings
    of ``preprocessing`` as the ONNX file's metadata would give them."""
    from test_docs import page_blocks

    (block,) = [b for b in page_blocks(_PAGE) if "def prepare(" in b.code]
    code = block.code[block.code.index(_PREPARE_FROM) : block.code.index(_PREPARE_TO)]
    names: dict[str, Any] = {"np": np, "Image": Image, "prep": preprocessing.to_dict()}
    exec(code, names)
    return names["prepare"]


def _grey(shape: tuple[int, int] = (48, 56)) -> np.ndarray[Any, Any]:
    """8-bit grey levels 0 to 255 (both ends reached), as a scan's."""
    values = np.random.default_rng(1).integers(0, 256, shape)
    values[0, :2] = (0, 255)
    return values


# (name, mode the file opens in, the pixels): every rule of step 2 the page's prepare has
_KINDS = [
    ("8-bit.png", "L", _grey().astype(np.uint8)),
    ("16-bit.png", "I;16", (_grey() * 257 + _grey() % 97).astype(np.uint16)),
    ("int-0-255.tif", "I", _grey().astype(np.int32)),  # was: divided by 65535, nearly black
    ("int-0-65535.tif", "I", (_grey() * 257).astype(np.int32)),
    ("int-stretched.tif", "I", (_grey() * 10 - 700).astype(np.int32)),  # -700 to 1850
    ("float-0-1.tif", "F", (_grey() / 255).astype(np.float32)),  # was: nearly black
    ("float-0-255.tif", "F", (_grey() + 0.4).astype(np.float32)),
    ("float-16-bit.tif", "F", (_grey() * 257.0).astype(np.float32)),
    ("float-stretched.tif", "F", (_grey() / 25.5 - 5).astype(np.float32)),  # -5 to 5
]


@pytest.mark.parametrize(("name", "mode", "pixels"), _KINDS, ids=[kind[0] for kind in _KINDS])
def test_the_torch_free_prepare_gives_retinalnets_input_in_every_mode(
    name: str, mode: str, pixels: np.ndarray[Any, Any], tmp_path: Path
) -> None:
    """The page's ``prepare`` against :meth:`Preprocessing.prepare`, mode by mode: an ``"I"``
    file of 8-bit values and a float file in [0, 1] reached the model nearly black."""
    preprocessing = Preprocessing(size=32)
    path = tmp_path / name
    Image.fromarray(pixels).save(path)
    assert Image.open(path).mode == mode
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stretched ones: retinalnet warns, as the page says
        expected = preprocessing.prepare(path).numpy()
    prepared = _page_prepare(preprocessing)(str(path))
    assert prepared.dtype == np.float32
    assert np.abs(prepared - expected).max() < 1e-5


_REFUSED = [
    ("12-bit.png", (_grey() * 16).astype(np.uint16)),  # brightest 4080 of 65535
    ("8-bit-in-16.png", _grey().astype(np.uint16)),  # 16-bit file, 8-bit values
    ("int-12-bit.tif", (_grey() * 16).astype(np.int32)),
    ("float-12-bit.tif", (_grey() * 16.0).astype(np.float32)),
    ("int-constant.tif", np.full((48, 56), 70000, dtype=np.int32)),
    ("float-nan.tif", np.where(_grey() > 250, np.nan, _grey()).astype(np.float32)),
]


@pytest.mark.parametrize(("name", "pixels"), _REFUSED, ids=[kind[0] for kind in _REFUSED])
def test_the_torch_free_prepare_refuses_what_retinalnet_refuses(
    name: str, pixels: np.ndarray[Any, Any], tmp_path: Path
) -> None:
    """A 12-bit scan in a 16-bit file gave the model a nearly black image and an answer,
    where retinalnet refuses it."""
    from retinalnet.datasets import UnreadableImageError

    preprocessing = Preprocessing(size=32)
    path = tmp_path / name
    Image.fromarray(pixels).save(path)
    with pytest.raises(UnreadableImageError):
        preprocessing.prepare(path)
    with pytest.raises(ValueError, match=r"12-bit data\?|no range|NaN"):
        _page_prepare(preprocessing)(str(path))
