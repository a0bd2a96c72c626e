"""The public API as a user's code checked with ``mypy --strict`` sees it.

Checked by CI's ``mypy`` (``files`` in pyproject.toml), never run: each ``assert_type``
fails the type check when a call a user writes no longer type-checks or gives another
type.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typing_extensions import assert_type

from retinalnet import Prediction, Predictor
from retinalnet.export import OnnxPredictor


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
