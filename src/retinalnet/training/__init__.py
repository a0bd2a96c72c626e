"""Training: the Trainer, its callbacks, the feature cache and evaluation."""

from typing import Any

from retinalnet._core.loaders import DataSource as DataSource
from retinalnet.training._balance import balanced_sampler as balanced_sampler
from retinalnet.training._balance import class_counts as class_counts
from retinalnet.training._balance import class_weights as class_weights
from retinalnet.training._callbacks import Callback as Callback
from retinalnet.training._callbacks import EarlyStopping as EarlyStopping
from retinalnet.training._callbacks import ModelCheckpoint as ModelCheckpoint
from retinalnet.training._evaluation import EvaluationResult as EvaluationResult
from retinalnet.training._evaluation import evaluate as evaluate
from retinalnet.training._feature_cache import FeatureCache as FeatureCache
from retinalnet.training._feature_cache import build_feature_cache as build_feature_cache
from retinalnet.training._history import EpochRecord as EpochRecord
from retinalnet.training._history import History as History
from retinalnet.training._moved import moved_attribute
from retinalnet.training._trainer import OptimizerFactory as OptimizerFactory
from retinalnet.training._trainer import SchedulerFactory as SchedulerFactory
from retinalnet.training._trainer import Trainer as Trainer

__all__ = [
    "Callback",
    "DataSource",
    "EarlyStopping",
    "EpochRecord",
    "EvaluationResult",
    "FeatureCache",
    "History",
    "ModelCheckpoint",
    "OptimizerFactory",
    "SchedulerFactory",
    "Trainer",
    "balanced_sampler",
    "build_feature_cache",
    "class_counts",
    "class_weights",
    "evaluate",
]


def __getattr__(name: str) -> Any:
    """0.1 names that moved: ``load_checkpoint`` and friends now live in
    :mod:`retinalnet.checkpoint`."""
    return moved_attribute(__name__, name)
