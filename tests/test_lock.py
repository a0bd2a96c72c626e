"""The run lock: one writer at a time in an out_dir, the holder named, stale locks explained.

Faults by class: a second fit in this process, a run in another process (alive, then killed
with SIGKILL), fake locks of every kind (a dead process, this process's own id, another host,
an unreadable file young and old, an id reused by another program), a lock file that cannot
be written, and fits that fail while holding the lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from _distributed_helpers import as_torchrun_starts, free_port
from _training_helpers import InterruptAt, linear_classifier, quiet_trainer, separable_data
from retinalnet.checkpoint import checkpoint_epoch
from retinalnet.training import Callback, RunLock, RunLockedError, Trainer, _lock

SRC = Path(__file__).resolve().parents[1] / "src"
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d"


def _fit(out: Path, **kwargs: Any) -> Trainer:
    trainer = quiet_trainer(linear_classifier(), max_epochs=2, out_dir=out, **kwargs)
    trainer.fit(separable_data(8), separable_data(4, seed=1))
    return trainer


def _write_lock(out: Path, **changes: Any) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": "2026-01-02T03:04:05+00:00",
        "time": time.time(),
        "program": "retinalnet train --out runs/x",
        "token": "0" * 32,
    }
    owner.update(changes)
    path = out / "run.lock"
    path.write_text(json.dumps(owner))
    return path


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---------------------------------------------------------------------------------------------
# A fit holds the lock while it writes


class _ReadLock(Callback):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[dict[str, Any]] = []

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        self.seen.append(json.loads(self.path.read_text()))


def test_a_fit_holds_the_lock_while_it_writes_and_releases_it(tmp_path: Path) -> None:
    reader = _ReadLock(tmp_path / "run.lock")

    _fit(tmp_path, callbacks=[reader])

    assert len(reader.seen) == 2
    owner = reader.seen[0]
    assert (owner["pid"], owner["host"]) == (os.getpid(), socket.gethostname())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", owner["started"])
    assert reader.seen[1] == owner
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]
    _fit(tmp_path, overwrite=True)  # the next fit is not blocked


class _SecondFit(Callback):
    """In epoch 1 of one fit, starts a second Trainer's fit into ``out``."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.error: BaseException | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        if epoch == 1:
            try:
                _fit(self.out, overwrite=True)
            except RunLockedError as error:
                self.error = error


def test_a_second_trainer_into_the_same_out_dir_is_refused(tmp_path: Path) -> None:
    second = _SecondFit(tmp_path)

    first = _fit(tmp_path, callbacks=[second])

    error = second.error
    assert isinstance(error, RunLockedError)
    assert isinstance(error, FileExistsError)  # an OSError: one line on the command line
    assert re.fullmatch(
        rf"{re.escape(repr(str(tmp_path)))} is in use by another fit in this process \(pid "
        rf"{os.getpid()}, since {WHEN}\): one fit at a time may write to an out_dir; give this "
        "one another out_dir",
        str(error),
    ), str(error)
    assert (error.pid, error.host) == (os.getpid(), socket.gethostname())
    assert len(first.history) == 2  # the first fit went on, and its files are its own
    assert checkpoint_epoch(tmp_path / "last.pt") == 2
    assert not (tmp_path / "run.lock").exists()


_HOLDER = """
import sys
from retinalnet.training import RunLock
RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def _held_by_another_process(out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process holding the run lock of ``out`` until the block ends, then killed
    (SIGKILL: it cannot release its lock, which stays behind, stale)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_run_in_another_process_is_refused_and_its_crash_leaves_a_stale_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    with _held_by_another_process(out) as holder:
        with pytest.raises(RunLockedError) as info:
            _fit(out)

        assert re.match(
            rf"{re.escape(repr(str(out)))} is in use by another run: process {holder.pid} on "
            rf"this host has held it since {WHEN} \(-c {re.escape(str(out))}\)\. Wait for that "
            r"run to end or choose another out_dir \(--out\); if that run is gone, delete "
            rf"{re.escape(repr(str(out / 'run.lock')))}$",
            str(info.value),
        ), str(info.value)
        assert info.value.pid == holder.pid
        assert sorted(p.name for p in out.iterdir()) == ["run.lock"]  # nothing written

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        trainer = _fit(out)

    assert len(trainer.history) == 2
    assert any(
        f"took over the stale lock {out / 'run.lock'} of process {holder.pid}" in message
        and f"process {holder.pid} is no longer running" in message
        and "a crash, or a kill" in message
        for message in caplog.messages
    ), caplog.messages
    assert not (out / "run.lock").exists()


# ---------------------------------------------------------------------------------------------
# Locks found in the folder, one class at a time


def _garbled(age: float) -> Callable[[Path], None]:
    def write(out: Path) -> None:
        path = _write_lock(out)
        path.write_bytes(b'{"pid": 12')  # cut short while it was being written
        os.utime(path, (time.time() - age, time.time() - age))

    return write


def _empty(age: float) -> Callable[[Path], None]:
    """An empty lock (its run killed between creating and writing it), dated ``age`` s
    ago: a negative age is a time ahead of this machine's clock (copied with ``cp -p`` from
    a machine whose clock is ahead)."""

    def write(out: Path) -> None:
        path = _write_lock(out)
        path.write_bytes(b"")
        os.utime(path, (time.time() - age, time.time() - age))

    return write


@pytest.mark.parametrize(
    ("make", "outcome"),
    [
        pytest.param(
            lambda out: _write_lock(out, pid=_dead_pid()),
            r"took over .* process \d+ is no longer running",
            id="dead-process",
        ),
        pytest.param(
            lambda out: _write_lock(out, pid=os.getpid()),
            rf"took over .* it names process {os.getpid()}, this one, which did not take it",
            id="this-process-id-left-by-an-earlier-process",
        ),
        pytest.param(
            _garbled(age=60),
            r"took over .* it holds no readable owner \(written 60 s ago",
            id="unreadable-and-old",
        ),
        pytest.param(
            _empty(age=-3600),
            r"took over .* it holds no readable owner \(never completed, and dated "
            r"(?:3599|3600) s ahead of this machine's clock",
            id="empty-and-dated-ahead-of-the-clock",
        ),
        pytest.param(
            _garbled(age=-3600),
            r"took over .* it holds no readable owner \(never completed, and dated "
            r"(?:3599|3600) s ahead",
            id="unreadable-and-dated-ahead-of-the-clock",
        ),
    ],
)
def test_a_stale_lock_is_taken_over_and_explained(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[Path], None],
    outcome: str,
) -> None:
    make(tmp_path)

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        trainer = _fit(tmp_path)

    assert len(trainer.history) == 2
    assert any(re.search(outcome, message) for message in caplog.messages), caplog.messages
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda out: _write_lock(out, host="elsewhere-7", pid=4242),
            rf"is in use by another run: process 4242 on host 'elsewhere-7' has held it since "
            rf"2026-01-02 03:04:05\+00:00 \(retinalnet train --out runs/x\) \(it cannot be "
            rf"checked from {re.escape(repr(socket.gethostname()))}\)\. Wait for that run",
            id="another-host",
        ),
        pytest.param(
            _garbled(age=0),
            r"is being locked by another run right now \('.*run\.lock' is still being written\)",
            id="unreadable-and-young",
        ),
        pytest.param(
            _empty(age=-1),  # a file server's clock a little ahead: still being written
            r"is being locked by another run right now \('.*run\.lock' is still being written\)",
            id="empty-and-a-little-ahead-of-the-clock",
        ),
    ],
)
def test_a_lock_that_may_be_live_is_never_taken(
    tmp_path: Path, make: Callable[[Path], None], message: str
) -> None:
    make(tmp_path)
    before = (tmp_path / "run.lock").read_bytes()

    with pytest.raises(RunLockedError, match=message):
        _fit(tmp_path)

    assert (tmp_path / "run.lock").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.lock"]


def test_a_live_process_holding_the_lock_is_named(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    _write_lock(tmp_path, pid=sleeper.pid, time=time.time() + 60)

    with pytest.raises(RunLockedError, match=rf"process {sleeper.pid} on this host has held it"):
        _fit(tmp_path)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_a_process_id_reused_by_another_program_is_stale(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    _write_lock(tmp_path, pid=sleeper.pid, time=time.time() - 3600)  # taken before it started

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        _fit(tmp_path)

    assert any("the id was reused" in message for message in caplog.messages)


# ---------------------------------------------------------------------------------------------
# Released whatever happens; the folder's own errors


class _Raise(Callback):
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float]) -> None:
        raise self.error


@pytest.mark.parametrize(
    "callback",
    [InterruptAt(2), _Raise(RuntimeError("boom")), _Raise(KeyboardInterrupt())],
    ids=["interrupt-at-epoch-start", "error-in-a-callback", "interrupt-at-epoch-end"],
)
def test_the_lock_is_released_when_a_fit_fails(tmp_path: Path, callback: Callback) -> None:
    with pytest.raises((KeyboardInterrupt, RuntimeError)):
        _fit(tmp_path, callbacks=[callback])

    assert not (tmp_path / "run.lock").exists()
    _fit(tmp_path, overwrite=True)


def test_a_run_lock_around_fits_is_used_by_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunLock(out) as lock:
        assert lock.held
        token = json.loads(lock.path.read_text())["token"]
        _fit(out)
        _fit(out, overwrite=True)  # one after the other, inside the same lock
        assert json.loads(lock.path.read_text())["token"] == token
        with pytest.raises(RunLockedError, match="in use by another fit in this process"):
            RunLock(out).acquire()
    assert not lock.held
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt"]


def test_a_folder_the_lock_created_is_removed_if_nothing_was_written(tmp_path: Path) -> None:
    with RunLock(tmp_path / "new" / "run"):
        assert (tmp_path / "new" / "run" / "run.lock").is_file()
    assert not (tmp_path / "new" / "run").exists()

    with RunLock(tmp_path):  # it was there before: it stays
        pass
    assert tmp_path.is_dir()


def test_a_lock_file_that_cannot_be_written_names_the_path_and_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(_lock.os, "open", refused)
    with pytest.raises(
        OSError,
        match=rf"^cannot write {re.escape(repr(str(tmp_path / 'run.lock')))}: permission "
        r"denied \[EACCES\]; nothing was written\. Check the folder's permissions",
    ):
        _fit(tmp_path)


@pytest.mark.parametrize(
    ("inside", "said"),
    [("", "is a file, not a folder"), ("run", "cannot be made: {file} is a file, not a folder")],
    ids=["the-folder-is-a-file", "inside-a-file"],
)
def test_an_out_dir_that_is_a_file_is_said_so(tmp_path: Path, inside: str, said: str) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    out = file / inside if inside else file
    # it used to say "cannot write 'notes.txt/run.lock': file exists [EEXIST]"
    message = f"out_dir {str(out)!r} {said.format(file=repr(str(file)))}; "
    with pytest.raises(NotADirectoryError, match=f"^{re.escape(message)}.*choose another out_dir"):
        RunLock(out).acquire()
    with pytest.raises(NotADirectoryError, match=re.escape(message)):
        _fit(out)  # the Trainer's lock says the same
    assert file.read_text() == "mine"


def test_a_lock_replaced_by_someone_else_is_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lock = RunLock(tmp_path).acquire()
    _write_lock(tmp_path, pid=4242, token="f" * 32)

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        lock.release()

    assert json.loads((tmp_path / "run.lock").read_text())["pid"] == 4242
    assert any("no longer holds this run's owner" in message for message in caplog.messages)


def test_run_locked_error_survives_pickling(tmp_path: Path) -> None:
    _write_lock(tmp_path, host="elsewhere-7", pid=4242)
    with pytest.raises(RunLockedError) as info:
        RunLock(tmp_path).acquire()

    copy = pickle.loads(pickle.dumps(info.value))

    assert type(copy) is RunLockedError
    assert (str(copy), copy.path, copy.pid, copy.host, copy.started) == (
        str(info.value),
        tmp_path / "run.lock",
        4242,
        "elsewhere-7",
        "2026-01-02T03:04:05+00:00",
    )


# ---------------------------------------------------------------------------------------------
# In a distributed run only rank 0 locks; when it cannot, every rank stops (none waits forever)


def _locked_worker(rank: int, world_size: int, port: int, out: str) -> None:
    import torch.distributed as dist

    as_torchrun_starts(rank, world_size, port)
    report = Path(out).parent / f"rank{rank}.txt"
    try:
        trainer = Trainer(
            linear_classifier(), max_epochs=1, device="cpu", progress=False, out_dir=out
        )
        trainer.fit(separable_data(8))
        report.write_text("fitted")
    except RuntimeError as error:
        report.write_text(f"RuntimeError: {error}")
    except RunLockedError as error:
        report.write_text(f"RunLockedError: {error}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_every_rank_stops_when_rank_0_cannot_lock(tmp_path: Path) -> None:
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    out = tmp_path / "run"
    _write_lock(out, pid=os.getpid())  # this test process: alive, and not a rank
    context = mp.spawn(_locked_worker, args=(2, free_port(), str(out)), nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("a rank waited for rank 0 instead of stopping")

    assert (
        (tmp_path / "rank0.txt")
        .read_text()
        .startswith(f"RunLockedError: {str(out)!r} is in use by another run: process {os.getpid()}")
    )
    assert (tmp_path / "rank1.txt").read_text() == (
        f"RuntimeError: rank 1: rank 0 could not lock {str(out)!r} (its error says why)"
    )


class _DeleteTheFolder(Callback):
    """Deletes the run folder, lock included, when epoch ``epoch`` starts."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if epoch == self.epoch:
            import shutil

            shutil.rmtree(trainer.out_dir)  # type: ignore[arg-type]


@pytest.mark.parametrize("how", ["deleted", "taken"])
def test_a_run_whose_lock_is_gone_stops_before_writing_again(tmp_path: Path, how: str) -> None:
    out = tmp_path / "run"
    callbacks: list[Callback] = [_DeleteTheFolder(2)]
    if how == "taken":  # another run took the folder over meanwhile

        class _Taken(Callback):
            def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
                if epoch == 2:
                    _write_lock(out, pid=1, token="1" * 32)

        callbacks = [_Taken()]
    trainer = quiet_trainer(
        linear_classifier(), max_epochs=3, out_dir=out, batch_size=4, callbacks=callbacks
    )
    said = "is gone" if how == "deleted" else "now names another run (process 1"
    with pytest.raises(RunLockedError, match=f"this run took {re.escape(said)}"):
        trainer.fit(separable_data(8), separable_data(4, seed=1))
    if how == "deleted":  # was: the folder made again, epochs 2 and 3 written, unlocked
        assert not out.exists()
    else:
        assert checkpoint_epoch(out / "last.pt") == 1  # epoch 2 was not written there


# ---------------------------------------------------------------------------------------------
# Windows, simulated: whether the owner runs is asked of kernel32, as psutil asks it


class _FakeKernel32:
    """kernel32 as the lock calls it, for ``processes``: pid -> "running", "exited" (its
    handle still open somewhere) or "denied" (another user's); any other pid does not exist."""

    def __init__(self, processes: Mapping[int, str]) -> None:
        self.processes = processes
        self.error = 0
        self.open: set[int] = set()

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int | None:
        assert access == 0x1000  # PROCESS_QUERY_LIMITED_INFORMATION
        state = self.processes.get(pid)
        if state is None or state == "denied":
            self.error = 87 if state is None else 5  # INVALID_PARAMETER, ACCESS_DENIED
            return None
        self.open.add(pid + 1000)
        return pid + 1000

    def GetExitCodeProcess(self, handle: int, code: Any) -> int:
        code.contents.value = 259 if self.processes[handle - 1000] == "running" else 1
        return 1

    def CloseHandle(self, handle: int) -> int:
        self.open.remove(handle)
        return 1

    def last_error(self) -> int:
        return self.error


_ON_WINDOWS = {4001: "running", 4002: "exited", 4003: "denied"}


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> _FakeKernel32:
    """The lock's process checks take their Windows path, against a fake kernel32."""
    from retinalnet.training import _lock_owner

    kernel32 = _FakeKernel32(_ON_WINDOWS)
    monkeypatch.setattr(_lock_owner, "_ON_WINDOWS", True)
    monkeypatch.setattr(_lock_owner, "_kernel32", lambda: kernel32)
    monkeypatch.setattr(_lock_owner, "_process_start", lambda pid: None)  # no /proc there
    return kernel32


@pytest.mark.parametrize(
    ("pid", "alive"), [(4001, True), (4002, False), (4003, True), (4004, False)]
)
def test_windows_is_asked_whether_the_owner_runs(
    windows: _FakeKernel32, pid: int, alive: bool
) -> None:
    # was None (cannot be told) for every process: a crashed run's lock was never stale
    from retinalnet.training import _lock_owner

    assert _lock_owner._alive(pid) is alive
    assert windows.open == set()  # every handle opened is closed


def test_a_crashed_run_s_lock_is_stale_on_windows(
    tmp_path: Path, windows: _FakeKernel32, caplog: pytest.LogCaptureFixture
) -> None:
    _write_lock(tmp_path, pid=4004)

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        trainer = _fit(tmp_path)

    assert len(trainer.history) == 2
    assert any("process 4004 is no longer running" in m for m in caplog.messages)


@pytest.mark.parametrize("pid", [4001, 4003], ids=["running", "another-user-s"])
def test_a_live_run_s_lock_is_kept_on_windows(
    tmp_path: Path, windows: _FakeKernel32, pid: int
) -> None:
    _write_lock(tmp_path, pid=pid)

    with pytest.raises(RunLockedError, match=rf"process {pid} on this host has held it"):
        _fit(tmp_path)


# ---------------------------------------------------------------------------------------------
# A taken-over lock's run left half-written temporary files: removed, counted; a lock of
# JSON nested too deeply is unreadable, as a garbled one is


def test_the_temporary_files_of_a_killed_run_go_with_its_stale_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_lock(tmp_path, pid=_dead_pid())
    (tmp_path / ".last.pt.k3j9x2a1.tmp").write_bytes(b"\0" * 2_500_000)  # kill -9 mid-write
    (tmp_path / ".best.pt.q_0abcde.tmp").write_bytes(b"\0" * 500_000)
    kept = [".notes.k3j9x2a1.tmp", ".last.pt.tmp", "last.pt.k3j9x2a1.tmp"]  # not its names
    for name in kept:
        (tmp_path / name).write_text("mine")

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        _fit(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, "best.pt", "last.pt"])
    said = [m for m in caplog.messages if m.startswith("removed")]
    assert said == [
        f"removed 2 unfinished temporary file(s) (3.0 MB) the run before left in {tmp_path} "
        "while writing its files"
    ]


def test_a_lock_without_a_stale_owner_leaves_temporary_files_alone(tmp_path: Path) -> None:
    (tmp_path / ".last.pt.k3j9x2a1.tmp").write_bytes(b"not a stale run's")  # no lock: kept

    _fit(tmp_path)

    assert (tmp_path / ".last.pt.k3j9x2a1.tmp").read_bytes() == b"not a stale run's"


def test_a_lock_nested_too_deeply_is_unreadable_and_taken_over_when_old(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write_lock(tmp_path)
    path.write_text("[" * 100_000 + "]" * 100_000)
    os.utime(path, (time.time() - 60, time.time() - 60))

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        trainer = _fit(tmp_path)

    assert len(trainer.history) == 2
    assert any("it holds no readable owner" in message for message in caplog.messages)


# ---------------------------------------------------------------------------------------------
# A run folder copied with its lock (cp -r while its run went on): the lock names the folder it
# was taken for, so the copy's is told from the folder's own; locks of the earlier format, and
# of another host, are judged by their process as before


def _folder_of(folder: Path) -> dict[str, Any]:
    status = folder.stat()
    return {"folder": os.path.realpath(folder), "folder_id": [status.st_dev, status.st_ino]}


def test_a_lock_names_the_folder_it_was_taken_for(tmp_path: Path) -> None:
    with RunLock(tmp_path / "run"):
        owner = json.loads((tmp_path / "run" / "run.lock").read_text())
        folder = _folder_of(tmp_path / "run")

    assert {key: owner[key] for key in ("folder", "folder_id")} == folder


def test_a_folder_copied_while_its_run_goes_on_can_be_resumed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the run trains in runC, holding its lock; cp -r runC runD copies the lock too, and the
    # run in the copy was refused: "'runD' is in use by another run ... --out runC"
    run_c, run_d = tmp_path / "runC", tmp_path / "runD"
    _fit(run_c)
    with _held_by_another_process(run_c) as holder:
        held = (run_c / "run.lock").read_bytes()
        shutil.copytree(run_c, run_d)

        with caplog.at_level(logging.WARNING, logger="retinalnet"):
            trainer = quiet_trainer(linear_classifier(), max_epochs=3, out_dir=run_d)
            trainer.fit(separable_data(8), separable_data(4, seed=1), resume_from=run_d / "last.pt")

        assert len(trainer.history) == 3
        said = [m for m in caplog.messages if "run.lock" in m]
        assert said == [
            f"run.lock was copied from {os.path.realpath(run_c)!r}; taken over: it is the lock "
            f"of process {holder.pid} (-c {run_c}) on that folder, not on "
            f"{os.path.realpath(run_d)!r}"
        ]
        assert (run_c / "run.lock").read_bytes() == held  # the run's own lock: untouched
        assert not (run_d / "run.lock").exists()  # the copy's run released its own
        with pytest.raises(RunLockedError, match=rf"process {holder.pid} on this host"):
            _fit(run_c)  # the original is still refused


@pytest.mark.parametrize(
    ("names", "taken_over"),
    [
        pytest.param(lambda here, other: _folder_of(other), True, id="another-folder"),
        pytest.param(lambda here, other: _folder_of(here), False, id="this-folder"),
        pytest.param(lambda here, other: {}, False, id="earlier-format-without-the-folder"),
        pytest.param(
            lambda here, other: {**_folder_of(other), "folder_id": _folder_of(here)["folder_id"]},
            False,
            id="this-folder-renamed",
        ),
        pytest.param(
            lambda here, other: {**_folder_of(other), "folder": _folder_of(here)["folder"]},
            False,
            id="this-path-another-folder",
        ),
        pytest.param(
            lambda here, other: {**_folder_of(other), "folder_id": "garbled"},
            False,
            id="a-folder-id-it-cannot-read",
        ),
        pytest.param(
            lambda here, other: {**_folder_of(other), "host": "elsewhere-7"},
            False,
            id="another-host",
        ),
    ],
)
def test_only_a_lock_taken_for_another_folder_is_a_copy(
    tmp_path: Path,
    sleeper: subprocess.Popen[bytes],
    caplog: pytest.LogCaptureFixture,
    names: Callable[[Path, Path], dict[str, Any]],
    taken_over: bool,
) -> None:
    here, other = tmp_path / "here", tmp_path / "other"
    here.mkdir()
    other.mkdir()
    _write_lock(here, pid=sleeper.pid, time=time.time() + 60, **names(here, other))  # live

    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        if taken_over:
            _fit(here)
        else:
            with pytest.raises(RunLockedError, match=r"is in use by another run: process"):
                _fit(here)

    assert any(m.startswith("run.lock was copied") for m in caplog.messages) is taken_over
