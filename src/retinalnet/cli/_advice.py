"""Error messages for shell users: the library's advice, said with the command's flags."""

from __future__ import annotations

import argparse

__all__ = ["cli_message"]


def cli_message(args: argparse.Namespace, error: BaseException) -> str:
    """The one-line message ``retinalnet COMMAND: error: ...`` shows for ``error``."""
    from retinalnet._core.images import UnreadableImageError

    message = str(error)
    if isinstance(error, UnreadableImageError) and getattr(args, "on_error", None) == "raise":
        message += "; --on-error skip leaves unreadable images out and lists them at the end"
    return message
