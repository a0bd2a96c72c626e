"""Progress of a long loop: a live tqdm bar on a terminal, plain log lines otherwise.

On a terminal with tqdm installed the bar redraws in place. Without tqdm, or when stderr is
not a terminal (a log file, CI, a pipe), a loop that runs long enough logs a plain line at
INFO (``"audit: 4,200/8,400 (50%), 41 s, about 41 s left"``) each time it passes another
tenth of its length, at most every :data:`HEARTBEAT` seconds in between, and a last line
when it ends; a loop shorter than :data:`QUIET_FOR` seconds logs nothing. The lines go
through :mod:`logging`, so the command line shows them on stderr and ``-q`` (or
``progress=False``) silences them.

A library caller who set up no logging still sees them, and the Trainer's line per epoch:
:func:`progress_output` prints the ``retinalnet`` logger's INFO lines on stderr while a fit
runs, when neither that logger nor the root logger has a handler (as Lightning does for its
own logger). Logging set up by the caller (``logging.basicConfig``, the command line's
handler) is left alone, so nothing is printed twice.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from retinalnet._core.proportion_text import percent

__all__ = ["HEARTBEAT", "QUIET_FOR", "progress_bar", "progress_output"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

QUIET_FOR = 10.0
"""Seconds a loop runs before its first plain progress line."""

HEARTBEAT = 300.0
"""Most seconds between two plain progress lines while a loop runs."""

_now = time.monotonic  # the clock; tests replace it


def _tqdm_bar() -> type | None:
    """tqdm's bar class when it can draw on a terminal: installed, and stderr is a TTY."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    isatty = getattr(sys.stderr, "isatty", None)
    return tqdm if isatty is not None and isatty() else None


def _duration(seconds: float) -> str:
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _Lines:
    """Decides when a loop without a live bar logs a line, and what it says."""

    def __init__(self, description: str, total: int | None) -> None:
        self.description = description
        self.total = total if total else None
        self.start = self.last = _now()
        self.count = 0
        self.tenths = 0
        self.spoke = False

    def _line(self, now: float) -> str:
        elapsed = now - self.start
        if self.total is None:
            return f"{self.description}: {self.count:,} done, {_duration(elapsed)}"
        fraction = self.count / self.total
        line = f"{self.description}: {self.count:,}/{self.total:,} ({percent(fraction, 0)}), "
        line += _duration(elapsed)
        if 0 < fraction < 1:
            line += f", about {_duration(elapsed / fraction - elapsed)} left"
        return line

    def step(self) -> None:
        self.count += 1
        now = _now()
        tenths = self.tenths
        if self.total is not None:
            tenths = min(10, self.count * 10 // self.total)
        crossed, self.tenths = tenths > self.tenths, tenths
        if now - self.start < QUIET_FOR or self.count == self.total:
            return
        if crossed or now - self.last >= HEARTBEAT:
            logger.info("%s", self._line(now))
            self.last, self.spoke = now, True

    def finish(self) -> None:
        now = _now()
        if self.spoke or now - self.start >= QUIET_FOR:
            logger.info("%s", self._line(now))


def progress_bar(
    iterable: Iterable[T], *, total: int | None, description: str, enabled: bool
) -> Iterator[T]:
    """Yield from ``iterable``, showing progress when ``enabled``.

    A tqdm bar on a terminal (when tqdm is installed); otherwise plain log lines at INFO
    for a loop longer than :data:`QUIET_FOR` seconds, one per tenth of ``total`` (or every
    :data:`HEARTBEAT` seconds without a total) and one at the end.
    """
    if not enabled:
        yield from iterable
        return
    bar = _tqdm_bar()
    if bar is not None:
        yield from bar(iterable, total=total, desc=description, leave=False)
        return
    lines = _Lines(description, total)
    for item in iterable:
        yield item
        lines.step()
    lines.finish()


@contextlib.contextmanager
def progress_output(enabled: bool) -> Iterator[None]:
    """Print the ``retinalnet`` logger's INFO lines on stderr inside the block, when
    ``enabled`` and nobody set up logging.

    "Nobody set up logging" means that neither the ``retinalnet`` logger nor the root logger
    (nor a logger between them) has a handler: then Python would drop INFO lines, and show
    warnings through its last-resort handler. A plain ``"%(message)s"`` handler on stderr
    is attached for the block, and the ``retinalnet`` logger's level set to INFO if it has
    none of its own (a level the caller set is kept); both are undone at the end. With any
    handler in place the block changes nothing, so no line is printed twice.

    Examples
    --------
    >>> with progress_output(True):  # doctest: +SKIP
    ...     logging.getLogger("retinalnet").info("epoch 1/5 ...")  # printed on stderr
    """
    package = logging.getLogger("retinalnet")
    if not enabled or package.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = package.level
    package.addHandler(handler)
    if level == logging.NOTSET:
        package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
