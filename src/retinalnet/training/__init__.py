"""Training: the Trainer (the loop), the ClassificationTask (what is trained), callbacks, the
feature cache and evaluation."""

from retinalnet._core.deprecation import module_getattr
from retinalnet._core.loaders import DataSource as DataSource
from retinalnet.training._balance import balanced_sampler as balanced_sampler
from retinalnet.training._balance import class_counts as class_counts
from retinalnet.training._balance import class_weights as class_weights
from retinalnet.training._calibration import CalibrationResult as CalibrationResult
from retinalnet.training._calibration import TemperatureScaling as TemperatureScaling
from retinalnet.training._calibration import calibrate as calibrate
from retinalnet.training._callbacks import Callback as Callback
from retinalnet.training._callbacks import EarlyStopping as EarlyStopping
from retinalnet.training._config import FeatureCacheConfig as FeatureCacheConfig
from retinalnet.training._evaluation import EvaluationResult as EvaluationResult
from retinalnet.training._evaluation import evaluate as evaluate
from retinalnet.training._feature_cache import FeatureCache as FeatureCache
from retinalnet.training._feature_cache import build_feature_cache as build_feature_cache
from retinalnet.training._finetune import FineTune as FineTune
from retinalnet.training._finetune import FineTuneTask as FineTuneTask
from retinalnet.training._finetune import WarmupCosine as WarmupCosine
from retinalnet.training._finetune import discriminative_param_groups as discriminative_param_groups
from retinalnet.training._finetune import fine_tune as fine_tune
from retinalnet.training._finetune import fine_tune_trainer as fine_tune_trainer
from retinalnet.training._history import EpochRecord as EpochRecord
from retinalnet.training._history import History as History
from retinalnet.training._lock import RunLock as RunLock
from retinalnet.training._lock_owner import RunLockedError as RunLockedError
from retinalnet.training._lr_result import LRFinderResult as LRFinderResult
from retinalnet.training._model_checkpoint import ModelCheckpoint as ModelCheckpoint
from retinalnet.training._nonfinite import NonFiniteLossError as NonFiniteLossError
from retinalnet.training._seed import seed_everything as seed_everything
from retinalnet.training._task import ClassificationTask as ClassificationTask
from retinalnet.training._task import MetricFunction as MetricFunction
from retinalnet.training._task import OptimizerFactory as OptimizerFactory
from retinalnet.training._task import SchedulerFactory as SchedulerFactory
from retinalnet.training._tensorboard import TensorBoardLogger as TensorBoardLogger
from retinalnet.training._trainer import Trainer as Trainer
from retinalnet.training._trainer_settings import TrainerSettings as TrainerSettings

_CHECKPOINT = "import it from retinalnet.checkpoint"
_INTERNAL = "it is internal now"

__all__ = [
    "CalibrationResult",
    "Callback",
    "ClassificationTask",
    "DataSource",
    "EarlyStopping",
    "EpochRecord",
    "EvaluationResult",
    "FeatureCache",
    "FeatureCacheConfig",
    "FineTune",
    "FineTuneTask",
    "History",
    "LRFinderResult",
    "MetricFunction",
    "ModelCheckpoint",
    "NonFiniteLossError",
    "OptimizerFactory",
    "RunLock",
    "RunLockedError",
    "SchedulerFactory",
    "TemperatureScaling",
    "TensorBoardLogger",
    "Trainer",
    "TrainerSettings",
    "WarmupCosine",
    "balanced_sampler",
    "build_feature_cache",
    "calibrate",
    "class_counts",
    "class_weights",
    "discriminative_param_groups",
    "evaluate",
    "fine_tune",
    "fine_tune_trainer",
    "seed_everything",
]

# 0.1 names that moved: the checkpoint functions to retinalnet.checkpoint, the rest inside
__getattr__ = module_getattr(
    __name__,
    {
        "Checkpoint": ("retinalnet.checkpoint", "Checkpoint", _CHECKPOINT),
        "load_checkpoint": ("retinalnet.checkpoint", "load_checkpoint", _CHECKPOINT),
        "save_checkpoint": ("retinalnet.checkpoint", "save_checkpoint", _CHECKPOINT),
        "CHECKPOINT_FORMAT": ("retinalnet.checkpoint", "CHECKPOINT_FORMAT", _INTERNAL),
        "resolve_device": ("retinalnet._core.device", "resolve_device", "pass device='auto'"),
        "default_num_workers": (
            "retinalnet._core.device",
            "default_num_workers",
            "pass num_workers=None",
        ),
    },
)
