"""Classifier.preprocessing: checked against the registered architecture wherever it is set,
so that no door gets a model whose network fails on the images its preprocessing gives."""

from __future__ import annotations

import logging
import re

import pytest
import torch
from torch import nn

from retinalnet.engine import InferenceEngine
from retinalnet.models import Classifier, ModelSpec, _registry, create_model
from retinalnet.models._small_cnn import small_cnn_network
from retinalnet.transforms import Preprocessing

META = torch.device("meta")
CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
VIT_128 = (
    "vit_b_16 takes 224 px inputs only, got preprocessing.size=128; pass "
    "preprocessing=Preprocessing(size=224)"
)


@pytest.fixture(autouse=True)
def _no_random_weights_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)


def test_setting_a_size_vit_does_not_take_is_refused_and_keeps_the_old_one() -> None:
    """``model.preprocessing = Preprocessing(size=128)`` was accepted; Predictor, Trainer,
    evaluate, Grad-CAM and export then failed with torchvision's raw AssertionError."""
    with META:
        model = create_model("vit_b_16", weights=None)
    before = model.preprocessing
    with pytest.raises(ValueError, match=f"^{re.escape(VIT_128)}$"):
        model.preprocessing = Preprocessing(size=128)
    assert model.preprocessing is before
    model.preprocessing = before.with_augmentation("oct")  # the same size: taken
    assert model.preprocessing.size == 224


@pytest.mark.parametrize("network", [nn.Identity(), nn.Linear(2, 2)])
def test_a_classifier_made_by_hand_as_vit_is_refused_another_size(network: nn.Module) -> None:
    """``Classifier(vit, arch="vit_b_16", preprocessing=Preprocessing(size=128))`` was
    accepted (the checkpoint door with a bare network makes one the same way)."""
    with pytest.raises(ValueError, match=f"^{re.escape(VIT_128)}$"):
        Classifier(network, classes=CLASSES, arch="vit_b_16", preprocessing=Preprocessing(size=128))


@pytest.fixture
def needs_64_px(monkeypatch: pytest.MonkeyPatch) -> str:
    """A registered architecture whose smallest input is 64 px (registered for this test)."""
    spec = ModelSpec(
        name="needs_64_px",
        builder=small_cnn_network,
        head="classifier",
        feature_blocks=lambda network: list(network.features),
        gradcam_layer="features",
        min_size=64,
    )
    monkeypatch.setitem(_registry._REGISTRY, spec.name, spec)
    return spec.name


def test_a_size_below_the_architectures_smallest_is_refused_when_set(needs_64_px: str) -> None:
    message = (
        "needs_64_px needs inputs of at least 64 px, got preprocessing.size=48; pass a "
        "larger Preprocessing(size=...)"
    )
    model = Classifier(
        nn.Identity(), classes=CLASSES, arch=needs_64_px, preprocessing=Preprocessing(size=64)
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model.preprocessing = Preprocessing(size=48)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Classifier(
            nn.Identity(), classes=CLASSES, arch=needs_64_px, preprocessing=Preprocessing(size=48)
        )


def test_a_network_built_by_hand_takes_any_size() -> None:
    """Without a registered ``arch`` nothing declares the sizes the network takes."""
    model = Classifier(nn.Identity(), classes=CLASSES, preprocessing=Preprocessing(size=64))
    model.preprocessing = Preprocessing(size=32)
    assert model.preprocessing.size == 32


def test_setting_something_else_than_a_preprocessing_is_refused() -> None:
    model = Classifier(nn.Identity(), classes=CLASSES)
    message = (
        "preprocessing must be a retinalnet.transforms.Preprocessing, got int 128; pass "
        "preprocessing=Preprocessing(size=128)"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        model.preprocessing = 128  # type: ignore[assignment]


def test_a_batch_of_another_size_than_vit_takes_is_refused_by_the_model_itself() -> None:
    """A data set with its own 128 px transform (``evaluate``), an engine's own
    preprocessing, a hand-made batch: each reached torchvision's bare "Wrong image height!"
    AssertionError."""
    model = Classifier(nn.Identity(), classes=CLASSES, arch="vit_b_16")
    with pytest.raises(ValueError, match=r"^vit_b_16 takes 224 x 224 inputs only, got 128 x 96; "):
        model(torch.zeros(1, 3, 128, 96))
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 3, 224, 224)


def test_an_engine_given_a_size_vit_does_not_take_is_refused_when_made() -> None:
    model = Classifier(nn.Identity(), classes=CLASSES, arch="vit_b_16")
    with pytest.raises(ValueError, match=f"^{re.escape(VIT_128)}$"):
        InferenceEngine(model, device="cpu", preprocessing=Preprocessing(size=128))


def _hand_built_vit(image_size: int) -> nn.Module:
    """A torchvision ViT made by hand (no registered ``arch``), tiny, with 4 outputs."""
    from torchvision.models import VisionTransformer

    return VisionTransformer(
        image_size=image_size,
        patch_size=16,
        num_layers=1,
        num_heads=1,
        hidden_dim=8,
        mlp_dim=8,
        num_classes=4,
    )


def test_a_hand_built_vit_is_held_to_its_own_size_at_every_door() -> None:
    """Without ``arch``, a hand-built ViT took any preprocessing and every door (forward,
    Predictor, engine, Grad-CAM) reached torchvision's bare AssertionError ("Wrong image
    height! Expected 32 but got 64!")."""
    said = (
        "the network (VisionTransformer, image_size=32) takes 32 px inputs only, got "
        "preprocessing.size=64; pass preprocessing=Preprocessing(size=32)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(said)}$"):
        Classifier(_hand_built_vit(32), classes=CLASSES, preprocessing=Preprocessing(size=64))
    model = Classifier(_hand_built_vit(32), classes=CLASSES, preprocessing=Preprocessing(size=32))
    with pytest.raises(ValueError, match=f"^{re.escape(said)}$"):
        model.preprocessing = Preprocessing(size=64)
    with pytest.raises(ValueError, match=f"^{re.escape(said)}$"):
        InferenceEngine(model, device="cpu", preprocessing=Preprocessing(size=64))
    batch = r"^the network \(VisionTransformer, image_size=32\) takes 32 x 32 inputs only, got 64 x"
    with pytest.raises(ValueError, match=batch):
        model(torch.zeros(1, 3, 64, 64))
    from retinalnet.gradcam import grad_cam

    with pytest.raises(ValueError, match=batch):
        grad_cam(model, torch.zeros(1, 3, 64, 64), layer="encoder.layers.encoder_layer_0")
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 4)


def test_a_vit_inside_a_hand_built_network_is_not_held_to_its_size() -> None:
    """A network that resizes before its ViT takes other sizes: nothing is refused."""
    network = nn.Sequential(nn.Upsample(size=(32, 32)), _hand_built_vit(32))
    model = Classifier(network, classes=CLASSES, preprocessing=Preprocessing(size=64))
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 4)
