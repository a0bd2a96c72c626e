"""Standard streams that are not there, replaced by the null device while a command runs.

Started with stderr closed (``retinalnet predict ... --json 2>&-``), Python has
``sys.stderr is None``, and ``print(..., file=sys.stderr)`` then writes to *stdout*: the
list of skipped files and the notes meant for stderr joined the JSON on stdout, which no
longer parsed. Started with a standard descriptor open for reading only (a wrapper script's
``2>&-`` seen through its ``exec``, as pyenv's shims do), a write raises "Bad file
descriptor" and stopped the command after its results, before the files it was asked for.
While a command runs, such a stream is :data:`os.devnull`: what would go there is dropped,
as the one who closed it asked.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

__all__ = ["missing_streams_discarded"]

_STREAMS = ("stdout", "stderr")


_NULL_DEVICE: IO[Any] | None = None
"""The one null device the stand-ins write to: opened once, closed only as the interpreter
exits (a command of another thread may still hold it as its stream)."""
_GUARD = threading.Lock()
_STANDING_IN: dict[str, tuple[IO[Any] | None, int]] = {}
"""The stream each stand-in replaced, by name, and how many commands it stands in for."""


@contextmanager
def missing_streams_discarded() -> Iterator[None]:
    """While the block runs, ``sys.stdout`` and ``sys.stderr`` that are missing (``None``),
    closed or on a descriptor not open for writing are the null device; then as before,
    once no other command (a guest in another thread) still runs with it. A stream that is
    there (a terminal, a pipe, a file, a notebook's or pytest's stream) is left as it is."""
    global _NULL_DEVICE
    replaced: list[str] = []
    with _GUARD:
        for name in _STREAMS:
            stream = getattr(sys, name)
            if name in _STANDING_IN and stream is _NULL_DEVICE:
                before, users = _STANDING_IN[name]
                _STANDING_IN[name] = (before, users + 1)
                replaced.append(name)
            elif not _writable(stream):
                if _NULL_DEVICE is None:
                    _NULL_DEVICE = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
                    # closed as the interpreter exits: no "ResourceWarning: unclosed file"
                    atexit.register(_NULL_DEVICE.close)
                _STANDING_IN[name] = (stream, 1)
                setattr(sys, name, _NULL_DEVICE)
                replaced.append(name)
    try:
        yield
    finally:
        with _GUARD:
            for name in replaced:
                before, users = _STANDING_IN[name]
                if users > 1:
                    _STANDING_IN[name] = (before, users - 1)
                    continue
                del _STANDING_IN[name]
                if getattr(sys, name) is _NULL_DEVICE:
                    setattr(sys, name, before)


def _writable(stream: IO[Any] | None) -> bool:
    """Whether text written to ``stream`` can go somewhere: it is there and open, and its
    descriptor, if it has one, is open for writing (POSIX; on Windows any descriptor)."""
    if stream is None or getattr(stream, "closed", False):
        return False
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a file: io.StringIO, a notebook's
        return True
    if sys.platform == "win32":
        return True
    import fcntl

    try:
        flags = fcntl.fcntl(descriptor, fcntl.F_GETFL)
    except OSError:  # the descriptor was closed under the stream
        return False
    return flags & os.O_ACCMODE != os.O_RDONLY
