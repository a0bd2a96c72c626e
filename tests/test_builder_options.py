"""create_model's options for the architecture's builder: refused in one line when the
architecture does not take them, before anything is built or downloaded."""

from __future__ import annotations

import logging

import pytest

from retinalnet.models import build_model, create_model, list_models
from retinalnet.transforms import Preprocessing


@pytest.fixture(autouse=True)
def _no_random_weights_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)


@pytest.mark.parametrize("name", list_models())
def test_a_preprocessing_setting_is_refused_with_its_fix_for_every_architecture(name: str) -> None:
    """``size=32`` reached the builder: a raw ``TypeError`` from deep inside, or (ConvNeXt,
    MobileNetV3) silently ignored and recorded with the model."""
    with pytest.raises(TypeError) as caught:
        create_model(name, weights=None, size=32)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"create_model({name!r}) does not take size=32: its options are ")
    assert "besides create_model's own num_classes, weights, freeze, " in message
    assert message.endswith("pass preprocessing=Preprocessing(size=32)")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("small_cnn", {"widht": 8},
         r"does not take widht=8: its options are width \(.*small_cnn_network\).*did you mean "
         r"width=\?$"),
        ("resnet18", {"mean": (0.5,)},
         r"does not take mean=\(0\.5,\): its options are zero_init_residual, .* \(torchvision\."
         r"models\.resnet\.ResNet\).* pass preprocessing=Preprocessing\(mean=\(0\.5,\)\)$"),
        ("convnext_tiny", {"zero_init_residual": True},
         r"does not take zero_init_residual=True: its options are .*layer_scale.*; remove it"),
        ("mobilenet_v3_small", {"image_size": 64},
         r"its options are .*width_mult, reduced_tail, dilated .* pass preprocessing="
         r"Preprocessing\(size=64\)$"),
    ],
    ids=["misspelt", "preprocessing", "swallowed", "size-alias"],
)  # fmt: skip
def test_an_option_the_architecture_does_not_take_is_named_with_the_fix(
    name: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        create_model(name, weights=None, **options)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("small_cnn", {"width": 4}),
        ("resnet18", {"zero_init_residual": True}),
        ("mobilenet_v3_small", {"width_mult": 0.5}),
        ("convnext_tiny", {"layer_scale": 1e-5}),
    ],
)
def test_options_the_architecture_takes_are_passed_on_and_recorded(
    name: str, options: dict[str, object]
) -> None:
    model = create_model(name, weights=None, **options)
    assert {key: model.arch_kwargs[key] for key in options} == options


def test_a_checkpoint_config_with_an_option_the_architecture_does_not_take_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^create_model\('small_cnn'\) does not take size=32"):
        build_model(
            "small_cnn",
            {"size": 32},
            classes=("a", "b"),
            preprocessing=Preprocessing(size=32),
        )
