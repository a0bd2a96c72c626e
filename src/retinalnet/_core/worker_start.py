"""DataLoader worker processes that cannot start, said in one line with the fix.

Under the ``spawn`` start method (the default on macOS and Windows, and for torch's
DataLoader on Linux from Python 3.14, whose default becomes ``forkserver``), each worker
process gets a pickled copy of the data set and its transforms, and imports the main script
again. A lambda or a class defined inside a function cannot be pickled, and a script whose
code is not under ``if __name__ == "__main__":`` starts its work again in every worker,
which Python stops. torch then reports ``Can't pickle local object ...`` with the advice to
use ``fork`` (impossible on Windows, unsafe on macOS), or ``DataLoader worker (pid(s) ...)
exited unexpectedly``, three tracebacks deep. :class:`ExplainedLoader` says what to do.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from retinalnet._core import forked_workers  # noqa: F401 - its fork hook, for every worker

__all__ = ["ExplainedLoader", "workers_failed"]

_WORKERS_DIED = "exited unexpectedly"
"""torch's words when a worker process ended before its batches (``DataLoader worker (pid(s)
...) exited unexpectedly``)."""

_CANNOT_PICKLE = ("can't pickle", "cannot pickle", "can't get local object")


def _start_method(loader: DataLoader[Any]) -> str:
    context: Any = loader.multiprocessing_context  # a context, or None for the default
    if context is not None:
        return str(context.get_start_method())
    return str(multiprocessing.get_start_method(allow_none=False))


def _is_start_failure(error: BaseException) -> bool:
    """Whether ``error`` is a worker that could not be pickled or died while starting."""
    text = str(error).lower()
    if isinstance(error, pickle.PicklingError):
        return True
    if isinstance(error, (AttributeError, TypeError)):
        return any(words in text for words in _CANNOT_PICKLE)
    return isinstance(error, RuntimeError) and _WORKERS_DIED in text


def workers_failed(error: BaseException, *, workers: int, start_method: str) -> RuntimeError:
    """The one-line error for worker processes that could not start (:func:`_is_start_failure`).

    Examples
    --------
    >>> error = AttributeError("Can't pickle local object 'main.<locals>.<lambda>'")
    >>> print(workers_failed(error, workers=2, start_method="spawn"))  # doctest: +ELLIPSIS
    2 DataLoader worker process(es) could not start (AttributeError: Can't pickle ...
    """
    cause = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return RuntimeError(
        f"{workers} DataLoader worker process(es) could not start ({cause}); with the "
        f"{start_method!r} start method (macOS and Windows) each worker gets a pickled copy "
        "of the data set and its transforms and imports your script again: define them at "
        "a module's top level (no lambda, no class inside a function), put the script's "
        'code under `if __name__ == "__main__":`, or pass num_workers=0 (command line: '
        "--workers 0)"
    )


class ExplainedLoader(DataLoader[Any]):
    """A DataLoader whose worker processes, when they cannot start under ``spawn`` or
    ``forkserver``, raise :func:`workers_failed`'s one line rather than torch's errors.
    Under ``fork`` (Linux until Python 3.14), or with no workers, it is a plain DataLoader.
    """

    # torch declares its own iterator class; this one passes every attribute on to it
    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if self.num_workers == 0 or _start_method(self) == "fork":
            return super().__iter__()
        try:
            iterator = super().__iter__()
        except Exception as error:
            self._explain(error)
            raise
        return _Explained(iterator, self)

    def _explain(self, error: BaseException) -> None:
        if _is_start_failure(error):
            raise workers_failed(
                error, workers=self.num_workers, start_method=_start_method(self)
            ) from error


class _Explained:
    """The batches of an :class:`ExplainedLoader`'s iterator, a worker that died before the
    first batch (while starting) said in one line; everything else is the iterator's."""

    def __init__(self, iterator: Iterator[Any], loader: ExplainedLoader) -> None:
        self._iterator = iterator
        self._loader = loader
        self._started = False  # a worker dying after a batch (memory, a kill) is no start

    def __iter__(self) -> _Explained:
        return self

    def __next__(self) -> Any:
        try:
            batch = next(self._iterator)
        except StopIteration:
            raise
        except Exception as error:
            if not self._started:
                self._loader._explain(error)
            raise
        self._started = True
        return batch

    def __len__(self) -> int:
        return len(self._iterator)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._iterator, name)
