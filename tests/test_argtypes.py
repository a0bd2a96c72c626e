"""Tests for retinalnet.cli._argtypes: path values refused or made plain while the arguments
are parsed."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from retinalnet.cli._argtypes import file_argument, path_argument


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("~", ""),
        ("~/scans", "scans"),
        ("~/run2/best.pt", "run2/best.pt"),
    ],
)
def test_a_leading_tilde_is_the_home_folder(
    value: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert path_argument(value) == tmp_path / expected


@pytest.mark.parametrize("value", ["scans/~", "a~b", "scans/~x", "-~"])
def test_a_tilde_elsewhere_is_a_name(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/nowhere")
    assert path_argument(value) == Path(value)


@pytest.mark.parametrize(
    ("value", "suggested"),
    [
        ("preds/", "preds/predictions.csv"),  # was: a file named 'preds'
        ("out/results/", "out/results/predictions.csv"),
        ("/", "/predictions.csv"),
        ("preds/.", "preds/predictions.csv"),
        ("..", "../predictions.csv"),
    ],
)
def test_a_file_option_refuses_a_value_that_names_a_folder(value: str, suggested: str) -> None:
    expected = f"{value!r} names a folder, where a file is expected; name a file, e.g. {suggested}"
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{re.escape(expected)}$"):
        file_argument("predictions.csv")(value)


@pytest.mark.parametrize("value", ["preds.csv", "preds/p.csv", "-", "/dev/stdout", "a./b.csv"])
def test_a_file_option_takes_a_file(value: str) -> None:
    assert file_argument("predictions.csv")(value) == Path(value)


def test_a_file_option_expands_the_home_folder_and_refuses_an_empty_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert file_argument("p.csv")("~/p.csv") == tmp_path / "p.csv"
    with pytest.raises(argparse.ArgumentTypeError, match=r"^empty path"):
        file_argument("p.csv")("")
