"""Flushing stdout and stderr when there may be none.

Started with stdout closed (``retinalnet predict ... >&-``, a job runner that gives no
output, ``pythonw`` on Windows), Python has ``sys.stdout is None``: ``print()`` then writes
nothing, but ``sys.stdout.flush()`` raises ``AttributeError`` and ended the command before
it wrote the files it was asked for (``--report``, ``--plots``, ``--cam``). The command line
makes a missing stream the null device while a command runs
(:mod:`retinalnet.cli._missing_streams`); the library's own flushes of a standard stream
(:func:`~retinalnet._core.files.atomic_write` writing to a descriptor, from Python too) and
the Ctrl-C handler go through :func:`flush_if_open`.
"""

from __future__ import annotations

from typing import IO, Any

__all__ = ["flush_if_open"]


def flush_if_open(*streams: IO[Any] | None) -> None:
    """Flush each of ``streams`` that is there and open; skip ``None`` (no stdout) and a
    closed stream. Any other error of the flush (``BrokenPipeError`` when the reader of a
    pipe went away, a full disk) is raised: the caller says what it means.

    Examples
    --------
    >>> import io, sys
    >>> closed = io.StringIO()
    >>> closed.close()
    >>> flush_if_open(None, closed, sys.stderr)
    """
    for stream in streams:
        if stream is None or getattr(stream, "closed", False):
            continue
        stream.flush()
