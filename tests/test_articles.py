"""The one article rule of messages: ``an int``, ``a uint8``, ``an HTML``, ``a JSON``."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from retinalnet._core.articles import type_with_article, with_article
from retinalnet.predictor import Predictor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int", "an int"),
        ("uint8 tensor", "a uint8 tensor"),
        ("OrderedDict", "an OrderedDict"),
        ("image", "an image"),
        ("checkpoint", "a checkpoint"),
        ("ONNX", "an ONNX"),
        ("HTML", "an HTML"),
        ("JSON", "a JSON"),
        ("CSV", "a CSV"),
        ("PyTorch", "a PyTorch"),
    ],
)
def test_words_and_initialisms_take_the_article_of_their_sound(text: str, expected: str) -> None:
    assert with_article(text) == expected


def test_types_are_named_with_their_article() -> None:
    assert type_with_article(3) == "an int"
    assert type_with_article(OrderedDict()) == "an OrderedDict"
    assert type_with_article([]) == "a list"


def test_a_message_naming_a_type_reads_right() -> None:
    # was: "predict_proba takes a list of images, got a int"
    with pytest.raises(TypeError, match=r"got an int; pass"):
        Predictor.predict_proba(object.__new__(Predictor), 3)  # type: ignore[arg-type]
