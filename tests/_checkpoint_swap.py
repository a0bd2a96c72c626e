"""A training run renaming a new checkpoint over the one a command uses, as ``Trainer`` does
with ``best.pt`` each time validation improves: for the tests of what names the checkpoint
used (its sha256, the weights a temperature is written on)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

import retinalnet.checkpoint
from retinalnet.checkpoint import Checkpoint, save_checkpoint
from retinalnet.models import small_cnn
from retinalnet.transforms import Preprocessing


def two_checkpoints(folder: Path) -> tuple[Path, Path]:
    """``A.pt`` (epoch 1) and ``B.pt`` (epoch 2) in ``folder``: two epochs of a run."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for epoch, name in ((1, "A.pt"), (2, "B.pt")):
        torch.manual_seed(epoch)  # other weights
        model = small_cnn(preprocessing=Preprocessing(size=32))
        written.append(save_checkpoint(folder / name, model, epoch=epoch))
    return written[0], written[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rename_over(source: Path, path: Path) -> None:
    """Put a copy of ``source`` at ``path`` as a run writes a checkpoint: whole, renamed over."""
    temporary = path.with_name(f".{path.name}.swap")
    shutil.copyfile(source, temporary)
    temporary.replace(path)


def replaced_after_load(
    monkeypatch: pytest.MonkeyPatch, target: str, path: Path, newer: Path
) -> None:
    """Make the ``load_checkpoint`` at ``target`` (``"retinalnet.checkpoint.load_checkpoint"``,
    or the name a module imported it as) rename ``newer`` over ``path`` right after its first
    load: a run writing its next epoch while the command works with the one loaded."""
    real = retinalnet.checkpoint.load_checkpoint
    loads: list[Checkpoint] = []

    def load(*args: object, **kwargs: object) -> Checkpoint:
        checkpoint = real(*args, **kwargs)  # type: ignore[arg-type]
        if not loads:
            rename_over(newer, path)
        loads.append(checkpoint)
        return checkpoint

    monkeypatch.setattr(target, load)
