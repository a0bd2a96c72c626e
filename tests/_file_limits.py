"""A file size limit for tests of refused writes (a full disk, as the OS reports it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Files of this process may grow to ``limit`` bytes (``RLIMIT_FSIZE``); longer writes
    fail with ``EFBIG`` (Python ignores the ``SIGXFSZ`` that comes with them). Only around
    the write: pytest's own output to a longer log file would fail under it (CI's log)."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY and hard < limit:
        pytest.skip("the hard file size limit is lower than the test's")
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
