"""Warnings name the caller's line: retinalnet's, torch's and a DataLoader worker's process
machinery frames are walked out of."""

from __future__ import annotations

import multiprocessing
import sys
import warnings
from pathlib import Path

import pytest

import retinalnet
from retinalnet._core.caller_warnings import warn_caller

_PACKAGE_DIR = Path(retinalnet.__file__).parent


@pytest.mark.parametrize(
    "folder",
    [Path(retinalnet.__file__).parent, Path(multiprocessing.__file__).parent],
    ids=["retinalnet", "multiprocessing"],
)
def test_a_warning_names_the_first_line_outside_the_skipped_folders(folder: Path) -> None:
    # code that runs in that folder calls warn_caller, as a data set read in a worker does
    code = compile("warn_caller('a small scan')", str(folder / "calling.py"), "exec")
    with pytest.warns(UserWarning, match="a small scan") as caught:
        exec(code, {"warn_caller": warn_caller})
    assert [w.filename for w in caught] == [__file__]  # multiprocessing: was its calling.py


def test_a_warning_of_the_callers_own_code_names_it() -> None:
    with pytest.warns(UserWarning, match="mine") as caught:
        warn_caller("mine", UserWarning)
    assert caught[0].filename == __file__
    assert caught[0].lineno > 0


def test_repeated_warnings_resolve_no_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    # a warning per image (the small-scan warning of audit) resolved every frame's file and
    # the skipped folders on every call: 24 of 37 s of an audit of 6,000 tiny files
    with pytest.warns(UserWarning, match="first"):
        warn_caller("first")  # may resolve the files of this stack, once
    resolved: list[Path] = []
    original = Path.resolve

    def counted(self: Path, strict: bool = False) -> Path:
        resolved.append(self)
        return original(self, strict=strict)

    monkeypatch.setattr(Path, "resolve", counted)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            warn_caller("again")
    assert resolved == []
    assert [w.filename for w in caught] == [__file__] * 3


def test_a_module_imported_after_a_warning_has_its_folder_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the folders are those of the modules imported when warning, not at the first warning
    with pytest.warns(UserWarning, match="before"):
        warn_caller("before")
    late = type(multiprocessing)("concurrent")
    late.__file__ = str(tmp_path / "concurrent" / "__init__.py")
    monkeypatch.setitem(sys.modules, "concurrent", late)
    code = compile("warn_caller('late')", str(tmp_path / "concurrent" / "calling.py"), "exec")
    with pytest.warns(UserWarning, match="late") as caught:
        exec(code, {"warn_caller": warn_caller})
    assert [w.filename for w in caught] == [__file__]


def test_a_relative_file_name_is_decided_in_the_folder_it_resolves_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "<string>" resolves against the working folder: inside retinalnet's folder it is skipped
    code = compile("warn_caller('where')", "calling.py", "exec")
    for folder, expected in ((Path(__file__).parent, "calling.py"), (_PACKAGE_DIR, __file__)):
        monkeypatch.chdir(folder)
        with pytest.warns(UserWarning, match="where") as caught:
            exec(code, {"warn_caller": warn_caller})
        assert [w.filename for w in caught] == [expected]
