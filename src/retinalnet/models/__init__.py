"""Models: a registry of backbones (the tutorial's VGG16, torchvision's ResNet, EfficientNet,
ConvNeXt, ViT, ... and a small CPU fallback), and the pieces to build others (freeze, head,
parameter summary).

Each registered architecture is declared by a :class:`ModelSpec`: its head, its feature
blocks and its Grad-CAM layer, read by the tools instead of guessed.
"""

from retinalnet.models import _specs  # noqa: F401 - registers the built-in architectures
from retinalnet.models._builders import small_cnn as small_cnn
from retinalnet.models._builders import vgg16_transfer as vgg16_transfer
from retinalnet.models._classifier import Classifier as Classifier
from retinalnet.models._factory import build_model as build_model
from retinalnet.models._factory import create_model as create_model
from retinalnet.models._fallback import GradCamTarget as GradCamTarget
from retinalnet.models._freeze import feature_blocks as feature_blocks
from retinalnet.models._freeze import freeze as freeze
from retinalnet.models._head import build_head as build_head
from retinalnet.models._head import find_output_layer as find_output_layer
from retinalnet.models._head import replace_head as replace_head
from retinalnet.models._info import ModelInfo as ModelInfo
from retinalnet.models._info import model_info as model_info
from retinalnet.models._registry import ModelSpec as ModelSpec
from retinalnet.models._registry import list_models as list_models
from retinalnet.models._registry import model_spec as model_spec
from retinalnet.models._registry import register_model as register_model
from retinalnet.models._small_cnn import SmallCNN as SmallCNN
from retinalnet.models._summary import ParameterSummary as ParameterSummary
from retinalnet.models._summary import parameter_summary as parameter_summary
from retinalnet.models._weights import WeightsArg as WeightsArg
from retinalnet.models._weights import WeightsUnavailableError as WeightsUnavailableError
from retinalnet.models._weights import cached_weights_path as cached_weights_path
from retinalnet.models._weights import load_vgg16 as load_vgg16

__all__ = [
    "Classifier",
    "GradCamTarget",
    "ModelInfo",
    "ModelSpec",
    "ParameterSummary",
    "SmallCNN",
    "WeightsArg",
    "WeightsUnavailableError",
    "build_head",
    "build_model",
    "cached_weights_path",
    "create_model",
    "feature_blocks",
    "find_output_layer",
    "freeze",
    "list_models",
    "load_vgg16",
    "model_info",
    "model_spec",
    "parameter_summary",
    "register_model",
    "replace_head",
    "small_cnn",
    "vgg16_transfer",
]
