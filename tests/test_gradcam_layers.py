"""Grad-CAM's ``layer=``: the model's own layer read as declared, another read by its form.

A map's oracle is the default map of a Classifier declaring that layer (and, for a
channels-last or token output, the reshape that makes it ``(N, C, H, W)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models import VisionTransformer

from retinalnet import SyntheticOCT
from retinalnet.gradcam import find_target_layer, grad_cam, grad_cam_image
from retinalnet.models import Classifier, create_model, small_cnn
from retinalnet.transforms import Preprocessing

CLASSES = ["A", "B", "C"]


def _channels_first(activation: torch.Tensor) -> torch.Tensor:
    return activation.permute(0, 3, 1, 2)


def _tokens_to_map(tokens: torch.Tensor) -> torch.Tensor:
    """``(N, 1 + H*W, C)`` tokens, the class token first, to ``(N, C, H, W)``."""
    count, length, channels = tokens.shape  # ValueError when not 3-d
    side = math.isqrt(length - 1)
    return tokens[:, 1:].reshape(count, side, side, channels).permute(0, 3, 1, 2)


def _declaring(
    model: Classifier | nn.Module,
    path: str,
    reshape: Callable[[torch.Tensor], torch.Tensor] | None,
    size: int = 32,
) -> Classifier:
    """The same network, declaring ``path`` (and ``reshape``) as its Grad-CAM layer."""
    network = model.network if isinstance(model, Classifier) else model
    preprocessing = model.preprocessing if isinstance(model, Classifier) else None
    classes = model.classes if isinstance(model, Classifier) else CLASSES
    return Classifier(
        network,
        classes=classes,
        preprocessing=preprocessing or Preprocessing(size=size),
        gradcam_layer=path,
        gradcam_reshape=reshape,
    )


@pytest.fixture(scope="module")
def swin() -> Classifier:
    torch.manual_seed(0)
    return create_model("swin_t", weights=None, preprocessing=Preprocessing(size=64))


def _tiny_vit(*, declared: bool = True) -> Classifier:
    """torchvision's ViT at 32 px (patches of 8: a 4 x 4 grid), one block, declared as
    vit_b_16 is: the block's first LayerNorm, through a tokens-to-map reshape."""
    torch.manual_seed(0)
    network = VisionTransformer(32, 8, 1, 2, 16, 32, num_classes=len(CLASSES))
    nn.init.normal_(network.heads.head.weight)  # torchvision's zeros: every map would be 0
    if not declared:
        return Classifier(network, classes=CLASSES, preprocessing=Preprocessing(size=32))
    return _declaring(network, "encoder.layers.encoder_layer_0.ln_1", _tokens_to_map)


class _ChannelsLast(nn.Module):
    """A patchify conv, then a channels-last LayerNorm and Linear (as in a ConvNeXt block),
    back to channels-first, pooled: ``mix`` gives ``(N, H, W, C)``."""

    def __init__(self, channels: int, fixed: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, channels, 4, stride=4)
        self.norm = nn.LayerNorm(channels)
        self.mix = nn.Linear(channels, channels)
        self.head = nn.Linear(channels, len(CLASSES))
        self.fixed = fixed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed and tuple(x.shape[-2:]) != (32, 32):
            raise ValueError("takes 32 x 32 inputs only")
        mixed = self.mix(self.norm(self.conv(x).permute(0, 2, 3, 1)))
        return self.head(torch.relu(mixed.permute(0, 3, 1, 2)).mean(dim=(2, 3)))


def _scan() -> Image.Image:
    return SyntheticOCT(1, shape=(40, 48), seed=0).image(0)


def _explain(door: str, model: Classifier, layer: nn.Module) -> object:
    """Grad-CAM of ``layer`` through ``door``: a prepared batch or an image."""
    if door == "grad_cam":
        size = model.preprocessing.size
        return grad_cam(model, torch.randn(1, 3, size, size), layer=layer)
    return grad_cam_image(model, _scan(), layer=layer)


# -- the model's own layer, passed as layer=: the default map ---------------------------------


@pytest.mark.parametrize("door", ["grad_cam", "grad_cam_image"])
@pytest.mark.parametrize("kind", ["swin_t", "token model"])
def test_the_declared_layer_given_as_layer_gives_the_default_map(
    swin: Classifier, kind: str, door: str
) -> None:
    # swin_t's declared norm, passed as layer=find_target_layer(model), was read as
    # (N, C=7, H=7, W=768): a confident map uncorrelated with the default (r = -0.009); a
    # ViT's was refused with "pass layer= a convolutional module"
    model = swin if kind == "swin_t" else _tiny_vit()
    layer = find_target_layer(model)
    if door == "grad_cam":
        inputs = torch.randn(2, 3, *(model.preprocessing.size,) * 2)
        default = grad_cam(model, inputs, class_index=0)
        given = grad_cam(model, inputs, class_index=0, layer=layer)
    else:
        default = torch.from_numpy(grad_cam_image(model, _scan(), class_index=0))
        given = torch.from_numpy(grad_cam_image(model, _scan(), class_index=0, layer=layer))
    assert float(default.max()) > 0.5  # a map, not all zeros
    assert torch.equal(given, default)


def test_a_guessed_pooling_layer_given_as_layer_is_explained_at_its_input() -> None:
    # a bare VGG-style network: the guess is the last max-pool, explained at its input
    network = small_cnn(preprocessing=Preprocessing(size=64)).network.eval()
    inputs = torch.randn(1, 3, 64, 64)
    layer = find_target_layer(network)
    assert isinstance(layer, nn.MaxPool2d)
    assert torch.equal(grad_cam(network, inputs, layer=layer), grad_cam(network, inputs))


# -- another layer: read by the form of its output ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "reshape"),
    [
        ("features.0.0", None),  # the patchify conv: (N, C, H, W)
        ("features.1", _channels_first),  # stage 1: (N, H, W, C)
        ("features.5", _channels_first),  # stage 3
        ("features.7.1.norm1", _channels_first),  # inside the last block
        ("permute", None),  # after the final norm, back to (N, C, H, W)
    ],
)
def test_a_swin_layer_is_read_in_its_own_layout(
    swin: Classifier, path: str, reshape: Callable[[torch.Tensor], torch.Tensor] | None
) -> None:
    # every Swin stage is channels-last: features[5] ran without a word, read as C = 4,
    # H = 4, W = 384
    inputs = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    layer = swin.network.get_submodule(path)
    expected = grad_cam(_declaring(swin, path, reshape), inputs, class_index=1)
    assert torch.allclose(grad_cam(swin, inputs, class_index=1, layer=layer), expected)
    image = _scan()
    expected_image = grad_cam_image(_declaring(swin, path, reshape), image, class_index=1)
    assert (grad_cam_image(swin, image, class_index=1, layer=layer) == expected_image).all()


@pytest.mark.parametrize(
    "channels",
    [16, 8],
    ids=["its sides tell", "8 x 8 x 8: a larger input tells"],
)
def test_a_channels_last_layer_of_any_network_is_read_channels_last(channels: int) -> None:
    # a ConvNeXt-style block's channels-last LayerNorm or Linear was read as (N, C, H, W)
    net = _ChannelsLast(channels).eval()
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    expected = grad_cam(_declaring(net, "mix", _channels_first), inputs, class_index=0)
    assert float(expected.max()) == 1.0
    assert torch.allclose(grad_cam(net, inputs, class_index=0, layer=net.mix), expected)
    # its channels-first conv, with as many channels as rows when 8: still channels-first
    expected = grad_cam(_declaring(net, "conv", None), inputs, class_index=0)
    assert torch.allclose(grad_cam(net, inputs, class_index=0, layer=net.conv), expected)


@pytest.mark.parametrize(
    ("path", "reshape"),
    [
        ("encoder.layers.encoder_layer_0.mlp", _tokens_to_map),  # tokens: the declared reshape
        ("encoder.layers.encoder_layer_0.dropout", _tokens_to_map),  # the attention's
        ("conv_proj", None),  # the patch embedding: (N, C, H, W)
    ],
)
def test_another_layer_of_a_token_model(
    path: str, reshape: Callable[[torch.Tensor], torch.Tensor] | None
) -> None:
    model = _tiny_vit()
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    layer = model.network.get_submodule(path)
    expected = grad_cam(_declaring(model, path, reshape), inputs, class_index=2)
    assert torch.allclose(grad_cam(model, inputs, class_index=2, layer=layer), expected)


# -- what cannot be read: refused, naming the layer, its shape and the fix --------------------


@pytest.mark.parametrize("door", ["grad_cam", "grad_cam_image"])
def test_a_layer_a_transformers_reshape_cannot_take_names_the_declared_layer(
    swin: Classifier, door: str
) -> None:
    # "pass layer= a convolutional module": a fix that a transformer does not have
    vit = _tiny_vit()
    cases = [
        (
            swin,
            swin.network.get_submodule("head"),
            r"the Grad-CAM layer 'network\.head' gives shape \(1, 4\), which swin_t's "
            r"gradcam_reshape channels_last_to_first cannot turn into an \(N, C, H, W\) map "
            r"\(.*\): omit layer= to explain its declared layer 'network\.norm', or pass "
            r"layer= a module giving a 4-d map or what channels_last_to_first takes$",
        ),
        (
            vit,
            vit.network.get_submodule("heads.head"),
            r"'network\.heads\.head' gives shape \(1, 3\), which VisionTransformer's "
            r"gradcam_reshape _tokens_to_map cannot turn .*omit layer= to explain its "
            r"declared layer 'network\.encoder\.layers\.encoder_layer_0\.ln_1'",
        ),
    ]
    for model, layer, message in cases:
        with pytest.raises(ValueError, match=message) as raised:
            _explain(door, model, layer)
        assert "convolutional" not in str(raised.value)


def test_a_layout_that_cannot_be_told_is_refused_on_a_model_declaring_a_reshape() -> None:
    # (N, 8, 8, 8) from 32 x 32 inputs fits either reading, and the network takes no other
    # size to tell them apart by
    net = _ChannelsLast(8, fixed=True)
    model = _declaring(net, "mix", _channels_first)
    with pytest.raises(
        ValueError,
        match=r"'network\.norm' gives shape \(1, 8, 8, 8\) on 32 x 32 inputs, which cannot be "
        r"told to be \(N, C, H, W\) or channels-last \(N, H, W, C\): omit layer= to explain "
        r"its declared layer 'network\.mix', or pass layer= another module$",
    ):
        grad_cam(model, torch.randn(1, 3, 32, 32), layer=net.norm)
    assert grad_cam(model, torch.randn(1, 3, 32, 32), layer=net.mix).shape == (1, 32, 32)


def test_a_layer_giving_a_tuple_is_refused() -> None:
    # nn.MultiheadAttention returns (output, weights): AttributeError 'tuple' ... 'detach'
    model = _tiny_vit()
    attention = model.network.get_submodule("encoder.layers.encoder_layer_0.self_attention")
    with pytest.raises(
        ValueError,
        match=r"'network\.encoder\.layers\.encoder_layer_0\.self_attention' gives a tuple, "
        r"not a tensor: pass layer= a module giving a tensor$",
    ):
        grad_cam(model, torch.randn(1, 3, 32, 32), layer=attention)


def test_tokens_of_a_model_declaring_no_reshape_name_gradcam_reshape() -> None:
    model = _tiny_vit(declared=False)
    layer = model.network.get_submodule("encoder.layers.encoder_layer_0.ln_1")
    with pytest.raises(
        ValueError,
        match=r"'network\.encoder\.layers\.encoder_layer_0\.ln_1' gives shape \(1, 17, 16\); "
        r"it needs a spatial \(N, C, H, W\) activation \(a transformer's tokens need "
        r"Classifier\(network, \.\.\., gradcam_layer=PATH, gradcam_reshape=FUNCTION\)",
    ):
        grad_cam(model, torch.randn(1, 3, 32, 32), layer=layer)


def test_a_convolution_of_stride_2_by_1_is_read_as_channels_first() -> None:
    # was: its (1, 32, 32, 64) output on 64 x 64 inputs (H=32, W=64: strides 2 and 1) fits
    # a single stride only when read as channels-last, and was read so: a map of other axes
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=(2, 1), padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 16, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 2),
    ).eval()
    batch = torch.randn(1, 3, 64, 64)

    heatmap = grad_cam(network, batch, layer=network[0], class_index=0)

    activation = network[0](batch).detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(network[1:](activation)[0, 0], activation)
    expected = torch.relu((gradient.mean((2, 3), keepdim=True) * activation).sum(1, keepdim=True))
    expected = nn.functional.interpolate(expected, size=(64, 64), mode="bilinear")[0, 0]
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    assert torch.allclose(heatmap[0], expected, atol=1e-4)


def test_a_layer_is_probed_in_float32_under_a_float64_default_dtype() -> None:
    # the probe's input of zeros took the default dtype: float64 met the float32 weights,
    # which read as "the model refuses that size" (and made float64 on MPS)
    from retinalnet.gradcam._checks import probe_activation

    network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        activation = probe_activation(network, network[0], False, (8, 8), 3, torch.device("cpu"))
    finally:
        torch.set_default_dtype(before)

    assert activation is not None
    assert tuple(activation.shape) == (1, 4, 6, 6)
