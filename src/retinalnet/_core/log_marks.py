"""Marks on the library's log records that the command line reads.

A record logged with ``extra={SAID_BY_THE_COMMAND_LINE: True}`` says something a command
says itself: the skipped images ``retinalnet predict`` lists in full at its end, the result
``retinalnet calibrate`` prints, the stop reason and calibration ``retinalnet train`` sums
up. The command line's log handler drops such records rather than saying it twice; a
library user's logging shows them.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SAID_BY_THE_COMMAND_LINE"]

SAID_BY_THE_COMMAND_LINE: Final = "retinalnet_said_by_the_command_line"
"""The log record attribute (see the module docstring)."""
