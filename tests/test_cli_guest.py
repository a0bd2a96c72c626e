"""The command line as a guest: ``main(argv)`` called in a host's process leaves the host's
signals, logging, warnings and stdout as they were."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

import retinalnet.datasets
from retinalnet import cli
from retinalnet._core.log_marks import SAID_BY_THE_COMMAND_LINE
from retinalnet.cli import main
from retinalnet.datasets import make_synthetic_kermany


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("guest") / "data"
    return make_synthetic_kermany(root, train=3, val=2, test=2, shape=(40, 40), seed=5)


def split_with(
    monkeypatch: pytest.MonkeyPatch,
    data: Path,
    tmp_path: Path,
    during: Callable[[], None],
    *,
    quiet: bool = True,
) -> int:
    """``retinalnet split`` from Python, running ``during()`` while the command runs (as it
    writes its manifest); returns the status. ``quiet=False``: its log level is INFO."""
    real = retinalnet.datasets.write_manifest

    def write_manifest(*args: object, **kwargs: object) -> Path:
        during()
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(retinalnet.datasets, "write_manifest", write_manifest)
    quiet_flag = ["-q"] if quiet else []
    return main(
        [
            "split",
            str(data),
            "--out",
            str(tmp_path / "split.csv"),
            "--val-fraction",
            "0.3",
            *quiet_flag,
        ]
    )


def in_another_thread(work: Callable[[], None]) -> None:
    """Run ``work`` in a thread of the host (a web server's request) and wait for it."""
    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=5)


def test_sigterm_reaches_the_callers_own_handler_once_the_command_has_stopped(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: swallowed; main returned 143 and the host's handler (a service's graceful
    # shutdown) never ran, so the host went on taking jobs
    seen: list[tuple[int, str, bool]] = []

    def host(signum: int, frame: object) -> None:
        restored = signal.getsignal(signal.SIGTERM) is host
        seen.append((signum, capsys.readouterr().err, restored))

    before = signal.signal(signal.SIGTERM, host)
    try:
        status = split_with(
            monkeypatch, data, tmp_path, lambda: signal.raise_signal(signal.SIGTERM)
        )
        assert signal.getsignal(signal.SIGTERM) is host
    finally:
        signal.signal(signal.SIGTERM, before)
    assert status == 143
    # once, after the command's stop and its message, with the host's handler back in place
    assert seen == [(signal.SIGTERM, "retinalnet: terminated\n", True)]
    assert not (tmp_path / "split.csv").exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a host process forked from this one")
def test_sigterm_with_the_default_handler_ends_the_callers_process_after_the_command(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a host that never set a SIGTERM handler is ended by it, as without the command
    # (was: main returned 143 and the host's loop went on)
    said = tmp_path / "stderr.txt"
    child = os.fork()  # the host: a copy of this process, torch imported already
    if child == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            with open(said, "w", buffering=1) as stderr:  # each line kept as it is said
                sys.stderr = stderr
                status = split_with(
                    monkeypatch, data, tmp_path, lambda: signal.raise_signal(signal.SIGTERM)
                )
                print(f"the host goes on after {status}", file=stderr)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 30
    while not (ended := os.waitpid(child, os.WNOHANG))[0]:
        if time.monotonic() > deadline:  # fail, do not hang
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            pytest.fail("the forked host did not end")
        time.sleep(0.02)
    assert os.WIFSIGNALED(ended[1]), said.read_text()
    assert os.WTERMSIG(ended[1]) == signal.SIGTERM
    assert said.read_text() == "retinalnet: terminated\n"


def test_ctrl_c_reaches_the_caller_as_keyboard_interrupt_once_the_command_has_stopped(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: main returned 130 and a host's `for job in jobs: main(job)` went on to the next job
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            split_with(monkeypatch, data, tmp_path, lambda: signal.raise_signal(signal.SIGINT))
    finally:
        signal.signal(signal.SIGINT, before)
    assert capsys.readouterr().err == "retinalnet: interrupted\n"


def test_the_program_still_returns_a_status_when_interrupted(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(retinalnet.datasets, "write_manifest", interrupted)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "retinalnet",
            "split",
            str(data),
            "--out",
            str(tmp_path / "s.csv"),
            "--val-fraction",
            "0.3",
        ],
    )
    assert main() == 130  # the `retinalnet` program itself
    assert capsys.readouterr().err == "retinalnet: interrupted\n"


def test_the_callers_other_threads_log_to_its_handlers_while_the_command_runs(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: the `retinalnet` logger's handlers replaced and its propagation turned off for the
    # whole process: a request thread's records (Predictor's "skipped", marked as said by
    # the command line, dropped by its filter) never reached the host's log pipeline
    got: list[str] = []

    class Host(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(f"{record.levelname} {record.getMessage()}")

    library = logging.getLogger("retinalnet.predictor")

    def request() -> None:
        library.info("made only at the command's level")  # the host's level is WARNING
        library.warning("skipped 1 unreadable image", extra={SAID_BY_THE_COMMAND_LINE: True})
        library.warning("pass weights='x.pth'")  # the host's words, not the command line's

    def during() -> None:
        in_another_thread(request)
        library.warning("the command's own: pass weights='x.pth'")

    logger = logging.getLogger("retinalnet")
    before = (logger.handlers[:], logger.level, logger.propagate)
    root = logging.getLogger()
    handler = Host()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        assert split_with(monkeypatch, data, tmp_path, during, quiet=False) == 0
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert got == ["WARNING skipped 1 unreadable image", "WARNING pass weights='x.pth'"]
    # the command's own thread: said by the command line, with flags, and not to the host
    err = capsys.readouterr().err
    assert "the command's own: pass --weights x.pth\n" in err
    assert "skipped" not in err
    assert "made only" not in err
    assert (logger.handlers, logger.level, logger.propagate) == before  # restored


def test_the_callers_other_threads_keep_their_warning_format_while_the_command_runs(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # was: every warning of the process said as "retinalnet split: warning: ..." and a repeat
    # formatted as nothing, against the host's own "always" filter
    host = warnings.formatwarning
    formatted: list[str] = []

    def request() -> None:
        for _ in range(2):
            formatted.append(warnings.formatwarning(UserWarning("x"), UserWarning, "h.py", 3))

    def during() -> None:
        in_another_thread(request)
        formatted.append(warnings.formatwarning(UserWarning("y"), UserWarning, "r.py", 9))
        formatted.append(warnings.formatwarning(UserWarning("y"), UserWarning, "r.py", 9))

    assert split_with(monkeypatch, data, tmp_path, during) == 0
    python = host(UserWarning("x"), UserWarning, "h.py", 3)
    assert formatted == [python, python, "retinalnet split: warning: y\n", ""]
    assert warnings.formatwarning is host


class BrokenStdout(io.StringIO):
    """A host's stdout whose reader went away."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_broken_pipe_is_an_error_and_the_callers_stdout_stays(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: status 0 and the host's sys.stdout replaced by /dev/null for good
    stdout = BrokenStdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    assert (
        main(["split", str(data), "--out", str(tmp_path / "s.csv"), "--val-fraction", "0.3"]) == 1
    )
    assert sys.stdout is stdout
    assert capsys.readouterr().err == "retinalnet split: error: [Errno 32] Broken pipe\n"


def test_the_program_is_quiet_when_its_stdout_reader_went_away(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `retinalnet split ... | head -1`: status 0, nothing said, stdout silenced for the exit
    read, write = os.pipe()
    os.close(read)
    stdout = open(write, "w", buffering=1)  # noqa: SIM115 - each line written at once
    monkeypatch.setattr(sys, "stdout", stdout)
    argv = ["split", str(data), "--out", str(tmp_path / "s.csv"), "--val-fraction", "0.3"]
    monkeypatch.setattr(sys, "argv", ["retinalnet", *argv])
    status, silenced = main(), sys.stdout
    if silenced is not stdout:
        silenced.close()
    with contextlib.suppress(BrokenPipeError):  # what it holds still cannot be written
        stdout.close()
    assert (status, silenced is not stdout) == (0, True)
    assert capsys.readouterr().err == ""


def test_the_programs_broken_pipe_elsewhere_than_stdout_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a FIFO given to --csv whose reader went away: was status 0, said nothing
    def command(args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(cli._COMMANDS, "models", command)
    monkeypatch.setattr(sys, "argv", ["retinalnet", "models"])
    stdout = sys.stdout
    assert main() == 1
    assert sys.stdout is stdout
    assert capsys.readouterr().err == "retinalnet models: error: [Errno 32] Broken pipe\n"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and `2>&-`")
def test_ctrl_c_while_the_program_starts_with_stderr_closed_exits_130() -> None:
    # was: the handler wrote to sys.stderr, None when started with `2>&-`: an AttributeError
    # in the handler, and the interrupt lost
    import subprocess

    starting = (
        "import os, signal, sys, time\n"
        "from retinalnet import cli\n"
        "assert sys.stderr is None\n"
        "cli._THE_PROGRAM.set(True)\n"
        "with cli._interrupt_exits_at_once():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(30)\n"
        "sys.exit(3)\n"
    )
    ended = subprocess.run(
        [sys.executable, "-c", starting],
        stderr=subprocess.DEVNULL,
        timeout=60,
        check=False,
        preexec_fn=lambda: os.close(2),
    )
    assert ended.returncode == 130


def test_a_guest_command_leaves_the_callers_random_generators_as_they_were(
    data: Path, tmp_path: Path
) -> None:
    """``train --seed 3`` from Python seeded the caller's generators for good: its next draws
    were the same after every call."""
    import random

    import numpy as np
    import torch

    from _cli_helpers import train_small_cnn

    def draws() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    expected = draws()
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])

    assert train_small_cnn(data, tmp_path / "run", "--seed", "3", "--no-calibrate") == 0

    assert draws() == expected


def test_a_guest_command_that_seeds_nothing_leaves_the_generators_alone() -> None:
    """Every guest command put the generators back as they were when it started: the host's
    other threads drew again, after it, what they had drawn while it ran."""
    import random

    import torch

    started, go_on = threading.Event(), threading.Event()
    real = cli._run

    def slow_run(args: object) -> int:
        started.set()
        go_on.wait(30)
        return real(args)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "_run", slow_run)
        guest = threading.Thread(target=lambda: main(["models"]))
        guest.start()
        assert started.wait(30)
        during = [random.random(), float(torch.rand(1))]  # the host's thread, meanwhile
        go_on.set()
        guest.join(30)
    assert [random.random(), float(torch.rand(1))] != during
