"""Declared feature blocks (``models/_block_checks.py``'s ``feature_blocks_of``): what a selector or
a list of paths gives is read, never changed, and checked at every door that reads it.

A selector that returned the network's own ``nn.ModuleList`` had training append the head to
it (the network changed in place, then failed with a shape error); blocks without parameters
(a VGG-style ``features`` declared layer by layer) made ``trainable_blocks=1`` and
``discriminative_param_groups(blocks=2)`` unfreeze nothing, silently; names, and a builder
without ``weights=`` or returning a tuple, gave raw tracebacks naming no architecture.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from _training_helpers import CLASSES, quiet_trainer
from retinalnet.models import (
    Classifier,
    ModelSpec,
    _registry,
    create_model,
    feature_blocks,
    freeze,
    parameter_summary,
    register_model,
)
from retinalnet.training import FineTune, discriminative_param_groups
from retinalnet.training._epoch import enter_train_mode
from retinalnet.transforms import Preprocessing

SIZE = Preprocessing(size=32, resize=36)


class Stages(nn.Module):
    """timm/ViT style: the stages are an ``nn.ModuleList``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2)
        self.blocks = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()) for _ in range(3)]
        )
        self.fc = nn.Linear(8, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        output: torch.Tensor = self.fc(x.mean((2, 3)))
        return output


class VggLike(nn.Module):
    """VGG style: ``features`` is one ``nn.Sequential`` of conv, ReLU, max-pool, ..."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.fc(self.pool(self.features(x)).flatten(1))
        return output


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Registers a test architecture (in a copy of the registry) and gives its name."""
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))

    def register(network: type[nn.Module] = VggLike, **declared: Any) -> str:
        declared.setdefault("builder", lambda **options: network())
        declared.setdefault("gradcam_layer", "fc")
        spec = ModelSpec(name="test_net", head="fc", min_size=8, **declared)
        return register_model(spec).name

    return register


# --- F1: the selector's result is read, never changed ---------------------------------------


def test_blocks_are_a_new_list_and_training_leaves_the_networks_module_list_alone(
    registry: Callable[..., str],
) -> None:
    name = registry(Stages, feature_blocks=lambda net: net.blocks, default_freeze=False)
    model = create_model(name, weights=None, preprocessing=SIZE)
    network = model.network
    assert isinstance(network, Stages)

    blocks = model.feature_block_modules()
    assert type(blocks) is list
    assert blocks == list(network.blocks)
    blocks.append(nn.Identity())  # the caller's list is the caller's
    enter_train_mode(model)  # added the head to the network's ModuleList
    assert len(network.blocks) == 3

    images = TensorDataset(torch.randn(8, 3, 32, 32), torch.arange(8) % len(CLASSES))
    quiet_trainer(model, max_epochs=1, batch_size=4).fit(images, images)  # a shape error
    assert len(network.blocks) == 3
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_fine_tuning_a_module_list_declaration_leaves_the_network_alone(
    registry: Callable[..., str],
) -> None:
    name = registry(Stages, feature_blocks=lambda net: net.blocks)
    model = create_model(name, weights=None, preprocessing=SIZE, trainable_blocks=1)
    images = TensorDataset(torch.randn(8, 3, 32, 32), torch.arange(8) % len(CLASSES))
    groups = discriminative_param_groups(model, 2, lr=1e-4, head_lr=1e-3)

    assert [group["name"] for group in groups] == ["head", "head", "block -1", "block -1"]
    quiet_trainer(model, max_epochs=1, batch_size=4).fit(images, images)
    assert isinstance(model.network, Stages)
    assert len(model.network.blocks) == 3


# --- F2: blocks without parameters, names, and other declarations that are not blocks -------

_EMPTY = r"feature blocks 1 \(ReLU\), 2 \(MaxPool2d\), 4 \(ReLU\), 5 \(MaxPool2d\) hold no "
_REFUSED: list[tuple[Callable[[Any], Any], type[Exception], str]] = [
    (lambda net: net.features, ValueError, _EMPTY + r"parameters.*net\.features\[:3\]"),
    (lambda net: list(net.features), ValueError, _EMPTY),
    (lambda net: [net.features[4]], ValueError, r"feature block 0 \(ReLU\) holds no param"),
    (lambda net: ["features"], TypeError, r"returned the name 'features' as block 0, not th"),
    (lambda net: net.features[0], TypeError, r"must return the feature blocks as a list of m"),
    (lambda net: [net.features[0], 3], TypeError, r"returned int 3 as block 1; each feature"),
    (
        lambda net: [net.features, net.features[3]],
        ValueError,
        r"feature blocks 0 \(Sequential\) and 1 \(Conv2d\) overlap",
    ),
    (
        lambda net: [net.features[3], net.features[0]],
        ValueError,
        r"listed first to last.*return them in the order \[1, 0\] of the blocks it returns",
    ),
    (lambda net: [nn.Conv2d(3, 3, 1)], ValueError, r"block 0 \(Conv2d\) is not part of VggLike"),
    (lambda net: [net.layer9], ValueError, r"fails on VggLike: AttributeError: .*'layer9'"),
]
_IDS = [
    "Sequential",
    "its layers",
    "a ReLU",
    "names",
    "one module",
    "an int",
    "overlapping",
    "out of order",
    "not the network's",
    "AttributeError",
]


@pytest.mark.parametrize(("selector", "error", "match"), _REFUSED, ids=_IDS)
def test_a_registered_declaration_that_gives_no_blocks_is_refused_by_create_model(
    registry: Callable[..., str], selector: Callable[[Any], Any], error: type[Exception], match: str
) -> None:
    name = registry(feature_blocks=selector)

    for freeze_backbone in (True, False):
        with pytest.raises(error, match=r"^ModelSpec.feature_blocks of 'test_net'.*" + match):
            create_model(name, weights=None, freeze=freeze_backbone)


@pytest.mark.parametrize(("selector", "error", "match"), _REFUSED, ids=_IDS)
def test_a_declaration_given_to_the_classifier_is_refused_when_it_is_built(
    selector: Callable[[Any], Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=r"^Classifier\(feature_blocks=...\) of VggLike.*" + match):
        Classifier(VggLike(), classes=CLASSES, feature_blocks=selector)


_DOORS: dict[str, Callable[[Classifier], object]] = {
    "feature_block_modules": lambda model: model.feature_block_modules(),
    "feature_blocks": feature_blocks,
    "freeze": lambda model: freeze(model, trainable_blocks=1),
    "discriminative_param_groups": lambda model: discriminative_param_groups(
        model, 2, lr=1e-4, head_lr=1e-3
    ),
    "FineTune.blocks_for": FineTune(blocks=1).blocks_for,
    "training": enter_train_mode,
}


@pytest.mark.parametrize("door", _DOORS.values(), ids=_DOORS.keys())
def test_every_door_refuses_a_registered_declaration_without_parameters(
    registry: Callable[..., str], door: Callable[[Classifier], object]
) -> None:
    """A Classifier made by hand with ``arch=`` reads the spec at each door, not when built."""
    name = registry(feature_blocks=lambda net: list(net.features))
    model = Classifier(VggLike(), classes=CLASSES, arch=name)
    before = [p.requires_grad for p in model.parameters()]

    with pytest.raises(ValueError, match=r"^ModelSpec.feature_blocks of 'test_net': " + _EMPTY):
        door(model)
    assert [p.requires_grad for p in model.parameters()] == before


def test_paths_to_blocks_without_parameters_are_refused_when_the_classifier_is_built() -> None:
    paths = [f"features.{i}" for i in range(6)]
    with pytest.raises(
        ValueError,
        match=r"^Classifier\(feature_blocks=...\) of VggLike: feature blocks 'features.1' "
        r"\(ReLU\), 'features.2' \(MaxPool2d\), 'features.4' \(ReLU\), 'features.5' "
        r"\(MaxPool2d\) hold no parameters",
    ):
        Classifier(VggLike(), classes=CLASSES, feature_blocks=paths)


def test_modules_given_as_paths_are_refused_naming_both_forms() -> None:
    network = VggLike()
    with pytest.raises(TypeError, match=r"must be module paths \(strings\), got Conv2d.*lambda"):
        Classifier(network, classes=CLASSES, feature_blocks=[network.features[0]])


def test_every_refusal_is_one_line() -> None:
    for selector, error, _ in _REFUSED:
        with pytest.raises(error) as raised:
            Classifier(VggLike(), classes=CLASSES, feature_blocks=selector)
        assert "\n" not in str(raised.value)


def test_the_fix_the_message_names_unfreezes_the_stages(registry: Callable[..., str]) -> None:
    name = registry(feature_blocks=lambda net: [net.features[:3], net.features[3:]])
    counts = [
        parameter_summary(create_model(name, weights=None, trainable_blocks=n)).trainable
        for n in (0, 1, 2)
    ]
    head, second, first = 16 * 4 + 4, 8 * 16 * 9 + 16, 3 * 8 * 9 + 8
    assert counts == [head, head + second, head + second + first]
    model = create_model(name, weights=None, trainable_blocks=2)
    groups = discriminative_param_groups(model, 2, lr=1e-4, head_lr=1e-3)
    assert {group["name"] for group in groups} == {"head", "block -1", "block -2"}


# --- the builder ----------------------------------------------------------------------------


def test_a_builder_without_weights_and_progress_is_refused_when_declared() -> None:
    with pytest.raises(
        TypeError,
        match=r"^no_keywords: ModelSpec.builder <lambda>\(\) does not take weights= and "
        r"progress=, which create_model passes; .*def build\(\*, weights=None, progress=True",
    ):
        ModelSpec(
            name="no_keywords",
            builder=lambda: VggLike(),
            head="fc",
            feature_blocks=lambda net: [net.features],
            gradcam_layer="fc",
        )


def test_a_builder_that_returns_no_network_is_refused_naming_the_field(
    registry: Callable[..., str],
) -> None:
    name = registry(builder=lambda **options: (VggLike(), None), feature_blocks=lambda net: [net])

    with pytest.raises(
        TypeError,
        match=r"^test_net: ModelSpec.builder returned tuple of VggLike, NoneType, not a "
        r"torch.nn.Module; a builder returns the network itself",
    ):
        create_model(name, weights=None)


def test_a_builder_that_returns_no_network_is_refused_when_a_weights_file_is_loaded(
    registry: Callable[..., str], tmp_path: Path
) -> None:
    # was: the weights loader called load_state_dict on the tuple (a raw AttributeError)
    name = registry(builder=lambda **options: (VggLike(), None), feature_blocks=lambda net: [net])
    weights = tmp_path / "weights.pth"
    torch.save(VggLike().state_dict(), weights)

    with pytest.raises(TypeError, match=r"^test_net: ModelSpec.builder returned tuple of VggLike"):
        create_model(name, weights=str(weights))
