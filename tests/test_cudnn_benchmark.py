"""cuDNN benchmark mode for GPU inference sessions: the caller's setting comes back once the
last of overlapping sessions ends (two sessions in two threads left it on for good)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import torch

from retinalnet._core.cudnn_benchmark import cudnn_benchmark

CUDA = torch.device("cuda")  # only the flag is touched: no GPU needed


@pytest.fixture(autouse=True)
def _callers_settings() -> Iterator[None]:
    cudnn = torch.backends.cudnn
    saved = cudnn.benchmark, cudnn.deterministic
    cudnn.benchmark, cudnn.deterministic = False, False
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.deterministic = saved


def test_overlapping_sessions_in_two_threads_put_the_callers_setting_back() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with cudnn_benchmark(CUDA):
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with cudnn_benchmark(CUDA):
            second_in.set()
            first_out.wait(10)  # the first session ends while this one runs
            seen.append(torch.backends.cudnn.benchmark)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert seen == [True]  # still on for the session that runs on
    assert torch.backends.cudnn.benchmark is False  # was: True for good


def test_a_callers_deterministic_cudnn_is_left_alone() -> None:
    torch.backends.cudnn.deterministic = True
    with cudnn_benchmark(CUDA):
        assert torch.backends.cudnn.benchmark is False
    assert torch.backends.cudnn.benchmark is False


def test_a_callers_benchmark_setting_stays_and_other_devices_change_nothing() -> None:
    torch.backends.cudnn.benchmark = True
    with cudnn_benchmark(CUDA):
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark is True
    torch.backends.cudnn.benchmark = False
    with cudnn_benchmark(torch.device("cpu")):
        assert torch.backends.cudnn.benchmark is False
