"""Warnings name the caller's line: retinalnet's, torch's and a DataLoader worker's process
machinery frames are walked out of."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

import retinalnet
from retinalnet._core.caller_warnings import warn_caller


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
