"""retinalnet: typed PyTorch transfer learning for retinal OCT B-scans.

Classifies OCT B-scans into CNV, DME, DRUSEN and NORMAL (Kermany et al., Cell 2018) by
transfer learning: the tutorial's frozen ImageNet VGG16 with a small trainable head, or any
registered backbone (``list_models()``), or a network of your own.

Examples
--------
>>> from retinalnet import Predictor
>>> predictor = Predictor.from_checkpoint("best.pt")  # doctest: +SKIP
>>> predictor.topk("CNV-1016042-1.jpeg", k=2)  # doctest: +SKIP
"""

from retinalnet._version import __version__ as __version__
from retinalnet.datasets import KERMANY_CLASSES as KERMANY_CLASSES
from retinalnet.datasets import KermanyOCT as KermanyOCT
from retinalnet.datasets import SyntheticOCT as SyntheticOCT
from retinalnet.models import Classifier as Classifier
from retinalnet.models import create_model as create_model
from retinalnet.models import list_models as list_models
from retinalnet.models import vgg16_transfer as vgg16_transfer
from retinalnet.predictor import Prediction as Prediction
from retinalnet.predictor import Predictor as Predictor
from retinalnet.training import Callback as Callback
from retinalnet.training import ClassificationTask as ClassificationTask
from retinalnet.training import EarlyStopping as EarlyStopping
from retinalnet.training import History as History
from retinalnet.training import Trainer as Trainer
from retinalnet.transforms import Preprocessing as Preprocessing

__all__ = [
    "KERMANY_CLASSES",
    "Callback",
    "ClassificationTask",
    "Classifier",
    "EarlyStopping",
    "History",
    "KermanyOCT",
    "Prediction",
    "Predictor",
    "Preprocessing",
    "SyntheticOCT",
    "Trainer",
    "__version__",
    "create_model",
    "list_models",
    "vgg16_transfer",
]
