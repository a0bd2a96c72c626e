"""Tests for retinalnet._core.temporary_names: the temporary files a file is written
through have a name of bounded length, which the stale-lock cleanup finds."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from retinalnet._core.files import atomic_write
from retinalnet._core.temporary_names import temporary_file_pattern, temporary_prefix


@pytest.mark.parametrize(
    "name",
    ["last.pt", "history.csv", "r" * 100, "r" * 101, "\u4e2d" * 85],
    ids=["last.pt", "history.csv", "100 bytes", "101 bytes", "85 CJK characters"],
)
def test_the_leftover_pattern_matches_the_temporary_file_the_writer_makes(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run lock removes a killed run's temporary files by this pattern: it must name the
    writer's files, whatever their length, and no other."""
    made: list[str] = []
    mkstemp = tempfile.mkstemp

    def recorded(*args: Any, **kwargs: Any) -> tuple[int, str]:
        handle, made_name = mkstemp(*args, **kwargs)
        made.append(Path(made_name).name)
        return handle, made_name

    monkeypatch.setattr(tempfile, "mkstemp", recorded)
    atomic_write(tmp_path / name, lambda stream: stream.write(b"x"))
    pattern = temporary_file_pattern([name])
    assert len(made) == 1
    assert pattern.fullmatch(made[0])
    assert len(made[0].encode()) <= 114
    assert not pattern.fullmatch(f".{name}.tmp")  # no random part: not the writer's
    assert not temporary_file_pattern(["other.pt"]).fullmatch(made[0])


@pytest.mark.parametrize(
    "name",
    ["x" * 251 + ".csv", "\u4e2d" * 85, "\udcff" * 255],
    ids=["255 bytes", "85 CJK characters", "255 bytes not UTF-8"],
)
def test_a_long_name_is_cut_to_a_bounded_prefix_that_still_tells_names_apart(name: str) -> None:
    prefix = temporary_prefix(name)
    assert len(prefix.encode("utf-8", "surrogateescape")) <= 102
    assert prefix.startswith(".")
    assert prefix.endswith(".")
    assert prefix != temporary_prefix(name[:-1] + "y")  # the hash of the whole name
