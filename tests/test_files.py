"""Tests for retinalnet._core.files: digests and atomic writes that fail with a clear error."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import re
import signal
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from retinalnet._core import files
from retinalnet._core.files import FileWriteError, atomic_write, file_digest, os_error_in_words


def _quoted(path: Path) -> str:
    return re.escape(repr(str(path)))


def test_file_digest_is_the_sha256_of_the_content(tmp_path: Path) -> None:
    path = tmp_path / "scan.bin"
    path.write_bytes(b"x" * 100_000)
    assert file_digest(path) == hashlib.sha256(b"x" * 100_000).digest()


def test_atomic_write_writes_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "out.bin"
    assert atomic_write(path, lambda stream: stream.write(b"one")) == path
    atomic_write(path, lambda stream: stream.write(b"two"))
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["out.bin"]


def _open_files() -> set[str]:
    """The files this process holds open (Linux's /proc)."""
    fds = Path("/proc/self/fd")
    return {str(fd.readlink()) for fd in fds.iterdir() if fd.is_symlink()}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc")
def test_atomic_write_closes_its_file_before_renaming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows refuses to rename a file that is open (WinError 32): every checkpoint, CSV and
    # report would fail there if the temporary file were renamed while still open
    open_at_rename: list[bool] = []
    rename = Path.replace

    def replace(self: Path, target: Any) -> Path:
        open_at_rename.append(str(self) in _open_files())
        return rename(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    atomic_write(tmp_path / "out.bin", lambda stream: stream.write(b"one"))
    assert open_at_rename == [False]
    assert (tmp_path / "out.bin").read_bytes() == b"one"


def test_atomic_write_tries_a_held_file_again_on_windows_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an antivirus scan or a spreadsheet holding the old CSV refuses the rename for a moment
    rename = Path.replace
    refusals = [PermissionError(errno.EACCES, "Access is denied")] * 2

    def replace(self: Path, target: Any) -> Path:
        if refusals:
            raise refusals.pop()
        return rename(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    monkeypatch.setattr(files.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(files, "_ON_WINDOWS", True)
    atomic_write(tmp_path / "out.bin", lambda stream: stream.write(b"one"))
    assert (tmp_path / "out.bin").read_bytes() == b"one"
    monkeypatch.setattr(files, "_ON_WINDOWS", False)  # a refusal here is the system's answer
    refusals.append(PermissionError(errno.EACCES, "Permission denied"))
    with pytest.raises(FileWriteError, match="permission denied"):
        atomic_write(tmp_path / "out.bin", lambda stream: stream.write(b"two"))
    assert (tmp_path / "out.bin").read_bytes() == b"one"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


class _FillingDisk(io.FileIO):
    """A file on a disk with ``room`` bytes left: the write that passes it fails (ENOSPC)."""

    room = 10

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def _fail(where: str, code: int) -> Callable[[pytest.MonkeyPatch], None]:
    """Make one step of a write fail with ``OSError(code)``."""

    def error(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        if where == "write":
            monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: _FillingDisk(fd, "wb"))
        elif where == "fsync":
            monkeypatch.setattr(files.os, "fsync", error)
        elif where == "temporary-file":
            monkeypatch.setattr(tempfile, "mkstemp", error)
        elif where == "rename":
            monkeypatch.setattr(Path, "replace", error)
        elif where == "folder":
            monkeypatch.setattr(Path, "mkdir", error)

    return patch


FAILURES = [
    ("write", errno.ENOSPC, r"no space left on device \[ENOSPC\]",
     "Free some disk space or write elsewhere"),
    ("fsync", errno.EIO, r"input/output error \[EIO\]", "Check the path and the disk"),
    ("fsync", errno.EDQUOT, r"disk quota exceeded \[EDQUOT\]", "Free some of your disk quota"),
    ("temporary-file", errno.EACCES, r"permission denied \[EACCES\]",
     "Check the folder's permissions or write elsewhere"),
    ("rename", errno.EPERM, r"operation not permitted \[EPERM\]", "Check the folder's"),
    ("folder", errno.EROFS, r"read-only file system \[EROFS\]", "Write to a writable file"),
]  # fmt: skip


@pytest.mark.parametrize(("where", "code", "words", "hint"), FAILURES)
def test_a_failed_write_names_the_path_and_cause_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, code: int, words: str, hint: str
) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"the previous content, longer than the room left")
    _fail(where, code)(monkeypatch)
    with pytest.raises(
        FileWriteError,
        match=rf"^cannot write {_quoted(path)}: {words}; the file there before is untouched\. "
        rf"{re.escape(hint)}",
    ) as info:
        atomic_write(path, lambda stream: stream.write(b"new content, longer than the room"))
    monkeypatch.undo()
    assert isinstance(info.value, OSError)
    assert (info.value.errno, info.value.path, info.value.previous) == (code, path, True)
    assert path.read_bytes() == b"the previous content, longer than the room left"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary file left


def test_a_failed_first_write_says_nothing_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.bin"
    _fail("write", errno.ENOSPC)(monkeypatch)
    with pytest.raises(FileWriteError, match=r"\[ENOSPC\]; nothing was written\. Free"):
        atomic_write(path, lambda stream: stream.write(b"more than ten bytes"))
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [ValueError("not a disk problem"), KeyboardInterrupt()])
def test_errors_that_are_not_the_disks_pass_unchanged(tmp_path: Path, error: BaseException) -> None:
    def write(stream: Any) -> None:
        stream.write(b"half")
        raise error

    with pytest.raises(type(error)) as info:
        atomic_write(tmp_path / "out.bin", write)
    assert info.value is error
    assert list(tmp_path.iterdir()) == []


def test_write_error_survives_pickling(tmp_path: Path) -> None:
    error = FileWriteError(tmp_path / "x.pt", "no space left on device [ENOSPC]", 28, True)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.errno, copy.path, copy.previous) == (
        FileWriteError,
        str(error),
        28,
        tmp_path / "x.pt",
        True,
    )


def test_os_error_in_words() -> None:
    assert os_error_in_words(PermissionError(errno.EACCES, "x")) == "permission denied [EACCES]"
    assert os_error_in_words(OSError("something odd")) == "something odd"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_gives_the_permissions_open_would(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        new = atomic_write(tmp_path / "new.pt", lambda stream: stream.write(b"x"))
        assert stat.S_IMODE(new.stat().st_mode) == 0o644  # not the 0o600 of a temporary file
        kept = tmp_path / "kept.pt"
        kept.write_bytes(b"old")
        kept.chmod(0o640)
        atomic_write(kept, lambda stream: stream.write(b"new"))
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    finally:
        os.umask(umask)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_never_changes_the_umask_another_thread_creates_files_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting the umask to 0 for a moment made a host thread's new files writable by all
    (4,888 of 19,578 in a race): the umask is read, not set and put back."""
    umasks: list[int] = []
    real = os.umask

    def recorded(mask: int) -> int:
        umasks.append(mask)
        return real(mask)

    monkeypatch.setattr(os, "umask", recorded)
    before = real(0o027)
    try:
        new = atomic_write(tmp_path / "new.csv", lambda stream: stream.write(b"x"))
        assert stat.S_IMODE(new.stat().st_mode) == 0o640
    finally:
        real(before)
    if Path("/proc/self/status").exists():
        assert umasks == []  # was: [0, 0o027]
    else:  # elsewhere never 0: new files private while it is looked at
        assert 0 not in umasks


# --- symbolic links: the file a link points to is written, and the link kept ---------------


def _link(link: Path, target: Path | str) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda tmp: _link(tmp / "ck" / "best.pt", tmp / "models" / "v3.pt"), id="abs"),
        pytest.param(lambda tmp: _link(tmp / "ck" / "best.pt", "../models/v3.pt"), id="relative"),
        pytest.param(
            lambda tmp: _link(
                tmp / "ck" / "best.pt", _link(tmp / "ck" / "v3.pt", "../models/v3.pt")
            ),
            id="link-to-link",
        ),
    ],
)
def test_atomic_write_through_a_link_writes_its_target_and_keeps_the_link(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    target = tmp_path / "models" / "v3.pt"
    target.parent.mkdir()
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = make(tmp_path)
    links = {p.name: p.readlink() for p in link.parent.iterdir()}

    assert atomic_write(link, lambda stream: stream.write(b"new")) == link

    assert target.read_bytes() == b"new"
    assert {p.name: p.readlink() for p in link.parent.iterdir()} == links  # links kept
    assert [p.name for p in target.parent.iterdir()] == ["v3.pt"]  # no temporary file left
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_atomic_write_through_a_dangling_link_creates_its_target(tmp_path: Path) -> None:
    link = _link(tmp_path / "best.pt", tmp_path / "models" / "v3.pt")
    atomic_write(link, lambda stream: stream.write(b"new"))
    assert link.is_symlink()
    assert (tmp_path / "models" / "v3.pt").read_bytes() == b"new"


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_a_failed_write_through_a_link_names_its_target_and_keeps_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "models" / "v3.pt"
    target.parent.mkdir()
    target.write_bytes(b"the previous content, longer than the room left")
    link = _link(tmp_path / "best.pt", target)
    _fail("write", errno.ENOSPC)(monkeypatch)

    with pytest.raises(FileWriteError, match=rf"^cannot write {_quoted(target)}: no space"):
        atomic_write(link, lambda stream: stream.write(b"new content, longer than the room"))

    monkeypatch.undo()
    assert link.is_symlink()
    assert target.read_bytes() == b"the previous content, longer than the room left"
    assert [p.name for p in target.parent.iterdir()] == ["v3.pt"]


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_a_loop_of_links_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    first = _link(tmp_path / "a.pt", tmp_path / "b.pt")
    _link(tmp_path / "b.pt", first)

    with pytest.raises(
        FileWriteError,
        match=r"too many levels of symbolic links \[ELOOP\]; nothing was written\. Fix the "
        r"symbolic link, or write elsewhere",
    ):
        atomic_write(first, lambda stream: stream.write(b"new"))
    assert first.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]


@pytest.mark.parametrize("name", ["/dev/fd/{fd}", "/proc/self/fd/{fd}"])
def test_atomic_write_to_a_redirected_descriptor_appends_to_the_log_it_leads_to(
    tmp_path: Path, name: str
) -> None:
    """``(echo started; retinalnet predict ... --csv /dev/stdout) >> job.log``: written
    through the shell's descriptor; before, a file was renamed over job.log (its earlier
    lines lost), and opening it again for writing would have truncated it."""
    log = tmp_path / "job.log"
    log.write_bytes(b"job 42 started\n")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        atomic_write(name.format(fd=fd), lambda stream: stream.write(b"path,class_1\n"))
        os.write(fd, b"job done\n")
    finally:
        os.close(fd)
    assert log.read_bytes() == b"job 42 started\npath,class_1\njob done\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_write_to_a_descriptor_with_no_stdout_or_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started with stdout and stderr closed (``>&- 2>&-``, pythonw), Python has
    ``sys.stdout = sys.stderr = None``: flushing them before writing to a descriptor was a
    raw AttributeError, and the file was not written."""
    log = tmp_path / "job.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    monkeypatch.setattr("sys.stdout", None)
    monkeypatch.setattr("sys.stderr", None)
    try:
        atomic_write(f"/dev/fd/{fd}", lambda stream: stream.write(b"path,class_1\n"))
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert log.read_bytes() == b"path,class_1\n"


def test_atomic_write_to_dash_writes_to_standard_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    atomic_write("-", lambda stream: stream.write(b"path,class_1\n"))  # --csv -
    assert capfd.readouterr().out == "path,class_1\n"
    assert not (tmp_path / "-").exists()  # was: a file named '-'


def test_atomic_write_to_a_pipe_writes_through_it_and_leaves_it_a_pipe(tmp_path: Path) -> None:
    """``--csv /dev/stdout | tail``: no file to replace; before, the temporary file was
    renamed over the pipe's path (or over /dev/stdout's target, which does not exist)."""
    import threading

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    assert atomic_write(pipe, lambda stream: stream.write(b"path,class_1\n")) == pipe
    reader.join(timeout=10)
    assert received == [b"path,class_1\n"]
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_a_write_takes_effect_once_the_file_is_whole(
    tmp_path: Path, signum: int
) -> None:
    # inside torch.save an interrupt became "RuntimeError: [enforce fail at
    # inline_container.cc] unexpected pos" (exit 1, "error"), and the new file was lost
    path = tmp_path / "last.pt"
    path.write_bytes(b"epoch 1")

    class StoppedError(Exception):
        pass

    def stop(number: int, frame: object) -> None:
        raise StoppedError(number)

    def write(stream: Any) -> None:
        stream.write(b"epoch ")
        os.kill(os.getpid(), signum)  # Ctrl-C, `kill`, SLURM's SIGTERM, mid-write
        time.sleep(0.05)  # the handler would run here
        stream.write(b"2")

    before = signal.signal(signum, stop)
    try:
        with pytest.raises(StoppedError):
            atomic_write(path, write)
        assert signal.getsignal(signum) is stop  # the caller's handler, restored
    finally:
        signal.signal(signum, before)
    assert path.read_bytes() == b"epoch 2"  # whole, then the interrupt
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize(
    "name",
    [
        "predictions-" + "x" * 238 + ".csv",  # 254 bytes: was "file name too long"
        "x" * 251 + ".csv",  # 255 bytes, the longest ext4, APFS and NTFS allow
        "\u4e2d" * 81 + ".json",  # 248 bytes: 81 Chinese characters of 3 bytes each
    ],
    ids=["254 bytes", "255 bytes", "81 CJK characters"],
)
def test_atomic_write_writes_a_name_as_long_as_the_disk_allows(tmp_path: Path, name: str) -> None:
    """The temporary file beside the target was named ``.NAME.XXXXXXXX.tmp``, 14 bytes
    longer than NAME: a name of 242 to 255 bytes could be created but not written."""
    path = tmp_path / name
    assert atomic_write(path, lambda stream: stream.write(b"path,class_1\n")) == path
    assert path.read_bytes() == b"path,class_1\n"
    assert [p.name for p in tmp_path.iterdir()] == [name]
