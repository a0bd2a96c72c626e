"""Tests for retinalnet._core.worker_start: DataLoader workers that cannot start under
"spawn" (macOS, Windows) said in one line with the fix."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from retinalnet._core import worker_start
from retinalnet._core.loaders import make_loader

_FIX = (
    r"define them at a module's top level \(no lambda, no class inside a function\), put "
    r"the script's code under `if __name__ == \"__main__\":`, or pass num_workers=0 "
    r"\(command line: --workers 0\)$"
)


class _Numbers(Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, size: int, exit_at: int | None = None) -> None:
        self.size = size
        self.exit_at = exit_at

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.exit_at is not None and index >= self.exit_at and _in_a_worker():
            os._exit(1)  # a worker process that dies, as one re-running a script does
        return torch.tensor([float(index)]), 0


def _in_a_worker() -> bool:
    return torch.utils.data.get_worker_info() is not None


def test_a_transform_that_cannot_be_pickled_is_said_in_one_line_under_spawn() -> None:
    # was: torch's "Can't pickle local object 'main.<locals>.<lambda>'" with the advice to
    # use 'fork' (impossible on Windows), after a warning and a traceback
    data = _Numbers(4)
    data.transform = lambda x: x  # type: ignore[attr-defined]
    loader = make_loader(data, batch_size=2, shuffle=False, transform=None, num_workers=1)
    loader.multiprocessing_context = "spawn"
    with pytest.warns(UserWarning, match="pickle"), pytest.raises(RuntimeError) as caught:
        iter(loader)
    message = str(caught.value)
    assert message.startswith("1 DataLoader worker process(es) could not start (")
    assert "with the 'spawn' start method (macOS and Windows)" in message
    assert "\n" not in message
    assert caught.match(_FIX)


def test_a_worker_that_dies_before_its_first_batch_is_said_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # under spawn, a script without the __main__ guard starts its work again in each worker,
    # which Python stops: torch says only "DataLoader worker (pid(s) ...) exited unexpectedly"
    monkeypatch.setattr(worker_start, "_start_method", lambda loader: "spawn")
    loader = make_loader(
        _Numbers(4, exit_at=0), batch_size=2, shuffle=False, transform=None, num_workers=1
    )
    with pytest.raises(RuntimeError, match=_FIX) as caught:
        next(iter(loader))
    assert "exited unexpectedly" in str(caught.value.__cause__)


def test_under_fork_or_without_workers_the_loader_is_torchs() -> None:
    for workers in (0, 1):
        loader = make_loader(
            _Numbers(4), batch_size=2, shuffle=False, transform=None, num_workers=workers
        )
        batches = iter(loader)
        assert type(batches).__module__ == "torch.utils.data.dataloader"
        assert [batch[0].flatten().tolist() for batch in batches] == [[0.0, 1.0], [2.0, 3.0]]


def test_the_batches_and_length_of_an_explained_loader_are_torchs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_start, "_start_method", lambda loader: "spawn")
    loader = make_loader(_Numbers(5), batch_size=2, shuffle=False, transform=None, num_workers=1)
    for _ in range(2):  # persistent workers: the second epoch reuses them
        batches: Any = iter(loader)
        assert len(batches) == 3
        assert [batch[0].flatten().tolist() for batch in batches] == [
            [0.0, 1.0],
            [2.0, 3.0],
            [4.0],
        ]


def test_a_worker_that_dies_after_a_batch_keeps_torchs_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # memory or a kill, not a start: the advice about spawn would mislead
    monkeypatch.setattr(worker_start, "_start_method", lambda loader: "spawn")
    # batches by named shared memory: under "file_descriptor" the main process fetches each
    # batch's descriptor from the worker, which may be dead by then (ConnectionResetError)
    strategy = torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy("file_system")
    try:
        loader = make_loader(  # the worker reads two batches ahead: it dies at the fourth
            _Numbers(8, exit_at=6), batch_size=2, shuffle=False, transform=None, num_workers=1
        )
        batches = iter(loader)
        assert next(batches)[0].flatten().tolist() == [0.0, 1.0]
        with pytest.raises(RuntimeError, match="exited unexpectedly") as caught:
            for _ in batches:
                pass
    finally:
        torch.multiprocessing.set_sharing_strategy(strategy)
    assert "could not start" not in str(caught.value)


def _worker_exit_codes_in_a_pool_thread(make: Any) -> list[int | None]:
    """Read a two-worker loader to its end in a thread-pool thread (the workers fork from
    that thread), and return the workers' exit codes once the iterator shut them down."""

    def read() -> list[int | None]:
        iterator = iter(make(_Numbers(8), batch_size=2, num_workers=2))
        assert len(list(iterator)) == 4
        workers = list(iterator._workers)
        iterator._shutdown_workers()
        return [worker.exitcode for worker in workers]

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(read).result(timeout=120)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers fork from the thread only on POSIX")
@pytest.mark.parametrize("loader", [worker_start.ExplainedLoader, DataLoader])
def test_workers_forked_from_a_thread_pools_thread_end_with_status_0(loader: Any) -> None:
    # they exited with status 1 ("cannot join current thread" in concurrent.futures' exit
    # hook), and torch's SIGCHLD handler then failed another thread's loader with "DataLoader
    # worker (pid ...) exited unexpectedly with exit code 1" (a web server's request threads);
    # a user's own DataLoader, given to fit or evaluate, forks after retinalnet is imported
    context = torch.multiprocessing.get_context("fork")

    def make(data: Any, **options: Any) -> Any:
        return loader(data, multiprocessing_context=context, **options)

    assert _worker_exit_codes_in_a_pool_thread(make) == [0, 0]
