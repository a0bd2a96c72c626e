"""A command run from Python (``main(argv)``, a guest in a host's process) shows its log lines
and warnings for its own thread only.

The command line shows the library's log lines on stderr, said with flags, and its warnings in
one line, each once. It does that through the ``retinalnet`` logger and
``warnings.formatwarning``, which every thread of the process shares. As a guest, only the
records and warnings of the thread that runs the command get that; those of the host's other
threads (a web server predicting with the Python API meanwhile) go where they went before the
command: the logger's handlers, level and propagation before, the host's own warning format
and its ``"always"`` filter. As the program (``main()`` without ``argv``), every thread is the
command's.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Protocol

from retinalnet.cli._escaped_names import names_as_bytes

__all__ = ["CommandLogHandler", "FormatWarning", "host_random_state_kept", "one_line_warnings"]


class FormatWarning(Protocol):
    """The signature of ``warnings.formatwarning``."""

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        line: str | None = None,
    ) -> str: ...


class CommandLogHandler(logging.Handler):
    """The one handler of ``logger`` while a command runs: the records of the command's
    thread go to ``command``; those of other threads as ``logger``'s handlers, level and
    propagation at construction would have taken them.

    Parameters
    ----------
    logger
        The ``retinalnet`` logger, whose handlers are then replaced by this one (and its
        propagation turned off: the command's records are said once, by ``command``).
    command
        The command line's handler (stderr, with its filter).
    thread
        The command's thread (``threading.get_ident()``); ``None``: every thread (the
        program, with no host to leave alone).
    """

    def __init__(
        self, logger: logging.Logger, command: logging.Handler, thread: int | None
    ) -> None:
        super().__init__()
        self._logger = logger
        self._command = command
        self._thread = thread
        self._handlers_before = logger.handlers[:]
        self._level_before = logger.level
        self._propagate_before = logger.propagate

    def handle(self, record: logging.LogRecord) -> bool:
        # the thread that logs it: handlers attached to a logger run in that thread
        if self._thread is None or threading.get_ident() == self._thread:
            return bool(self._command.handle(record))
        if record.levelno < self._effective_level_before(record.name):
            return False  # made only because the command lowered the level
        handlers = list(self._handlers_before)
        parent = self._logger.parent if self._propagate_before else None
        while parent is not None:
            handlers += parent.handlers
            parent = parent.parent if parent.propagate else None
        for handler in handlers:
            if record.levelno >= handler.level:
                handler.handle(record)
        last = logging.lastResort  # as Logger.callHandlers does when no logger has a handler
        found = handlers or self._handlers_below(record.name)
        if not found and last is not None and record.levelno >= last.level:
            last.handle(record)
        return True

    def _chain_below(self, name: str) -> list[logging.Logger]:
        """The loggers from ``name``'s up to the ``retinalnet`` logger, without it."""
        found = logging.Logger.manager.loggerDict.get(name)
        node = found if isinstance(found, logging.Logger) else None
        chain = []
        while node is not None and node is not self._logger:
            chain.append(node)
            node = node.parent
        return chain

    def _effective_level_before(self, name: str) -> int:
        """The level a record of logger ``name`` had to reach before the command ran."""
        chain = self._chain_below(name)
        if any(node.level for node in chain):
            return logging.NOTSET  # a level of its own, which the command left alone
        if self._level_before:
            return self._level_before
        parent = self._logger.parent
        return logging.NOTSET if parent is None else parent.getEffectiveLevel()

    def _handlers_below(self, name: str) -> bool:
        return any(node.handlers for node in self._chain_below(name))


def one_line_warnings(command: str, thread: int | None, before: FormatWarning) -> FormatWarning:
    """A ``warnings.formatwarning`` that says a warning of the command's ``thread`` as one
    line, ``retinalnet COMMAND: warning: MESSAGE``, once per command (a message said already
    formats as nothing), and a warning of another thread with ``before``, as if the command
    did not run. ``thread`` ``None``: every thread is the command's."""
    said: set[str] = set()

    def one_line(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        line: str | None = None,
    ) -> str:
        if thread is not None and threading.get_ident() != thread:
            return before(message, category, filename, lineno, line)
        text = f"retinalnet {command}: warning: {names_as_bytes(str(message))}\n"
        if text in said:  # Python says it again once its registry is reset (catch_warnings)
            return ""
        said.add(text)
        return text

    return one_line


@contextlib.contextmanager
def host_random_state_kept(guest: bool) -> Iterator[None]:
    """As a guest, a command that seeds the random generators (``train --seed 3``, the demo)
    puts the host's back as they were once it ends: Python's, NumPy's and torch's CPU one
    (the host's next draws were the same after every call). A command that seeds nothing
    leaves them alone: putting them back would make the host's other threads draw again
    what they drew while it ran. As the program (``guest=False``), nothing is kept."""
    if not guest:
        yield
        return
    from retinalnet.training import _seed

    seedings, state = _seed.seedings, _seed.random_state()
    try:
        yield
    finally:
        if _seed.seedings != seedings:
            _seed.set_random_state(state, source="the random state before the command")
