"""Under NCCL every collective runs on this process's own GPU (rank 1 of ``torchrun
--nproc_per_node=2``: ``cuda:1``), never on the current CUDA device, which is ``cuda:0`` in
every process that did not call ``torch.cuda.set_device``: NCCL refuses two ranks on one GPU
("Duplicate GPU detected") or hangs.

NCCL needs GPUs, so these tests simulate it on the CPU: ``dist.get_backend`` says ``"nccl"``,
``torch.cuda.current_device`` says 0, the collectives record the device of their tensors
(and stop there), and the tensors are fake ones (``FakeTensorMode``), which carry a CUDA
device without a GPU. Real gloo runs are in ``test_distributed.py`` and
``test_distributed_cache.py``.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from _training_helpers import CLASSES
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.models import Classifier, build_head, freeze
from retinalnet.training import _feature_cache
from retinalnet.training._distributed import (
    DistributedContext,
    current_context,
    distributed_context,
    local_device,
)
from retinalnet.transforms import Preprocessing

RANK_1 = torch.device("cuda", 1)


class _CollectiveRanError(Exception):
    """Raised by a simulated collective once it has recorded its device."""


class _Nccl:
    """A simulated NCCL group of two processes, seen from rank 1."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, started: bool) -> None:
        self.devices: list[torch.device] = []  # the device of each collective, in order
        self.set_device: list[torch.device] = []
        self.init_kwargs: dict[str, Any] | None = None
        self.started = started
        monkeypatch.setattr(dist, "is_initialized", lambda: self.started)
        monkeypatch.setattr(dist, "get_backend", lambda *a, **k: "nccl")
        monkeypatch.setattr(dist, "get_rank", lambda *a, **k: 1)
        monkeypatch.setattr(dist, "get_world_size", lambda *a, **k: 2)
        # a machine whose processes see every GPU (one GPU each: the test at the end)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
        monkeypatch.setattr(dist, "init_process_group", self._init)
        monkeypatch.setattr(dist, "all_gather", self._all_gather)
        monkeypatch.setattr(dist, "all_reduce", self._all_reduce)
        monkeypatch.setattr(dist, "barrier", self._barrier)
        # the CUDA default when nothing called torch.cuda.set_device
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "set_device", self.set_device.append)
        monkeypatch.setattr(atexit, "register", lambda function: function)

    def _init(self, **kwargs: Any) -> None:
        self.init_kwargs = kwargs
        self.started = True

    def _ran_on(self, device: torch.device) -> None:
        self.devices.append(device)
        raise _CollectiveRanError

    def _all_gather(self, gathered: list[torch.Tensor], tensor: torch.Tensor) -> None:
        assert {part.device for part in gathered} == {tensor.device}
        self._ran_on(tensor.device)

    def _all_reduce(self, tensor: torch.Tensor, op: object = None) -> None:
        self._ran_on(tensor.device)

    def _barrier(self, device_ids: list[int] | None = None) -> None:
        # without device_ids NCCL takes the current device (or the one the group is bound to)
        bound = self.init_kwargs.get("device_id") if self.init_kwargs else None
        fallback = bound if bound is not None else torch.device("cuda", 0)
        self._ran_on(fallback if device_ids is None else torch.device("cuda", device_ids[0]))


@pytest.fixture
def torchrun_rank_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment ``torchrun --nproc_per_node=2`` gives its second process."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")


def _fake() -> AbstractContextManager[Any]:
    return FakeTensorMode(allow_non_fake_inputs=True)


# the doors through which the package runs a collective, each given the run's device
def _sum(context: DistributedContext, device: torch.device) -> None:
    with _fake():
        context.sum([1.0, 2.0], device)


def _gather_cpu_rows(context: DistributedContext, device: torch.device) -> None:
    with _fake():  # the inference engine hands back CPU rows
        context.gather_rows(torch.ones(3, 2), 6)


def _gather_gpu_rows(context: DistributedContext, device: torch.device) -> None:
    with _fake():
        context.gather_rows(torch.ones(3, 2, device=device), 6)


def _barrier(context: DistributedContext, device: torch.device) -> None:
    context.barrier()


DOORS: dict[str, Callable[[DistributedContext, torch.device], None]] = {
    "sum": _sum,
    "gather_rows(cpu rows)": _gather_cpu_rows,
    "gather_rows(gpu rows)": _gather_gpu_rows,
    "barrier": _barrier,
}


@pytest.mark.parametrize("door", DOORS.values(), ids=DOORS.keys())
@pytest.mark.usefixtures("torchrun_rank_1")
def test_the_group_the_trainer_starts_runs_on_cuda_local_rank(
    monkeypatch: pytest.MonkeyPatch, door: Callable[[DistributedContext, torch.device], None]
) -> None:
    nccl = _Nccl(monkeypatch, started=False)
    device = local_device(torch.device("cuda"))  # as the Trainer resolves device="cuda"
    context = distributed_context(device)
    assert nccl.init_kwargs == {"backend": "nccl", "device_id": RANK_1}
    assert nccl.set_device == [RANK_1]
    with pytest.raises(_CollectiveRanError):
        door(context, device)
    assert nccl.devices == [RANK_1]


def _trainer_context(device: torch.device) -> DistributedContext:
    return distributed_context(device)  # joins the group as the Trainer does


def _feature_cache_context(device: torch.device) -> DistributedContext:
    return current_context(device)  # as build_feature_cache(shard=True) does


CONTEXTS = {"Trainer": _trainer_context, "build_feature_cache": _feature_cache_context}

# the caller's own group (no torch.cuda.set_device): (environment, run's device)
RUNS = {
    "torchrun, device='cuda'": ({"LOCAL_RANK": "1"}, torch.device("cuda")),
    "torchrun, device='cuda:1'": ({"LOCAL_RANK": "1"}, RANK_1),
    "own launcher, device='cuda:1'": ({}, RANK_1),
    "torchrun, cache on the CPU": ({"LOCAL_RANK": "1"}, torch.device("cpu")),
}


CALLER_GROUP_CASES = [
    pytest.param(door, make_context, environment, device, id=f"{run}-{name}-{door_name}")
    for run, (environment, device) in RUNS.items()
    for name, make_context in CONTEXTS.items()
    for door_name, door in DOORS.items()
    if not (device.type == "cpu" and door is _gather_gpu_rows)  # no GPU rows on the CPU
]


@pytest.mark.parametrize(("door", "make_context", "environment", "device"), CALLER_GROUP_CASES)
def test_a_group_the_caller_started_runs_on_the_runs_gpu(
    monkeypatch: pytest.MonkeyPatch,
    door: Callable[[DistributedContext, torch.device], None],
    make_context: Callable[[torch.device], DistributedContext],
    environment: dict[str, str],
    device: torch.device,
) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    nccl = _Nccl(monkeypatch, started=True)
    context = make_context(device)
    with pytest.raises(_CollectiveRanError):
        door(context, device)
    assert nccl.init_kwargs is None  # the caller's group is used as it is
    assert nccl.set_device == []  # and the caller's current device left alone
    assert nccl.devices == [RANK_1]


def test_a_caller_that_set_the_device_itself_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its own launcher, no LOCAL_RANK, torch.cuda.set_device(1), device='cuda'."""
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    nccl = _Nccl(monkeypatch, started=True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    for door in DOORS.values():
        with pytest.raises(_CollectiveRanError):
            door(current_context(torch.device("cuda")), torch.device("cuda"))
    assert nccl.devices == [RANK_1] * len(DOORS)


def test_gloo_collectives_stay_where_their_tensors_are(monkeypatch: pytest.MonkeyPatch) -> None:
    nccl = _Nccl(monkeypatch, started=True)
    monkeypatch.setattr(dist, "get_backend", lambda *a, **k: "gloo")
    context = current_context(torch.device("cpu"))
    for door in (_sum, _gather_cpu_rows):
        with pytest.raises(_CollectiveRanError):
            door(context, torch.device("cpu"))
    assert nccl.devices == [torch.device("cpu")] * 2


def _model() -> Classifier:
    trunk = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    freeze(trunk)
    network = nn.Sequential(trunk, build_head(2, 4, hidden=None, dropout=0.0))
    return Classifier(network, classes=CLASSES, preprocessing=Preprocessing(size=32))


@pytest.fixture
def fake_gathers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The feature cache's gathers run on fake tensors (a CUDA device without a GPU)."""
    gather_rows = DistributedContext.gather_rows

    def faked(self: DistributedContext, rows: torch.Tensor, length: int) -> torch.Tensor:
        with _fake() if self.enabled else nullcontext():
            return gather_rows(self, rows, length)

    monkeypatch.setattr(DistributedContext, "gather_rows", faked)


@pytest.mark.usefixtures("torchrun_rank_1", "fake_gathers")
def test_build_feature_cache_gathers_on_cuda_local_rank(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = make_synthetic_kermany(tmp_path / "data", train=1, val=0, test=0, shape=(32, 32))
    nccl = _Nccl(monkeypatch, started=True)  # the caller's own group, no set_device
    with pytest.raises(_CollectiveRanError):
        _feature_cache.build_feature_cache(
            _model(), KermanyOCT(str(root), "train"), batch_size=4, device="cpu",
            precision="fp32", progress=False, shard=True,
        )  # fmt: skip
    assert nccl.devices == [RANK_1]


@pytest.mark.parametrize(
    ("local_rank", "visible", "expected"),
    [
        ("1", 0, "cuda:1"),  # no CUDA here: resolving the device says so, not this
        ("1", 1, "cuda:0"),  # one GPU per process (CUDA_VISIBLE_DEVICES set per process)
        ("0", 1, "cuda:0"),
        ("1", 2, "cuda:1"),  # every process sees every GPU: its own is cuda:LOCAL_RANK
        ("3", 8, "cuda:3"),
    ],
)
def test_a_process_runs_on_the_gpu_it_sees_as_its_own(
    monkeypatch: pytest.MonkeyPatch, local_rank: str, visible: int, expected: str
) -> None:
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", local_rank)  # the launcher's binding
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)

    assert local_device(torch.device("cuda")) == torch.device(expected)
    assert local_device(torch.device("cuda:2")) == torch.device("cuda:2")  # yours, as given
    assert local_device(torch.device("cpu")) == torch.device("cpu")


def test_a_rank_beyond_the_gpus_a_process_sees_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)

    with pytest.raises(ValueError, match=r"^LOCAL_RANK is 2 but this process sees 2 GPUs"):
        local_device(torch.device("cuda"))


def test_processes_sharing_a_machines_one_gpu_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # torchrun --nproc-per-node 2 on a one-GPU machine: both bound cuda:0, and NCCL failed
    # with "Duplicate GPU detected" inside init_process_group
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

    with pytest.raises(ValueError, match=r"^2 processes of this machine would share its one GPU"):
        local_device(torch.device("cuda"))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert local_device(torch.device("cuda")) == torch.device("cuda:0")
