"""Marks on the library's log records that the command line reads.

A record logged with ``extra={SKIPPED_LISTED_ELSEWHERE: True}`` counts skipped images that
its caller lists in full: ``retinalnet predict`` prints every skipped image at its end, so
its log handler drops such records rather than saying the same thing twice.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SKIPPED_LISTED_ELSEWHERE"]

SKIPPED_LISTED_ELSEWHERE: Final = "retinalnet_skipped_listed_elsewhere"
"""The log record attribute (see the module docstring)."""
