"""Who holds a run lock: the owner written in ``run.lock``, the error naming it, and how a
lock whose owner is gone, or that was copied with its folder, is told from a live one."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast

__all__ = [
    "Owner",
    "RunLockedError",
    "copied_lock",
    "held_by_other_run",
    "held_in_this_process",
    "why_stale",
]

_CLOCK_SLACK_S = 2.0  # /proc gives boot time in whole seconds
_ON_WINDOWS = os.name == "nt"
# Windows' names (winnt.h, winerror.h), as psutil uses them to tell whether a process runs
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_STILL_ACTIVE = 259
_ERROR_ACCESS_DENIED = 5
_ERROR_INVALID_PARAMETER = 87


@dataclass(frozen=True)
class Owner:
    """Who holds a lock, and on which folder: written into the lock file as JSON.

    ``folder`` and ``folder_id`` tell the lock of a folder from a copy of it (``cp -r`` of a
    run folder while its run goes on); locks written before they were recorded have ``""``
    and ``None``, and are judged by their process alone, as they were.
    """

    pid: int
    host: str
    started: str  # ISO 8601, local time with its offset, for people
    time: float  # seconds since the epoch, for comparisons
    program: str
    token: str
    folder: str = ""  # the real path of the folder locked
    folder_id: tuple[int, int] | None = None  # its (st_dev, st_ino); None where unknown

    @classmethod
    def this_process(cls, folder: Path) -> Owner:
        """This process as the owner of the lock of ``folder`` (which exists)."""
        now = time.time()
        started = datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds")
        real, identity = _folder_identity(folder)
        return cls(
            os.getpid(),
            socket.gethostname(),
            started,
            now,
            _program(),
            uuid.uuid4().hex,
            real,
            identity,
        )

    @classmethod
    def from_json(cls, text: bytes) -> Owner | None:
        try:
            data = json.loads(text)
            owner = cls(
                pid=int(data["pid"]),
                host=str(data["host"]),
                started=str(data["started"]),
                time=float(data["time"]),
                program=str(data.get("program", "")),
                token=str(data["token"]),
                folder=str(data.get("folder", "")),
                folder_id=_parse_folder_id(data.get("folder_id")),
            )
        except (ValueError, TypeError, KeyError, RecursionError):  # nested deep: unreadable
            return None
        return owner

    def when(self) -> str:
        return self.started.replace("T", " ")


def _folder_identity(folder: Path) -> tuple[str, tuple[int, int] | None]:
    """The real path of ``folder`` and its ``(st_dev, st_ino)`` (``None`` where the file
    system gives no inode numbers, or the folder cannot be read)."""
    real = os.path.realpath(folder)
    try:
        status = Path(real).stat()
    except OSError:
        return real, None
    return real, ((status.st_dev, status.st_ino) if status.st_ino else None)


def _parse_folder_id(value: object) -> tuple[int, int] | None:
    """The ``folder_id`` of a lock file; ``None`` if it has none (a lock of the earlier
    format) or one this version cannot read: the lock is then judged by its process."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    if not all(isinstance(part, int) and not isinstance(part, bool) for part in value):
        return None
    return value[0], value[1]


def _program() -> str:
    """The command this process runs, for people: ``retinalnet train --out runs/x``."""
    if not sys.argv or not sys.argv[0]:
        return "python"
    first = Path(sys.argv[0])
    name = first.parent.name if first.name == "__main__.py" else first.name  # python -m
    return " ".join([name, *sys.argv[1:]])[:160]


class RunLockedError(FileExistsError):
    """Another run is writing to this ``out_dir``; nothing was written.

    The message names the folder, the process holding it (its id, host and start time, and
    the command it runs) and what to do: wait for that run, choose another folder, or, if
    that run is gone, delete the lock file it names.

    Attributes
    ----------
    path : pathlib.Path
        The lock file, ``out_dir / "run.lock"``.
    pid : int or None
        The process holding it (``None`` if the lock file could not be read).
    host : str or None
        The host that process runs on.
    started : str or None
        When it took the lock (ISO 8601, local time).

    .. versionadded:: 0.2
    """

    def __init__(self, message: str, path: str | os.PathLike[str], owner: Owner | None) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.pid = owner.pid if owner is not None else None
        self.host = owner.host if owner is not None else None
        self.started = owner.started if owner is not None else None
        self._owner = owner

    def __reduce__(self) -> tuple[type[RunLockedError], tuple[str, str, Owner | None]]:
        return (type(self), (str(self), str(self.path), self._owner))


def held_by_other_run(path: Path, owner: Owner) -> RunLockedError:
    here = socket.gethostname()
    where = "this host" if owner.host == here else f"host {owner.host!r}"
    unknown = "" if owner.host == here else f" (it cannot be checked from {here!r})"
    return RunLockedError(
        f"{str(path.parent)!r} is in use by another run: process {owner.pid} on {where} has "
        f"held it since {owner.when()} ({owner.program}){unknown}. Wait for that run to end "
        f"or choose another out_dir (--out); if that run is gone, delete {str(path)!r}",
        path,
        owner,
    )


def held_in_this_process(path: Path, owner: Owner) -> RunLockedError:
    return RunLockedError(
        f"{str(path.parent)!r} is in use by another fit in this process (pid {owner.pid}, "
        f"since {owner.when()}): one fit at a time may write to an out_dir; give this one "
        "another out_dir",
        path,
        owner,
    )


def copied_lock(path: Path, owner: Owner) -> str | None:
    """The warning for a lock found at ``path`` that ``owner`` took on another folder: the
    run folder was copied with it (``cp -r`` while its run went on), so no run holds this
    folder; ``None`` when it is this folder's lock, or that cannot be told.

    Only a lock taken on this host is judged (another host's paths and devices are its
    own), and only when both the real path and the device and inode differ: a folder
    renamed, or reached through a link, is still the folder its run locked.
    """
    if not owner.folder or owner.folder_id is None or owner.host != socket.gethostname():
        return None  # the earlier format, or another host's: judged by its process
    real, identity = _folder_identity(path.parent)
    if identity is None or identity == owner.folder_id or real == owner.folder:
        return None
    return (
        f"{path.name} was copied from {owner.folder!r}; taken over: it is the lock of "
        f"process {owner.pid} ({owner.program}) on that folder, not on {real!r}"
    )


def why_stale(owner: Owner) -> str | None:
    """Why ``owner`` no longer holds its lock, or ``None`` if it may (or cannot be told)."""
    if owner.host != socket.gethostname():
        return None  # its process cannot be checked from here
    if owner.pid == os.getpid():
        # not a lock of this process (those are known): an earlier process had this id
        return f"it names process {owner.pid}, this one, which did not take it"
    alive = _alive(owner.pid)
    if alive is False:
        return f"process {owner.pid} is no longer running"
    started = _process_start(owner.pid) if alive else None
    if started is not None and started > owner.time + _CLOCK_SLACK_S:
        return (
            f"process {owner.pid} now is another program, started after the lock was taken "
            "(the id was reused)"
        )
    return None


def _alive(pid: int) -> bool | None:
    """Whether process ``pid`` runs on this host; ``None`` where it cannot be told."""
    if _ON_WINDOWS:  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return _alive_on_windows(pid, _kernel32())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # runs, as another user
    except OSError:
        return None
    return True


class _Kernel32(Protocol):
    """The kernel32 functions :func:`_alive_on_windows` calls (a fake one in the tests)."""

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int | None: ...  # noqa: N802
    def GetExitCodeProcess(self, handle: int, code: Any) -> int: ...  # noqa: N802
    def CloseHandle(self, handle: int) -> int: ...  # noqa: N802
    def last_error(self) -> int:
        """The calling thread's last Windows error code (``ctypes.get_last_error()``)."""


def _kernel32() -> _Kernel32:
    """Windows' kernel32, its handles typed as handles (not truncated to C ints)."""
    if sys.platform == "win32":
        import ctypes
        from ctypes import wintypes

        library = ctypes.WinDLL("kernel32", use_last_error=True)
        library.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
        library.OpenProcess.restype = wintypes.HANDLE
        library.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
        library.GetExitCodeProcess.restype = wintypes.BOOL
        library.CloseHandle.argtypes = (wintypes.HANDLE,)
        library.CloseHandle.restype = wintypes.BOOL
        library.last_error = ctypes.get_last_error
        return cast(_Kernel32, library)
    raise OSError(f"kernel32 is a Windows library; this is {sys.platform!r}")


def _alive_on_windows(pid: int, kernel32: _Kernel32) -> bool | None:
    """Whether process ``pid`` runs, asked as psutil asks Windows (``pid_is_running``).

    ``OpenProcess`` failing with ERROR_INVALID_PARAMETER means no such process, with
    ERROR_ACCESS_DENIED a process of another user; an open process runs while its exit code
    is STILL_ACTIVE (a handle someone keeps open outlives the process).
    """
    import ctypes

    if pid <= 0:
        return None  # 0 is the System Idle Process; no lock names it
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        error = kernel32.last_error()
        if error == _ERROR_INVALID_PARAMETER:
            return False
        return True if error == _ERROR_ACCESS_DENIED else None
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.pointer(code)):
            return None
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), on Linux; else ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22, starttime
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, IndexError):
        return None
