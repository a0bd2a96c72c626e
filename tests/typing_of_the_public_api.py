"""The public API as a user's code checked with ``mypy --strict`` sees it.

Checked by CI's ``mypy`` (``files`` in pyproject.toml), never run: each ``assert_type``
fails the type check when a call a user writes no longer type-checks or gives another
type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image
from torch import nn
from torch.utils.data import Dataset
from typing_extensions import assert_type

from retinalnet import Classifier, EarlyStopping, Prediction, Predictor
from retinalnet.export import OnnxPredictor
from retinalnet.models import ModelSpec
from retinalnet.training import fine_tune, fine_tune_trainer


def topk_takes_every_list_of_images(predictor: Predictor, onnx: OnnxPredictor) -> None:
    """One image gives a Prediction; a list of any images, mixed kinds too, a list."""
    names: list[str] = ["a.jpeg"]
    paths: list[Path] = [Path("a.jpeg")]
    assert_type(predictor.topk("a.jpeg"), Prediction)
    assert_type(predictor.topk(names), list[Prediction])
    assert_type(predictor.topk(paths, k=2), list[Prediction])
    assert_type(predictor.topk(tuple(names)), list[Prediction])
    assert_type(predictor.topk(sorted(Path().glob("*.jpeg"))), list[Prediction])
    # was: "Value of type variable "ImageT" of "topk" cannot be "object""
    assert_type(predictor.topk([Path("a.jpeg"), "b.jpeg"], k=2), list[Prediction])
    assert_type(predictor.topk(["a.jpeg", Image.new("L", (64, 64))]), list[Prediction])
    assert_type(onnx.topk([Path("a.jpeg"), "b.jpeg"]), list[Prediction])
    assert_type(onnx.topk(names), list[Prediction])


def feature_blocks_take_the_documented_selectors(network: nn.Module) -> None:
    """``feature_blocks=lambda net: [net.layer1, ...]``, as docs/backbones.rst and the
    ModelSpec docstring write it (was: "List item 0 has incompatible type "Tensor |
    Module""), a network's own ModuleList, and a typed function."""

    def build(*, weights: object = None, progress: bool = True) -> nn.Module:
        return network

    def stages(net: nn.Module) -> list[nn.Module]:
        return [net]

    ModelSpec(
        name="my_net",
        builder=build,
        head="fc",
        feature_blocks=lambda net: [net.layer1, net.layer2],
        gradcam_layer="layer2",
    )
    Classifier(network, classes=["a", "b"], feature_blocks=lambda net: [net.layer1, net.layer2])
    Classifier(network, classes=["a", "b"], feature_blocks=lambda net: net.blocks)
    Classifier(network, classes=["a", "b"], feature_blocks=stages)


def fine_tune_checks_its_trainer_settings(model: Classifier, data: Dataset[Any]) -> None:
    """``fine_tune(..., **settings)`` takes the Trainer settings it documents, each with its
    type; a misspelt or mistyped one is a type error (was ``**trainer_settings: Any``, so
    ``batch_sise=16`` type-checked and failed only when it ran). ``warn_unused_ignores``
    (``strict``) fails the check when an ignore below is no longer needed."""
    fine_tune(model, data, data, batch_size=16, seed=0, device="cpu", precision="fp32")
    fine_tune(model, data, data, callbacks=[EarlyStopping()], feature_cache=False)
    fine_tune(model, data, batch_sise=16)  # type: ignore[call-arg]
    fine_tune(model, data, batch_size="16")  # type: ignore[arg-type]
    fine_tune_trainer(model, data, precision="fp64")  # type: ignore[arg-type]
