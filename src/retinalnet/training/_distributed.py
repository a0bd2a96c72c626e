"""Running the Trainer in several processes (``torchrun``) with DistributedDataParallel."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from retinalnet._core.torchrun import torchrun_rank_and_size

__all__ = [
    "DistributedContext",
    "close_process_group",
    "current_context",
    "distributed_context",
    "local_device",
    "logs_from_main_process_only",
    "nccl_device",
]


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a distributed run (rank 0 of 1 when there is none).

    ``device`` is the run's device (the Trainer's, or the one a feature cache is built on),
    ``None`` when not known. Under NCCL, which runs on GPU tensors only, every collective runs
    on this process's own GPU (see :func:`nccl_device`), never on the current CUDA device:
    that is ``cuda:0`` in every process unless something called ``torch.cuda.set_device``,
    and NCCL refuses ("Duplicate GPU detected") or hangs when every rank uses the same GPU.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None

    @property
    def enabled(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints and logs."""
        return self.rank == 0

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Add ``values`` up across all processes (unchanged in a single process)."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self._collective_on(device))
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return [float(v) for v in tensor.tolist()]

    def share(self, length: int) -> range:
        """This process's contiguous share of ``length`` items (all of them in one process);
        the shares of ranks 0, 1, ... follow each other and cover every item once."""
        size = self.world_size
        return range(self.rank * length // size, (self.rank + 1) * length // size)

    def gather_rows(self, rows: torch.Tensor, length: int) -> torch.Tensor:
        """Every process's :meth:`share` of ``length`` rows, in rank order: the whole tensor
        on every rank (``rows`` itself in one process).

        ``rows`` is this process's share (``(len(share), ...)``); shares differ in length by
        at most one, so each is padded to the longest for ``all_gather`` and cut back.
        """
        if not self.enabled:
            return rows
        longest = -(-length // self.world_size)
        on = self._collective_on(rows.device)
        padded = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=on)
        padded[: len(rows)] = rows.to(on)
        gathered = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(gathered, padded)
        parts = [
            part[: len(DistributedContext(rank, self.world_size).share(length))]
            for rank, part in enumerate(gathered)
        ]
        return torch.cat(parts).to(rows.device)

    def barrier(self) -> None:
        """Wait until every process gets here (nothing in one process)."""
        if not self.enabled:
            return
        if dist.get_backend() == "nccl":  # its all-reduce of one number runs on this GPU
            dist.barrier(device_ids=[_nccl_index(self.device)])
        else:
            dist.barrier()

    def _collective_on(self, device: torch.device) -> torch.device:
        """Where a collective's tensors go: on ``device`` (where they are used), except under
        NCCL, on this process's GPU (:func:`nccl_device`)."""
        if dist.get_backend() == "nccl":
            return nccl_device(self.device, device)
        return device


def current_context(device: torch.device | None = None) -> DistributedContext:
    """The process group already started (by ``torchrun`` and the Trainer, or by the
    caller), without starting one: rank 0 of 1 when there is none. ``device`` is the run's
    device, where its collectives run under NCCL (:func:`nccl_device`)."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(
            rank=dist.get_rank(), world_size=dist.get_world_size(), device=device
        )
    return DistributedContext()


def distributed_context(device: torch.device) -> DistributedContext:
    """Join the process group that ``torchrun`` describes, or report a single process.

    An existing process group is used as it is (the caller's to set up; its collectives run
    on ``device`` all the same, see :class:`DistributedContext`). Otherwise, when
    ``WORLD_SIZE`` > 1 (set by ``torchrun``), one is started with the ``gloo`` backend on the
    CPU, and on CUDA with ``nccl`` bound to this process's GPU (``cuda:LOCAL_RANK``, or
    ``device``'s index), which becomes the current CUDA device; it is closed as the process
    exits (:func:`close_process_group`).
    """
    if not dist.is_available():
        return DistributedContext()
    if not dist.is_initialized():
        if torchrun_rank_and_size()[1] <= 1:
            return DistributedContext()
        if device.type == "cuda":
            gpu = nccl_device(device)
            torch.cuda.set_device(gpu)  # what torch.cuda and NCCL take as "this GPU"
            dist.init_process_group(backend="nccl", device_id=gpu)
        else:
            dist.init_process_group(backend="gloo")
        atexit.register(close_process_group)  # the group started here is closed here
    return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def close_process_group() -> None:
    """Close the process group as the process exits, if it is still open.

    :func:`distributed_context` registers this to run at exit when it starts the group. A
    process that exits with its gloo group open tears the group's threads down while the
    other processes still hold connections to it, and now and then aborts (``SIGABRT``,
    ``terminate called without an active exception``: 19 runs in 60 on 2 cores with
    ``benchmarks/bench_gloo_exit.py``, none when the group is destroyed first);
    ``torchrun`` then reports the run as failed and stops the other processes. A group that
    the caller started is the caller's to close.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """Under ``torchrun``, a CUDA device without an index becomes ``cuda:LOCAL_RANK``, or
    ``cuda:0`` where each process sees one GPU only (a launcher that sets
    ``CUDA_VISIBLE_DEVICES`` per process, as SLURM's GPU binding does: process 1's GPU is
    its ``cuda:0``, and ``cuda:1`` does not exist there).

    Raises
    ------
    ValueError
        If the process sees several GPUs but fewer than ``LOCAL_RANK + 1``: which of them
        is its own cannot be told; or if several processes of this machine
        (``LOCAL_WORLD_SIZE``) would share its one GPU (no ``CUDA_VISIBLE_DEVICES``), which
        NCCL refuses ("Duplicate GPU detected"). A launcher that gives every process the
        same GPU through ``CUDA_VISIBLE_DEVICES`` is not told apart from one that gives each
        its own: NCCL's own error says so then.
    """
    local_rank = os.environ.get("LOCAL_RANK")
    if device.type != "cuda" or device.index is not None or local_rank is None:
        return device
    rank = int(local_rank)
    seen = torch.cuda.device_count()  # 0 without CUDA: resolving the device says so
    if seen == 1:
        processes = int(os.environ.get("LOCAL_WORLD_SIZE") or 1)
        if processes > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ:
            raise ValueError(
                f"{processes} processes of this machine would share its one GPU, which "
                "NCCL refuses; start one process per GPU (torchrun --nproc-per-node 1), or "
                "give each its own GPU through CUDA_VISIBLE_DEVICES"
            )
        return torch.device("cuda", 0)
    if 1 < seen <= rank:
        raise ValueError(
            f"LOCAL_RANK is {rank} but this process sees {seen} GPUs (cuda:0 to "
            f"cuda:{seen - 1}), so which is its own cannot be told; start one process per "
            "visible GPU (torchrun --nproc-per-node at most the GPUs), or pass "
            "device='cuda:N' naming each process's GPU"
        )
    return torch.device("cuda", rank)


def nccl_device(*devices: torch.device | None) -> torch.device:
    """This process's GPU, where NCCL's collectives run: the first CUDA device of ``devices``
    (the run's device, then the tensor's) with its index.

    Without an index (or with no CUDA device among them) it is ``cuda:LOCAL_RANK`` under
    ``torchrun`` (as :func:`local_device` gives the Trainer), else the current CUDA device
    (what a caller's own ``torch.cuda.set_device`` chose).
    """
    return torch.device("cuda", _nccl_index(*devices))


def _nccl_index(*devices: torch.device | None) -> int:
    """The index of :func:`nccl_device`'s GPU."""
    cuda = next((d for d in devices if d is not None and d.type == "cuda"), torch.device("cuda"))
    index = local_device(cuda).index
    return torch.cuda.current_device() if index is None else index


@contextlib.contextmanager
def logs_from_main_process_only(context: DistributedContext) -> Iterator[None]:
    """In a distributed run, silence retinalnet's INFO logs on every rank but 0."""
    if context.is_main:
        yield
        return
    package_logger = logging.getLogger("retinalnet")
    level = package_logger.level
    package_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        package_logger.setLevel(level)
