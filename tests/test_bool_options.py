"""Every public on/off parameter takes True or False only (retinalnet._core.bool_options).

The parameters are found by reading the public API's signatures (annotated ``bool`` or
``bool | None``), so a new one fails :func:`test_every_public_bool_parameter_is_called_here`
until it is added to :data:`CALLS` (or, with a reason, to :data:`NOT_INPUTS`).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from retinalnet import Predictor
from retinalnet._core.bool_options import NotABoolError, check_bool, check_optional_bool
from retinalnet.checkpoint import save_checkpoint
from retinalnet.datasets import patient_split
from retinalnet.demo import run_demo
from retinalnet.engine import InferenceEngine
from retinalnet.metrics import classification_report
from retinalnet.models import (
    ModelSpec,
    build_head,
    create_model,
    load_vgg16,
    replace_head,
    small_cnn,
    vgg16_transfer,
)
from retinalnet.models._small_cnn import small_cnn_network
from retinalnet.plots import plot_confusion_matrix
from retinalnet.precision import resolve_precision
from retinalnet.training import (
    EarlyStopping,
    FineTune,
    ModelCheckpoint,
    Trainer,
    build_feature_cache,
    evaluate,
)
from retinalnet.transforms import Preprocessing

PUBLIC_MODULES = (
    "retinalnet",
    "retinalnet.models",
    "retinalnet.training",
    "retinalnet.metrics",
    "retinalnet.export",
    "retinalnet.gradcam",
    "retinalnet.datasets",
    "retinalnet.report",
    "retinalnet.transforms",
    "retinalnet.engine",
    "retinalnet.predictor",
    "retinalnet.checkpoint",
    "retinalnet.tensor_preprocessing",
    "retinalnet.plots",
    "retinalnet.plots_volume",
    "retinalnet.demo",
    "retinalnet.precision",
    "retinalnet.volume",
)
BOOL_ANNOTATIONS = ("bool", "bool | None")


def _public_bool_parameters() -> Iterator[tuple[str, str]]:
    """``(owner, parameter)`` for each parameter of the public API annotated as a bool:
    functions, class constructors (dataclasses too) and the public methods retinalnet
    defines (not those a class inherits from torch)."""

    def of(function: Callable[..., Any], owner: str) -> Iterator[tuple[str, str]]:
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return
        for parameter in parameters:
            annotation = getattr(parameter.annotation, "__forward_arg__", parameter.annotation)
            if str(annotation) in BOOL_ANNOTATIONS:
                yield owner, parameter.name

    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if not getattr(value, "__module__", "").startswith("retinalnet"):
                continue
            if inspect.isclass(value):
                yield from of(value, value.__name__)
                for attribute, member in vars(value).items():
                    function = getattr(member, "__func__", member)
                    if not attribute.startswith("_") and inspect.isfunction(function):
                        yield from of(function, f"{value.__name__}.{attribute}")
            elif inspect.isfunction(value):
                yield from of(value, value.__name__)


def _model() -> Any:
    torch.manual_seed(0)
    return small_cnn(width=4, hidden=8, preprocessing=Preprocessing(size=32))


def _images() -> TensorDataset:
    return TensorDataset(torch.zeros(2, 3, 32, 32), torch.tensor([0, 1]))


def _spec(**options: Any) -> ModelSpec:
    return ModelSpec(
        name="a_test_net",
        builder=small_cnn_network,
        head="classifier",
        feature_blocks=["features"],
        gradcam_layer="features",
        **options,
    )


def _checkpoint(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "best.pt", _model())


def _report() -> Any:
    return classification_report(
        [0, 1], np.array([[0.9, 0.1], [0.2, 0.8]]), classes=["a", "b"], urgent=None
    )


Call = Callable[[object, Path], object]

# how each parameter is given a value, everything else valid; each call is refused before
# any work when the value is not a bool
CALLS: dict[tuple[str, str], Call] = {
    ("Preprocessing", "hflip"): lambda v, _: Preprocessing(hflip=v),
    ("Preprocessing", "reduced_decode"): lambda v, _: Preprocessing(reduced_decode=v),
    ("Trainer", "overwrite"): lambda v, p: Trainer(_model(), out_dir=p, overwrite=v),
    ("Trainer", "progress"): lambda v, _: Trainer(_model(), device="cpu", progress=v),
    ("Trainer.lr_find", "apply"): lambda v, _: Trainer(_model(), device="cpu").lr_find(
        TensorDataset(torch.zeros(2, 3, 32, 32), torch.tensor([0, 1])), num_steps=8, apply=v
    ),
    ("EarlyStopping", "restore_best_weights"): lambda v, _: EarlyStopping(restore_best_weights=v),
    ("ModelCheckpoint", "save_last"): lambda v, p: ModelCheckpoint(p, save_last=v),
    ("ModelCheckpoint", "overwrite"): lambda v, p: ModelCheckpoint(p, overwrite=v),
    ("Predictor", "tta"): lambda v, _: Predictor(_model(), device="cpu", tta=v),
    ("Predictor.from_checkpoint", "tta"): lambda v, p: Predictor.from_checkpoint(
        _checkpoint(p), device="cpu", tta=v
    ),
    ("InferenceEngine", "tta"): lambda v, _: InferenceEngine(_model(), device="cpu", tta=v),
    ("create_model", "freeze"): lambda v, _: create_model("small_cnn", weights=None, freeze=v),
    ("create_model", "progress"): lambda v, _: create_model("small_cnn", weights=None, progress=v),
    ("vgg16_transfer", "freeze"): lambda v, _: vgg16_transfer(weights=None, freeze=v),
    ("vgg16_transfer", "progress"): lambda v, _: vgg16_transfer(weights=None, progress=v),
    ("build_head", "log_softmax"): lambda v, _: build_head(8, 2, log_softmax=v),
    ("replace_head", "log_softmax"): lambda v, _: replace_head(
        torch.nn.Sequential(torch.nn.Linear(8, 3)), 2, log_softmax=v
    ),
    ("FineTune", "freeze_bn"): lambda v, _: FineTune(freeze_bn=v),
    ("ModelSpec", "default_freeze"): lambda v, _: _spec(default_freeze=v),
    ("ModelSpec", "exportable"): lambda v, _: _spec(exportable=v, export_problem="an op"),
    ("load_vgg16", "progress"): lambda v, _: load_vgg16(None, progress=v),
    ("build_feature_cache", "progress"): lambda v, _: build_feature_cache(
        _model(), _images(), progress=v
    ),
    ("build_feature_cache", "shard"): lambda v, _: build_feature_cache(
        _model(), _images(), shard=v
    ),
    ("evaluate", "progress"): lambda v, _: evaluate(_model(), _images(), progress=v),
    ("evaluate", "tta"): lambda v, _: evaluate(_model(), _images(), tta=v),
    ("patient_split", "drop_duplicates"): lambda v, p: patient_split(p, drop_duplicates=v),
    ("patient_split", "drop_test_patients"): lambda v, p: patient_split(p, drop_test_patients=v),
    ("plot_confusion_matrix", "normalize"): lambda v, _: plot_confusion_matrix(
        [[5, 1], [0, 4]], ["a", "b"], normalize=v
    ),
    ("resolve_precision", "training"): lambda v, _: resolve_precision(
        "auto", torch.device("cpu"), training=v
    ),
    ("run_demo", "progress"): lambda v, p: run_demo(p / "demo", progress=v),
    ("run_demo", "verbose"): lambda v, p: run_demo(p / "demo", verbose=v),
    ("ClassificationReport.to_text", "headline"): lambda v, _: _report().to_text(headline=v),
}

# parameters found that are not a user's on/off input
NOT_INPUTS = {
    ("EvaluationResult", "tta"): "a result's record of how it was computed",
    ("CalibrationResult", "applied"): "a result's record",
    ("GradCamTarget", "at_input"): "a declaration a model's builder fills in",
    ("ClassificationTask.setup", "unchecked_inputs"): "a hook the Trainer calls",
    ("ClassificationTask.metric_names", "validation"): "a hook the Trainer calls",
    ("CheckpointWriteError", "previous"): "an error's constructor, called by the library",
}

FOUND = sorted(set(_public_bool_parameters()))


def test_every_public_bool_parameter_is_called_here() -> None:
    unknown = [key for key in FOUND if key not in {**CALLS, **NOT_INPUTS}]
    assert not unknown, f"add these to CALLS (or NOT_INPUTS, with the reason): {unknown}"
    gone = [key for key in {**CALLS, **NOT_INPUTS} if key not in FOUND]
    assert not gone, f"no longer public bool parameters: {gone}"


@pytest.mark.parametrize("value", ["no", "false", "False", 0, 1, 1.0, [], "True"])
@pytest.mark.parametrize("key", sorted(CALLS), ids=".".join)
def test_a_public_bool_parameter_refuses_what_is_not_a_bool(
    key: tuple[str, str], value: object, tmp_path: Path
) -> None:
    _, name = key
    if key == ("run_demo", "verbose") and type(value) is int:
        pytest.skip("0.1's run_demo(verbose=1) is kept working (deprecated name)")
    message = rf"^{name} must be True(, False or None| or False), got {re.escape(repr(value))}"
    with pytest.raises(TypeError, match=message) as refused:
        CALLS[key](value, tmp_path)
    assert isinstance(refused.value, ValueError)  # as Preprocessing has always raised


@pytest.mark.parametrize("key", sorted(CALLS), ids=".".join)
def test_a_public_bool_parameter_takes_numpy_bools(key: tuple[str, str], tmp_path: Path) -> None:
    if key[0] in ("build_feature_cache", "evaluate", "patient_split", "load_vgg16", "run_demo"):
        pytest.skip("with a bool the whole call runs: what is tested here is the refusal")
    if key == ("Trainer.lr_find", "apply"):
        pytest.skip("with a bool the range test runs (tests/test_lr_find.py)")
    CALLS[key](np.False_, tmp_path)


def test_overwrite_no_keeps_an_existing_run(tmp_path: Path) -> None:
    best = save_checkpoint(tmp_path / "best.pt", _model())
    before = best.read_bytes()
    with pytest.raises(ValueError, match="overwrite must be True or False, got 'no'"):
        Trainer(_model(), out_dir=tmp_path, overwrite="no")
    assert best.read_bytes() == before


def test_the_values_kept_are_python_bools() -> None:
    assert Preprocessing(hflip=np.False_).hflip is False
    assert EarlyStopping(restore_best_weights=np.True_).restore_best_weights is True
    assert Predictor(_model(), device="cpu", tta=np.True_).tta is True


@pytest.mark.parametrize(
    ("function", "value", "expected"),
    [
        (check_bool, True, True),
        (check_bool, np.bool_(False), False),
        (check_optional_bool, None, None),
        (check_optional_bool, np.True_, True),
    ],
)
def test_check_bool_takes_bools(function: Any, value: object, expected: object) -> None:
    assert function(value, "x") is expected


def test_not_a_bool_is_a_type_and_a_value_error() -> None:
    assert issubclass(NotABoolError, TypeError)
    assert issubclass(NotABoolError, ValueError)
    with pytest.raises(NotABoolError, match=r"^x must be True, False or None, got 'yes'$"):
        check_optional_bool("yes", "x")
    with pytest.raises(NotABoolError, match=r"^x must be True or False, got None$"):
        check_bool(None, "x")
