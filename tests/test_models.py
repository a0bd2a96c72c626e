"""Tests for retinalnet.models: the VGG16 transfer model, heads, freezing, weights, registry.

Building VGG16 for real costs seconds and 540 MB, so only the session fixture ``vgg16_random``
and the tests that load a weights file build one. Tests that only count parameters or check
errors build it on the ``meta`` device, where no memory is allocated and no weights are
initialised; structure, shapes and ``requires_grad`` are the same there.
"""

from __future__ import annotations

import argparse
import logging
import re
import struct
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
import torchvision.models._api
from torch import nn
from torchvision.models import ResNet18_Weights, VGG16_Weights

from retinalnet.checkpoint import load_checkpoint, save_checkpoint
from retinalnet.datasets import KERMANY_CLASSES
from retinalnet.models import (
    Classifier,
    ParameterSummary,
    SmallCNN,
    WeightsUnavailableError,
    build_head,
    build_model,
    cached_weights_path,
    create_model,
    feature_blocks,
    find_output_layer,
    freeze,
    load_vgg16,
    model_info,
    parameter_summary,
    replace_head,
    small_cnn,
    vgg16_transfer,
)
from retinalnet.models._weights import resolve_weights
from retinalnet.transforms import Preprocessing

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
META = torch.device("meta")
UNUSED_DROPOUT = (
    "dropout={} would change nothing: the head's dropout comes after its hidden layer, and "
    "hidden={} gives a single Linear; pass hidden= a width too (hidden=256, as the tutorial's "
    "head), or leave dropout out"
)


def trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(autouse=True)
def no_download(monkeypatch, tmp_path):
    """An empty TORCH_HOME, and every download in torch/torchvision failing as if offline.

    Used by every test here, so none can download; returns the URLs that were tried.
    """
    attempts: list[str] = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return attempts


# --- the tutorial's VGG16 transfer model --------------------------------------------------


def test_vgg16_transfer_parameter_counts(vgg16_random):
    summary = parameter_summary(vgg16_random)
    assert summary == ParameterSummary(total=135_310_404, trainable=1_049_860)
    assert str(summary) == "135,310,404 parameters, 1,049,860 trainable (0.78%)"


def test_vgg16_transfer_trains_only_the_new_head(vgg16_random):
    assert trainable_names(vgg16_random) == {
        "network.classifier.6.0.weight",
        "network.classifier.6.0.bias",
        "network.classifier.6.3.weight",
        "network.classifier.6.3.bias",
    }


def test_vgg16_transfer_head_structure(vgg16_random):
    classifier = vgg16_random.network.classifier
    assert isinstance(vgg16_random.network, torchvision.models.VGG)
    assert (classifier[0].in_features, classifier[0].out_features) == (25088, 4096)
    assert (classifier[3].in_features, classifier[3].out_features) == (4096, 4096)
    head = classifier[6]
    assert [type(layer) for layer in head] == [
        nn.Linear,
        nn.ReLU,
        nn.Dropout,
        nn.Linear,
        nn.LogSoftmax,
    ]
    assert (head[0].in_features, head[0].out_features) == (4096, 256)
    assert head[2].p == 0.2
    assert (head[3].in_features, head[3].out_features) == (256, 4)
    assert head[4].dim == 1


def test_vgg16_transfer_outputs_log_probabilities(vgg16_random):
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = vgg16_random(images)
    assert output.shape == (2, 4)
    assert torch.allclose(output.exp().sum(dim=1), torch.ones(2), atol=1e-5)
    assert (output <= 0).all()


def test_vgg16_transfer_carries_classes_preprocessing_and_config(vgg16_random):
    assert isinstance(vgg16_random, Classifier)
    assert vgg16_random.classes == KERMANY_CLASSES
    assert vgg16_random.num_classes == 4
    assert vgg16_random.class_to_idx == {"CNV": 0, "DME": 1, "DRUSEN": 2, "NORMAL": 3}
    assert vgg16_random.preprocessing == Preprocessing()
    assert vgg16_random.arch == "vgg16_transfer"
    assert vgg16_random.arch_kwargs == {
        "num_classes": 4,
        "hidden": 256,
        "dropout": 0.2,
        "freeze": True,
        "trainable_blocks": 0,  # 0.2 name (0.1 recorded except_last_blocks)
    }


@pytest.mark.parametrize(
    ("kwargs", "trainable"),
    [
        ({}, 1_049_860),  # the head: 4096*256 + 256 + 256*4 + 4
        ({"except_last_blocks": 1}, 1_049_860 + 7_079_424),  # + 3 convs 512->512
        ({"except_last_blocks": 2}, 1_049_860 + 7_079_424 + 5_899_776),  # + 256->512, 2x 512
        ({"freeze": False}, 135_310_404),
    ],
)
def test_vgg16_transfer_trainable_counts(kwargs, trainable):
    with META:
        model = vgg16_transfer(weights=None, **kwargs)
    assert parameter_summary(model) == ParameterSummary(135_310_404, trainable)


def test_vgg16_transfer_other_class_count_and_names():
    with META:
        model = vgg16_transfer(weights=None, num_classes=2, hidden=64, dropout=0.4)
    assert model.classes == ("class_0", "class_1")
    head = model.network.classifier[6]
    assert (head[0].out_features, head[2].p, head[3].out_features) == (64, 0.4, 2)
    with META:
        named = vgg16_transfer(weights=None, num_classes=2, classes=["healthy", "sick"])
    assert named.classes == ("healthy", "sick")


def test_the_classes_of_a_study_give_the_number_of_outputs():
    # a CNV-against-NORMAL study: create_model(arch, classes=train.classes), no num_classes
    with META:
        model = vgg16_transfer(weights=None, classes=["CNV", "NORMAL"])
    assert model.classes == ("CNV", "NORMAL")
    assert model.network.classifier[6][-2].out_features == 2
    assert model.arch_kwargs["num_classes"] == 2
    assert small_cnn(classes=["DME", "NORMAL", "CNV"]).eval()(torch.zeros(1, 3, 32, 32)).shape == (
        1,
        3,
    )


def test_vgg16_transfer_classes_must_match_num_classes():
    message = r"num_classes=3 but 2 class names were given \(\['CNV', 'DME'\]\); make them agree"
    with pytest.raises(ValueError, match=message):
        vgg16_transfer(weights=None, num_classes=3, classes=["CNV", "DME"])


def test_except_last_blocks_needs_freeze():
    with META, pytest.raises(ValueError, match="except_last_blocks needs freeze=True"):
        vgg16_transfer(weights=None, freeze=False, except_last_blocks=1)
    with META, pytest.raises(ValueError, match="trainable_blocks needs freeze=True"):
        vgg16_transfer(weights=None, freeze=False, trainable_blocks=1)


def test_trainable_blocks_is_the_0_2_name_of_except_last_blocks():
    with META:
        old = vgg16_transfer(weights=None, except_last_blocks=2)
        new = vgg16_transfer(weights=None, trainable_blocks=2)
    assert trainable_names(old) == trainable_names(new)
    assert old.arch_kwargs == new.arch_kwargs
    assert new.arch_kwargs["trainable_blocks"] == 2
    with META, pytest.raises(ValueError, match=r"or its 0\.1 name except_last_blocks .* not both"):
        vgg16_transfer(weights=None, trainable_blocks=1, except_last_blocks=1)


@pytest.mark.parametrize("classes", [["CNV"], ["CNV", "CNV"], []])
def test_classifier_needs_distinct_class_names(classes):
    with pytest.raises(ValueError, match="classes must be 2 or more distinct names"):
        Classifier(nn.Linear(2, 2), classes=classes)


# every door class names come in through, each checked the same way
CLASS_DOORS = {
    "create_model": lambda classes: create_model("small_cnn", weights=None, classes=classes),
    "small_cnn": lambda classes: small_cnn(classes=classes),
    "vgg16_transfer": lambda classes: vgg16_transfer(weights=None, classes=classes),
    "build_model": lambda classes: build_model(
        "small_cnn", {"num_classes": 2}, classes=classes, preprocessing=Preprocessing()
    ),
    "Classifier": lambda classes: Classifier(nn.Linear(2, 2), classes=classes),
}


@pytest.mark.parametrize(
    ("classes", "error", "message"),
    [
        (
            "CNVD",
            TypeError,
            "classes must be a list of class names, got the string 'CNVD'; pass a list "
            "such as ['CNV', 'NORMAL']",
        ),
        (b"AB", TypeError, "classes must be a list of class names, got the bytes b'AB'"),
        (
            {"CNV", "NORMAL"},
            TypeError,
            "classes must be a list of class names in output order, got a set, which has no order",
        ),
        (
            {"CNV": 0, "NORMAL": 1},
            TypeError,
            "classes must be a list of class names in output order, got a dict",
        ),
        (4, TypeError, "classes must be a list of class names, got 4 (int)"),
        (
            ["CNV", 1],
            TypeError,
            "classes must be names (strings), got 1 (int) in ['CNV', 1]; pass the names as strings",
        ),
        (
            ["", "B"],
            ValueError,
            "classes must be non-blank names, got '' in ['', 'B']; give every class a name",
        ),
        (["A", "  "], ValueError, "classes must be non-blank names, got '  ' in ['A', '  ']"),
    ],
)
@pytest.mark.parametrize("door", list(CLASS_DOORS))
def test_bad_class_names_are_refused_at_every_door(door, classes, error, message):
    with META, pytest.raises(error, match=f"^{re.escape(message)}"):
        CLASS_DOORS[door](classes)


@pytest.mark.parametrize("bare_network", [False, True])
def test_a_checkpoint_with_a_blank_class_name_is_refused_when_built(tmp_path, bare_network):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, small_cnn(classes=["CNV", "NORMAL"], width=4))
    data = torch.load(path, weights_only=True)
    data["classes"] = ["CNV", " "]  # written by hand, or by a version that let it through
    torch.save(data, path)
    network = SmallCNN(2, width=4) if bare_network else None
    # refused as the checkpoint loads now, before any model is built (info too)
    message = "field 'classes' is not valid (classes must be non-blank names, got ' ' in "
    with pytest.raises(ValueError, match=f"^cannot load checkpoint .*{re.escape(message)}"):
        load_checkpoint(path).build_model(network)


@pytest.mark.parametrize("door", list(CLASS_DOORS))
def test_class_names_may_come_as_any_ordered_collection(door):
    with META:
        model = CLASS_DOORS[door](iter(["healthy", "sick"]))
    assert model.classes == ("healthy", "sick")
    assert all(type(name) is str for name in model.classes)


@pytest.mark.parametrize("num_classes", [0, 1, -1, 2.5, True, "4"])
@pytest.mark.parametrize(
    "build",
    [
        lambda n: create_model("small_cnn", weights=None, num_classes=n),
        lambda n: small_cnn(num_classes=n),
        lambda n: vgg16_transfer(weights=None, num_classes=n),
    ],
    ids=["create_model", "small_cnn", "vgg16_transfer"],
)
def test_num_classes_must_be_an_int_of_2_or_more(build, num_classes):
    message = f"num_classes must be an int >= 2, got {num_classes!r}"
    with META, pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        build(num_classes)


# --- feature blocks and freezing ----------------------------------------------------------


def test_feature_blocks_of_vgg16(vgg16_random):
    blocks = feature_blocks(vgg16_random)
    assert [len(block) for block in blocks] == [5, 5, 7, 7, 7]
    assert all(isinstance(block[-1], nn.MaxPool2d) for block in blocks)
    assert blocks[0][0] is vgg16_random.network.features[0]
    assert [len(block) for block in feature_blocks(vgg16_random.network)] == [5, 5, 7, 7, 7]


def test_feature_blocks_of_resnet18():
    net = torchvision.models.resnet18(weights=None)
    assert feature_blocks(net) == [net.layer1, net.layer2, net.layer3, net.layer4]


def test_feature_blocks_of_mobilenet_v3_small():
    net = torchvision.models.mobilenet_v3_small(weights=None)
    blocks = feature_blocks(net)
    assert len(blocks) == len(net.features) == 13
    assert all(a is b for a, b in zip(blocks, net.features, strict=True))


def test_feature_blocks_of_small_cnn():
    assert len(feature_blocks(small_cnn())) == 4


@pytest.mark.parametrize(
    "module", [nn.Linear(2, 2), nn.Sequential(nn.Conv2d(3, 4, 3))], ids=["Linear", "Sequential"]
)
def test_feature_blocks_of_an_unsupported_module(module):
    name = type(module).__name__
    with pytest.raises(TypeError, match=rf"cannot find the feature blocks of {name}: expected"):
        feature_blocks(module)


def test_freeze_everything():
    net = small_cnn(width=4, hidden=8)
    assert freeze(net) is net
    assert parameter_summary(net).trainable == 0


def test_freeze_vgg16_except_the_last_block():
    with META:
        net = torchvision.models.vgg16(weights=None)
    freeze(net, except_last_blocks=1)
    assert parameter_summary(net).trainable == 7_079_424
    assert trainable_names(net) == {
        f"features.{i}.{kind}" for i in (24, 26, 28) for kind in ("weight", "bias")
    }


def test_freeze_takes_the_0_2_name_too():
    with META:
        old = freeze(torchvision.models.vgg16(weights=None), except_last_blocks=2)
        new = freeze(torchvision.models.vgg16(weights=None), trainable_blocks=2)
    assert trainable_names(old) == trainable_names(new)
    with META:
        net = torchvision.models.vgg16(weights=None)
    with pytest.raises(ValueError, match="trainable_blocks=6 but VGG has only 5 feature blocks"):
        freeze(net, trainable_blocks=6)


def test_freeze_resnet18_except_the_last_stage():
    net = torchvision.models.resnet18(weights=None)
    freeze(net, except_last_blocks=1)
    layer4 = {f"layer4.{name}" for name, _ in net.layer4.named_parameters()}
    assert trainable_names(net) == layer4
    assert not net.fc.weight.requires_grad


@pytest.mark.parametrize(
    ("except_last_blocks", "message"),
    [
        (6, "except_last_blocks=6 but VGG has only 5 feature blocks"),
        (-1, "except_last_blocks must be an int >= 0, got -1"),
        (True, "except_last_blocks must be an int >= 0, got True"),
    ],
)
def test_freeze_refuses_bad_except_last_blocks(except_last_blocks, message):
    with META:
        net = torchvision.models.vgg16(weights=None)
    with pytest.raises(ValueError, match=re.escape(message)):
        freeze(net, except_last_blocks=except_last_blocks)


def test_vgg16_transfer_refuses_too_many_blocks():
    with META, pytest.raises(ValueError, match="except_last_blocks must be from 0 to 5"):
        vgg16_transfer(weights=None, except_last_blocks=9)


# --- heads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "types", "params"),
    [
        (
            {},
            [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.LogSoftmax],
            1_049_860,
        ),
        ({"hidden": None}, [nn.Linear, nn.LogSoftmax], 4096 * 4 + 4),
        ({"hidden": 0}, [nn.Linear, nn.LogSoftmax], 4096 * 4 + 4),
        ({"log_softmax": False}, [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear], 1_049_860),
        (
            {"hidden": 32, "dropout": 0.5},
            [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.LogSoftmax],
            4096 * 32 + 32 + 32 * 4 + 4,
        ),
    ],
)
def test_build_head(kwargs, types, params):
    head = build_head(4096, 4, **kwargs)
    assert [type(layer) for layer in head] == types
    assert sum(p.numel() for p in head.parameters()) == params
    assert all(p.requires_grad for p in head.parameters())
    assert head.eval()(torch.zeros(3, 4096)).shape == (3, 4)


def test_build_head_dropout_and_log_softmax():
    head = build_head(16, 3, hidden=8, dropout=0.5)
    assert head[2].p == 0.5
    output = head.eval()(torch.randn(5, 16, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(output.exp().sum(dim=1), torch.ones(5), atol=1e-6)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0, 4), {}, "in_features must be an int >= 1, got 0"),
        ((2.5,), {}, "in_features must be an int >= 1, got 2.5"),
        ((True,), {}, "in_features must be an int >= 1, got True"),
        ((16, 1), {}, "num_classes must be an int >= 2, got 1"),
        ((16, 2.5), {}, "num_classes must be an int >= 2, got 2.5"),
        ((16, True), {}, "num_classes must be an int >= 2, got True"),
        ((16, 4), {"hidden": -1}, "hidden must be an int >= 0 (0 or None: a single Linear)"),
        ((16, 4), {"hidden": 2.5}, "hidden must be an int >= 0 (0 or None: a single Linear)"),
        ((16, 4), {"hidden": True}, "hidden must be an int >= 0 (0 or None: a single Linear)"),
        ((16, 4), {"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
        ((16, 4), {"dropout": -0.1}, "dropout must be in [0, 1), got -0.1"),
        ((16, 4), {"dropout": float("nan")}, "dropout must be in [0, 1), got nan"),
        ((16, 4), {"dropout": "0.2"}, "dropout must be in [0, 1), got '0.2'"),
        ((16, 4), {"dropout": False}, "dropout must be in [0, 1), got False"),
        ((16, 4), {"hidden": 0, "dropout": 0.5}, UNUSED_DROPOUT.format(0.5, 0)),
        ((16, 4), {"hidden": None, "dropout": 0.1}, UNUSED_DROPOUT.format(0.1, None)),
    ],
)
def test_build_head_refuses_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        build_head(*args, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden": -1}, "hidden must be an int >= 0 (0 or None: a single Linear), got -1"),
        ({"hidden": 2.5}, "hidden must be an int >= 0 (0 or None: a single Linear), got 2.5"),
        ({"hidden": True}, "hidden must be an int >= 0 (0 or None: a single Linear), got True"),
        ({"hidden": False}, "hidden must be an int >= 0 (0 or None: a single Linear), got False"),
        ({"dropout": float("nan")}, "dropout must be in [0, 1), got nan"),
        ({"dropout": 1}, "dropout must be in [0, 1), got 1"),
        ({"width": -4}, "width must be an int >= 1, got -4"),
        ({"width": 0}, "width must be an int >= 1, got 0"),
        ({"width": 1.5}, "width must be an int >= 1, got 1.5"),
        ({"width": True}, "width must be an int >= 1, got True"),
        ({"width": "8"}, "width must be an int >= 1, got '8'"),
    ],
)
@pytest.mark.parametrize(
    "build",
    [
        lambda kwargs: create_model("small_cnn", weights=None, **kwargs),
        lambda kwargs: small_cnn(**kwargs),
        lambda kwargs: build_model(
            "small_cnn", kwargs, classes=KERMANY_CLASSES, preprocessing=Preprocessing()
        ),
    ],
    ids=["create_model", "small_cnn", "build_model"],
)
def test_bad_small_cnn_arguments_are_refused_in_one_line(build, kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        build(kwargs)


@pytest.mark.parametrize("hidden", [-1, 2.5, True])
def test_bad_hidden_of_vgg16_transfer_is_refused_in_one_line(hidden):
    message = f"hidden must be an int >= 0 (0 or None: a single Linear), got {hidden!r}"
    with META, pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        vgg16_transfer(weights=None, hidden=hidden)


def test_small_cnn_network_refuses_a_bad_width():
    with pytest.raises(ValueError, match=r"^width must be an int >= 1, got -4"):
        SmallCNN(width=-4)
    with pytest.raises(ValueError, match=r"^num_classes must be an int >= 2, got 2\.5"):
        SmallCNN(2.5)


def test_replace_head_on_resnet18():
    net = torchvision.models.resnet18(weights=None)
    head = replace_head(net, 4, hidden=32)
    assert net.fc is head
    assert (head[0].in_features, head[-2].out_features) == (512, 4)
    assert net.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 4)


def test_replace_head_refuses_a_classifier_whose_classes_would_go_stale():
    # was: the four names kept naming two new outputs (a NORMAL scan reported as CNV or DME)
    model = small_cnn()
    with pytest.raises(TypeError, match=r"names its outputs \['CNV', 'DME', 'DRUSEN', 'NORMAL'\]"):
        replace_head(model, 2)
    assert model.classes == ("CNV", "DME", "DRUSEN", "NORMAL")
    assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 4)  # unchanged


def test_replace_head_on_mobilenet_v3_small():
    net = torchvision.models.mobilenet_v3_small(weights=None)
    head = replace_head(net, 3, hidden=None, log_softmax=False)
    assert len(net.classifier) == 4
    assert net.classifier[-1] is head
    assert [type(layer) for layer in head] == [nn.Linear]
    assert (head[0].in_features, head[0].out_features) == (1024, 3)
    assert net.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_find_output_layer():
    net = torchvision.models.resnet18(weights=None)
    assert find_output_layer(net) == (net, "fc", net.fc)
    with META:
        vgg = torchvision.models.vgg16(weights=None)
    assert find_output_layer(vgg) == (vgg.classifier, "6", vgg.classifier[6])


def test_find_output_layer_of_the_transfer_model_is_the_heads_last_linear(vgg16_random):
    head = vgg16_random.network.classifier[6]
    assert find_output_layer(vgg16_random) == (head, "3", head[3])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: freeze("x"), "freeze takes a torch.nn.Module, got str 'x'"),
        (
            lambda: freeze(None, trainable_blocks=1),
            "freeze takes a torch.nn.Module, got NoneType None",
        ),
        (lambda: feature_blocks("x"), "feature_blocks takes a torch.nn.Module, got str 'x'"),
        (
            lambda: parameter_summary(None),
            "parameter_summary takes a torch.nn.Module, got NoneType None",
        ),
        (lambda: replace_head("x"), "replace_head takes a torch.nn.Module, got str 'x'"),
        (
            lambda: find_output_layer([nn.Linear(2, 2)]),
            "find_output_layer takes a torch.nn.Module, got list [Linear(",
        ),
        (
            lambda: Classifier("x", classes=["a", "b"]),
            "Classifier takes a torch.nn.Module as network, got str 'x'",
        ),
    ],
)
def test_an_object_that_is_not_a_module_is_refused_in_one_line(call, message):
    with pytest.raises(TypeError, match=f"^{re.escape(message)}"):
        call()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"preprocessing": "x"},
            "preprocessing must be a retinalnet.transforms.Preprocessing or None, got str 'x'",
        ),
        ({"arch": 5}, "arch must be a str (a registered architecture's name) or None, got 5"),
        ({"arch_kwargs": [1]}, "arch_kwargs must be a mapping of keyword arguments or None"),
    ],
)
def test_classifier_refuses_arguments_of_the_wrong_type(kwargs, message):
    with pytest.raises(TypeError, match=f"^{re.escape(message)}"):
        Classifier(nn.Linear(2, 2), classes=["a", "b"], **kwargs)


def test_find_output_layer_needs_a_linear_layer():
    message = r"Sequential has no nn\.Linear layer to replace"
    with pytest.raises(TypeError, match=message):
        find_output_layer(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))


# --- parameter summary ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frozen", "expected", "text"),
    [
        ((), (8, 8, 0), "8 parameters, 8 trainable (100.00%)"),
        (("weight",), (8, 2, 6), "8 parameters, 2 trainable (25.00%)"),
        (("weight", "bias"), (8, 0, 8), "8 parameters, 0 trainable (0.00%)"),
    ],
)
def test_parameter_summary(frozen, expected, text):
    layer = nn.Linear(3, 2)
    for name in frozen:
        getattr(layer, name).requires_grad_(False)
    summary = parameter_summary(layer)
    assert (summary.total, summary.trainable, summary.frozen) == expected
    assert str(summary) == text


def test_parameter_summary_of_a_module_without_parameters():
    assert str(parameter_summary(nn.ReLU())) == "0 parameters, 0 trainable (0.00%)"


# --- small CNN and the registry -------------------------------------------------------------


def test_small_cnn():
    model = small_cnn()
    assert isinstance(model, Classifier)
    assert isinstance(model.network, SmallCNN)
    assert model.classes == ("CNV", "DME", "DRUSEN", "NORMAL")
    assert model.preprocessing == Preprocessing()
    assert model.arch == "small_cnn"
    assert model.arch_kwargs == {
        "num_classes": 4,
        "width": 16,
        "hidden": 64,
        "dropout": 0.2,
        "freeze": False,  # 0.2 records the same keys for every architecture
        "trainable_blocks": 0,
    }
    assert parameter_summary(model) == ParameterSummary(106_196, 106_196)
    output = model.eval()(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert output.shape == (2, 4)
    assert torch.allclose(output.exp().sum(dim=1), torch.ones(2), atol=1e-5)


def test_small_cnn_carries_given_classes_and_preprocessing():
    prep = Preprocessing(size=64)
    model = small_cnn(num_classes=2, classes=["NORMAL", "CNV"], preprocessing=prep, width=4)
    assert model.classes == ("NORMAL", "CNV")
    assert model.preprocessing is prep
    assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 2)
    with pytest.raises(ValueError, match=r"2 or more distinct names, got \['CNV'\]"):
        small_cnn(classes=["CNV"])
    with pytest.raises(ValueError, match="num_classes=4 but 2 class names were given"):
        small_cnn(num_classes=4, classes=["CNV", "DME"])


def test_build_model_rebuilds_small_cnn():
    arch_kwargs = {"num_classes": 2, "width": 8, "hidden": 16, "dropout": 0.1}
    prep = Preprocessing(size=64)
    model = build_model("small_cnn", arch_kwargs, classes=("a", "b"), preprocessing=prep)
    assert isinstance(model.network, SmallCNN)
    assert (model.classes, model.preprocessing, model.arch_kwargs) == (
        ("a", "b"),
        prep,
        {**arch_kwargs, "freeze": False, "trainable_blocks": 0},
    )
    reference = small_cnn(**arch_kwargs)
    assert parameter_summary(model) == parameter_summary(reference)
    assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


def test_build_model_rebuilds_vgg16_without_downloading(vgg16_random, no_download):
    with META:
        model = build_model(
            "vgg16_transfer",
            vgg16_random.arch_kwargs,
            classes=vgg16_random.classes,
            preprocessing=Preprocessing(),
        )
    assert no_download == []
    assert parameter_summary(model) == parameter_summary(vgg16_random)
    assert model.arch_kwargs == vgg16_random.arch_kwargs


def test_build_model_reads_0_1_configs():
    # 0.1 recorded except_last_blocks, and hidden=None for a single Linear head
    config = {"num_classes": 4, "hidden": None, "dropout": 0.2, "freeze": True}
    with META:
        model = build_model(
            "vgg16_transfer",
            {**config, "except_last_blocks": 1},
            classes=KERMANY_CLASSES,
            preprocessing=Preprocessing(),
        )
    assert model.arch_kwargs == {**config, "hidden": 0, "trainable_blocks": 1}
    assert [type(layer) for layer in model.network.classifier[6]] == [nn.Linear, nn.LogSoftmax]
    assert parameter_summary(model).trainable == 4096 * 4 + 4 + 7_079_424


# --- a dropout without a hidden layer -----------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: create_model("resnet18", weights=None, dropout=0.5),  # hidden=0: its default
        lambda: create_model("efficientnet_b0", weights=None, hidden=0, dropout=0.5),
        lambda: create_model("small_cnn", hidden=0, dropout=0.5),
        lambda: vgg16_transfer(weights=None, hidden=0, dropout=0.5),
        lambda: small_cnn(hidden=0, dropout=0.5),
        lambda: SmallCNN(4, hidden=0, dropout=0.5),
        lambda: build_head(16, 4, hidden=0, dropout=0.5),
        lambda: replace_head(nn.Sequential(nn.Linear(8, 8)), 4, hidden=0, dropout=0.5),
    ],
    ids=[
        "create_model",
        "create_model-hidden",
        "create_model-small_cnn",
        "vgg16_transfer",
        "small_cnn",
        "SmallCNN",
        "build_head",
        "replace_head",
    ],
)
def test_a_dropout_without_a_hidden_layer_is_refused_naming_hidden(build):
    """``create_model("resnet18", dropout=0.5)`` built a single Linear, no dropout, and
    recorded ``dropout=0.5`` in ``arch_kwargs`` (``retinalnet info`` showed it)."""
    with META, pytest.raises(ValueError, match=f"^{re.escape(UNUSED_DROPOUT.format(0.5, 0))}$"):
        build()


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_no_dropout_or_the_default_is_taken_without_a_hidden_layer(dropout):
    with META:
        model = create_model("resnet18", weights=None, dropout=dropout)
    assert [type(layer) for layer in model.head_module()[1]] == [nn.Linear, nn.LogSoftmax]
    assert model.arch_kwargs["dropout"] == dropout


def test_a_dropout_with_a_hidden_layer_is_applied():
    with META:
        model = create_model("resnet18", weights=None, hidden=8, dropout=0.5)
    head = model.head_module()[1]
    assert [type(layer) for layer in head][:3] == [nn.Linear, nn.ReLU, nn.Dropout]
    assert head[2].p == 0.5


def test_a_checkpoint_saved_with_a_dropout_without_a_hidden_layer_still_loads(tmp_path):
    """Checkpoints written before the refusal may record one: they load as they were."""
    config = {"num_classes": 2, "width": 2, "hidden": 0, "dropout": 0.5}
    saved = build_model("small_cnn", config, classes=("a", "b"), preprocessing=Preprocessing())
    assert [type(layer) for layer in saved.network.classifier] == [nn.Linear, nn.LogSoftmax]
    path = tmp_path / "old.pt"
    save_checkpoint(path, saved)
    loaded = load_checkpoint(path).build_model()
    assert loaded.arch_kwargs == saved.arch_kwargs
    assert loaded.arch_kwargs["dropout"] == 0.5
    for ours, theirs in zip(loaded.state_dict().values(), saved.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)
    with META:
        restored = build_model(
            "resnet18",
            {"num_classes": 4, "hidden": 0, "dropout": 0.5, "freeze": True},
            classes=KERMANY_CLASSES,
            preprocessing=Preprocessing(),
        )
    assert [type(layer) for layer in restored.network.fc] == [nn.Linear, nn.LogSoftmax]


def test_build_model_refuses_an_unknown_architecture():
    message = (
        r"unknown architecture 'resnet9000'; did you mean 'resnet50'\? known: convnext_small, "
        r".*, vit_b_16\. For a network built by hand, pass it as model="
    )
    with pytest.raises(ValueError, match=message):
        build_model("resnet9000", {}, classes=KERMANY_CLASSES, preprocessing=Preprocessing())


# --- weights: local files -------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg16_state() -> dict[str, torch.Tensor]:
    """A state dict with torchvision's VGG16 keys and shapes, each tensor a distinct constant.

    Filled rather than randomly initialised (which takes seconds): a loaded model can only
    match it if the file was really read.
    """
    with META:
        shapes = {
            k: v.shape for k, v in torchvision.models.vgg16(weights=None).state_dict().items()
        }
    return {k: torch.full(shape, 0.5 + i) for i, (k, shape) in enumerate(shapes.items())}


@pytest.fixture(scope="module")
def vgg16_file(vgg16_state, tmp_path_factory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("weights") / "vgg16-397923af.pth"
    torch.save(vgg16_state, path)
    yield path
    path.unlink()  # 528 MB: do not leave it in pytest's kept temporary folders


@pytest.fixture(scope="module")
def vgg16_headless_file(vgg16_state, tmp_path_factory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("weights") / "vgg16-features.pth"
    torch.save({k: v for k, v in vgg16_state.items() if not k.startswith("classifier.6.")}, path)
    yield path
    path.unlink()


@pytest.fixture
def skip_weight_init(monkeypatch):
    """Leave new layers uninitialised: random init of VGG16 takes seconds, and every value it
    would write is then overwritten by the weights file (or a fresh head)."""
    for name in ("kaiming_uniform_", "kaiming_normal_", "uniform_", "normal_", "constant_"):
        monkeypatch.setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)


@pytest.mark.parametrize(
    ("file", "as_type"),
    [("vgg16_file", Path), ("vgg16_headless_file", str)],
    ids=["Path-with-1000-class-layer", "str-without-classifier.6"],
)
@pytest.mark.usefixtures("skip_weight_init")
def test_vgg16_transfer_loads_a_local_state_dict(request, vgg16_state, file, as_type):
    path = request.getfixturevalue(file)
    model = vgg16_transfer(weights=as_type(path))
    loaded = model.network.state_dict()
    assert torch.equal(model.network.features[0].weight, vgg16_state["features.0.weight"])
    for key, value in vgg16_state.items():
        if not key.startswith("classifier.6."):
            assert torch.equal(loaded[key], value), key
    assert isinstance(model.network.classifier[6], nn.Sequential)  # a fresh head
    assert parameter_summary(model) == ParameterSummary(135_310_404, 1_049_860)


def _save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def _quoted(path: Path) -> str:
    return re.escape(repr(str(path)))


def test_weights_file_of_another_network_does_not_fit(tmp_path):
    path = _save(tmp_path / "resnet18.pth", torchvision.models.resnet18(weights=None).state_dict())
    message = (
        rf"weights file {_quoted(path)} does not fit VGG16: missing keys \['classifier\.0\.bias', "
        r".*unexpected keys \['bn1\.bias', .*Expected torchvision's VGG16 state dict "
        rf"\(torchvision\.models\.vgg16\), e\.g\. vgg16-397923af\.pth from {re.escape(VGG16_URL)}"
    )
    with META, pytest.raises(ValueError, match=message):
        vgg16_transfer(weights=path)


def test_weights_file_with_wrong_shapes_does_not_fit(tmp_path, vgg16_state):
    path = _save(tmp_path / "small.pth", {k: torch.zeros(2) for k in vgg16_state})
    message = (
        rf"weights file {_quoted(path)} does not fit VGG16: wrong shapes "
        r"\['classifier\.0\.bias: file \(2,\) vs model \(4096,\)', .* and 27 more\."
    )
    with META, pytest.raises(ValueError, match=message):
        load_vgg16(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # was the unpickler's internal key: "(101)", "(Unsupported operand 255)"
        (
            b"not a torch file",
            r"cannot read weights file {} as a PyTorch state dict: it is not a file torch\.save "
            r"wrote \(torch\.save writes a zip archive; this file starts with b'not a torch",
        ),
        (b"", r"cannot read weights file {} .*\(the file is empty, 0 bytes"),
        ([torch.zeros(2)], "weights file {} does not hold a state dict"),
        ({"features.0.weight": [1, 2]}, "weights file {} does not hold a state dict"),
        (
            {"format": 1, "model": {}, "classes": ["CNV", "DME"]},
            "{} is a retinalnet checkpoint, not backbone weights",
        ),
    ],
    ids=["text", "empty", "list", "non-tensor-values", "checkpoint"],
)
def test_weights_file_that_is_not_a_state_dict(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with META, pytest.raises(ValueError, match=message.format(_quoted(path))):
        vgg16_transfer(weights=path)


def _half_a_torch_file(path: Path) -> None:
    torch.save({"features.0.weight": torch.zeros(3)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _lightning_checkpoint_with_a_namespace(path: Path) -> None:
    """A Lightning checkpoint of ``save_hyperparameters(args)``: its state dict is fine, its
    hyper-parameters an ``argparse.Namespace``, which torch's safe loading refuses."""
    state = {"features.0.weight": torch.zeros(3)}
    hyper = argparse.Namespace(lr=0.1)
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.4.0", "hp": hyper}, path)


@pytest.mark.parametrize(
    ("write", "said"),
    [
        (
            lambda path: torch.save(nn.Linear(2, 2), path),
            r"weights file {} holds pickled Python objects \(torch\.nn\.modules\.linear\.Linear\), "
            r"as a whole model saved with torch\.save\(model\) does, which retinalnet does not "
            r"load because unpickling can run arbitrary code; pass torchvision's VGG16 state dict",
        ),
        (
            lambda path: path.write_bytes(b"\x80\x02garbage"),
            r"cannot read weights file {} as a PyTorch state dict \(Unsupported operand 103\); "
            r"expected torchvision's VGG16 state dict",
        ),
        (
            _half_a_torch_file,
            r"weights file {} is incomplete: it starts as the zip archive torch\.save writes but "
            r"has no zip directory at its end",
        ),
        (
            _lightning_checkpoint_with_a_namespace,
            r"weights file {} is a PyTorch Lightning checkpoint whose entries beside its "
            r"'state_dict' hold pickled Python objects \(argparse\.Namespace; Lightning keeps "
            r"hyper-parameters so\), which retinalnet does not unpickle, .* save its state dict "
            r"alone with that class allowed, .*safe_globals\(\[argparse\.Namespace\]\): "
            r"torch\.save\(torch\.load\(.*, weights_only=True\)\['state_dict'\], 'weights\.pt'\)`$",
        ),
    ],
    ids=["whole-model", "raw-pickle", "truncated", "lightning-namespace"],
)
def test_a_weights_file_torch_cannot_load_safely_is_refused_in_one_line(tmp_path, write, said):
    path = tmp_path / "weights.pth"
    write(path)
    with META, pytest.raises(ValueError, match=f"^{said.format(_quoted(path))}") as info:
        vgg16_transfer(weights=path)
    message = str(info.value)
    # torch's words run over lines, in colour, and advise loading with weights_only=False
    assert "\n" not in message
    assert "\x1b" not in message
    assert "weights_only=False" not in message
    assert "This is an internal miniz error" not in message


def test_a_cached_weights_file_torch_cannot_load_is_said_in_one_line(monkeypatch):
    cached = cached_weights_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x80\x02garbage")

    def unsafe_advice(url, *args, **kwargs):  # what torch says of such a file
        raise torch.serialization.pickle.UnpicklingError(
            "Weights only load failed. This file can still be loaded, to do so you have two "
            "options, \x1b[1mdo those steps only if you trust the source of the checkpoint"
            "\x1b[0m. \n\t(1) Re-running `torch.load` with `weights_only` set to `False` will "
            "likely succeed\n\tWeightsUnpickler error: Unsupported operand 103\n\nCheck the "
            "documentation of torch.load"
        )

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", unsafe_advice)
    with META, pytest.raises(WeightsUnavailableError) as info:
        vgg16_transfer(weights="DEFAULT", progress=False)
    message = str(info.value)
    assert message.startswith(
        f"the cached VGG16 weights {str(cached)!r} cannot be loaded (Unsupported operand 103); "
        "the file is probably incomplete or corrupt: delete it to download it again"
    ), message
    assert "\n" not in message
    assert "\x1b" not in message
    assert "`weights_only`" not in message


@pytest.mark.parametrize("as_type", [Path, str])
def test_missing_weights_file_says_where_to_download(tmp_path, as_type):
    path = tmp_path / "vgg16-397923af.pth"
    message = rf"weights file {_quoted(path)} does not exist; .*download {re.escape(VGG16_URL)}"
    with pytest.raises(FileNotFoundError, match=message):
        vgg16_transfer(weights=as_type(path))


@pytest.mark.parametrize(
    "name",
    [
        "IMAGENET",
        "imagenet1k_v1",
        "IMAGENET1K_V2",
        "VGG16_Weights.IMAGENET1K_V2",
    ],
)
def test_unknown_weights_name_lists_the_names(name):
    message = (
        rf"weights={re.escape(repr(name))} is neither a VGG16 weights name \(.*DEFAULT.*"
        r"IMAGENET1K_V1.*\) nor an existing file"
    )
    with pytest.raises(ValueError, match=message):
        vgg16_transfer(weights=name)


def test_unknown_weights_name_lists_each_name_once():
    with pytest.raises(ValueError, match="neither a VGG16 weights name") as info:
        resolve_weights("IMAGENET")
    listed = re.search(r"weights name \(([^)]*)\)", str(info.value)).group(1).split(", ")
    # IMAGENET1K_FEATURES is a member too, but refused (see test_features_only_weights_...)
    assert sorted(listed) == ["DEFAULT", "IMAGENET1K_V1"]


def test_weights_of_the_wrong_type_are_refused():
    with pytest.raises(TypeError, match=r"weights must be a VGG16_Weights member, .*, got int"):
        vgg16_transfer(weights=16)


# --- weights: names and downloads (never really downloaded) ----------------------------------


@pytest.mark.parametrize(
    "weights",
    [
        VGG16_Weights.IMAGENET1K_V1,
        VGG16_Weights.DEFAULT,
        "IMAGENET1K_V1",
        "VGG16_Weights.IMAGENET1K_V1",
        "DEFAULT",
        "VGG16_Weights.DEFAULT",
    ],
)
def test_weights_names_resolve_to_the_imagenet_enum(weights, no_download):
    assert resolve_weights(weights) is VGG16_Weights.IMAGENET1K_V1
    assert no_download == []


def test_resolve_weights_of_none_and_of_a_file(tmp_path):
    path = _save(tmp_path / "weights", {})
    assert resolve_weights(None) is None
    assert resolve_weights(str(path)) == path
    assert resolve_weights(path) == path


def test_cached_weights_path_is_under_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert cached_weights_path() == expected
    assert cached_weights_path(VGG16_Weights.IMAGENET1K_V1) == expected


@pytest.mark.parametrize("weights", ["IMAGENET1K_V1", "DEFAULT", VGG16_Weights.IMAGENET1K_V1])
def test_failed_download_says_how_to_work_offline(no_download, tmp_path, weights):
    cache = tmp_path / "torch-home" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    message = (
        r"cannot download VGG16 weights IMAGENET1K_V1 \(<urlopen error no network>\); "
        rf"on a machine with internet, download {re.escape(VGG16_URL)} and either copy it to "
        rf"{re.escape(str(cache))} or pass weights='/path/to/vgg16-397923af\.pth'; "
        r"weights=None trains from random initialisation"
    )
    with META, pytest.raises(WeightsUnavailableError, match=message) as info:
        vgg16_transfer(weights=weights, progress=False)
    assert no_download == [VGG16_URL]
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value.__cause__, urllib.error.URLError)


@pytest.mark.parametrize("weights", ["IMAGENET1K_FEATURES", VGG16_Weights.IMAGENET1K_FEATURES])
def test_features_only_weights_are_refused(no_download, weights):
    with META, pytest.raises(ValueError, match="IMAGENET1K_FEATURES"):
        vgg16_transfer(weights=weights, progress=False)
    assert no_download == []


def test_the_download_notice_is_a_log_line_and_stdout_is_never_swapped(
    monkeypatch, tmp_path, capfd, caplog
):
    # torch.hub prints "Downloading: ..." to stdout, where `retinalnet ... --json` writes;
    # swapping sys.stdout for the download took every thread's prints meanwhile
    import sys

    stdout = sys.stdout
    seen = []

    def fake_download(url, dst, *args, **kwargs):
        seen.append(sys.stdout is stdout)
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), dst)

    from torchvision import _internally_replaced_utils as real  # no_download leaves it alone

    monkeypatch.setattr(
        torchvision.models._api, "load_state_dict_from_url", real.load_state_dict_from_url
    )
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        create_model("resnet18", progress=False)
    assert seen == [True]
    assert capfd.readouterr().out == ""
    cached = cached_weights_path("resnet18")
    assert f"downloading {ResNet18_Weights.DEFAULT.url} to {cached}" in caplog.messages


@pytest.mark.parametrize(
    ("build", "warned"),
    [
        (lambda: vgg16_transfer(weights=None, progress=False), "vgg16_transfer"),
        (lambda: create_model("resnet18", weights=None), "resnet18"),
        (lambda: create_model("resnet18", weights=None, freeze=False), None),
        (lambda: create_model("small_cnn"), None),  # it has no pretrained weights to miss
        (
            lambda: build_model(  # a checkpoint's weights replace the random ones
                "resnet18", {}, classes=KERMANY_CLASSES, preprocessing=Preprocessing()
            ),
            None,
        ),
        (lambda: model_info("vgg16_transfer"), None),  # only counts parameters
    ],
)
def test_a_frozen_random_backbone_is_said_in_one_line(build, warned, caplog):
    with META, caplog.at_level(logging.WARNING, logger="retinalnet"):
        build()
    expected = (
        []
        if warned is None
        else [
            f"{warned}: random weights (weights=None) in a frozen backbone: only the head will "
            "learn, on features that mean nothing; fine for tests, but for results use "
            "pretrained weights (weights='DEFAULT' or a file)"
        ]
    )
    assert [r.getMessage() for r in caplog.records] == expected


def _state_file(path: Path, value: float = 0.5) -> Path:
    torch.save({"features.0.weight": torch.full((64,), value)}, path)
    return path


def test_a_damaged_weights_file_is_refused_like_a_damaged_checkpoint(tmp_path):
    path = _state_file(tmp_path / "weights.pth")
    data = bytearray(path.read_bytes())
    at = bytes(data).index(struct.pack("<f", 0.5) * 8)  # inside the tensor's bytes
    data[at : at + 4] = struct.pack("<f", 0.25)
    path.write_bytes(bytes(data))
    message = rf"^weights file {_quoted(path)} is damaged: '.*' fails its CRC-32 check"
    with META, pytest.raises(ValueError, match=message):
        vgg16_transfer(weights=path)


def test_a_weights_file_with_nan_values_is_refused_naming_the_tensor(tmp_path):
    path = _state_file(tmp_path / "weights.pth", float("nan"))
    message = (
        rf"^weights file {_quoted(path)} holds NaN or infinite values in 'features\.0\.weight'"
    )
    with META, pytest.raises(ValueError, match=message):
        vgg16_transfer(weights=path)


# ---------------------------------------------------------------------------------------------
# Weights files as other tools and older torch versions wrote them load as torch would load them


def _resnet18_state(num_classes: int = 1000) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    return torchvision.models.resnet18(weights=None, num_classes=num_classes).state_dict()


def _assert_backbone_loaded(model: Classifier, state: dict[str, torch.Tensor], head: str) -> None:
    loaded = model.network.state_dict()
    for key, value in state.items():
        if not key.startswith(f"{head}.") and not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded[key], value), key


def test_a_file_saved_before_torch_0_4_1_without_batch_counters_loads(tmp_path):
    """torch's BatchNorm fills in a missing ``num_batches_tracked``; so does retinalnet."""
    state = _resnet18_state()
    old = {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    path = _save(tmp_path / "resnet18-5c106cde.pth", old)
    model = create_model("resnet18", weights=path)
    _assert_backbone_loaded(model, state, "fc")
    assert int(model.network.bn1.num_batches_tracked) == 0


def test_densenet_weights_in_torchvision_s_released_key_layout_load(tmp_path):
    """densenet121-a639ec97.pth names its layers ``norm.1``, ``conv.2``: torchvision renames
    them while loading, and so does retinalnet (also without the batch counters, as in 2017)."""
    torch.manual_seed(4)
    state = torchvision.models.densenet121(weights=None).state_dict()
    released = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in released
    path = _save(tmp_path / "densenet121-a639ec97.pth", released)
    model = create_model("densenet121", weights=path)
    _assert_backbone_loaded(model, state, "classifier")


@pytest.mark.parametrize(
    ("wrap", "said"),
    [
        (lambda sd: {f"module.{k}": v for k, v in sd.items()}, "prefix 'module.'.*Distributed"),
        (lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()}, "prefix '_orig_mod.'.*compile"),
        (
            lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3},
            "used its 'state_dict' entry .*Lightning.*left out \\['epoch'\\]",
        ),
        (lambda sd: {"model": sd, "epoch": 1}, "used its 'model' entry .*timm"),
        (
            lambda sd: {"state_dict": {k: v * 0 for k, v in sd.items()}, "state_dict_ema": sd},
            "used its 'state_dict_ema' entry .*moving average",
        ),
    ],
    ids=["ddp", "torch-compile", "lightning", "timm-model", "timm-ema"],
)
def test_a_training_tool_s_checkpoint_gives_its_state_dict(tmp_path, caplog, wrap, said):
    state = _resnet18_state()
    path = _save(tmp_path / "trained.ckpt", wrap(state))
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        model = create_model("resnet18", weights=path)
    _assert_backbone_loaded(model, state, "fc")
    notes = [r.getMessage() for r in caplog.records if "trained.ckpt" in r.getMessage()]
    assert any(re.search(said, note) for note in notes), notes


def test_a_container_without_a_state_dict_names_its_keys(tmp_path):
    path = _save(tmp_path / "run.ckpt", {"epoch": 3, "optimizer": {"lr": 0.1}})
    message = (
        rf"weights file {_quoted(path)} does not hold a state dict \(a dict of name -> tensor, "
        r"or a training checkpoint holding one under 'state_dict_ema', 'model_ema', "
        r"'state_dict', 'model'\) but a dict with keys \['epoch', 'optimizer'\]"
    )
    with META, pytest.raises(ValueError, match=message):
        create_model("resnet18", weights=path)


def test_a_file_whose_head_was_trained_for_other_classes_is_warned_about(tmp_path):
    """The silent case: a fine-tuned 4-class ResNet-18 lost its trained head without a word."""
    state = _resnet18_state(num_classes=4)
    path = _save(tmp_path / "my_oct_resnet18.pth", state)
    said = (
        rf"weights file {_quoted(path)}: its fc has 4 outputs, not ImageNet's 1000, a head "
        r"trained for some task, and only the file's backbone weights are loaded: the model's "
        r"new head starts untrained\. To use the whole trained network, load the file into "
        r"torchvision\.models\.resnet18\(num_classes=4\) and wrap it: Classifier\(net, "
        r"classes=\[\.\.\.\]\)"
    )
    with pytest.warns(UserWarning, match=said) as caught:
        model = create_model("resnet18", weights=path, classes=["A", "B", "C", "D"])
    assert caught[0].filename == __file__  # the caller's line, not retinalnet's
    _assert_backbone_loaded(model, state, "fc")


def test_a_file_with_imagenet_s_head_loads_without_a_warning(tmp_path, recwarn):
    path = _save(tmp_path / "resnet18-f37072fd.pth", _resnet18_state())
    create_model("resnet18", weights=path)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


class _Staged(nn.Module):
    """A hand-built network: a stem, two stages and a linear head, ``in_channels`` in."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU())
        self.stage1 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.fc(self.stage2(self.stage1(self.stem(x))).mean((2, 3)))
        return output


@pytest.mark.parametrize(
    ("blocks", "match"),
    [
        (
            ["stage2", "stage1"],
            r"listed first to last.*got \['stage2', 'stage1'\]; write \['stage1', 'stage2'\]",
        ),
        (["stage2", "stage2.0"], r"'stage2' and 'stage2.0' overlap"),
        (["stage1", "stage1"], r"'stage1' and 'stage1' overlap"),
        (["stem", "stage1.0", "stage1"], r"'stage1.0' and 'stage1' overlap"),
    ],
    ids=["reversed", "nested", "twice", "child before parent"],
)
def test_feature_blocks_out_of_order_or_overlapping_are_refused(
    blocks: list[str], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        Classifier(_Staged(), classes=KERMANY_CLASSES, feature_blocks=blocks)


def test_disjoint_feature_blocks_in_order_are_taken() -> None:
    model = Classifier(
        _Staged(), classes=KERMANY_CLASSES, feature_blocks=["stem", "stage1.0", "stage2"]
    )

    assert model.feature_block_modules()[-1] is model.network.stage2


def test_a_one_channel_network_is_refused_in_one_line_at_first_use() -> None:
    model = Classifier(_Staged(in_channels=1), classes=KERMANY_CLASSES)

    with pytest.raises(
        ValueError,
        match=r"^_Staged's first convolution 'stem.0' takes 1 input channel\(s\), but the "
        r"images have 3 .*x\[:, :1\]",
    ):
        model(torch.zeros(2, 3, 16, 16))
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 4)  # its own inputs still run


def test_a_network_whose_first_layer_is_no_convolution_is_not_refused() -> None:
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 16),
        nn.Unflatten(1, (1, 4, 4)),
        nn.Conv2d(1, 4, 1),
        nn.Flatten(),
        nn.Linear(64, 4),
    )
    model = Classifier(network, classes=KERMANY_CLASSES)

    assert model(torch.zeros(2, 3, 4, 4)).shape == (2, 4)


def test_a_first_registered_convolution_that_is_not_the_input_layer_is_not_refused() -> None:
    class LateStem(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Conv2d(4, 4, 1)  # registered first, run last
            self.stem = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            output: torch.Tensor = self.head(self.stem(x)).mean((2, 3))
            return output

    model = Classifier(LateStem(), classes=KERMANY_CLASSES)

    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 4)


# ---------------------------------------------------------------------------------------------
# The advice for a state dict given as a checkpoint works when followed as written


def _trained_small_cnn() -> Classifier:
    torch.manual_seed(5)
    return create_model("small_cnn", weights=None, preprocessing=Preprocessing(size=32))


def _follow(message: str) -> Classifier:
    """Run the Python code of ``message`` (in backticks), with the class names filled in."""
    code = re.search(r"`([^`]*)`", message)
    assert code is not None, message
    names = f"classes={list(KERMANY_CLASSES)!r}"
    scope: dict[str, object] = {
        "torch": torch,
        "torchvision": torchvision,
        "create_model": create_model,
        "Classifier": Classifier,
    }
    exec(code.group(1).replace("classes=[...]", names), scope)  # the advice, as written
    model = scope["model"]
    assert isinstance(model, Classifier)
    return model


@pytest.mark.parametrize(
    ("wrap", "said"),
    [
        pytest.param(
            lambda sd: {
                "state_dict": {f"model.{k}": v for k, v in sd.items()},
                "epoch": 3,
                "global_step": 10,
                "pytorch-lightning_version": "2.4.0",
            },
            r"but a PyTorch Lightning checkpoint holding a small_cnn Classifier's state dict "
            r"\(under its 'state_dict' key; every key prefixed 'model\.'; ",
            id="lightning",
        ),
        pytest.param(
            lambda sd: {f"module.{k}": v for k, v in sd.items()},
            r"but a small_cnn Classifier's state dict \(every key prefixed 'module\.'; ",
            id="ddp-classifier",
        ),
        pytest.param(
            lambda sd: {f"module.{k.removeprefix('network.')}": v for k, v in sd.items()},
            r"but a bare small_cnn state dict \(every key prefixed 'module\.'; ",
            id="ddp-network",
        ),
        pytest.param(
            lambda sd: sd, r"but a small_cnn Classifier's state dict \(its ", id="classifier"
        ),
        pytest.param(
            lambda sd: {"state_dict": sd, "epoch": 3},
            r"but a small_cnn Classifier's state dict \(under its 'state_dict' key; ",
            id="timm-style",
        ),
    ],
)
def test_a_state_dict_given_as_a_checkpoint_is_answered_with_code_that_loads_it(
    tmp_path, wrap, said
):
    """Was: "load the file into that network and wrap it: Classifier(net, classes=[...])",
    which failed for these (Missing key(s) "features.0.weight"): it named neither the
    container nor the prefix, nor that a Classifier's own keys start with 'network.'."""
    trained = _trained_small_cnn()
    path = _save(tmp_path / "weights.ckpt", wrap(trained.state_dict()))
    with pytest.raises(ValueError, match=said) as caught:
        load_checkpoint(path)
    model = _follow(str(caught.value))
    assert model.classes == KERMANY_CLASSES
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    save_checkpoint(tmp_path / "model.pt", model)  # and it writes a checkpoint
    assert load_checkpoint(tmp_path / "model.pt").arch == "small_cnn"


def test_a_checkpoint_given_as_weights_says_how_to_start_a_new_run_from_it(tmp_path):
    """Was: "to continue its training use fit(..., resume_from=...)", which refuses other
    data: no way was said to start a new run from the checkpoint's weights."""
    trained = _trained_small_cnn()
    checkpoint = save_checkpoint(tmp_path / "best.pt", trained)
    with pytest.raises(ValueError, match=r"to start a new run from its weights") as caught:
        create_model("small_cnn", weights=checkpoint)
    message = str(caught.value)
    code = re.search(r"`([^`]*)`", message)
    assert code is not None
    exec(code.group(1), {"torch": torch, "load_checkpoint": load_checkpoint})
    network = tmp_path / "best_network.pth"
    assert message.endswith(f"and use create_model('small_cnn', weights={str(network)!r})")
    with pytest.warns(UserWarning, match=r"only the file's backbone weights are loaded"):
        model = create_model("small_cnn", weights=network, classes=["a", "b"])
    head = "network.classifier."
    for key, value in trained.state_dict().items():
        if not key.startswith(head):
            assert torch.equal(model.state_dict()[key], value), key


def test_a_torchvision_state_dict_in_a_container_is_answered_with_code_that_loads_it(tmp_path):
    state = _resnet18_state(num_classes=4)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    path = _save(tmp_path / "run.ckpt", wrapped)
    said = r"`net = torchvision\.models\.resnet18\(num_classes=4\); net\.load_state_dict\("
    with pytest.raises(ValueError, match=said) as caught:
        load_checkpoint(path)
    model = _follow(str(caught.value))
    for key, value in state.items():
        assert torch.equal(model.network.state_dict()[key], value), key


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "NORMAL\nfake.jpeg  NORMAL  99.0%",
            "classes must be names that print as they are, got 'NORMAL\\nfake.jpeg  NORMAL  "
            "99.0%' in ['CNV', 'NORMAL\\nfake...NORMAL  99.0%']: it holds U+000A (a control "
            "character), which would break or forge the lines that name the class; rename the "
            "class without it",
        ),
        (
            "DRUSEN\r\x1b[2K",
            "got 'DRUSEN\\r\\x1b[2K' in ['CNV', 'DRUSEN\\r\\x1b[2K']: it holds U+000D",
        ),
        ("wet\u2028AMD", "it holds U+2028 LINE SEPARATOR (a line separator)"),
        ("DME\u202e", "it holds U+202E RIGHT-TO-LEFT OVERRIDE (an invisible format character)"),
        ("\u200d", "classes must be non-blank names, got '\\u200d'"),  # a joiner alone
        ("\xa0", "classes must be non-blank names, got '\\xa0'"),
    ],
)
@pytest.mark.parametrize("door", list(CLASS_DOORS))
def test_class_names_that_would_forge_result_lines_are_refused_at_every_door(
    door: str, name: str, message: str
) -> None:
    # was: accepted, then printed raw by predict and info: a newline forged a result line,
    # a carriage return and an escape sequence erased one
    with META, pytest.raises(ValueError, match=re.escape(message)):
        CLASS_DOORS[door](["CNV", name])


@pytest.mark.parametrize(
    "names",
    [
        ["wet AMD", "drusen, soft"],
        ["Ödem", "中文"],
        ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "NORMAL\xa0B"],
    ],
)
@pytest.mark.parametrize("door", list(CLASS_DOORS))
def test_class_names_of_any_script_with_spaces_and_commas_are_names(
    door: str, names: list[str]
) -> None:
    with META:
        model = CLASS_DOORS[door](names)
    assert model.classes == tuple(names)


def test_the_file_the_class_names_came_from_is_named() -> None:
    from retinalnet.models._checks import check_class_names

    with pytest.raises(
        ValueError,
        match=r"^cannot read 'model\.onnx': its classes must be names that print as they are, "
        r"got 'A\\x1b\[2K' in \['A\\x1b\[2K', 'B'\]: it holds U\+001B \(a control character\), "
        r"which would break or forge the lines that name the class; use another file, or ask "
        r"whoever made it for one with plain class names$",
    ):
        check_class_names(["A\x1b[2K", "B"], source="model.onnx")
    with pytest.raises(ValueError, match=r"^cannot read 'ck\.pt': its classes must be non-blank"):
        check_class_names(["A", " "], source=Path("ck.pt"))
    assert check_class_names(["A", "B"], source="ck.pt") == ("A", "B")


def test_settings_given_as_numpy_or_torch_scalars_are_saved_as_python_numbers(tmp_path):
    # was: dropout=np.float32(0.2) was recorded as a NumPy scalar, and the checkpoint the run
    # saved was refused on load ("pickled Python objects (scalar and dtype)")
    import numpy as np

    model = create_model("small_cnn", weights=None, dropout=np.float32(0.2), hidden=np.int64(8))
    model.arch_kwargs["added_later"] = torch.tensor(1.5)
    model.arch_kwargs["from_npz"] = np.load(_npz(tmp_path, 0.5))["width"]  # a 0-d array
    save_checkpoint(tmp_path / "m.pt", model)

    recorded = load_checkpoint(tmp_path / "m.pt").arch_kwargs
    assert type(recorded["dropout"]) is float
    assert type(recorded["hidden"]) is int
    assert recorded["added_later"] == 1.5
    assert type(recorded["added_later"]) is float
    assert recorded["from_npz"] == 0.5
    assert type(recorded["from_npz"]) is float


def _npz(folder: Path, width: float) -> Path:
    import numpy as np

    np.savez(folder / "config.npz", width=width)
    return folder / "config.npz"


def test_a_named_tuple_among_the_settings_is_kept_as_it_is():
    # was: rebuilt from a generator, which a named tuple's constructor does not take
    import collections

    stage = collections.namedtuple("Stage", "depth width")(1, 2)
    model = Classifier(nn.Linear(2, 2), classes=["a", "b"], arch_kwargs={"stage": stage})
    assert model.arch_kwargs["stage"] is stage


def test_the_default_dropout_given_as_float32_is_the_default():
    # was: np.float32(0.2) is 0.20000000298, not 0.2, and was refused as "would change nothing"
    import numpy as np

    with META:
        model = create_model("resnet18", weights=None, dropout=np.float32(0.2))
    assert [type(layer) for layer in model.head_module()[1]] == [nn.Linear, nn.LogSoftmax]


def test_hidden_none_means_no_hidden_layer_in_the_builders_and_the_default_in_create_model():
    # as their docstrings say: the builders keep 0.1's meaning, create_model the default width
    def head_widths(model: nn.Module) -> list[int]:
        return [layer.out_features for layer in model.modules() if isinstance(layer, nn.Linear)]

    assert head_widths(small_cnn(hidden=None)) == [4]
    assert head_widths(create_model("small_cnn", hidden=None)) == [64, 4]
    assert head_widths(small_cnn()) == [64, 4]
