"""A run's folder given where a checkpoint file is expected says so and names the files in
it; it said "no checkpoint file 'run1'", as if the folder the user had just trained into
did not exist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from _training_helpers import tiny_cnn
from retinalnet import Predictor
from retinalnet.checkpoint import load_checkpoint, save_checkpoint
from retinalnet.cli import main


def _run(folder: Path, *names: str) -> Path:
    folder.mkdir()
    model = tiny_cnn()
    for name in names:
        save_checkpoint(folder / name, model)
    (folder / "history.csv").write_text("epoch\n")
    return folder


@pytest.mark.parametrize(
    "door",
    [
        pytest.param(load_checkpoint, id="load_checkpoint"),
        pytest.param(Predictor.from_checkpoint, id="Predictor.from_checkpoint"),
    ],
)
def test_a_run_folder_names_the_checkpoints_inside_it(
    tmp_path: Path, door: Callable[[Path], object]
) -> None:
    run = _run(tmp_path / "run1", "last.pt", "best.pt")
    with pytest.raises(IsADirectoryError) as raised:
        door(run)
    assert str(raised.value) == (
        f"{str(run)!r} is a folder, not a checkpoint file; pass the checkpoint file inside "
        f"it: {str(run / 'best.pt')!r} (or last.pt); it holds best.pt, last.pt"
    )


def test_the_command_line_says_it_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path / "run1", "best.pt")
    for command in (["info", str(run)], ["export", "--checkpoint", str(run), "--out", "x.onnx"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f"{str(run)!r} is a folder, not a checkpoint file" in err
        assert f"{str(run / 'best.pt')!r}; it holds best.pt" in err


def test_the_demo_layout_points_into_its_checkpoints_folder(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    demo.mkdir()
    _run(demo / "checkpoints", "best.pt", "last.pt", "epoch3.pth")
    with pytest.raises(IsADirectoryError, match=r"holds checkpoints/best\.pt") as raised:
        load_checkpoint(demo)
    assert repr(str(demo / "checkpoints" / "best.pt")) in str(raised.value)
    assert "checkpoints/epoch3.pth" in str(raised.value)


def test_a_folder_without_checkpoints_says_so(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match=r"holds no \.pt/\.pth/\.ckpt file; pass the path"):
        load_checkpoint(tmp_path)


def test_a_missing_file_is_still_no_checkpoint_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^no checkpoint file '.*run1'$"):
        load_checkpoint(tmp_path / "run1")


def test_resume_given_the_run_folder_is_told_its_last_pt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: "--resume 'run1': no checkpoint file there" (the CLI's own check came first)
    run = _run(tmp_path / "run1", "best.pt", "last.pt")
    assert main(["train", "--data", str(tmp_path), "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"--resume {str(run)!r} is a folder, not a checkpoint file" in err
    assert f"pass the checkpoint file inside it: {str(run / 'last.pt')!r}; it holds" in err


def test_fit_resumed_from_the_run_folder_is_told_its_last_pt(tmp_path: Path) -> None:
    # was: "pass the checkpoint file inside it: 'run1/best.pt'", an earlier epoch's
    from _training_helpers import quiet_trainer

    run = _run(tmp_path / "run1", "best.pt", "last.pt")
    trainer = quiet_trainer(tiny_cnn(), max_epochs=2)
    with pytest.raises(IsADirectoryError, match=r"^resume_from .*/run1/last\.pt'; it holds"):
        trainer.fit(object(), resume_from=run)  # type: ignore[arg-type]
