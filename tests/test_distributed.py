"""Distributed training: two CPU processes (gloo) give what one process gives."""

from __future__ import annotations

import atexit
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from _distributed_helpers import as_torchrun_starts, free_port
from _training_helpers import linear_classifier, separable_data
from retinalnet.training import Callback, Trainer

EPOCHS = 3
PER_RANK_BATCH = 8


def _fit(
    batch_size: int, out_dir: Path | None = None, callbacks: list[Callback] | None = None
) -> Trainer:
    trainer = Trainer(
        linear_classifier(seed=3),
        callbacks=callbacks or [],
        max_epochs=EPOCHS,
        batch_size=batch_size,
        seed=0,
        device="cpu",
        precision="fp32",
        progress=False,
        out_dir=out_dir,
    )
    trainer.fit(separable_data(64), separable_data(16, seed=1))
    return trainer


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    as_torchrun_starts(rank, world_size, port)  # the group closes as the process exits
    trainer = _fit(PER_RANK_BATCH, out_dir=Path(out) / "checkpoints")
    torch.save(
        {"state": trainer.model.state_dict(), "history": trainer.history.to_records()},
        Path(out) / f"rank{rank}.pt",
    )


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_gloo_processes_train_like_one_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    single = _fit(2 * PER_RANK_BATCH)  # the same global batch in one process

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ranks[0]["state"][name], value, rtol=1e-5, atol=1e-6)
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name])
    for distributed, alone in zip(ranks[0]["history"], single.history.to_records(), strict=True):
        assert distributed["train_loss"] == pytest.approx(alone["train_loss"], rel=1e-5)
        assert distributed["train_accuracy"] == pytest.approx(alone["train_accuracy"])
        assert distributed["val_loss"] == pytest.approx(alone["val_loss"], rel=1e-5)
    # only rank 0 wrote checkpoints, and they hold the whole run
    written = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert written == ["best.pt", "last.pt"]
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == EPOCHS


class _SlowFilesOnRank0(Callback):
    """Rank 0 takes its time to write a file when the fit ends (as a big checkpoint would)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def on_fit_end(self, trainer: Trainer) -> None:
        if dist.get_rank() == 0:
            time.sleep(1.0)
            self.marker.write_text("written")


def _ending_worker(rank: int, port: int, out: str) -> None:
    as_torchrun_starts(rank, 2, port)
    marker = Path(out) / "rank0-files"
    _fit(PER_RANK_BATCH, callbacks=[_SlowFilesOnRank0(marker)])
    seen = marker.exists()  # fit has returned on this rank
    atexit._run_exitfuncs()  # what the interpreter runs as the process exits
    (Path(out) / f"rank{rank}.txt").write_text(f"{seen} {dist.is_initialized()}")


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_every_rank_leaves_fit_after_rank_0_and_closes_the_group_at_exit(
    tmp_path: Path,
) -> None:
    # a rank that left early and exited with the group open could abort (SIGABRT) while
    # rank 0 still wrote its checkpoints, and torchrun would then stop rank 0 too
    mp.spawn(_ending_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    reports = [(tmp_path / f"rank{rank}.txt").read_text().split() for rank in range(2)]
    seen, still_open = zip(*reports, strict=True)
    assert seen == ("True", "True"), "a rank returned from fit before rank 0's files"
    assert still_open == ("False", "False"), "a rank left the process group open at exit"
