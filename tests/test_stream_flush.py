"""Flushing stdout and stderr when there may be none (``>&-``, pythonw): ``None`` and a
closed stream are skipped; any other error of the flush is the caller's."""

from __future__ import annotations

import io

import pytest

from retinalnet._core.stream_flush import flush_if_open


class _Recorded(io.StringIO):
    flushed = 0

    def flush(self) -> None:
        self.flushed += 1
        super().flush()


class _ReaderGone(io.StringIO):
    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_each_open_stream_is_flushed_and_none_or_a_closed_one_skipped() -> None:
    first, second, closed = _Recorded(), _Recorded(), io.StringIO()
    closed.close()

    flush_if_open(first, None, closed, second)  # was: AttributeError on None, ValueError

    assert (first.flushed, second.flushed) == (1, 1)


def test_a_reader_gone_away_is_still_the_callers_to_handle() -> None:
    # `retinalnet predict ... | head -1`: the command's BrokenPipeError, exit status 0
    with pytest.raises(BrokenPipeError):
        flush_if_open(_ReaderGone())
