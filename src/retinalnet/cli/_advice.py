"""Messages for shell users: the library's advice, said with the command's flags.

The library's errors and log lines give Python advice (``weights='/path/to/file.pth'``,
``device='cpu'``, ``fit(..., resume_from=...)``). The command line shows them through
:func:`cli_text`, which says the same with flags (``--weights /path/to/file.pth``,
``--device cpu``, ``--resume``). The table is the one place where that translation lives.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import re
import shlex
from pathlib import Path

from retinalnet._core.log_marks import SAID_BY_THE_COMMAND_LINE
from retinalnet.cli._escaped_names import CODE_IN_BACKTICKS, names_as_bytes

__all__ = [
    "CliText",
    "cli_message",
    "cli_text",
    "demo_command",
    "require_matplotlib",
    "require_tensorboard",
    "resume_command",
]

# (Python phrase, what a shell user types), applied in order: longer phrases first.
_PHRASES: tuple[tuple[str, str], ...] = (
    # "resume that run (fit(..., resume_from=last.pt), or --resume on the command line)"
    (r"\(fit\(\.\.\., resume_from=[^()]*\), or --resume on the command line\)", "(--resume)"),
    (r"\(overwrite=True, or --overwrite\)", "(--overwrite)"),
    # a run with a learning-rate scheduler of its own (the demo's, a Python run's)
    (
        r"resume with the run's scheduler \(the task it was trained with: "
        r"ClassificationTask\(scheduler=\.\.\.\)\), or start a new run",
        "the command line builds no scheduler but its --recipe's: continue that run in "
        "Python with the task it was trained with, or start a new run without --resume",
    ),
    (
        r"build the model with the checkpoint's preprocessing \(load_checkpoint\(path\)"
        r"\.preprocessing\)",
        "pass the --size (and --reduced-decode) the run was started with",
    ),
    (
        r"resume it with Trainer\.fit\(resume_from=\.\.\.\), or start a new fine-tune "
        r"without resume_from",
        "resume it with --recipe tutorial, or start a new run without --resume",
    ),
    (
        r"pass the recipe it was started with, or start a new run",
        "leave those options out (a resumed run takes its own), or start a new run without "
        "--resume",
    ),
    # a checkpoint of a network built by hand: no flag can hand the network over
    (
        r"; pass that untrained network as model= to load the weights into it",
        ", which the command line cannot rebuild (no option hands it a network): use "
        "the checkpoint in Python with that untrained network, "
        "Predictor.from_checkpoint(path, model=network) or "
        "load_checkpoint(path).build_model(network)",
    ),
    # a file that is no checkpoint, or a checkpoint that is no weights file
    (
        r"create_model\(('?)(\w+)\1, weights='([^']*)'\)",
        r"retinalnet train --arch \2 --weights \3",
    ),
    (r"Predictor\.from_checkpoint\('([^']*)'\)", r"retinalnet predict --checkpoint \1"),
    (
        r"Predictor\.from_onnx\(path\) predicts with it",
        "Predictor.from_onnx(path) predicts with it in Python",
    ),
    (r"fit\(\.\.\., resume_from='([^']*)'\)", r"--resume \1"),
    (r"fit\(\.\.\., resume_from=([^)]*)\)", r"--resume \1"),
    (r"resume_from=", "--resume "),
    (r"overwrite=True", "--overwrite"),
    (r"weights=None", "--weights none"),
    (r"pass None, 'DEFAULT' \(both", "pass --weights none or DEFAULT (both"),
    (r"a state-dict file, or None", "a state-dict file, or none"),
    (r"weights='([^']*)'", r"--weights \1"),
    (r"weights=([\w.]+)", r"--weights \1"),
    (r"device='([^']*)' or '([^']*)'", r"--device \1 or --device \2"),
    (r"device='([^']*)'", r"--device \1"),
    (r"precision='([^']*)'", r"--precision \1"),
    (r"on a CPU use '(\w+)' or '(\w+)'", r"on a CPU use --precision \1 or \2"),
    (r"preprocessing=Preprocessing\(size=(\d+)\)", r"--size \1"),
    (r"a larger Preprocessing\(size=\.\.\.\)", "a larger --size"),
    (r"preprocessing\.size=(\d+)", r"--size \1"),
    (r"on_error='(\w+)'", r"--on-error \1"),
    (r"balance='(\w+)'", r"--balance \1"),
    (r"batch_size=", "--batch-size "),
    (r"num_workers=None", "no --workers"),
    (r"num_workers=", "--workers "),
    (r"make_synthetic_kermany(\(\))?", "`retinalnet demo --data-only`"),
    (r"pass order=\[\.\.\.\]", "pass --order A,B,..."),
    # the feature cache refused for a model that trains more than its head (small_cnn)
    (
        r" \(e\.g\. except_last_blocks > 0 or freeze=False\); train without the cache, or "
        r"freeze the backbone",
        " (a model such as small_cnn trains whole); leave out --feature-cache",
    ),
    (r"FeatureCacheConfig\(views=(\w+)\)", r"--cache-views \1"),
    (r"feature_cache=False", "--no-feature-cache"),
)
_COMPILED = tuple((re.compile(pattern), replacement) for pattern, replacement in _PHRASES)


def cli_text(text: str) -> str:
    """``text`` with the library's Python advice said as command-line flags; Python code in
    backticks (which has no command-line form) is kept as it is. A file name's bytes that
    ``repr()`` escaped (``\\udce9``) are the name's own again (:mod:`~retinalnet.cli.
    _escaped_names`).

    Examples
    --------
    >>> cli_text("pass weights='/path/to/vgg16-397923af.pth'; weights=None trains from scratch")
    'pass --weights /path/to/vgg16-397923af.pth; --weights none trains from scratch'
    >>> cli_text("use device='auto' or 'cpu'")
    'use --device auto or --device cpu'
    >>> cli_text("in Python: `create_model('small_cnn', weights=None)`")
    "in Python: `create_model('small_cnn', weights=None)`"
    """
    parts = CODE_IN_BACKTICKS.split(text)  # the odd parts: code in backticks
    for index in range(0, len(parts), 2):
        for pattern, replacement in _COMPILED:
            parts[index] = pattern.sub(replacement, parts[index])
    return names_as_bytes("".join(parts))


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _one_line(error: BaseException) -> str:
    """``error``'s message in one line: a DataLoader worker's error by its own last line (not
    the worker's traceback torch puts before it), any other by its first line."""
    text = _ANSI.sub("", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(error).__name__
    if "DataLoader worker" in lines[0]:  # "Caught X in DataLoader worker process 0." ...
        return lines[-1].removeprefix(f"{type(error).__name__}: ")
    return lines[0]


def cli_message(args: argparse.Namespace, error: BaseException) -> str:
    """The one-line message ``retinalnet COMMAND: error: ...`` shows for ``error``: the
    library's words said with flags, and the command's way out where it has one."""
    from retinalnet._core.images import UnreadableImageError

    message = cli_text(_one_line(error))
    if isinstance(error, UnreadableImageError):
        if getattr(args, "on_error", None) == "raise":
            message += "; --on-error skip leaves unreadable images out and lists them at the end"
        elif getattr(args, "images", None):  # export's parity check
            message += "; leave it out of --images"
    elif isinstance(error, ImportError) and "pip install" not in message:
        name = (error.name or "").partition(".")[0]
        if name:  # an optional package this command needs
            message += f" (a package this needs is not installed: pip install {name})"
    return message


# "continue with fit(..., resume_from='runs/x/last.pt')": the run's file as repr() wrote it
# (backslashes doubled, quotes escaped): a string literal, read back by ast.literal_eval
_RESUME_FROM = re.compile(
    r"fit\(\.\.\., resume_from=(?P<literal>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\)"
)


def resume_command(args: argparse.Namespace) -> str | None:
    """The command that continues an interrupted run of ``args``' command, without the
    ``--resume`` file: ``retinalnet train --data DATA`` (the other options are the run's,
    read from its checkpoint); ``None`` for the demo (see :func:`demo_command`) and for
    commands that do not train."""
    if args.command != "train":
        return None
    return f"retinalnet train --data {shlex.quote(str(Path(args.data)))}"


def demo_command(args: argparse.Namespace) -> str | None:
    """The command that repeats an interrupted ``retinalnet demo``: the demo again, with its
    options (``retinalnet demo --out OUT --epochs N --seed S``, and ``--weights`` where
    given). ``train --resume`` would not continue it: ``train`` has none of the demo's
    schedule (a cosine decay over ``--epochs``) and refuses its checkpoint. ``None`` for
    other commands."""
    if args.command != "demo":
        return None
    words = ["retinalnet", "demo", "--out", str(Path(args.out))]
    for flag in ("epochs", "seed", "weights"):
        value = getattr(args, flag, None)
        if value is not None:
            words += [f"--{flag}", str(value)]
    return shlex.join(words)


_DEMO_RESUME = re.compile(r"continue with " + _RESUME_FROM.pattern)


def _said_for_the_demo(message: str, command: str) -> str:
    """``message`` with its ``continue with fit(..., resume_from=...)`` said as the demo's
    way on: it does not resume, it runs again (the data and checkpoints are its own)."""
    advice = f"the demo does not resume: run `{command}` again, which starts it over"
    return _DEMO_RESUME.sub(lambda found: advice, message)  # the text as it is, no escapes


class CliText(logging.Filter):
    """A logging filter that says the library's log lines with flags (see :func:`cli_text`),
    and drops those that say what the command says itself (the skipped images it lists at
    its end, a result it prints; see :mod:`retinalnet._core.log_marks`), not twice.

    Parameters
    ----------
    args
        The command's options: an interrupted run's advice to continue it with
        ``fit(..., resume_from=...)`` is said as the whole command to type
        (:func:`resume_command`), not a flag the command may not have; after the demo, as
        the demo to run again (:func:`demo_command`).
    """

    def __init__(self, args: argparse.Namespace | None = None) -> None:
        super().__init__()
        self.resume_command = None if args is None else resume_command(args)
        self.demo_command = None if args is None else demo_command(args)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, SAID_BY_THE_COMMAND_LINE, False):
            return False
        message = record.getMessage()
        translated = message
        if self.demo_command is not None:
            translated = _said_for_the_demo(message, self.demo_command)
        if self.resume_command is not None:
            command = self.resume_command
            translated = _RESUME_FROM.sub(
                lambda found: (
                    f"`{command} --resume {shlex.quote(ast.literal_eval(found['literal']))}`"
                ),
                message,
            )
        translated = cli_text(translated)
        if translated != message:
            record.msg, record.args = translated, None
        return True


def _require(flag: str, module: str, does: str, install: str) -> None:
    """Stop before any work when ``flag`` needs ``module`` and it does not import.

    Raises
    ------
    RuntimeError
        ``"{flag} {does}, which is not installed: {install} (or leave {flag} out)"``.
    """
    try:
        importlib.import_module(module)  # only whether it imports
    except ImportError:
        raise RuntimeError(
            f"{flag} {does}, which is not installed: {install} (or leave {flag} out)"
        ) from None


def require_matplotlib(flag: str) -> None:
    """Stop before any work when ``flag`` needs matplotlib and it is not installed.

    Raises
    ------
    RuntimeError
        Naming the flag and what to install (one line on the command line).
    """
    _require(flag, "matplotlib.figure", "draws with matplotlib", "pip install matplotlib")


def require_tensorboard(flag: str) -> None:
    """Stop before any work when ``flag`` needs the tensorboard package and it is not
    installed.

    Raises
    ------
    RuntimeError
        Naming the flag and what to install (one line on the command line).
    """
    _require(
        flag,
        "tensorboard",
        "writes with the tensorboard package",
        'pip install "retinalnet[tensorboard]"',
    )
