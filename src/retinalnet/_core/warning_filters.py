"""The library's way to change the warning filters for one call: for the calling thread only.

Python's warning filters are one list for the whole process (before Python 3.14's
context-aware filters). ``warnings.catch_warnings()`` plus ``simplefilter`` inside a library
call changed them for every thread while the call ran: a web service's other threads lost
their own warnings while a prediction looked at its first image (a big scan decodes for
seconds), a bomb warning of the host's own code became an error while the library opened an
image, and two such blocks interleaved in two threads left one's filters in place for good.

:func:`filter_in_this_thread` keeps its rule in a list of the calling thread (a
``threading.local``), and the process's filters hold entries that read those lists:
``warnings`` asks each entry whether it matches a warning by calling its message pattern's
``match`` (CPython's ``_warnings`` and the pure-Python module alike). Each entry stands for
one nesting level of a thread's blocks (0: the outermost), one action and one category, and
answers "yes" only in a thread whose block at that level has that action and category and
whose message test, if any, passes. The entries lead the filters, the deepest level first,
so the innermost block wins, and a block wins over the caller's own filters (``-W error``
too) in its thread. Every other thread passes them by, to the filters it had.

A block changes nothing shared. Its level's entry is put in front of the filters the first
time that level, action and category are used, and again only when something else has
changed the filters since (a ``filterwarnings`` that went in front of them, a
``catch_warnings`` that put back a list without them); otherwise a block appends its rule to
its thread's list and takes it out at its end. The entries stay, inert outside the blocks.
No lock is held while a block runs: the code in it may open images in threads of its own
and wait for them.

Why the filters must not change per block: Python keeps, in each module, a registry of the
warnings already shown there (``"default"``: once per place), valid while the filters'
version stays the same, and every change made through the ``warnings`` API bumps the
version, which empties every registry. Blocks that did so made a warning Python shows once
in a user's loop show again after every image the loop read. An ``"ignore"`` block needs no
such change: a warning it ignores is not recorded in any registry (it shows later, outside
the block, as it would have), and one already shown at its place is skipped before the
filters are read, as the block would have it. An ``"error"`` block does bump the version
when it starts: a warning already shown at its place (PIL's bomb warning, shown once for the
host's own image) is otherwise skipped before its entry is read, and no error is raised. The
image readers therefore ignore PIL's bomb warning and compare the size with the limit
themselves (:mod:`retinalnet._core.images`).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import warnings
from types import TracebackType
from typing import Any, Literal, NamedTuple

__all__ = ["filter_in_this_thread", "warnings_ignored"]

_LOCK = threading.Lock()
"""Held while the entries are put in front of the filters."""

_LOCAL = threading.local()
"""Each thread's ``rules``: the rules of its blocks in force, outermost first."""


class _Rule(NamedTuple):
    """What one block does: ``warnings.filterwarnings(action, message, category)``."""

    action: str
    category: type[Warning]
    message: re.Pattern[str] | None


_NO_RULES: list[_Rule] = []


class _InThread:
    """The message pattern of an entry for the blocks at ``level`` with ``action`` and
    ``category``: ``match`` is ``True`` in a thread whose block at that level is such a
    block and whose message pattern matches ``text`` (any text when it has none)."""

    def __init__(self, level: int, action: str, category: type[Warning]) -> None:
        self.level = level
        self.action = action
        self.category = category

    def match(self, text: str) -> bool:
        try:
            rules: list[_Rule] = getattr(_LOCAL, "rules", _NO_RULES)
            if len(rules) <= self.level:
                return False
            rule = rules[self.level]
            if rule.action != self.action or rule.category is not self.category:
                return False
            return rule.message is None or rule.message.match(text) is not None
        except Exception:  # an interpreter shutting down: this module's globals are gone
            return False

    def __repr__(self) -> str:
        return (
            f"<retinalnet: {self.action!r} {self.category.__name__} at level {self.level} of "
            "a thread's filter_in_this_thread blocks, in that thread only>"
        )


_Entry = tuple[str, _InThread, type[Warning], None, int]

_ENTRIES: dict[tuple[int, str, type[Warning]], _Entry] = {}
"""The entry of each level, action and category used so far."""

_front: list[_Entry] = []
"""Every entry in :data:`_ENTRIES`, the deepest level first: the filters begin with them."""


def _forget_held_lock() -> None:
    """In a process forked from this one only the forking thread goes on: the lock another
    thread may have held at the fork is made again (their rules were in their threads)."""
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_held_lock)


def _place(level: int, rule: _Rule) -> None:
    """Make sure the entry for ``rule`` at ``level`` exists and the entries lead the
    filters; the filters change only when they do not already (no version bump)."""
    global _front
    key = (level, rule.action, rule.category)
    front = _front
    filters: list[Any] = warnings.filters  # type: ignore[assignment]
    if key in _ENTRIES and filters[: len(front)] == front:
        return
    with _LOCK:
        if key not in _ENTRIES:
            entry: _Entry = (rule.action, _InThread(*key), rule.category, None, 0)
            _ENTRIES[key] = entry
            _front = sorted(_ENTRIES.values(), key=lambda kept: -kept[1].level)
        filters = warnings.filters  # type: ignore[assignment]  # read again, under the lock
        if filters[: len(_front)] != _front:
            filters[:] = [*_front, *(kept for kept in filters if not _is_entry(kept))]


def _is_entry(entry: Any) -> bool:
    return isinstance(entry, tuple) and len(entry) > 1 and isinstance(entry[1], _InThread)


class _InThisThread:
    """The block of :func:`filter_in_this_thread`."""

    def __init__(self, rule: _Rule) -> None:
        self._rule = rule
        self._rules: list[_Rule] = _NO_RULES  # the list of the thread that entered it

    def __enter__(self) -> None:
        rules: list[_Rule] | None = getattr(_LOCAL, "rules", None)
        if rules is None:
            rules = _LOCAL.rules = []
        self._rules = rules
        rules.append(self._rule)
        try:
            _place(len(rules) - 1, self._rule)
        except BaseException:
            rules.pop()
            raise
        if self._rule.action == "error":
            _filters_changed()  # reach a warning already shown at its place

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        rules = self._rules  # the entering thread's, should another thread end the block
        if rules and rules[-1] is self._rule:
            rules.pop()
            return
        # blocks ended out of order (generators suspended in them): the later ones move in
        found = [index for index, rule in enumerate(rules) if rule is self._rule]
        if not found:
            return
        del rules[found[-1]]
        for level in range(found[-1], len(rules)):
            _place(level, rules[level])


def filter_in_this_thread(
    action: Literal["ignore", "error"],
    category: type[Warning] = Warning,
    message: str | None = None,
) -> contextlib.AbstractContextManager[None]:
    """``warnings.filterwarnings(action, message, category)`` for the calling thread, while
    the block runs; the process's other threads keep their filters.

    The block wins over the caller's own filters (``-W error`` too) in this thread; blocks
    nest, the inner one first. It leaves the process's filters as they are (the first
    block of its level, action and category puts an entry in front of them, for good: see
    the module), so a warning Python shows once at a place stays shown once.

    Parameters
    ----------
    action
        ``"ignore"`` or ``"error"``, as for :func:`warnings.filterwarnings`. ``"error"``
        reaches a warning already shown at its place by telling ``warnings`` its filters
        changed when the block starts, which shows the process's once-per-place warnings
        again: use it where an error is the only way to see a warning.
    category
        The warning class it applies to, subclasses included.
    message
        A regular expression the start of the warning's text must match (case-insensitive,
        as for :func:`warnings.filterwarnings`); any text when ``None``.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     with filter_in_this_thread("ignore", UserWarning, message="not shown"):
    ...         warnings.warn("not shown")
    ...     warnings.warn("shown")
    >>> [str(warning.message) for warning in seen]
    ['shown']
    """
    pattern = None if message is None else re.compile(message, re.IGNORECASE)
    return _InThisThread(_Rule(action, category, pattern))


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
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     with warnings_ignored():
    ...         warnings.warn("not shown")
    >>> seen
    []
    """
    return filter_in_this_thread("ignore")
