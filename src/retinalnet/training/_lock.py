"""The run lock: one writer at a time in an ``out_dir``.

A fit into an ``out_dir`` writes ``best.pt`` and ``last.pt`` there (and ``retinalnet
train`` writes ``history.csv``); two runs writing into one folder would leave files of both,
with nothing to tell which is which. The lock is a file, ``run.lock``, created atomically
(``O_CREAT | O_EXCL``) with the owner's process id, host and start time, and removed when
the run ends, also on errors and interrupts. A lock whose process is gone (a crash, a
``kill -9``) is stale: the next run takes it over with a warning that says so, and removes
the temporary files that run left half-written (``.last.pt.XXXXXXXX.tmp``). The lock also
names the folder it was taken for, so that one copied with its folder (``cp -r`` while the
run went on) is told from the folder's own, and taken over in the copy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import TracebackType

from retinalnet._core.files import FileWriteError, os_error_in_words
from retinalnet._core.folders import not_a_folder
from retinalnet._core.temporary_names import temporary_file_pattern
from retinalnet.training._lock_owner import (
    Owner,
    RunLockedError,
    copied_lock,
    held_by_other_run,
    held_in_this_process,
    why_stale,
)

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError", "check_still_held", "fit_lock"]

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
_BEING_WRITTEN_S = 10.0  # an unreadable lock younger than this is still being written
# how far a lock's time may be ahead of this machine's clock and still be one being written
# now (a file server's clock a little ahead); further ahead, its time says nothing of when
_CLOCK_SLACK_S = 2.0


_HELD: dict[str, RunLock] = {}  # the locks this process holds, by lock file
_HELD_GUARD = threading.Lock()


def _key(path: Path) -> str:
    return os.path.realpath(path)


class RunLock:
    """A lock on a run folder (``out_dir``): one writer at a time.

    :meth:`Trainer.fit <retinalnet.training.Trainer.fit>` takes it for its ``out_dir``; hold
    it yourself around a whole script that writes more files there (``retinalnet train``
    does, for ``history.csv``), and the fits inside use it. A second fit into the folder,
    from another process or from this one, is refused with a :class:`RunLockedError` naming
    the holder.

    The lock is the file ``out_dir / "run.lock"``, created atomically and holding the
    owner's process id, host and start time; it is removed on :meth:`release` (at the end of
    a ``with`` block, also on errors). A lock left by a process that is no longer running on
    this host (a crash, a ``kill -9``) is stale, and taken over with a warning in the log.
    So is a lock copied with its folder (``cp -r`` of a run folder while its run went on):
    the lock names the folder it was taken for, and one found in another folder is not the
    lock of the folder it is in. A lock held from another host is never taken over: its
    process cannot be checked.

    Parameters
    ----------
    out_dir
        The run folder; created if needed (and removed again on release if it is still
        empty then).

    Raises
    ------
    RunLockedError
        From :meth:`acquire`, if another run holds the folder.
    NotADirectoryError
        From :meth:`acquire`, if ``out_dir`` (or the closest of its ancestors that exists)
        is a file.
    OSError
        From :meth:`acquire`, if the lock file cannot be written (no permission, a full
        disk); the message names the path and the cause.

    Examples
    --------
    >>> from retinalnet.training import RunLock
    >>> with RunLock("runs/vgg16"):  # doctest: +SKIP
    ...     history = trainer.fit(train, val)  # a Trainer with out_dir="runs/vgg16"
    ...     history.to_csv("runs/vgg16/history.csv")

    .. versionadded:: 0.2
    """

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self._owner: Owner | None = None
        self._created_dir = False
        self._in_fit = False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._owner is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunLockedError` naming who holds it."""
        if self._owner is not None:
            raise RuntimeError(f"this RunLock already holds {str(self.path)!r}")
        with _HELD_GUARD:
            held = _HELD.get(_key(self.path))
            if held is not None and held._owner is not None:
                raise held_in_this_process(self.path, held._owner)
            problem = not_a_folder(self.out_dir)
            if problem is not None:  # else mkdir names run.lock, and "file exists"
                raise NotADirectoryError(
                    f"out_dir {str(self.out_dir)!r} {problem}; a run writes its files in a "
                    "folder: choose another out_dir (--out)"
                )
            created = not self.out_dir.is_dir()
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise FileWriteError(self.path, os_error_in_words(error), error.errno) from error
            owner = Owner.this_process(self.out_dir)
            took_over = False
            for _ in range(5):
                if _create(self.path, owner):
                    break
                took_over = _take_over_if_stale(self.path) or took_over
            else:  # another run keeps taking it between our tries
                current = _read(self.path)[0]
                if current is None:
                    raise RunLockedError(
                        f"{str(self.out_dir)!r} is being locked by another run right now; "
                        "choose another out_dir or try again",
                        self.path,
                        None,
                    )
                raise held_by_other_run(self.path, current)
            self._owner, self._created_dir = owner, created
            _HELD[_key(self.path)] = self
        if took_over:  # the lock is ours: no run writes here but this one
            _remove_leftovers(self.out_dir)
        return self

    def release(self) -> None:
        """Remove the lock file, if this object holds it (a no-op otherwise)."""
        owner = self._owner
        if owner is None:
            return
        with _HELD_GUARD:
            _HELD.pop(_key(self.path), None)
            self._owner = None
        current, _ = _read(self.path)
        if current is not None and current.token == owner.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        else:
            logger.warning(
                "the lock %s no longer holds this run's owner (process %d): left as it is",
                self.path,
                owner.pid,
            )
        if self._created_dir:
            with contextlib.suppress(OSError):  # not empty: the run wrote there
                self.out_dir.rmdir()


def check_still_held(out_dir: Path) -> None:
    """Before a run writes into ``out_dir`` again: refuse when the lock this process took
    there is gone (the folder was deleted meanwhile) or now names another owner (another
    run took the folder over), so that no file of this run lands among another run's.
    Nothing to check when this process holds no lock there.

    Raises
    ------
    RunLockedError
        Naming the folder and what happened to the lock.
    """
    with _HELD_GUARD:
        held = _HELD.get(_key(out_dir / LOCK_NAME))
    if held is None or held._owner is None:
        return
    current, _ = _read(held.path)
    if current is not None and current.token == held._owner.token:
        return
    what = (
        "is gone (was the folder deleted?)"
        if current is None
        else f"now names another run (process {current.pid}, {current.program})"
    )
    raise RunLockedError(
        f"the lock {str(held.path)!r} this run took {what}: stopped before writing into "
        f"{str(out_dir)!r}, so that no file of this run lands among another run's; start "
        "the run again in a folder of its own",
        held.path,
        current,
    )


@contextlib.contextmanager
def fit_lock(out_dir: Path) -> Iterator[None]:
    """Hold the lock of ``out_dir`` for one fit: the lock this process already holds there
    (a :class:`RunLock` around the fit), or a new one taken for the fit's duration.

    Raises
    ------
    RunLockedError
        If another run holds ``out_dir``, or another fit of this process writes there.
    """
    with _HELD_GUARD:
        held = _HELD.get(_key(out_dir / LOCK_NAME))
        if held is not None and held._owner is not None:
            if held._in_fit:
                raise held_in_this_process(held.path, held._owner)
            held._in_fit = True
    if held is not None:
        try:
            yield
        finally:
            held._in_fit = False
        return
    lock = RunLock(out_dir).acquire()
    lock._in_fit = True
    try:
        yield
    finally:
        lock.release()


def _create(path: Path, owner: Owner) -> bool:
    """Create the lock file holding ``owner``; ``False`` if there is one already."""
    try:
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as error:
        raise FileWriteError(path, os_error_in_words(error), error.errno) from error
    try:
        os.write(handle, json.dumps(asdict(owner)).encode())
    except OSError as error:
        os.close(handle)
        with contextlib.suppress(OSError):
            path.unlink()
        raise FileWriteError(path, os_error_in_words(error), error.errno) from error
    os.close(handle)
    return True


def _read(path: Path) -> tuple[Owner | None, bytes | None]:
    """The owner written in a lock file and its bytes; ``(None, None)`` if it is gone."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError:
        return None, b""
    return Owner.from_json(raw), raw


def _take_over_if_stale(path: Path) -> bool:
    """Remove the lock at ``path`` if no live process holds it, or it was copied from
    another folder (``True`` once removed); raise if a live process holds it."""
    owner, raw = _read(path)
    if raw is None:
        return False  # released between our tries: try again
    copied = None
    if owner is None:
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return False
        if -_CLOCK_SLACK_S <= age < _BEING_WRITTEN_S:
            raise RunLockedError(
                f"{str(path.parent)!r} is being locked by another run right now ({str(path)!r} "
                "is still being written); choose another out_dir or try again",
                path,
                None,
            )
        why = "it holds no readable owner " + (
            f"(written {age:.0f} s ago, and never completed)"
            if age >= 0
            # copied with its time (`cp -p`, `rsync -t`) from a machine whose clock is ahead,
            # or written through a file server whose clock is: waiting would never end
            else f"(never completed, and dated {-age:.0f} s ahead of this machine's clock: "
            "copied from, or written by, a machine whose clock is ahead)"
        )
    else:
        copied = copied_lock(path, owner)
        reason = why_stale(owner) if copied is None else copied
        if reason is None:
            raise held_by_other_run(path, owner)
        why = reason
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.stale")
    try:
        path.rename(aside)
    except FileNotFoundError:
        return False  # another run removed it first
    moved = aside.read_bytes()
    if moved != raw:  # a new lock was taken in between: put it back, it is live
        with contextlib.suppress(OSError):
            os.link(aside, path)
        aside.unlink()
        new_owner = Owner.from_json(moved)
        if new_owner is None:
            raise RunLockedError(
                f"{str(path.parent)!r} is being locked by another run right now",
                path,
                None,
            )
        raise held_by_other_run(path, new_owner)
    aside.unlink()
    if copied is not None:  # its run, alive or not, writes in the folder it locked
        logger.warning("%s", copied)
        return True
    held = "" if owner is None else f" of process {owner.pid} (since {owner.when()})"
    logger.warning(
        "took over the stale lock %s%s: %s, so the run that took it ended without releasing "
        "it (a crash, or a kill). The checkpoints it left are whole files (each is written "
        "completely or not at all): resume from last.pt, or start afresh",
        path,
        held,
        why,
    )
    return True


# the temporary files atomic_write (retinalnet._core.files) writes a run's files through
_LEFTOVER = temporary_file_pattern(("best.pt", "last.pt", "history.csv"))


def _remove_leftovers(out_dir: Path) -> None:
    """Remove the temporary files a run killed while writing its files (``kill -9``, a
    power cut) left in ``out_dir`` (``.last.pt.k3j9x2a1.tmp``: hidden, and as big as a
    checkpoint), saying how many and how big; only the names the file writer gives them,
    for the run's own files."""
    removed, size = 0, 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(out_dir):
            if not _LEFTOVER.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                bytes_ = entry.stat(follow_symlinks=False).st_size
                Path(entry.path).unlink()
                removed, size = removed + 1, size + bytes_
    if removed:
        logger.warning(
            "removed %d unfinished temporary file(s) (%.1f MB) the run before left in %s "
            "while writing its files",
            removed,
            size / 1e6,
            out_dir,
        )
