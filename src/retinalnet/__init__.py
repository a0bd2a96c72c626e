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

import importlib
from typing import TYPE_CHECKING

from retinalnet._version import __version__ as __version__

if TYPE_CHECKING:  # the names below, for type checkers; imported when first used
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

# The public names are imported when first used (PEP 562): importing torch takes seconds,
# and `import retinalnet`, `retinalnet --version` and a Ctrl-C while a command starts should
# not wait for it (an interrupt during that import was a traceback, not "retinalnet:
# interrupted"). `--help` does not import torch either (the CLI imports it when a command runs).
_PUBLIC: dict[str, str] = {
    "KERMANY_CLASSES": "retinalnet.datasets",
    "KermanyOCT": "retinalnet.datasets",
    "SyntheticOCT": "retinalnet.datasets",
    "Classifier": "retinalnet.models",
    "create_model": "retinalnet.models",
    "list_models": "retinalnet.models",
    "vgg16_transfer": "retinalnet.models",
    "Prediction": "retinalnet.predictor",
    "Predictor": "retinalnet.predictor",
    "Callback": "retinalnet.training",
    "ClassificationTask": "retinalnet.training",
    "EarlyStopping": "retinalnet.training",
    "History": "retinalnet.training",
    "Trainer": "retinalnet.training",
    "Preprocessing": "retinalnet.transforms",
}


def __getattr__(name: str) -> object:
    """A public name (``retinalnet.Predictor``) or a submodule (``retinalnet.models``),
    imported on first use."""
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # once: later uses are plain attribute lookups
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise  # the submodule exists and needs a package that is not installed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


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
