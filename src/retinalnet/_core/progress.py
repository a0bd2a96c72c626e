"""A live batch progress bar when tqdm is installed; nothing otherwise."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["progress_bar"]

T = TypeVar("T")


def progress_bar(
    iterable: Iterable[T], *, total: int | None, description: str, enabled: bool
) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar if tqdm is importable and ``enabled``.

    The bar only shows on a terminal (``disable=None``), so logs and CI output stay clean.
    """
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            yield from tqdm(iterable, total=total, desc=description, leave=False, disable=None)
            return
    yield from iterable
