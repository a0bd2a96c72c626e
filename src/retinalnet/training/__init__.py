"""Training: the Trainer, its callbacks, checkpoints and evaluation."""

from retinalnet.training._balance import balanced_sampler as balanced_sampler
from retinalnet.training._balance import class_counts as class_counts
from retinalnet.training._balance import class_weights as class_weights
from retinalnet.training._callbacks import Callback as Callback
from retinalnet.training._callbacks import EarlyStopping as EarlyStopping
from retinalnet.training._callbacks import ModelCheckpoint as ModelCheckpoint
from retinalnet.training._checkpoint import CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from retinalnet.training._checkpoint import Checkpoint as Checkpoint
from retinalnet.training._checkpoint import load_checkpoint as load_checkpoint
from retinalnet.training._checkpoint import save_checkpoint as save_checkpoint
from retinalnet.training._device import resolve_device as resolve_device
from retinalnet.training._evaluation import EvaluationResult as EvaluationResult
from retinalnet.training._evaluation import evaluate as evaluate
from retinalnet.training._history import EpochRecord as EpochRecord
from retinalnet.training._history import History as History
from retinalnet.training._loaders import DataSource as DataSource
from retinalnet.training._loaders import default_num_workers as default_num_workers
from retinalnet.training._trainer import OptimizerFactory as OptimizerFactory
from retinalnet.training._trainer import SchedulerFactory as SchedulerFactory
from retinalnet.training._trainer import Trainer as Trainer

__all__ = [
    "CHECKPOINT_FORMAT",
    "Callback",
    "Checkpoint",
    "DataSource",
    "EarlyStopping",
    "EpochRecord",
    "EvaluationResult",
    "History",
    "ModelCheckpoint",
    "OptimizerFactory",
    "SchedulerFactory",
    "Trainer",
    "balanced_sampler",
    "class_counts",
    "class_weights",
    "default_num_workers",
    "evaluate",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
]
