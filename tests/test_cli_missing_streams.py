"""Commands started with stdout or stderr closed, or on a descriptor not open for writing."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retinalnet.cli._missing_streams import missing_streams_discarded

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX descriptors and `2>&-`")


@POSIX
def test_an_error_with_stderr_closed_never_lands_on_stdout(tmp_path: Path) -> None:
    # was: with sys.stderr None, print(file=sys.stderr) writes to stdout: the error line, the
    # skipped files and notes joined --json's output, which no longer parsed
    ended = subprocess.run(
        [sys.executable, "-m", "retinalnet", "info", str(tmp_path / "missing.pt"), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(2),
        timeout=120,
        check=False,
    )
    assert ended.returncode == 1
    assert ended.stdout == b""


def test_a_missing_stream_is_the_null_device_while_the_block_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stderr", None)
    with missing_streams_discarded():
        assert sys.stderr is not None
        print("meant for stderr", file=sys.stderr)
        print("result")
    assert sys.stderr is None
    assert capsys.readouterr().out == "result\n"


@POSIX
def test_a_stream_on_a_descriptor_open_for_reading_only_is_the_null_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # was: a wrapper's `2>&-` seen through its exec (pyenv's shims) left descriptor 2 open
    # read-only: "Bad file descriptor" stopped predict after its results, before --cam
    (tmp_path / "script").write_text("#!/bin/sh\n")
    with open(tmp_path / "script", encoding="utf-8") as read_only:
        monkeypatch.setattr(sys, "stderr", read_only)
        with missing_streams_discarded():
            print("meant for stderr", file=sys.stderr)
            sys.stderr.flush()
        assert sys.stderr is read_only
    assert (tmp_path / "script").read_text() == "#!/bin/sh\n"


def test_a_stream_that_is_there_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    caught = io.StringIO()
    monkeypatch.setattr(sys, "stderr", caught)
    with missing_streams_discarded():
        assert sys.stderr is caught


def test_two_commands_at_once_without_stderr_keep_the_null_device_until_both_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: the first to end put None back (and closed its null device) under the second,
    # whose notes then landed on stdout and whose log handler wrote to a closed file
    monkeypatch.setattr(sys, "stderr", None)
    first, second = missing_streams_discarded(), missing_streams_discarded()
    first.__enter__()
    second.__enter__()
    kept = sys.stderr
    first.__exit__(None, None, None)
    assert sys.stderr is kept
    print("the second command's note", file=sys.stderr)
    assert kept is not None
    kept.write("and its log line\n")
    second.__exit__(None, None, None)
    assert sys.stderr is None
    assert capsys.readouterr().out == ""


def test_the_null_device_is_closed_as_the_interpreter_exits() -> None:
    # was: "ResourceWarning: unclosed file <... name='/dev/null'>" at the exit of a process
    # that had run a command with a closed stream (shown under python -X dev, and by pytest)
    script = (
        "import sys; sys.stdout.close()\n"
        "from retinalnet.cli._missing_streams import missing_streams_discarded\n"
        "with missing_streams_discarded():\n"
        "    print('dropped')\n"
    )
    ended = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ended.returncode == 0, ended.stderr
    assert "ResourceWarning" not in ended.stderr
