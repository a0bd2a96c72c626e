"""The built-in registry entries: the tutorial's VGG16, a small CNN, torchvision backbones.

Importing this module registers them (``retinalnet.models`` does so on import).

Feature blocks are stages: consecutive layers at one resolution, each block ending where
the next halves it (timm's ``feature_info``). GFLOPs are torchvision's multiply-add counts
(``weights.meta["_ops"]``), which are at 224 px except for the EfficientNets trained at
larger crops; for those the 224 px figure is given (counted with
``torch.utils.flop_counter.FlopCounterMode``; ``tests/test_registry.py`` checks every entry).
"""

from __future__ import annotations

from collections.abc import Callable

import torchvision.models as tvm
from torch import nn

from retinalnet.models._blocks import (
    channels_last_to_first,
    children_of,
    modules_at,
    split_at_max_pools,
    split_children,
    tokens_to_map,
)
from retinalnet.models._registry import ActivationReshape, BlockSelector, ModelSpec, register_model
from retinalnet.models._small_cnn import small_cnn_network

__all__ = ["BUILTIN_MODELS"]


def _gflops_at_224(builder: Callable[..., nn.Module]) -> float | None:
    """torchvision's ``_ops`` of the default weights, when its recipe evaluates at 224 px."""
    default = tvm.get_model_weights(builder).DEFAULT
    ops = default.meta.get("_ops")
    if ops is None or list(default.transforms().crop_size) != [224]:
        return None
    return float(ops)


def _torchvision(
    name: str,
    *,
    head: str,
    feature_blocks: BlockSelector,
    gradcam_layer: str,
    min_size: int,
    description: str,
    gflops: float | None = None,
    gradcam_reshape: ActivationReshape | None = None,
    fixed_size: int | None = None,
) -> ModelSpec:
    builder: Callable[..., nn.Module] = getattr(tvm, name)
    return ModelSpec(
        name=name,
        builder=builder,
        weights=tvm.get_model_weights(builder),
        head=head,
        feature_blocks=feature_blocks,
        gradcam_layer=gradcam_layer,
        gradcam_reshape=gradcam_reshape,
        min_size=min_size,
        fixed_size=fixed_size,
        gflops=gflops if gflops is not None else _gflops_at_224(builder),
        description=description,
    )


def _resnet(name: str, description: str) -> ModelSpec:
    return _torchvision(
        name,
        head="fc",
        feature_blocks=modules_at("layer1", "layer2", "layer3", "layer4"),
        gradcam_layer="layer4",
        min_size=1,
        description=description,
    )


def _efficientnet(name: str, description: str, gflops: float | None = None) -> ModelSpec:
    # features: stem, MBConv stages 1-7 (v2: 1-6), 1x1 conv; stages at 1/2, 4, 8, 16, 32
    return _torchvision(
        name,
        head="classifier.1",
        feature_blocks=split_children("features", (0, 2, 3, 4, 6)),
        gradcam_layer="features",
        min_size=1,
        gflops=gflops,
        description=description,
    )


def _regnet(name: str, description: str) -> ModelSpec:
    return _torchvision(
        name,
        head="fc",
        feature_blocks=modules_at(*(f"trunk_output.block{i}" for i in range(1, 5))),
        gradcam_layer="trunk_output",
        min_size=1,
        description=description,
    )


def _convnext(name: str, description: str) -> ModelSpec:
    # features: stem + stage 1, then (downsampling, stage) x 3
    return _torchvision(
        name,
        head="classifier.2",
        feature_blocks=split_children("features", (0, 2, 4, 6)),
        gradcam_layer="features",
        min_size=32,
        description=description,
    )


VGG16_TRANSFER = ModelSpec(
    name="vgg16_transfer",
    builder=tvm.vgg16,
    weights=tvm.VGG16_Weights,
    head="classifier.6",
    feature_blocks=split_at_max_pools("features"),
    # conv5_3's rectified output, 14x14 at 224 px, as in the Grad-CAM paper
    gradcam_layer="features.29",
    min_size=32,
    gflops=_gflops_at_224(tvm.vgg16),
    description="the tutorial's model: VGG16, head Linear(4096, 256)-ReLU-Dropout-Linear",
    default_hidden=256,
)

SMALL_CNN = ModelSpec(
    name="small_cnn",
    builder=small_cnn_network,
    head="classifier",
    feature_blocks=split_at_max_pools("features"),
    gradcam_layer="features.14",  # the last ReLU, before the last max-pool
    min_size=16,
    gflops=0.195,
    description="4-block CNN (106k parameters) trained from scratch; offline fallback",
    default_hidden=64,
    default_freeze=False,
)

BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    VGG16_TRANSFER,
    SMALL_CNN,
    _resnet("resnet18", "ResNet-18: fast, strong baseline for CPU training"),
    _resnet("resnet34", "ResNet-34: deeper ResNet-18"),
    _resnet("resnet50", "ResNet-50 (bottleneck blocks, 2048 features)"),
    _efficientnet("efficientnet_b0", "EfficientNet-B0: best accuracy per FLOP on a CPU"),
    _efficientnet("efficientnet_b1", "EfficientNet-B1 (trained at 240 px)", gflops=0.570),
    _efficientnet("efficientnet_b2", "EfficientNet-B2 (trained at 288 px)", gflops=0.659),
    _efficientnet("efficientnet_b3", "EfficientNet-B3 (trained at 300 px)", gflops=0.963),
    _efficientnet("efficientnet_v2_s", "EfficientNetV2-S (trained at 384 px)", gflops=2.850),
    _torchvision(
        "mobilenet_v3_small",
        head="classifier.3",
        feature_blocks=split_children("features", (0, 1, 2, 4, 9)),
        gradcam_layer="features",
        min_size=1,
        description="MobileNetV3-Small: the lightest backbone here",
    ),
    _torchvision(
        "mobilenet_v3_large",
        head="classifier.3",
        feature_blocks=split_children("features", (0, 2, 4, 7, 13)),
        gradcam_layer="features",
        min_size=1,
        description="MobileNetV3-Large: light, for CPUs and phones",
    ),
    _convnext("convnext_tiny", "ConvNeXt-T: modern CNN, ResNet-50 cost"),
    _convnext("convnext_small", "ConvNeXt-S: larger ConvNeXt"),
    _torchvision(
        "densenet121",
        head="classifier",
        # stem + dense block 1, then (transition, dense block) x 3; norm5 with the last
        feature_blocks=split_children("features", (0, 5, 7, 9)),
        gradcam_layer="features",
        min_size=29,
        description="DenseNet-121: common in medical imaging (CheXNet)",
    ),
    _regnet("regnet_y_400mf", "RegNetY-400MF: light and accurate"),
    _regnet("regnet_y_800mf", "RegNetY-800MF"),
    _regnet("regnet_y_1_6gf", "RegNetY-1.6GF"),
    _torchvision(
        "swin_t",
        head="head",
        # patch embedding + stage 1, then (patch merging, stage) x 3
        feature_blocks=split_children("features", (0, 2, 4, 6)),
        gradcam_layer="norm",
        gradcam_reshape=channels_last_to_first,
        min_size=4,
        description="Swin-T: windowed vision transformer, channels-last maps",
    ),
    _torchvision(
        "vit_b_16",
        head="heads.head",
        feature_blocks=children_of("encoder.layers"),
        # the last block's first LayerNorm: the patch tokens' only path to the class token
        # runs through its attention (the last block's output reaches the head by the class
        # token alone, so its patch tokens get no gradient)
        gradcam_layer="encoder.layers.encoder_layer_11.ln_1",
        gradcam_reshape=tokens_to_map,
        min_size=224,
        fixed_size=224,
        description="ViT-B/16: vision transformer, 224 px inputs only",
    ),
)

for _spec in BUILTIN_MODELS:
    register_model(_spec)
