"""What a refused torch file is said to be: a pickle that names a function to run as it
loads (``os.system``) is said as that, at the checkpoint and the weights-file doors; it never
runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from retinalnet.checkpoint import load_checkpoint
from retinalnet.models import create_model

_SAID = (
    r"it asks to run (posix|nt)\.system when loaded; retinalnet never runs code from a file: "
    r"get the checkpoint from its author again"
)


class _RunsAShell:
    """Pickled as a call of ``os.system`` (never made: weights_only refuses it)."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.sentinel}",))


@pytest.fixture
def carrying_code(tmp_path: Path) -> Path:
    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.zeros(2), "extra": _RunsAShell(tmp_path / "ran")}, path)
    return path


def test_a_checkpoint_that_asks_to_run_code_is_said_so(carrying_code: Path) -> None:
    # was: "is not a PyTorch checkpoint file that loads safely, or it is corrupt (...)"
    with pytest.raises(ValueError, match=rf"^checkpoint '.*evil\.pt' is refused: {_SAID}$"):
        load_checkpoint(carrying_code)
    assert not (carrying_code.parent / "ran").exists()


def test_a_weights_file_that_asks_to_run_code_is_said_so(carrying_code: Path) -> None:
    with pytest.raises(ValueError, match=_SAID):
        create_model("small_cnn", weights=carrying_code)
    assert not (carrying_code.parent / "ran").exists()


def test_torchs_words_for_a_blocked_module_are_read() -> None:
    from retinalnet._core.torch_load import asked_to_run, torch_load_reason

    error = RuntimeError(
        "Weights only load failed. ...\n\n\nTrying to load unsupported GLOBAL posix.system "
        "whose module posix is blocked.\n\nCheck the documentation of torch.load"
    )
    assert torch_load_reason(error) == asked_to_run(error)
    assert asked_to_run(RuntimeError("Unsupported global: GLOBAL torch.nn.Linear")) is None


def test_a_weights_file_cut_short_is_said_incomplete(tmp_path: Path) -> None:
    # was: torch's "PytorchStreamReader failed reading zip archive: failed finding central
    # directory", as for a checkpoint (tests/test_checkpoint.py: every checkpoint door)
    path = tmp_path / "weights.pth"
    torch.save(create_model("small_cnn", weights=None).network.state_dict(), path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        ValueError,
        match=rf"^weights file '.*weights\.pth' is incomplete: it starts as the zip archive "
        rf"torch\.save writes but has no zip directory at its end \({len(whole) // 2:,} bytes; "
        r"a copy or download cut short\?\)\. Copy it again from where it came from$",
    ):
        create_model("small_cnn", weights=path)
