"""Tests for the model registry: every registered architecture, built without weights.

Structure checks build on the ``meta`` device (no memory, no initialisation, instant);
RegNet's builder computes its widths with tensors and is built on the CPU instead. Only the
forward/Grad-CAM test builds each network for real. Nothing is downloaded: every download
fails as if offline (``no_download``).
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error

import pytest
import torch
import torchvision
import torchvision.models._api
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import ResNet50_Weights, VGG16_Weights

from retinalnet.cli import build_parser, main
from retinalnet.cli._recipe import recipe_defaults
from retinalnet.gradcam import grad_cam
from retinalnet.models import (
    Classifier,
    ModelSpec,
    WeightsUnavailableError,
    _registry,
    build_model,
    cached_weights_path,
    create_model,
    freeze,
    list_models,
    model_info,
    model_spec,
    register_model,
    small_cnn,
)
from retinalnet.models._weights import resolve_weights
from retinalnet.transforms import Preprocessing

META = torch.device("meta")
NAMES = list_models()

# name: (head input width, feature blocks)
EXPECTED = {
    "convnext_small": (768, 4),
    "convnext_tiny": (768, 4),
    "densenet121": (1024, 4),
    "efficientnet_b0": (1280, 5),
    "efficientnet_b1": (1280, 5),
    "efficientnet_b2": (1408, 5),
    "efficientnet_b3": (1536, 5),
    "efficientnet_v2_s": (1280, 5),
    "mobilenet_v3_large": (1280, 5),
    "mobilenet_v3_small": (1024, 5),
    "regnet_y_1_6gf": (888, 4),
    "regnet_y_400mf": (440, 4),
    "regnet_y_800mf": (784, 4),
    "resnet18": (512, 4),
    "resnet34": (512, 4),
    "resnet50": (2048, 4),
    "small_cnn": (128, 4),
    "swin_t": (768, 4),
    "vgg16_transfer": (4096, 5),
    "vit_b_16": (768, 12),
}


@pytest.fixture(autouse=True)
def no_download(monkeypatch, tmp_path):
    """An empty TORCH_HOME, and every download failing as if offline; the URLs tried."""
    attempts: list[str] = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return attempts


def structure(name: str, **kwargs) -> Classifier:
    """``create_model(name, weights=None)`` on the meta device where the builder allows."""
    try:
        with META:
            return create_model(name, weights=None, progress=False, **kwargs)
    except NotImplementedError:
        return create_model(name, weights=None, progress=False, **kwargs)


def test_the_builtin_architectures_are_registered_in_order():
    assert sorted(EXPECTED) == NAMES


# --- every architecture ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_declared_head_and_feature_blocks(name):
    model = structure(name, freeze=True, trainable_blocks=1)
    spec = model_spec(name)
    assert model.arch == name
    path, head = model.head_module()
    assert path == spec.head
    assert head is model.network.get_submodule(spec.head)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert linears[0].in_features == EXPECTED[name][0]
    assert linears[-1].out_features == 4
    assert isinstance(head[-1], nn.LogSoftmax)

    blocks = model.feature_block_modules()
    assert len(blocks) == EXPECTED[name][1]
    inside = {id(m) for m in model.network.modules()}
    for block in blocks:
        # a block is a module of the network, or a Sequential view of some of its modules
        parts = [block] if id(block) in inside else list(block.children())
        assert parts
        assert all(id(part) in inside for part in parts)
    params = [id(p) for block in blocks for p in block.parameters()]
    assert len(params) == len(set(params))  # no parameter in two blocks

    # trainable_blocks=1: exactly the last block and the head train
    expected = {id(p) for p in blocks[-1].parameters()} | {id(p) for p in head.parameters()}
    assert {id(p) for p in model.parameters() if p.requires_grad} == expected


@pytest.mark.parametrize("name", NAMES)
def test_min_size_works_and_each_block_ends_at_a_coarser_resolution(name):
    model = structure(name).eval()
    spec = model_spec(name)
    device = next(model.parameters()).device
    with torch.no_grad():
        assert model(torch.zeros(1, 3, spec.min_size, spec.min_size, device=device)).shape == (1, 4)
    if name == "vit_b_16":
        return  # its blocks all keep the 14x14 patch grid
    inside = {id(m) for m in model.network.modules()}
    sizes: list[int] = []
    hooks = []
    for block in model.feature_block_modules():
        last = block if id(block) in inside else list(block.children())[-1]

        def record(module, args, output):
            activation = spec.gradcam_reshape(output) if spec.gradcam_reshape else output
            sizes.append(activation.shape[-1])

        hooks.append(last.register_forward_hook(record))
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64, device=device))
    for hook in hooks:
        hook.remove()
    assert sizes == sorted(set(sizes), reverse=True), sizes


@pytest.mark.parametrize("name", NAMES)
# inputs at the smallest size on purpose, not the preprocessing's: grad_cam says so
@pytest.mark.filterwarnings("ignore:inputs of .* are not the model's prepared inputs")
@pytest.mark.filterwarnings("ignore:the batch holds no negative value")
def test_forward_and_grad_cam_at_the_smallest_size(name, request):
    spec = model_spec(name)
    if name == "vgg16_transfer":
        model = request.getfixturevalue("vgg16_random")  # already built, saves 3 s
    else:
        model = create_model(name, weights=None, progress=False)
    size = spec.fixed_size or max(spec.min_size, 32)
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    target = model.gradcam_target()
    assert not target.at_input
    assert any(target.module is m for m in model.network.modules())
    captured: list[torch.Tensor] = []
    hook = target.module.register_forward_hook(lambda m, a, out: captured.append(out))
    with torch.no_grad():
        output = model.eval()(images)
    hook.remove()
    assert output.shape == (2, 4)
    assert torch.allclose(output.exp().sum(dim=1), torch.ones(2), atol=1e-4)
    activation = target.reshape(captured[0]) if target.reshape else captured[0]
    assert activation.dim() == 4
    assert activation.shape[0] == 2

    if min(activation.shape[-2:]) < 2:  # stride 32 at 32 px: a constant heatmap, refused
        with pytest.raises(ValueError, match=r"1 x 1 map.*the layer gives 2 x 2 from"):
            grad_cam(model, images[:1])
        size = 64  # 2 x 2 or more at every registered layer (ConvNeXt's smallest)
        images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    cam = grad_cam(model, images[:1])
    assert cam.shape == (1, size, size)
    assert torch.isfinite(cam).all()
    assert float(cam.min()) >= 0
    assert float(cam.max()) <= 1


# torchvision's own counts are read from its weights (checked for one); the rest declared
@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "efficientnet_b1",
        "efficientnet_b2",
        "efficientnet_b3",
        "efficientnet_v2_s",
        "small_cnn",
    ],
)
def test_declared_gflops_match_a_count_at_224(name):
    spec = model_spec(name)
    with META:
        network = spec.builder(weights=None, progress=False).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(torch.zeros(1, 3, 224, 224, device=META))
    assert counter.get_total_flops() / 2e9 == pytest.approx(spec.gflops, rel=0.01)


@pytest.mark.parametrize("name", NAMES)
def test_build_model_rebuilds_every_architecture_without_downloading(name, no_download):
    model = structure(name, freeze=True, trainable_blocks=1, hidden=16, dropout=0.3)
    try:
        with META:
            rebuilt = build_model(
                name, model.arch_kwargs, classes=model.classes, preprocessing=Preprocessing()
            )
    except NotImplementedError:
        rebuilt = build_model(
            name, model.arch_kwargs, classes=model.classes, preprocessing=Preprocessing()
        )
    assert no_download == []
    assert rebuilt.arch_kwargs == model.arch_kwargs
    expected = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == expected
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n, p in rebuilt.named_parameters() if p.requires_grad} == trainable


# --- names and the registry -----------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: model_spec("resnet_18"),
        lambda: create_model("resnet_18", weights=None),
    ],
    ids=["model_spec", "create_model"],
)
def test_unknown_name_lists_the_names_and_the_closest(call):
    message = (
        r"unknown architecture 'resnet_18'; did you mean 'resnet18'\? known: convnext_small, "
        r"convnext_tiny, .*, vgg16_transfer, vit_b_16\. Register a new one"
    )
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("name", [None, 5, ["resnet18"], b"resnet18"])
@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (model_spec, "name"),
        (lambda name: create_model(name, weights=None), "name"),
        (model_info, "name"),
        (
            lambda name: build_model(name, {}, classes=("a", "b"), preprocessing=Preprocessing()),
            "arch",
        ),
    ],
    ids=["model_spec", "create_model", "model_info", "build_model"],
)
def test_a_name_that_is_not_a_str_is_refused_in_one_line(call, argument, name):
    message = (
        f"{argument} must be a str naming a registered architecture, got "
        f"{type(name).__name__} {name!r}; list_models() gives the names"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        call(name)


def test_find_spec_of_a_name_that_is_not_a_str_is_none():
    assert _registry.find_spec(["resnet18"]) is None  # type: ignore[arg-type]
    assert _registry.find_spec(5) is None  # type: ignore[arg-type]


def test_build_model_of_an_unknown_name_asks_for_the_network():
    message = r"unknown architecture 'resnet9000'; .* For a network built by hand, pass it as"
    with pytest.raises(ValueError, match=message):
        build_model("resnet9000", {}, classes=("a", "b"), preprocessing=Preprocessing())


def test_a_duplicate_name_is_refused():
    message = r"a model named 'resnet18' is already registered \(ResNet-18: .*\); register yours"
    with pytest.raises(ValueError, match=message):
        register_model(model_spec("resnet18"))


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU())
        self.out = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.stage(self.stem(x)).mean(dim=(2, 3)))


def tiny_net(*, weights: None = None, progress: bool = True) -> TinyNet:
    return TinyNet()


def test_a_registered_architecture_is_built_and_rebuilt_by_name(monkeypatch):
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    spec = ModelSpec(
        name="tiny_net",
        builder=tiny_net,
        head="out",
        feature_blocks=lambda net: [net.stem, net.stage],
        gradcam_layer="stage",
        min_size=2,
        description="a test network",
    )
    assert register_model(spec) is spec
    assert "tiny_net" in list_models()
    model = create_model("tiny_net", weights=None, trainable_blocks=1)
    assert model.head_module() == ("out", model.network.out)
    assert model.gradcam_target().module is model.network.stage
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "network.stage.0.weight",
        "network.stage.0.bias",
        "network.out.0.weight",
        "network.out.0.bias",
    }
    rebuilt = build_model(
        "tiny_net", model.arch_kwargs, classes=model.classes, preprocessing=Preprocessing()
    )
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    assert model_info("tiny_net").trainable == 8 * 4 + 4  # the head: trainable_blocks=0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "ResNet"}, "model name 'ResNet' must be lower case"),
        ({"min_size": 0}, "need min_size >= 1 and fixed_size >= min_size"),
        ({"fixed_size": 8, "min_size": 16}, "need min_size >= 1 and fixed_size >= min_size"),
        ({"head": ""}, "head and gradcam_layer must be module paths"),
        ({"name": 5}, "model name 5 must be lower case"),
        ({"name": None}, "model name None must be lower case"),
        ({"default_hidden": 2.5}, "tiny_net: default_hidden must be an int >= 0, got 2.5"),
        ({"default_hidden": True}, "tiny_net: default_hidden must be an int >= 0, got True"),
    ],
)
def test_malformed_specs_are_refused(kwargs, message):
    fields = {
        "name": "tiny_net",
        "builder": tiny_net,
        "head": "out",
        "feature_blocks": lambda net: [net.stem],
        "gradcam_layer": "stage",
        **kwargs,
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        ModelSpec(**fields)


# --- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("resnet18", {"trainable_blocks": 5}, "trainable_blocks must be from 0 to 4 (resnet18's"),
        ("vit_b_16", {"trainable_blocks": 13}, "trainable_blocks must be from 0 to 12"),
        ("resnet18", {"trainable_blocks": -1}, "trainable_blocks must be an int >= 0, got -1"),
        ("resnet18", {"freeze": False, "trainable_blocks": 1}, "trainable_blocks needs freeze"),
        (
            "vit_b_16",
            {"preprocessing": Preprocessing(size=128)},
            "vit_b_16 takes 224 px inputs only, got preprocessing.size=128; pass "
            "preprocessing=Preprocessing(size=224)",
        ),
        ("resnet18", {"num_classes": 3}, "num_classes=3 but 4 class names were given"),
        ("resnet18", {"hidden": -1}, "hidden must be an int >= 0 (0 or None: a single Linear)"),
        ("resnet18", {"hidden": 2.5}, "hidden must be an int >= 0 (0 or None: a single Linear)"),
        ("resnet18", {"dropout": float("nan")}, "dropout must be in [0, 1), got nan"),
        ("resnet18", {"classes": ["CNV", ""]}, "classes must be non-blank names, got ''"),
    ],
)
def test_bad_arguments_are_refused_before_building(name, kwargs, message, no_download):
    kwargs.setdefault("classes", ["CNV", "DME", "DRUSEN", "NORMAL"])
    with META, pytest.raises(ValueError, match=re.escape(message)):
        create_model(name, **kwargs)  # the default weights: nothing may be downloaded
    assert no_download == []


def test_weights_for_another_input_size_are_refused(no_download):
    message = "ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1 takes 384 px inputs, but vit_b_16"
    with META, pytest.raises(ValueError, match=re.escape(message)):
        create_model("vit_b_16", weights="IMAGENET1K_SWAG_E2E_V1")
    assert no_download == []


def test_defaults_come_from_the_spec():
    vgg = structure("vgg16_transfer")
    assert (vgg.arch_kwargs["hidden"], vgg.arch_kwargs["freeze"]) == (256, True)
    resnet = structure("resnet18")
    assert [type(m) for m in resnet.network.fc] == [nn.Linear, nn.LogSoftmax]
    scratch = create_model("small_cnn")  # "DEFAULT" weights: none exist, random init
    assert scratch.arch_kwargs["freeze"] is False
    assert all(p.requires_grad for p in scratch.parameters())


# --- weights --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "arch", "expected"),
    [
        ("DEFAULT", "resnet50", ResNet50_Weights.IMAGENET1K_V2),
        ("IMAGENET1K_V1", "resnet50", ResNet50_Weights.IMAGENET1K_V1),
        ("ResNet50_Weights.IMAGENET1K_V2", "resnet50", ResNet50_Weights.IMAGENET1K_V2),
        (ResNet50_Weights.IMAGENET1K_V1, "resnet50", ResNet50_Weights.IMAGENET1K_V1),
        ("DEFAULT", "small_cnn", None),
        (None, "vit_b_16", None),
    ],
)
def test_weights_resolve_for_every_architecture(weights, arch, expected, no_download):
    assert resolve_weights(weights, arch) is expected
    assert no_download == []


@pytest.mark.parametrize(
    ("weights", "arch", "error", "message"),
    [
        ("IMAGENET1K_V3", "resnet50", ValueError, "is neither a ResNet50 weights name (DEFAULT, "),
        ("IMAGENET1K_V1", "small_cnn", ValueError, "small_cnn has no pretrained weights"),
        (VGG16_Weights.IMAGENET1K_V1, "resnet18", TypeError, "resnet18 takes ResNet18_Weights"),
        (3, "resnet18", TypeError, "weights must be a ResNet18_Weights member, its name, a"),
    ],
)
def test_wrong_weights_are_refused(weights, arch, error, message):
    with pytest.raises(error, match=re.escape(message)):
        resolve_weights(weights, arch)


def test_a_local_state_dict_loads_into_any_architecture(tmp_path):
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()  # with its 1000-class fc
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    model = create_model("resnet18", weights=path)
    loaded = model.network.state_dict()
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    assert model.network.fc[0].out_features == 4  # a fresh head


def test_a_local_state_dict_of_the_small_cnn(tmp_path):
    trained = small_cnn(width=4)
    path = tmp_path / "small.pth"
    torch.save(trained.network.state_dict(), path)
    # its 4-output head was trained for a task: only the backbone is loaded, and said so
    with pytest.warns(UserWarning, match="its classifier has 4 outputs"):
        model = create_model("small_cnn", weights=str(path), width=4, freeze=True)
    assert torch.equal(model.network.features[0].weight, trained.network.features[0].weight)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "network.classifier.0.weight",
        "network.classifier.0.bias",
        "network.classifier.3.weight",
        "network.classifier.3.bias",
    ]


def test_a_file_of_another_network_names_the_mismatch(tmp_path):
    path = tmp_path / "mobilenet.pth"
    with META:
        state = torchvision.models.mobilenet_v3_small(weights=None).state_dict()
    torch.save({k: torch.zeros(1) for k in state}, path)
    message = (
        rf"weights file {re.escape(repr(str(path)))} does not fit ResNet18: missing keys "
        r"\['bn1\.bias', .*unexpected keys \['classifier\.0\.bias', .*Expected torchvision's "
        r"ResNet18 state dict \(torchvision\.models\.resnet18\), e\.g\. resnet18-f37072fd\.pth "
        r"from https://download\.pytorch\.org/models/resnet18-f37072fd\.pth"
    )
    with META, pytest.raises(ValueError, match=message):
        create_model("resnet18", weights=path)


@pytest.mark.parametrize(
    ("name", "file"),
    [("resnet18", "resnet18-f37072fd.pth"), ("vit_b_16", "vit_b_16-c867db91.pth")],
)
def test_failed_download_says_how_to_work_offline(name, file, no_download, tmp_path):
    cache = tmp_path / "torch-home" / "hub" / "checkpoints" / file
    assert cached_weights_path(name) == cache
    message = (
        rf"cannot download .* weights IMAGENET1K_V1 \(<urlopen error no network>\); on a "
        rf"machine with internet, download https://download\.pytorch\.org/models/{file} and "
        rf"either copy it to {re.escape(str(cache))} or pass weights='/path/to/{file}'"
    )
    with META, pytest.raises(WeightsUnavailableError, match=message):
        create_model(name, progress=False)
    assert no_download == [f"https://download.pytorch.org/models/{file}"]


def test_cached_weights_path_of_an_architecture_without_weights():
    with pytest.raises(ValueError, match="small_cnn has no pretrained weights"):
        cached_weights_path("small_cnn")


# --- declarations on hand-built networks ------------------------------------------------------


def test_a_hand_built_network_declares_its_parts():
    with META:
        net = torchvision.models.resnet18(weights=None, num_classes=2)
    model = Classifier(
        net,
        classes=["a", "b"],
        head="fc",
        gradcam_layer="layer3",
        feature_blocks=["layer3", "layer4"],
    )
    assert model.head_module() == ("fc", net.fc)
    assert model.feature_block_modules() == [net.layer3, net.layer4]
    assert model.gradcam_target() == (net.layer3, None, False)
    freeze(model, trainable_blocks=1)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        f"network.layer4.{n}" for n, _ in net.layer4.named_parameters()
    }
    by_function = Classifier(net, classes=["a", "b"], feature_blocks=lambda n: [n.layer4])
    assert by_function.feature_block_modules() == [net.layer4]


def test_an_explicit_declaration_overrides_the_spec():
    model = structure("resnet18")
    declared = Classifier(
        model.network, classes=model.classes, arch="resnet18", gradcam_layer="layer3"
    )
    assert declared.gradcam_target().module is model.network.layer3
    assert declared.head_module()[0] == "fc"  # the rest still from the spec


def test_without_declaration_the_fallback_is_used_and_logged(caplog):
    with META:
        net = torchvision.models.resnet18(weights=None, num_classes=2)
    model = Classifier(net, classes=["a", "b"])
    with caplog.at_level(logging.DEBUG, logger="retinalnet.models._classifier"):
        assert model.head_module() == ("fc", net.fc)
        assert model.feature_block_modules() == [net.layer1, net.layer2, net.layer3, net.layer4]
        assert model.gradcam_target() == (net.layer4[-1], None, False)
    assert len([r for r in caplog.records if "0.1 fallback" in r.getMessage()]) == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"head": "classifier"}, ValueError, "head='classifier' is not a module of ResNet"),
        ({"feature_blocks": ["layer5"]}, ValueError, "feature_blocks='layer5' is not a module"),
        ({"feature_blocks": "layer4"}, TypeError, "write ['layer4']"),
        ({"gradcam_reshape": torch.flatten}, ValueError, "gradcam_reshape needs gradcam_layer"),
    ],
)
def test_bad_declarations_are_refused(kwargs, error, message):
    with META:
        net = torchvision.models.resnet18(weights=None, num_classes=2)
    with pytest.raises(error, match=re.escape(message)):
        Classifier(net, classes=["a", "b"], **kwargs)


# --- the command line -----------------------------------------------------------------------


def test_cli_models_prints_the_table(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1 : len(NAMES) + 1]}
    assert sorted(rows) == NAMES
    assert re.search(
        r"135,310,404 +1,049,860 +15\.47 +the tutorial's model", rows["vgg16_transfer"]
    )
    assert re.search(r"11,178,564 +2,052 +1\.81", rows["resnet18"])


def test_cli_models_json(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == NAMES
    vit = rows[NAMES.index("vit_b_16")]
    assert vit["fixed_size"] == 224
    assert vit["gradcam_layer"] == "encoder.layers.encoder_layer_11.ln_1"


def test_cli_train_accepts_every_registered_name():
    for name in NAMES:
        assert build_parser().parse_args(["train", "--data", "x", "--arch", name]).arch == name
    args = build_parser().parse_args(["train", "--data", "x", "--weights", "none"])
    assert (args.arch, args.weights) == (None, None)  # the resumed run's, else the default
    recipe_defaults(args)
    assert args.arch == "vgg16_transfer"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--data", "x", "--arch", "resnet9000"])
