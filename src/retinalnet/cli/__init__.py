"""The ``retinalnet`` command: demo, train, evaluate, calibrate, predict, audit, split,
models."""

from __future__ import annotations

import argparse
import codecs
import importlib
import logging
import os
import select
import signal
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout, suppress
from contextvars import ContextVar

from retinalnet._core.stream_flush import flush_if_open
from retinalnet._core.torchrun import torchrun_rank_and_size
from retinalnet._version import __version__
from retinalnet.cli._advice import CliText, cli_message
from retinalnet.cli._guest import CommandLogHandler, host_random_state_kept, one_line_warnings
from retinalnet.cli._missing_streams import missing_streams_discarded

__all__ = ["build_parser", "main"]

logger = logging.getLogger("retinalnet")

# ImportError: an optional package a command needs (pydicom, tensorboard, onnx) is missing;
# the library's message says what to install
_USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError, ImportError)


def _command_thread() -> int | None:
    """The thread whose log lines and warnings the command line shows its way: the calling
    thread as a guest (:func:`main` with ``argv``; the host's other threads are left
    alone), every thread (``None``) as the program."""
    return None if _THE_PROGRAM.get() else threading.get_ident()


@contextmanager
def _logging_to_stderr(args: argparse.Namespace) -> Iterator[None]:
    """Show the library's log lines on stderr while a command runs, then restore logging.

    As a guest, only the command's thread's: the records of the host's other threads go to
    the host's handlers, as without the command (:class:`~retinalnet.cli._guest.
    CommandLogHandler`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(CliText(args))  # the library's Python advice, said with flags
    saved = (logger.handlers[:], logger.level, logger.propagate)
    router = CommandLogHandler(logger, handler, _command_thread())
    logger.handlers[:] = [router]
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


@contextmanager
def _warnings_in_one_line(command: str) -> Iterator[None]:
    """Show a warning as one line, ``retinalnet CMD: warning: MESSAGE``, not as Python's two
    lines naming a source line inside retinalnet, and each message once per command (a
    small scan read for its prediction, then for ``--cam``, warned of once); then restore
    the format.

    Only the format changes (``warnings.formatwarning``; a message said already formats as
    nothing): filters, and warnings recorded by ``warnings.catch_warnings(record=True)``
    (pytest.warns), work as before. As a guest, only the command's thread's warnings: the
    host's other threads keep their format and every repeat their filters let through.
    """
    saved = warnings.formatwarning
    warnings.formatwarning = one_line_warnings(command, _command_thread(), saved)
    try:
        yield
    finally:
        warnings.formatwarning = saved


def _command(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """The command ``function`` of ``retinalnet.cli.module``, imported when it runs (with
    torch, seconds), where Ctrl-C exits at once (:func:`_interrupt_exits_at_once`)."""

    def run(args: argparse.Namespace) -> int:
        command: Callable[[argparse.Namespace], int]
        with _interrupt_exits_at_once():
            command = getattr(importlib.import_module(f"retinalnet.cli.{module}"), function)
        return command(args)

    return run


_COMMANDS = {
    "demo": _command("_train", "run_demo"),
    "train": _command("_train", "run_train"),
    "evaluate": _command("_evaluate", "run_evaluate"),
    "predict": _command("_predict", "run_predict"),
    "audit": _command("_data", "run_audit"),
    "split": _command("_data", "run_split"),
    "models": _command("_train", "run_models"),
    "calibrate": _command("_calibrate", "run_calibrate"),
    "export": _command("_export", "run_export"),
    "info": _command("_info", "run_info"),
}

# the commands that run under torchrun, one process per rank; the others run in one process
_DISTRIBUTED_COMMANDS = frozenset({"train"})


@contextmanager
def _output_of_rank(rank: int) -> Iterator[None]:
    """Under ``torchrun``, what the command prints, logs and warns comes from rank 0 only;
    errors come from every rank."""
    if rank == 0:
        yield
        return
    level = logger.level
    with open(os.devnull, "w") as silent, redirect_stdout(silent), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, SLURM, ``docker stop``), raised where the command is,
    so that it stops as after Ctrl-C: files written whole or not at all, temporary files and
    the run's lock removed, the epochs done and the way to resume said."""


_SIGCHLD = getattr(signal, "SIGCHLD", None)  # not on Windows


def _raise_terminated(signum: int, frame: types.FrameType | None) -> None:
    # the stop runs to its end: another SIGTERM (a process group's, a second `kill`) would
    # cut the writing of a file or of the resume advice; DataLoader workers stopped by the
    # same signal are not a new error (torch's SIGCHLD handler would raise one anywhere)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if _SIGCHLD is not None:
        signal.signal(_SIGCHLD, signal.SIG_DFL)
    raise Terminated


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while a command runs (in the main thread only,
    where Python can catch signals), then the handlers before are restored. A handler set
    outside Python (``getsignal`` is ``None``) is left alone: it could not be restored."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is None
    ):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    previous_child = None if _SIGCHLD is None else signal.getsignal(_SIGCHLD)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if _SIGCHLD is not None and previous_child is not None:
            signal.signal(_SIGCHLD, previous_child)


_PRINTABLE = "retinalnet.printable"
"""The codec error handler stdout and stderr use while a command runs."""


def _printable(error: UnicodeError) -> tuple[bytes, int]:
    """Write what the output's encoding cannot: a file name's bytes that are not UTF-8 as
    they are (``surrogateescape``), any other character as a ``\\uXXXX`` escape
    (``backslashreplace``): a Chinese file name printed into a cp1252 file (Windows, output
    redirected) never fails the command after its work."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    out = bytearray()
    for character in error.object[error.start : error.end]:
        code = ord(character)
        if 0xDC80 <= code <= 0xDCFF:  # a byte of a name that is not UTF-8
            out.append(code - 0xDC00)
        else:
            escaped = f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
            out += (escaped if code <= 0xFFFF else f"\\U{code:08x}").encode("ascii")
    return bytes(out), error.end


codecs.register_error(_PRINTABLE, _printable)


@contextmanager
def _file_names_printed_as_they_are() -> Iterator[None]:
    """Print a file name that is not UTF-8 (a Latin-1 ``café.jpeg``) with its own bytes, as
    ``ls`` does, and a character the output's encoding lacks (``中文`` into a cp1252 file on
    Windows) as an escape, rather than fail after the work ("surrogates not allowed", "'charmap'
    codec can't encode"): stdout's and stderr's ``errors`` are :func:`_printable` while a
    command runs, then as before."""
    saved = []
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        errors = getattr(stream, "errors", None)
        if reconfigure is not None and errors is not None:
            reconfigure(errors=_PRINTABLE)
            saved.append((reconfigure, errors))
    try:
        yield
    finally:
        for reconfigure, errors in saved:
            # it flushes first: a stream whose reader went away (`| head`) cannot be, and
            # that is the command's BrokenPipeError, dealt with already
            with suppress(BrokenPipeError):
                reconfigure(errors=errors)


_THE_PROGRAM: ContextVar[bool] = ContextVar("retinalnet_cli_is_the_program", default=False)
"""Whether :func:`main` runs as the ``retinalnet`` program (no ``argv``), which may end the
process at once on Ctrl-C while it starts, returns a status when interrupted or terminated,
silences a stdout whose reader went away, and shows every thread's log lines and warnings;
called with ``argv`` (a guest) it does none of these (see :func:`main`)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Exit status 0 on success, 1 when an error stops the command (shown in one line),
    2 for bad arguments, 130 when interrupted (Ctrl-C), 143 when terminated (SIGTERM).

    Without ``argv`` it is the ``retinalnet`` program itself: Ctrl-C while it starts ends
    the process at once, and an interrupt or SIGTERM later returns 130 or 143 once the
    command has stopped (files written whole or not at all, its lock removed).

    Called with ``argv`` (from Python: a notebook, a script, a service, a test), it is a
    guest in the caller's process, which it neither ends itself nor changes. An interrupt
    or SIGTERM stops the command as above, says so (``retinalnet: interrupted``), and then
    reaches the caller as it would have without the command: Ctrl-C as
    ``KeyboardInterrupt`` raised from ``main``, SIGTERM raised again for the caller's own
    handler (restored first; the default one ends the process), after which ``main``
    returns 143. The command's log lines and one-line warnings are its own thread's: the
    caller's other threads log and warn as before. An output whose reader went away
    (``BrokenPipeError``) is an error, status 1, and ``sys.stdout`` is left as it is; only
    the program, its stdout piped into ``head``, returns 0 then.

    Raises
    ------
    KeyboardInterrupt
        Called with ``argv``, when interrupted (Ctrl-C): once the command has stopped.
    """
    guest = argv is not None
    argv = None if argv is None else list(argv)  # read once (a generator is read once)
    token = _THE_PROGRAM.set(not guest)
    try:
        with missing_streams_discarded():  # `2>&-`: dropped, never on stdout
            try:
                if (sys.argv[1:] if argv is None else argv) == ["--version"]:
                    print(f"retinalnet {__version__}")  # without the parser: no torch
                    raise SystemExit(0)  # as argparse's --version (and --help) end
                # an --arch given is checked against the registry, which imports torch
                with _interrupt_exits_at_once():
                    args = build_parser().parse_args(argv)
                with (
                    _sigterm_raises(),
                    _file_names_printed_as_they_are(),
                    host_random_state_kept(guest),
                ):
                    return _run(args)
            except KeyboardInterrupt as stop:  # Terminated too
                terminated = isinstance(stop, Terminated)
                if not getattr(stop, _SAID, False):  # while it starts: no command to stop yet
                    print(
                        f"retinalnet: {'terminated' if terminated else 'interrupted'}",
                        file=sys.stderr,
                    )
                if not guest:
                    return 143 if terminated else 130
                if not terminated:
                    raise  # the caller's Ctrl-C, for the caller to handle
                # the caller's SIGTERM handler is restored (by _sigterm_raises): its turn now
                signal.raise_signal(signal.SIGTERM)
                return 143
    finally:
        _THE_PROGRAM.reset(token)


_SAID = "retinalnet_cli_said"
"""Marks an interrupt the command has stopped on and said (``retinalnet: interrupted``)."""


@contextmanager
def _interrupt_exits_at_once() -> Iterator[None]:
    """While a command starts (imports torch, parses its arguments; nothing written yet),
    Ctrl-C exits at once with ``retinalnet: interrupted`` and status 130, then the handler
    before is restored. A KeyboardInterrupt raised inside torch's or NumPy's import printed a
    traceback, or surfaced as another error ("cannot load module more than once"). Only as
    the program (:func:`main` without ``argv``): a caller's process is never ended."""
    if not _THE_PROGRAM.get() or threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, frame: types.FrameType | None) -> None:
        print("retinalnet: interrupted", file=sys.stderr)  # the null device if `2>&-`
        with suppress(OSError):
            flush_if_open(sys.stderr)
        os._exit(130)

    previous = signal.signal(signal.SIGINT, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def build_parser() -> argparse.ArgumentParser:
    """The ``retinalnet`` argument parser (imported when first built; building it imports no
    torch, parsing an ``--arch`` does)."""
    from retinalnet.cli._parser import build_parser as build

    return build()


def _run(args: argparse.Namespace) -> int:
    try:
        rank, world_size = torchrun_rank_and_size()
        if world_size > 1 and args.command not in _DISTRIBUTED_COMMANDS:
            raise ValueError(
                f"it runs in one process, and this is rank {rank} of {world_size} under "
                "torchrun (WORLD_SIZE is set): run it without torchrun; only `retinalnet "
                "train` trains across processes"
            )
        if rank == 0:  # the rank that writes: what it writes can be written, before any work
            from retinalnet.cli._preflight import check_outputs

            check_outputs(args)
        with (
            _logging_to_stderr(args),
            _warnings_in_one_line(args.command),
            _output_of_rank(rank),
        ):
            return _COMMANDS[args.command](args)
    except KeyboardInterrupt as interrupt:  # Terminated too; its stop is done: said here
        stopped = isinstance(interrupt, Terminated)
        print(f"retinalnet: {'terminated' if stopped else 'interrupted'}", file=sys.stderr)
        if not _THE_PROGRAM.get():  # a guest's: raised on, for the caller (see main)
            setattr(interrupt, _SAID, True)
            raise
        return 143 if stopped else 130
    except _USER_ERRORS as error:
        if isinstance(error, BrokenPipeError) and _THE_PROGRAM.get() and _stdout_broke():
            # output piped into `head` and closed early: the reader has what it wanted
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
            return 0
        print(f"retinalnet {args.command}: error: {cli_message(args, error)}", file=sys.stderr)
        return 1
    except Warning as warning:  # raised as an error: `python -W error`, PYTHONWARNINGS=error
        print(
            f"retinalnet {args.command}: error: {cli_message(args, warning)} (a "
            f"{type(warning).__name__} made an error by -W error or PYTHONWARNINGS; without "
            "that, it is only a warning)",
            file=sys.stderr,
        )
        return 1


def _stdout_broke() -> bool:
    """Whether stdout's reader went away (``retinalnet predict ... | head -1``): what stdout
    holds cannot be written, or (POSIX) its pipe reports an error. A broken pipe elsewhere
    (a FIFO given to ``--csv``) is the command's error."""
    try:
        sys.stdout.flush()
        descriptor = sys.stdout.fileno()
    except BrokenPipeError:
        return True
    except (AttributeError, OSError, ValueError):  # no stdout (pythonw), or no descriptor
        return False
    poll = getattr(select, "poll", None)  # not on Windows
    if poll is None:
        return False
    poller = poll()
    poller.register(descriptor, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))
