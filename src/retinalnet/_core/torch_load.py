"""Loading torch files safely: what a failed ``torch.load`` says, in one line, and the checks
``torch.load`` does not make (the archive's CRC-32s, finite weights), for the checkpoints and
the weights files alike.

torch's errors for a file it cannot load run over several lines, carry terminal colour codes,
and advise loading the file again with ``weights_only=False``, which runs any code the file
holds. retinalnet never passes that advice on: these helpers keep torch's own reason and
drop the rest, so every error about such a file is one line.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

__all__ = [
    "check_archive",
    "damaged_file_error",
    "first_nonfinite",
    "not_torch_file",
    "pickled_global",
    "torch_load_reason",
]

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


# torch.save writes a zip archive (b"PK..."), or in its legacy format a pickle (b"\x80", its
# protocol header), which torch.load reads, and says what it finds in it
_ZIP_START = b"PK"
_PICKLE_START = b"\x80"
_HEAD = 16


def not_torch_file(file: Path) -> str | None:
    """Why ``file`` is not a file ``torch.save`` wrote, in words, when its first bytes show
    it (``torch.load`` would fail with an error about the bytes it tripped on, such as
    ``KeyError: 105`` for a text file); ``None`` for a file that may be one (a zip archive,
    a pickle, as torch's legacy format is), whose load then says what is wrong with it.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = Path(folder, "notes.pt").write_bytes(b"hello")
    ...     print(not_torch_file(Path(folder, "notes.pt")))
    torch.save writes a zip archive; this file starts with b'hello'
    """
    with open(file, "rb") as stream:
        head = stream.read(_HEAD)
    if head.startswith((_ZIP_START, _PICKLE_START)):
        return None
    if not head:
        return "the file is empty, 0 bytes: was it cut short while written or copied?"
    return f"torch.save writes a zip archive; this file starts with {head!r}"


_CRC_CHUNK = 1 << 20
_DOS_FOLDER = 0x10  # the MS-DOS folder bit of a zip member's external attributes


def check_archive(file: Path, kind: str) -> str:
    """Check every member of the zip archive ``file`` (a ``kind``: ``"checkpoint"``,
    ``"weights file"``) against its CRC-32, as torch.load does not; ``"checked"`` when all
    pass.

    ``"legacy"`` when ``file`` is no zip archive (PyTorch's legacy format, or no checkpoint
    at all: torch.load says which), ``"other"`` for a zip archive that torch.save did not
    write (no ``data.pkl``), ``"unreadable"`` when it looks like one that Python's zipfile
    cannot open (torch.load then most likely fails too, and says why).

    Raises
    ------
    ValueError
        If a member fails its CRC-32 check or cannot be read: the file is damaged.
    """
    try:
        if not zipfile.is_zipfile(file):
            return "legacy"
        archive = zipfile.ZipFile(file)
    except Exception:  # zipfile's errors for a damaged directory are of many kinds
        return "unreadable"
    with archive:
        members = archive.infolist()
        if not any(m.filename.rpartition("/")[2] == "data.pkl" for m in members):
            return "other"  # no archive torch.save writes: torch.load says what it is
        for member in members:
            if member.filename.endswith("/") or member.external_attr & _DOS_FOLDER:
                # torch reads no bytes for a folder: the tensor would keep whatever its
                # memory held, yet the member's own bytes pass their CRC
                raise damaged_file_error(file, kind, f"{member.filename!r} is marked as a folder")
            try:
                with archive.open(member) as stream:
                    while stream.read(_CRC_CHUNK):  # zipfile checks the CRC-32 at the end
                        pass
            except zipfile.BadZipFile as error:
                crc = "CRC" in str(error)
                reason = "fails its CRC-32 check" if crc else f"cannot be read ({error})"
                raise damaged_file_error(file, kind, f"{member.filename!r} {reason}") from None
            except Exception as error:  # EOFError, OSError, zlib.error, NotImplementedError
                reason = f"{member.filename!r} cannot be read ({type(error).__name__}: {error})"
                raise damaged_file_error(file, kind, reason) from None
    return "checked"


def damaged_file_error(file: Path, kind: str, reason: str) -> ValueError:
    """The error for a ``kind`` of file (``"checkpoint"``, ``"weights file"``) whose bytes
    changed after it was written."""
    other = (
        ", or use another checkpoint of the run (last.pt or best.pt)"
        if kind == "checkpoint"
        else ""
    )
    return ValueError(
        f"{kind} {str(file)!r} is damaged: {reason}, so its bytes changed after it was "
        f"written (a bad copy or download, a failing disk). Copy it again from where it came "
        f"from{other}"
    )


def first_nonfinite(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or infinite value; ``None``
    if all are finite.

    One sum per tensor and one read back (a NaN or infinite value makes the sum so; a sum
    that overflows is checked element by element): 0.05 to 0.2 s for VGG16's 138 million
    weights on two CPU cores.
    """
    named = [(k, v.detach()) for k, v in tensors.items() if v.is_floating_point()]
    if not named:
        return None
    sums = torch.stack([value.sum().to("cpu", torch.float64) for _, value in named])
    suspects: list[int] = torch.nonzero(~torch.isfinite(sums)).flatten().tolist()
    for index in suspects:
        name, value = named[index]
        if not bool(torch.isfinite(value).all()):
            return name
    return None
