"""Error messages for shell users: the library's advice, said with the command's flags."""

from __future__ import annotations

import argparse

__all__ = ["cli_message", "require_matplotlib"]


def require_matplotlib(flag: str) -> None:
    """Stop before any work when ``flag`` needs matplotlib and it is not installed.

    Raises
    ------
    RuntimeError
        Naming the flag and what to install (one line on the command line).
    """
    try:
        import matplotlib.figure  # noqa: F401 - only whether it imports
    except ImportError:
        raise RuntimeError(
            f"{flag} draws with matplotlib, which is not installed: pip install matplotlib "
            f"(or leave {flag} out)"
        ) from None


def cli_message(args: argparse.Namespace, error: BaseException) -> str:
    """The one-line message ``retinalnet COMMAND: error: ...`` shows for ``error``."""
    from retinalnet._core.images import UnreadableImageError

    message = str(error)
    if isinstance(error, UnreadableImageError) and getattr(args, "on_error", None) == "raise":
        message += "; --on-error skip leaves unreadable images out and lists them at the end"
    return message
