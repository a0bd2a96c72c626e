"""create_model's options for the architecture's builder: refused in one line when the
architecture does not take them, before anything is built or downloaded."""

from __future__ import annotations

import inspect
import logging
import re

import pytest
import torch

from retinalnet.models import build_model, create_model, list_models, model_spec
from retinalnet.transforms import Preprocessing

META = torch.device("meta")


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
    size = model_spec(name).fixed_size or 32  # ViT-B/16 takes 224 px only: not 32
    assert message.endswith(f"pass preprocessing=Preprocessing(size={size})")


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


# --- options the builder sets itself --------------------------------------------------------


def _listed_options(name: str) -> list[str]:
    """The options create_model's refusal lists as those the architecture takes."""
    with pytest.raises(TypeError) as caught:
        create_model(name, weights=None, no_such_option=1)
    listed = re.search(r"its options are (.*?) \(", str(caught.value))
    return [] if listed is None else listed.group(1).split(", ")


def _build(name: str, **options: object) -> torch.nn.Module:
    builder = model_spec(name).builder
    try:
        with META:
            return builder(weights=None, progress=False, **options)
    except NotImplementedError:  # RegNet computes with tensors: a real build
        return builder(weights=None, progress=False, **options)


@pytest.mark.parametrize("name", list_models())
def test_every_option_listed_is_one_the_builder_takes(name: str) -> None:
    """The list offered DenseNet's growth_rate, EfficientNet's last_channel, Swin-T's
    stochastic_depth_prob, ...: parameters of the network class that the torchvision
    builder passes itself, so passing one failed ("got multiple values")."""
    listed = _listed_options(name)
    network_class = type(_build(name))
    defaults = {
        parameter.name: parameter.default
        for parameter in inspect.signature(network_class).parameters.values()
    }
    for option in listed:
        if option in defaults:  # the others are the builder's own (width_mult, width)
            _build(name, **{option: defaults[option]})  # does not raise


def _create(name: str, options: dict[str, object], *, while_handling: bool) -> None:
    if not while_handling:
        create_model(name, weights=None, **options)
        return
    try:
        raise RuntimeError("being handled")
    except RuntimeError:
        create_model(name, weights=None, **options)


@pytest.mark.parametrize(
    ("name", "option", "value"),
    [
        ("densenet121", "growth_rate", 16),  # was the raw "_densenet() got multiple values"
        ("densenet121", "block_config", (6, 12, 24, 16)),
        ("efficientnet_b0", "last_channel", 1280),
        ("efficientnet_v2_s", "norm_layer", None),
        ("swin_t", "stochastic_depth_prob", 0.1),  # was "does not take ...; did you mean it"
    ],
)
@pytest.mark.parametrize("handling", [False, True], ids=["plain", "in-except"])
def test_an_option_the_builder_sets_itself_is_refused_as_fixed(
    name: str, option: str, value: object, handling: bool
) -> None:
    """Also when called while an exception is handled: CPython 3.11 then raises
    ``KeyError(option)`` in place of "got multiple values for argument"."""
    with pytest.raises(TypeError) as caught:
        _create(name, {option: value}, while_handling=handling)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"create_model({name!r}) cannot change {option}={value!r}: retinalnet builds {name} "
        f"with torchvision.models."
    )
    assert f"which fixes {option} itself; its options are " in message
    assert option not in message.partition("its options are ")[2].partition(" (")[0]
    assert message.endswith(f"leave {option} out")


# --- input-size options of a fixed-size network ----------------------------------------------


@pytest.mark.parametrize("option", ["image_size", "size", "img_size"])
@pytest.mark.parametrize("value", [128, 224])
def test_a_size_option_of_vit_is_refused_naming_its_only_size(option: str, value: int) -> None:
    """``image_size=128`` built a 128 px network paired with 224 px preprocessing, which
    every door then failed on with torchvision's AssertionError; ``size=192`` was told to
    pass ``Preprocessing(size=192)``, itself refused."""
    with pytest.raises(TypeError) as caught, META:
        create_model("vit_b_16", weights=None, **{option: value})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"create_model('vit_b_16') does not take {option}={value}: ")
    assert message.endswith(
        "vit_b_16 takes 224 px inputs only: pass preprocessing=Preprocessing(size=224)"
    )


def test_a_saved_config_with_vits_own_size_still_loads() -> None:
    """A checkpoint saved with ``image_size=224`` (which changed nothing) rebuilds; one
    with another size, which no preprocessing could serve, is refused in one line."""
    with META:
        model = build_model(
            "vit_b_16",
            {"num_classes": 2, "image_size": 224},
            classes=("a", "b"),
            preprocessing=Preprocessing(),
        )
    assert model.arch_kwargs["image_size"] == 224
    with pytest.raises(TypeError, match=r"does not take image_size=128: .*size=224\)$"), META:
        build_model(
            "vit_b_16",
            {"num_classes": 2, "image_size": 128},
            classes=("a", "b"),
            preprocessing=Preprocessing(),
        )
