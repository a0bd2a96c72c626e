"""How often a gloo process aborts when it exits while the other process still runs.

Two CPU processes join a gloo group, all-reduce 20 times, then rank 0 stays busy for 0.3 s
(as when it writes checkpoints) while rank 1 ends in one of four ways: it exits with the
group open (what the Trainer's processes did before 0.2), destroys the group first, waits
at a barrier and destroys it, or waits at a barrier and exits with it open. Prints the
aborted runs of each way out of ``--runs``. docs/performance.rst cites its numbers.

    python benchmarks/bench_gloo_exit.py --runs 60
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ENDINGS = ("exit", "destroy", "barrier-destroy", "barrier-exit")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _process(rank: int, port: int, ending: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    values = torch.ones(1000)
    for _ in range(20):
        dist.all_reduce(values)
    if rank == 0:
        time.sleep(0.3)
    if ending.startswith("barrier"):
        dist.barrier()
    if ending.endswith("destroy"):
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="runs of each ending")
    parser.add_argument("--endings", nargs="+", choices=ENDINGS, default=list(ENDINGS))
    args = parser.parse_args()
    for ending in args.endings:
        aborted = 0
        for _ in range(args.runs):
            try:
                mp.spawn(_process, args=(_free_port(), ending), nprocs=2, join=True)
            except mp.ProcessExitedException:
                aborted += 1
        print(f"{ending:16s} aborted {aborted} of {args.runs}", flush=True)


if __name__ == "__main__":
    main()
