"""The library's way to change the warning filters for one call, safe when calls run in threads.

``warnings.catch_warnings()`` saves the process's filter list on entry and puts it back on
exit. Two such blocks interleaved in two threads (A saves F0 and installs F1, B saves F1 and
installs F2, A restores F0, B restores F1) leave the process with A's filters for good: every
warning of the user's code hidden, PIL's decompression-bomb warning raised as an error.
:func:`catch_warnings_locked` holds one process-wide lock while the filters are swapped, so
two calls of retinalnet never interleave their save and restore.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["catch_warnings_locked", "warnings_ignored"]

_LOCK = threading.RLock()
"""Held by a thread from the moment it saves the filters until it has restored them.

Re-entrant: a library call inside another (a data set's ``__getitem__`` read by
``make_loader``, which opens an image) nests its own block, saved and restored in order.
"""


def _release_after_fork() -> None:
    _LOCK.release()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    # A process forked (a DataLoader worker) while another thread is inside a block would get
    # the lock held by a thread it does not have, and its first image read would wait forever,
    # and its filters would be that thread's. Forking waits for the block to end instead, as
    # the logging module does for its lock.
    os.register_at_fork(
        before=_LOCK.acquire,
        after_in_parent=_release_after_fork,
        after_in_child=_release_after_fork,
    )


@contextmanager
def catch_warnings_locked() -> Iterator[None]:
    """``warnings.catch_warnings()``, the filters swapped under a process-wide lock.

    Use it wherever retinalnet changes the warning filters for a call: inside the block, add
    filters as with :func:`warnings.catch_warnings`; on exit the process's filters are
    exactly those of before, even when other threads run retinalnet calls that change them
    too. Blocks nest (the lock is re-entrant) and a block in another thread waits for this
    one to end.

    Python before 3.14 has one filter list per process, not per thread: while the block
    runs, other threads see the filters it adds (as with ``catch_warnings`` itself), and a
    ``catch_warnings`` of code outside retinalnet, in another thread, can still interleave
    with it.

    Examples
    --------
    >>> import warnings
    >>> before = list(warnings.filters)
    >>> with catch_warnings_locked():
    ...     warnings.simplefilter("ignore")
    ...     warnings.warn("not shown")
    >>> warnings.filters == before
    True
    """
    with _LOCK, warnings.catch_warnings():
        yield


@contextmanager
def warnings_ignored() -> Iterator[None]:
    """Ignore every warning while the block runs, without holding the lock for the block.

    For a block that runs code of the caller's (``make_loader``'s look at a data set's first
    sample): that code may open images in threads of its own and wait for them, and those
    would wait for a lock held for the block. One ``ignore`` entry of its own is put in front
    of the process's filters, and that entry (by identity, not an equal one of the caller's)
    is taken out on exit, each under the lock; as with :func:`catch_warnings_locked`, other
    threads see it while the block runs.

    Examples
    --------
    >>> import warnings
    >>> before = list(warnings.filters)
    >>> with warnings_ignored():
    ...     warnings.warn("not shown")
    >>> warnings.filters == before
    True
    """
    # removed by identity: the caller's own equal entries (built at run time) stay; blocks
    # in two threads insert one each and take out one each
    entry = ("ignore", None, Warning, None, 0)
    with _LOCK:  # the list in force once no other block swaps it: read under the lock
        filters: list[Any] = warnings.filters  # type: ignore[assignment]
        filters.insert(0, entry)
    try:
        yield
    finally:
        with _LOCK:
            current: list[Any] = warnings.filters  # type: ignore[assignment]
            for index, present in enumerate(current):
                if present is entry:
                    del current[index]
                    break
