"""Where ``torchrun`` put this process, read from the environment before any process group
exists (without importing torch)."""

from __future__ import annotations

import os

__all__ = ["torchrun_rank_and_size"]


def _whole_number(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"environment variable {name}={text!r} is not a whole number; torchrun sets it "
            f"for each process it starts: unset it to run one process"
        ) from None


def torchrun_rank_and_size() -> tuple[int, int]:
    """This process's rank and the number of processes, as ``torchrun`` sets them in
    ``RANK`` and ``WORLD_SIZE``: ``(0, 1)`` outside ``torchrun``.

    Raises
    ------
    ValueError
        If either variable is set to something other than a whole number.
    """
    world_size = _whole_number("WORLD_SIZE", 1)
    if world_size <= 1:
        return 0, 1
    return _whole_number("RANK", 0), world_size
