"""Every registered backbone, and a hand-built one with BatchNorm, through the whole chain.

For each architecture (``weights=None``, tiny inputs): a Trainer fit on cached features,
prediction, TTA, Grad-CAM at the image's size, and a checkpoint that rebuilds by name and
predicts the same probabilities. This is what "every backbone a first-class citizen" means.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from retinalnet.checkpoint import load_checkpoint, save_checkpoint
from retinalnet.datasets import SyntheticOCT
from retinalnet.models import Classifier, create_model, list_models, model_spec
from retinalnet.predictor import Predictor
from retinalnet.training import FineTune, Trainer, evaluate, fine_tune
from retinalnet.transforms import Preprocessing

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")


def _size(name: str) -> int:
    """The smallest input side the architecture takes (at least 32 px)."""
    spec = model_spec(name)
    return spec.fixed_size or max(spec.min_size, 32)


_GRADCAM_AT_32 = {"small_cnn", "vgg16_transfer", "vit_b_16"}
"""The architectures whose Grad-CAM map is 2 x 2 or more at their smallest size here; the
others' last stage (stride 32) is 1 x 1 at 32 px, refused (test_registry explains them all at
64 px)."""


def _chain(model: Classifier, tmp_path: Path, *, rebuild: nn.Module | None = None) -> None:
    side = model.preprocessing.size
    train = SyntheticOCT(1, shape=(side + 8, side + 12), seed=1)  # one scan per class
    val = SyntheticOCT(1, shape=(side + 8, side + 12), seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items() if "num_batches" not in k}

    trainer = Trainer(model, feature_cache=True, max_epochs=1, batch_size=4, device="cpu")
    history = trainer.fit(train, val)
    assert np.isfinite(history[-1].train_loss)
    # the frozen backbone stayed frozen, BatchNorm statistics included
    head_name, _ = model.head_module()
    for key, value in model.state_dict().items():
        if key in before and not key.startswith(f"network.{head_name}."):
            assert torch.equal(value, before[key]), f"{key} changed though frozen"

    images = [val.image(i) for i in range(len(val))]
    predictor = Predictor(model, device="cpu", precision="fp32")
    probabilities = predictor.predict_proba(images)
    assert probabilities.shape == (4, 4)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(4), rtol=0, atol=1e-5)
    mirrored = Predictor(model, device="cpu", precision="fp32", tta=True).predict_proba(images)
    assert mirrored.shape == (4, 4)

    if model.arch is not None and model.arch not in _GRADCAM_AT_32:
        with pytest.raises(ValueError, match=r"gives a 1 x 1 map"):  # a flat heatmap
            predictor.gradcam(images[0])
    else:
        heatmap = predictor.gradcam(images[0])
        assert heatmap.shape == (images[0].height, images[0].width)
        assert np.isfinite(heatmap).all()
        assert heatmap.min() >= 0
        assert heatmap.max() <= 1

    result = evaluate(model, val, device="cpu", precision="fp32", feature_cache=True)
    assert result.num_samples == 4

    path = save_checkpoint(tmp_path / "model.pt", model)
    restored = load_checkpoint(path).build_model(rebuild)
    again = Predictor(restored, device="cpu", precision="fp32").predict_proba(images)
    torch.testing.assert_close(again, probabilities, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_backbone_goes_through_the_whole_chain(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    preprocessing = Preprocessing(size=_size(name))
    model = create_model(name, weights=None, freeze=True, preprocessing=preprocessing)
    assert model.arch == name
    _chain(model, tmp_path)  # the checkpoint rebuilds by name: no model= argument


class _HandBuilt(nn.Module):
    """A network no registry knows: conv-BN-ReLU blocks and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(16, 4), nn.LogSoftmax(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.fc(self.pool(self.body(self.stem(x))).flatten(1))
        return output


def _hand_built(*, declared: bool) -> Classifier:
    torch.manual_seed(0)
    network = _HandBuilt()
    network.requires_grad_(False)
    network.fc.requires_grad_(True)
    declaration = (
        {"head": "fc", "gradcam_layer": "body", "feature_blocks": ["stem", "body"]}
        if declared
        else {}
    )
    return Classifier(network, classes=CLASSES, preprocessing=Preprocessing(size=32), **declaration)


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "fallback"])
def test_a_hand_built_batchnorm_network_goes_through_the_whole_chain(
    declared: bool, tmp_path: Path
) -> None:
    model = _hand_built(declared=declared)
    _chain(model, tmp_path, rebuild=_HandBuilt())
    if declared:
        assert model.head_module()[0] == "fc"
        assert [id(m) for m in model.feature_block_modules()] == [
            id(model.network.stem),
            id(model.network.body),
        ]


@pytest.mark.parametrize("name", list_models())
def test_every_registered_backbone_runs_the_fine_tuning_recipe(name: str) -> None:
    """A probe epoch on cached features, then one epoch with the last block unfrozen: the
    declared last block and the head change, the blocks before it do not."""
    torch.manual_seed(0)
    side = _size(name)
    model = create_model(name, weights=None, preprocessing=Preprocessing(size=side))
    train = SyntheticOCT(1, shape=(side + 8, side + 12), seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = FineTune(blocks=1, epochs=1, probe_epochs=1, augment="light")
    history = fine_tune(model, train, train, recipe, batch_size=4, device="cpu", progress=False)
    assert np.isfinite(history[-1].train_loss)
    blocks = model.feature_block_modules()
    last = {id(t) for t in blocks[-1].parameters()}
    frozen = {id(t) for b in blocks[:-1] for t in b.parameters()} - last
    named = dict(model.named_parameters())
    changed = {
        id(named[k]) for k, v in before.items() if k in named and not torch.equal(v, named[k])
    }
    assert changed & last, "the last block did not train"
    assert not changed & frozen, "a frozen block changed"


def _released_name(key: str) -> str:
    """The name torchvision's released files give a key (DenseNet's ``norm.1``, ViT's
    ``mlp.linear_1``), which torchvision renames while loading."""
    key = re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key)
    key = re.sub(r"(encoder_layer_\d+\.mlp)\.0\.", r"\1.linear_1.", key)
    return re.sub(r"(encoder_layer_\d+\.mlp)\.3\.", r"\1.linear_2.", key)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_backbone_loads_its_weights_as_other_tools_save_them(
    name: str, tmp_path: Path
) -> None:
    """Torchvision's released names, no batch counters (torch < 0.4.1), a DDP prefix, in a
    Lightning checkpoint: each is undone as torch, torchvision and timm undo it."""
    spec = model_spec(name)
    try:
        with torch.device("meta"):  # only the names and shapes are needed
            network = spec.builder(weights=None, progress=False)
    except NotImplementedError:  # RegNet computes its widths from tensors
        network = spec.builder(weights=None, progress=False)
    state = {
        f"module.{_released_name(key)}": torch.zeros(()).expand(value.shape)  # a few bytes
        for key, value in network.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }
    path = tmp_path / "weights.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", ".*copying from a non-meta parameter")  # on meta
        try:
            with torch.device("meta"):
                model = create_model(name, weights=path)
        except NotImplementedError:
            model = create_model(name, weights=path)
    assert model.arch == name
