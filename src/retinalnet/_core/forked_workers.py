"""DataLoader workers forked from a thread pool's thread, ended with status 0.

A worker process forked from a thread of a :class:`concurrent.futures.ThreadPoolExecutor`
(a web server's request threads, ``pool.submit(predictor.predict_proba, paths)``) inherits
the pool module's record of its threads, the forking thread among them, which is the
worker's own main thread. When the worker ends, the exit hook of :mod:`concurrent.futures`
joins every thread of that record and raises ``RuntimeError: cannot join current thread``:
the worker exits with status 1 after its work is done. If torch's SIGCHLD handler sees
that exit before the worker is reaped, it fails whatever loader the main thread is reading
with "DataLoader worker (pid ...) exited unexpectedly with exit code 1" (about one call in
twenty with two threads predicting at once). The record means nothing in the child, which
has none of those threads, so every forked child forgets it first (a hook run at each
``fork``, installed when the library's loaders are first imported).
"""

from __future__ import annotations

import os
import sys

__all__ = ["forget_parent_threads"]


def forget_parent_threads() -> None:
    """Forget, in a forked child, the thread pools' threads of the parent process.

    :mod:`concurrent.futures` joins the threads of ``_threads_queues`` when the process
    ends; in a child forked from one of them the record is the parent's (the others do not
    exist there, and the forking one cannot join itself).
    """
    pool_threads = sys.modules.get("concurrent.futures.thread")
    record = getattr(pool_threads, "_threads_queues", None)
    if record is not None:
        record.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    # every forked child: the library's loaders' workers and those of a user's own
    # DataLoader given to fit or evaluate alike (a worker_init_fn would reach only the former)
    os.register_at_fork(after_in_child=forget_parent_threads)
