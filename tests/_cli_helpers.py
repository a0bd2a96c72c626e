"""What the command-line tests share: a quick ``retinalnet train`` run."""

from __future__ import annotations

from pathlib import Path

from retinalnet.cli import main


def train_small_cnn(data: Path, out: Path, *extra: str) -> int:
    """``retinalnet train`` of ``small_cnn`` at 32 px, one epoch, seeded and quiet, on the
    Kermany-layout folder ``data`` into ``out``; ``extra`` flags come last (and win).
    Returns the exit status."""
    return main(
        [
            "train", "--data", str(data), "--out", str(out), "--arch", "small_cnn",
            "--size", "32", "--epochs", "1", "--batch-size", "8", "--seed", "0", "-q",
            "--recipe", "tutorial",  # these tests are about the loop; test_finetune.py: recipe
            *extra,
        ]
    )  # fmt: skip
