"""What a failed ``torch.load`` says, in one line: for the checkpoint and the weights files.

torch's errors for a file it cannot load run over several lines, carry terminal colour codes,
and advise loading the file again with ``weights_only=False``, which runs any code the file
holds. retinalnet never passes that advice on: these helpers keep torch's own reason and
drop the rest, so every error about such a file is one line.
"""

from __future__ import annotations

import re

__all__ = ["pickled_global", "torch_load_reason"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# the boilerplate torch adds after its reason ("This is an internal miniz error. If you ...")
_BOILERPLATE = re.compile(
    r"\.\s+(?=This is an internal|If you are seeing|Please file an issue|Check the documentation)"
)


def torch_load_reason(error: BaseException) -> str:
    """torch's words for a failed load, in one line, without its advice to load the file
    unsafely (retinalnet never suggests running a file's code).

    The type of ``error`` stands in for a message that holds nothing but that advice.

    Examples
    --------
    >>> torch_load_reason(RuntimeError("PytorchStreamReader failed reading zip archive: "
    ...     "failed finding central directory. This is an internal miniz error."))
    'PytorchStreamReader failed reading zip archive: failed finding central directory'
    >>> torch_load_reason(EOFError())
    'EOFError'
    """
    text = _ANSI.sub("", str(error))
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
    if found:
        text = found.group(1)
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    line = _BOILERPLATE.split(line, maxsplit=1)[0]
    if not line or "weights_only" in line or "safe_globals" in line:
        return type(error).__name__
    return line


def pickled_global(error: BaseException) -> str | None:
    """The Python class or function a file's pickle asked for, when that is why
    ``torch.load(weights_only=True)`` refused it (a whole model saved with
    ``torch.save(model)``); ``None`` otherwise.

    Examples
    --------
    >>> pickled_global(Exception("WeightsUnpickler error: Unsupported global: GLOBAL "
    ...     "torch.nn.modules.linear.Linear was not an allowed global by default."))
    'torch.nn.modules.linear.Linear'
    """
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    return found.group(1) if found else None
