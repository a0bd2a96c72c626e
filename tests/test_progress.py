"""Progress: tqdm on a terminal, plain log lines elsewhere, nothing when asked for none."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import re
import sys
from collections.abc import Iterator

import pytest

from _training_helpers import linear_classifier, separable_data
from retinalnet._core import progress
from retinalnet._core.progress import progress_bar, progress_output
from retinalnet.cli import _logging_to_stderr
from retinalnet.training import Trainer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress, "_now", fake)
    return fake


@pytest.fixture
def no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


def _run(clock: Clock, items: int, seconds_each: float, total: int | None = None) -> None:
    for _ in progress_bar(range(items), total=total, description="audit", enabled=True):
        clock.now += seconds_each


@pytest.mark.usefixtures("no_tqdm")
def test_without_tqdm_a_long_loop_logs_a_line_per_tenth_and_one_at_the_end(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        _run(clock, items=20, seconds_each=2.0, total=20)

    lines = [r.getMessage() for r in caplog.records]
    # the first 10 s are quiet: items 1-4 take 8 s; item 6 (30%) is the first tenth after
    assert lines[0] == "audit: 6/20 (30%), 12 s, about 28 s left"
    assert lines[-1] == "audit: 20/20 (100%), 40 s"
    assert len(lines) == 8  # 30%, 40%, ..., 90%, then the end


@pytest.mark.usefixtures("no_tqdm")
def test_a_short_loop_logs_nothing_and_progress_false_never_does(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        _run(clock, items=50, seconds_each=0.1, total=50)  # 5 s in all
        for _ in progress_bar(range(50), total=50, description="x", enabled=False):
            clock.now += 2.0
    assert caplog.records == []


@pytest.mark.usefixtures("no_tqdm")
def test_without_a_total_a_heartbeat_every_few_minutes(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        _run(clock, items=100, seconds_each=7.0)  # 700 s
    assert [r.getMessage() for r in caplog.records] == [
        "audit: 43 done, 5 min",
        "audit: 86 done, 10 min",
        "audit: 100 done, 12 min",
    ]


def test_without_a_terminal_tqdm_gives_way_to_the_lines(
    clock: Clock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: not a TTY
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        _run(clock, items=10, seconds_each=5.0, total=10)
    assert sys.stderr.getvalue() == ""  # no bar drawn into the file
    assert caplog.records[-1].getMessage() == "audit: 10/10 (100%), 50 s"


def test_on_a_terminal_tqdm_draws_its_bar(
    clock: Clock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with caplog.at_level(logging.INFO, logger="retinalnet"):
        _run(clock, items=10, seconds_each=5.0, total=10)
    assert "audit" in terminal.getvalue()
    assert caplog.records == []


# ---------------------------------------------------------------------------------------------
# The line per epoch of a fit, shown without any logging set up

EPOCH_LINE = re.compile(
    r"^epoch (\d)/2  train_loss \d\.\d{4}  train_acc \d+\.\d\d%  val_loss \d\.\d{4}  "
    r"val_acc \d+\.\d\d%  \d+\.\ds$",
    re.MULTILINE,
)


@contextlib.contextmanager
def no_logging_set_up() -> Iterator[None]:
    """No handler on the root logger (pytest keeps its capture handlers there), as in a
    plain Python session, for the duration of the block."""
    root = logging.getLogger()
    package = logging.getLogger("retinalnet")
    saved = root.handlers[:], root.level
    assert package.handlers == [], "a test left a handler on the retinalnet logger"
    root.handlers[:] = []
    root.setLevel(logging.WARNING)  # Python's default
    try:
        yield
    finally:
        root.handlers[:], root.level = saved[0], saved[1]


def _fit(progress: bool = True) -> None:
    trainer = Trainer(linear_classifier(), max_epochs=2, device="cpu", progress=progress)
    trainer.fit(separable_data(8), separable_data(4, seed=1))


def test_a_fit_prints_a_line_per_epoch_on_stderr_without_logging_set_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    package = logging.getLogger("retinalnet")
    with no_logging_set_up():
        _fit()
        after = package.handlers[:], package.level

    captured = capsys.readouterr()
    assert [m.group(1) for m in EPOCH_LINE.finditer(captured.err)] == ["1", "2"]
    assert captured.out == ""
    assert after == ([], logging.NOTSET)  # nothing left behind once the fit is over


def test_progress_false_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with no_logging_set_up():
        _fit(progress=False)
    assert capsys.readouterr().err == ""


def test_logging_set_up_by_the_caller_gets_each_line_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    written = io.StringIO()
    with no_logging_set_up():
        logging.basicConfig(stream=written, level=logging.INFO, format="%(message)s")
        _fit()

    assert [m.group(1) for m in EPOCH_LINE.finditer(written.getvalue())] == ["1", "2"]
    assert capsys.readouterr().err == ""


def test_the_command_lines_handler_gets_each_line_once(capsys: pytest.CaptureFixture[str]) -> None:
    with no_logging_set_up(), _logging_to_stderr(argparse.Namespace(command="models", quiet=False)):
        _fit()
    assert [m.group(1) for m in EPOCH_LINE.finditer(capsys.readouterr().err)] == ["1", "2"]


def test_a_level_the_caller_set_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    package = logging.getLogger("retinalnet")
    with no_logging_set_up():
        package.setLevel(logging.WARNING)
        try:
            with progress_output(True):
                package.info("an info line")
                package.warning("a warning")
        finally:
            package.setLevel(logging.NOTSET)
    assert capsys.readouterr().err == "a warning\n"
