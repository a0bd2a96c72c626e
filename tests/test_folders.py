"""Tests for retinalnet._core.folders: output paths checked before the work that writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from retinalnet._core.folders import check_file_target, check_folder, folder_problem


def test_a_folder_that_can_be_made_or_written_passes_and_nothing_is_made(tmp_path: Path) -> None:
    check_folder(tmp_path, name="--out", fix="pass another")
    check_folder(tmp_path / "new" / "deeper", name="--out", fix="pass another")
    check_file_target(tmp_path / "new" / "report.json", name="--out", fix="pass another")
    assert not (tmp_path / "new").exists()
    assert not list(tmp_path.iterdir())  # the test file is gone too


def test_a_file_in_the_way_is_named(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError, match=r"^--out '.*afile' is a file, not a folder; x"):
        check_folder(tmp_path / "afile", name="--out", fix="x")
    with pytest.raises(NotADirectoryError, match=r"cannot be made: '.*afile' is a file"):
        check_folder(tmp_path / "afile" / "runs", name="--out", fix="x")
    with pytest.raises(IsADirectoryError, match=r"^--csv '.*' is a folder, not a file; x"):
        check_file_target(tmp_path, name="--csv", fix="x")


def test_a_symbolic_link_to_nothing_is_named_before_any_work(tmp_path: Path) -> None:
    """``mkdir`` through such a link fails with a bare "[Errno 17] File exists": after the
    work, for `predict --cam`; before, the check let it through."""
    (tmp_path / "cams").symlink_to(tmp_path / "missing" / "cams")
    message = r"^--cam '.*cams' is a symbolic link to '.*missing/cams', which does not exist; x"
    with pytest.raises(NotADirectoryError, match=message):
        check_folder(tmp_path / "cams", name="--cam", fix="x")
    with pytest.raises(NotADirectoryError, match=r"cannot be made: '.*cams' is a symbolic link"):
        check_folder(tmp_path / "cams" / "run1", name="--cam", fix="x")
    assert folder_problem(tmp_path / "cams") is not None
    (tmp_path / "missing" / "cams").mkdir(parents=True)  # the link's folder made: fine now
    check_folder(tmp_path / "cams", name="--cam", fix="x")
