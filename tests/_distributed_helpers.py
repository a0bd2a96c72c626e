"""What the multi-process tests share: a free port, and the environment ``torchrun`` gives."""

from __future__ import annotations

import os
import socket

import torch


def free_port() -> int:
    """A TCP port on this host that nothing listens on, for the process group's rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def as_torchrun_starts(rank: int, world_size: int, port: int) -> None:
    """Give this process the environment ``torchrun`` gives each of its processes (the
    Trainer then starts the process group), with one torch thread."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)
