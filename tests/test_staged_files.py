"""Figures drawn aside and put in place as a set (``retinalnet.cli._staged_files``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from retinalnet.cli._staged_files import STAGING_PREFIX, StagedFiles


def _png(save: Path, colour: str = "red") -> None:
    """A PNG as matplotlib writes a figure (a figure may replace one; never a scan)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", "Matplotlib version3.9.0, https://matplotlib.org/")
    Image.new("RGB", (4, 4), colour).save(save, pnginfo=info)


def test_nothing_is_in_place_until_commit_and_then_all_is(tmp_path: Path) -> None:
    folder = tmp_path / "plots"
    folder.mkdir()
    _png(folder / "a.png", "blue")  # an earlier run's
    with StagedFiles() as staged:
        staged.draw(folder / "a.png", _png)
        staged.draw(folder / "b.png", _png)
        assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["a.png"]
        with Image.open(folder / "a.png") as earlier:
            assert earlier.getpixel((0, 0)) == (0, 0, 255)
        staged.commit()
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png"]  # no hidden folder
    with Image.open(folder / "a.png") as drawn:
        assert drawn.getpixel((0, 0)) == (255, 0, 0)


def test_an_error_before_commit_leaves_every_folder_as_it_was(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    made = tmp_path / "new" / "deeper"

    def stopped(save: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), StagedFiles() as staged:  # noqa: PT012
        staged.draw(kept / "a.png", _png)
        staged.draw(made / "b.png", _png)
        staged.draw(made / "c.png", stopped)
    assert list(kept.iterdir()) == []
    assert not (tmp_path / "new").exists()  # the folders it made, removed


def test_other_names_are_left_as_they_are_and_those_there_returned(tmp_path: Path) -> None:
    # R16: deleting them deleted a user's own history.png; nothing tells whose a file is
    _png(tmp_path / "history.png")
    (tmp_path / "notes.txt").write_text("mine")  # not named
    with StagedFiles() as staged:
        staged.draw(tmp_path / "roc.png", _png)
        others = [tmp_path / name for name in ("history.png", "missing.png", "roc.png")]
        left = staged.commit(others=others)
    assert left == [tmp_path / "history.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.png", "notes.txt", "roc.png"]


def test_a_replaced_figure_keeps_its_permissions(tmp_path: Path) -> None:
    # R16: an owner-only overlay of a patient's scan became readable by everyone
    _png(tmp_path / "scan_cam.png")
    (tmp_path / "scan_cam.png").chmod(0o600)
    with StagedFiles() as staged:
        staged.draw(tmp_path / "scan_cam.png", lambda save: _png(save, "blue"))
        staged.commit()
    assert (tmp_path / "scan_cam.png").stat().st_mode & 0o777 == 0o600


def test_a_target_that_is_a_folder_is_refused_before_anything_is_drawn(tmp_path: Path) -> None:
    (tmp_path / "a.png").mkdir()
    with pytest.raises(ValueError, match=r"'.*a\.png' is a folder"), StagedFiles() as staged:
        staged.draw(tmp_path / "a.png", _png)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_the_hidden_folder_says_what_it_is(tmp_path: Path) -> None:
    seen: list[Path] = []
    with StagedFiles() as staged:
        staged.draw(tmp_path / "a.png", lambda save: seen.append(save))
        assert seen[0].parent.parent == tmp_path
        assert seen[0].parent.name.startswith(STAGING_PREFIX)
