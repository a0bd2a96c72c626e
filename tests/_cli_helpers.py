"""What the command-line tests share: a quick ``retinalnet train`` run, and a command run
under ``LANG=C``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from retinalnet.cli import main


def train_small_cnn(data: Path, out: Path, *extra: str) -> int:
    """``retinalnet train`` of ``small_cnn`` at 32 px, one epoch, seeded and quiet, on the
    Kermany-layout folder ``data`` into ``out``; ``extra`` flags come last (and win).
    Returns the exit status."""
    return main(
        [
            "train", "--data", str(data), "--out", str(out), "--arch", "small_cnn",
            "--size", "32", "--epochs", "1", "--batch-size", "8", "--seed", "0", "-q",
            "--recipe", "tutorial",  # these tests are about the loop; test_finetune.py: recipe
            *extra,
        ]
    )  # fmt: skip


# cron, `env -i`, CI images and ssh sessions that force C: Python's file-system encoding is
# ASCII there, and a UTF-8 name such as "données" reads as "donn\udcc3\udca9es"
LANG_C = {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}

_COMMANDS = """
import json, sys
from retinalnet.cli import main
statuses = [main(argv) for argv in json.loads(sys.argv[1])]
print("statuses:", json.dumps(statuses))
"""


def run_under_lang_c(*commands: Sequence[str]) -> tuple[list[int], str]:
    """Each of ``commands`` (``retinalnet``'s arguments, as typed) run by :func:`main`, in
    one Python process under ``LANG=C`` (:data:`LANG_C`): their exit statuses and what
    they wrote to stderr. The test is skipped where ``LANG=C`` gives Python a UTF-8
    file-system encoding (there is no other encoding to test then)."""
    env = {**os.environ, **LANG_C}
    encoding = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if encoding.replace("-", "").lower() == "utf8":
        pytest.skip(f"LANG=C gives Python the file-system encoding {encoding!r} here, not ASCII")
    # the arguments reach it as a shell's would: as bytes, which it decodes as ASCII
    argv = json.dumps([list(command) for command in commands], ensure_ascii=False)
    ran = subprocess.run(
        [sys.executable, "-c", _COMMANDS, argv],
        env=env, capture_output=True, text=True, encoding="utf-8",
        errors="surrogateescape", check=False,
    )  # fmt: skip
    last = ran.stdout.strip().splitlines()[-1:] or [""]
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert last[0].startswith("statuses: "), ran.stderr[-3000:]
    return json.loads(last[0].removeprefix("statuses: ")), ran.stderr
