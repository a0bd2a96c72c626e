"""The checkpoint format's own rules (retinalnet._core.checkpoint_format)."""

from __future__ import annotations

from typing import Any

import pytest

from retinalnet._core.checkpoint_format import (
    TRAIN_OPTIONS_KEY,
    format_needed,
    stamped,
    train_record,
)
from retinalnet._version import __version__


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({TRAIN_OPTIONS_KEY: {"lr": 0.001}}, {"lr": 0.001}),
        ({}, None),  # the Python API, retinalnet before 0.2
        ({TRAIN_OPTIONS_KEY: ["lr", 0.001]}, None),  # a damaged or foreign record
        ({TRAIN_OPTIONS_KEY: None}, None),
    ],
)
def test_train_record_is_the_recorded_mapping_or_none(
    states: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    assert train_record(states) == expected


@pytest.mark.parametrize(
    ("model", "version"),
    [
        ({"arch": "small_cnn"}, 1),
        ({"arch": "small_cnn", "temperature": 1.0}, 1),
        ({"arch": "small_cnn", "temperature": 1.5}, 2),
        ({"arch": "small_cnn", "declarations": {"blocks": ["a"]}}, 2),
    ],
)
def test_format_two_only_for_fields_an_older_reader_would_ignore(
    model: dict[str, Any], version: int
) -> None:
    assert format_needed(model) == version


def test_stamped_appends_this_version_to_the_writers_once() -> None:
    once = stamped({"model": {"arch": "x"}, "retinalnet_version": "0.1.0"})
    assert once["written_by"] == ["0.1.0", __version__]
    assert stamped(once)["written_by"] == ["0.1.0", __version__]
    assert once["retinalnet_version"] == __version__
