"""The library's way to change the warning filters for one call: for the calling thread only.

Python's warning filters are one list for the whole process (before Python 3.14's
context-aware filters). ``warnings.catch_warnings()`` plus ``simplefilter`` inside a library
call changed them for every thread while the call ran: a web service's other threads lost
their own warnings while a prediction looked at its first image (a big scan decodes for
seconds), a bomb warning of the host's own code became an error while the library opened an
image, and two such blocks interleaved in two threads left one's filters in place for good.

:func:`filter_in_this_thread` puts one entry in front of the process's filters whose message
test is the calling thread: ``warnings`` asks each entry whether it matches a warning by
calling its message pattern's ``match`` (CPython's ``_warnings`` and the pure-Python module
alike), and this entry's answers "yes" only in the thread that made it (and only for the
message it was given, if any). Every other thread passes it by, to the filters it had. The
entry is taken out, by identity, when the block ends. No lock is held while the block runs:
the code in it may open images in threads of its own and wait for them.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import warnings
from collections.abc import Iterator
from typing import Any, Literal

__all__ = ["filter_in_this_thread", "warnings_ignored"]

_LOCK = threading.Lock()
"""Held while an entry is put in or taken out: the list in force is read under it."""


class _InThread:
    """The message pattern of an entry that applies in one thread only: ``match`` is
    ``True`` for a warning in that thread whose text matches ``message`` (any text when
    ``None``)."""

    def __init__(self, message: str | None) -> None:
        self.thread = threading.get_ident()
        self.message = None if message is None else re.compile(message, re.IGNORECASE)
        self.active = True  # until its block ends: a copy of the list may outlive it

    def match(self, text: str) -> bool:
        if not self.active or threading.get_ident() != self.thread:
            return False
        return self.message is None or self.message.match(text) is not None

    def __repr__(self) -> str:
        pattern = None if self.message is None else self.message.pattern
        return f"<retinalnet: thread {self.thread} only, message {pattern!r}>"


def _forget_other_threads() -> None:
    """In a process forked from this one only the forking thread goes on: the entries of
    the others are taken out (a thread of the child may get the ident of one of them)."""
    global _LOCK
    _LOCK = threading.Lock()  # another thread may have held it at the fork
    me = threading.get_ident()
    filters: list[Any] = warnings.filters  # type: ignore[assignment]
    filters[:] = [
        entry
        for entry in filters
        if not (isinstance(entry[1], _InThread) and entry[1].thread != me)
    ]


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_other_threads)


@contextlib.contextmanager
def filter_in_this_thread(
    action: Literal["ignore", "error"],
    category: type[Warning] = Warning,
    message: str | None = None,
) -> Iterator[None]:
    """``warnings.filterwarnings(action, message, category)`` for the calling thread, while
    the block runs; the process's other threads keep their filters.

    The entry goes in front of the filters in force, so it wins over the caller's own
    (``-W error`` too) in this thread; blocks nest, the inner one first. On exit the
    filters are those of before, the caller's entries untouched even when equal to it.

    Parameters
    ----------
    action
        ``"ignore"`` or ``"error"``, as for :func:`warnings.filterwarnings`.
    category
        The warning class it applies to, subclasses included.
    message
        A regular expression the start of the warning's text must match (case-insensitive,
        as for :func:`warnings.filterwarnings`); any text when ``None``.

    Examples
    --------
    >>> import warnings
    >>> before = list(warnings.filters)
    >>> with filter_in_this_thread("ignore", UserWarning, message="not shown"):
    ...     warnings.warn("not shown")
    >>> warnings.filters == before
    True
    """
    matcher = _InThread(message)
    entry = (action, matcher, category, None, 0)
    with _LOCK:
        filters: list[Any] = warnings.filters  # type: ignore[assignment]
        filters[:] = [entry, *(kept for kept in filters if not _left_behind(kept))]
        _filters_changed()
    try:
        yield
    finally:
        # a user's catch_warnings() in another thread, spanning this block's end, puts back
        # its copy of the list with the entry in it: inactive, it matches nothing there
        matcher.active = False
        with _LOCK:
            current: list[Any] = warnings.filters  # type: ignore[assignment]
            for index, present in enumerate(current):
                if present is entry:
                    del current[index]
                    break
            _filters_changed()


def _left_behind(entry: Any) -> bool:
    """Whether ``entry`` is one of this module's whose block has ended (put back by a
    ``catch_warnings`` that spanned the block's end): taken out by the next block."""
    return isinstance(entry[1], _InThread) and not entry[1].active


def _filters_changed() -> None:
    """Tell ``warnings`` its filters changed, as ``filterwarnings`` does: a warning already
    shown once at a place (PIL's bomb warning, shown for the host's own image) is otherwise
    skipped there before the filters are read, and an ``"error"`` entry never reached."""
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is not None:
        mutated()
        return
    held = getattr(warnings, "_filters_mutated_lock_held", None)  # Python 3.13 and later
    lock = getattr(warnings, "_lock", None)
    if held is not None and lock is not None:
        with lock:
            held()


def warnings_ignored() -> contextlib.AbstractContextManager[None]:
    """Ignore every warning of the calling thread while the block runs
    (:func:`filter_in_this_thread` ``("ignore")``).

    Examples
    --------
    >>> import warnings
    >>> before = list(warnings.filters)
    >>> with warnings_ignored():
    ...     warnings.warn("not shown")
    >>> warnings.filters == before
    True
    """
    return filter_in_this_thread("ignore")
