"""Models: the tutorial's VGG16 transfer model, a small CPU fallback, and the pieces to build
others (freeze, head, parameter summary)."""

from retinalnet.models._builders import SmallCNN as SmallCNN
from retinalnet.models._builders import build_model as build_model
from retinalnet.models._builders import small_cnn as small_cnn
from retinalnet.models._builders import vgg16_transfer as vgg16_transfer
from retinalnet.models._classifier import Classifier as Classifier
from retinalnet.models._freeze import feature_blocks as feature_blocks
from retinalnet.models._freeze import freeze as freeze
from retinalnet.models._head import build_head as build_head
from retinalnet.models._head import find_output_layer as find_output_layer
from retinalnet.models._head import replace_head as replace_head
from retinalnet.models._summary import ParameterSummary as ParameterSummary
from retinalnet.models._summary import parameter_summary as parameter_summary
from retinalnet.models._weights import WeightsArg as WeightsArg
from retinalnet.models._weights import WeightsUnavailableError as WeightsUnavailableError
from retinalnet.models._weights import cached_weights_path as cached_weights_path
from retinalnet.models._weights import load_vgg16 as load_vgg16

__all__ = [
    "Classifier",
    "ParameterSummary",
    "SmallCNN",
    "WeightsArg",
    "WeightsUnavailableError",
    "build_head",
    "build_model",
    "cached_weights_path",
    "feature_blocks",
    "find_output_layer",
    "freeze",
    "load_vgg16",
    "parameter_summary",
    "replace_head",
    "small_cnn",
    "vgg16_transfer",
]
