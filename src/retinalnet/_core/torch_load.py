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

from retinalnet._core.read_failure import EMPTY_FILE
from retinalnet._core.regular_files import open_regular

__all__ = [
    "asked_to_run",
    "check_archive",
    "damaged_file_error",
    "first_nonfinite",
    "is_onnx_start",
    "is_torch_start",
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
    code = asked_to_run(error)
    if code is not None:
        return code
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


# torch 2.6+ refuses a function of a module it blocks (os, posix, subprocess, ...) in its own
# words: "Trying to load unsupported GLOBAL posix.system whose module posix is blocked"
_BLOCKED = re.compile(r"GLOBAL ([\w.]+) whose module [\w.]+ is blocked")


def asked_to_run(error: BaseException) -> str | None:
    """What to say of a file whose pickle names a function of a module torch blocks
    (``os.system``, ``subprocess.Popen``: code that would run as the file loads), when that
    is why ``torch.load(weights_only=True)`` refused it; ``None`` otherwise. Nothing ran.

    Examples
    --------
    >>> asked_to_run(Exception("Trying to load unsupported GLOBAL posix.system whose "
    ...     "module posix is blocked."))
    'it asks to run posix.system when loaded; retinalnet never runs code from a file: get \
the checkpoint from its author again'

    .. versionadded:: 0.2
    """
    found = _BLOCKED.search(_ANSI.sub("", str(error)))
    if found is None:
        return None
    return (
        f"it asks to run {found.group(1)} when loaded; retinalnet never runs code from a "
        "file: get the checkpoint from its author again"
    )


# torch.save writes a zip archive (b"PK..."), or in its legacy format a pickle (b"\x80", its
# protocol header), which torch.load reads, and says what it finds in it
_ZIP_START = b"PK"
_ZIP_MEMBER = b"PK\x03\x04"  # the header of a zip archive's first member
_PICKLE_START = b"\x80"
_HEAD = 16  # the bytes a message shows
_READ = 64  # the bytes read to tell other formats apart

# other formats a weights file comes in, by their first bytes: (start, what it is and the way on)
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "it is gzip-compressed: decompress it (gunzip) and pass the file inside"),
    (b"\x93NUMPY", "it is a NumPy array (numpy.save), not weights torch.save wrote"),
    (b"\x89HDF\r\n\x1a\n", "it is an HDF5 file (as Keras saves .h5 weights), not a PyTorch file"),
    (
        b"version https://git-lfs",
        "it is a Git LFS pointer, not the file itself: git lfs pull fetches the file",
    ),
)
_ONNX = (
    "it is an ONNX model, as retinalnet export writes: Predictor.from_onnx(path) predicts "
    "with it; the commands take the checkpoint it was exported from"
)
_SAFETENSORS = (
    "it is a safetensors file: torch.save(safetensors.torch.load_file(path), 'weights.pth') "
    "writes its tensors as a state-dict file to pass instead"
)
# an ONNX model is a protobuf message that starts with its ir_version (field 1, a varint:
# b"\x08" and a small number), then its producer's name or another field of the header
_ONNX_FIELDS = frozenset(b"\x12\x1a\x22\x28\x32\x3a\x42")


def is_torch_start(head: bytes) -> bool:
    """Whether a file starting with ``head`` may be one ``torch.save`` wrote: a zip archive,
    or a pickle (torch's legacy format)."""
    return head.startswith((_ZIP_START, _PICKLE_START))


def is_onnx_start(head: bytes) -> bool:
    """Whether a file starting with ``head`` starts as an ONNX model does (the one rule:
    :mod:`retinalnet.export` tells an ONNX model from a checkpoint by it too)."""
    return len(head) > 2 and head[0] == 0x08 and 0 < head[1] < 64 and head[2] in _ONNX_FIELDS


def _other_format(head: bytes, file: Path) -> str | None:
    """What another format's file is, from its first bytes."""
    for start, said in _SIGNATURES:
        if head.startswith(start):
            return said
    if is_onnx_start(head):
        return _ONNX
    # safetensors: the header's length (8 bytes, little-endian), then the JSON header
    length = int.from_bytes(head[:8], "little") if len(head) > 8 else 0
    if head[8:9] == b"{" and 0 < length < file.stat().st_size:
        return _SAFETENSORS
    return None


def not_torch_file(file: Path) -> str | None:
    """Why ``file`` is not a file ``torch.save`` wrote, in words, when its first bytes show
    it (``torch.load`` would fail with an error about the bytes it tripped on, such as
    ``KeyError: 105`` for a text file); ``None`` for a file that may be one (a zip archive,
    a pickle, as torch's legacy format is), whose load then says what is wrong with it.

    A format that weights also come in is named, with the way on: ONNX (as
    ``retinalnet export`` writes), safetensors, gzip, a NumPy array, HDF5 (Keras), a Git
    LFS pointer left in place of the file.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = Path(folder, "notes.pt").write_bytes(b"hello")
    ...     print(not_torch_file(Path(folder, "notes.pt")))
    torch.save writes a zip archive; this file starts with b'hello'
    """
    with open_regular(file) as stream:
        head = stream.read(_READ)
    if not head:
        return EMPTY_FILE
    other = _other_format(head, file)  # first: a safetensors header may start with b"\x80"
    if other is not None:
        return other
    if is_torch_start(head):
        return None
    return f"torch.save writes a zip archive; this file starts with {head[:_HEAD]!r}"


_CRC_CHUNK = 1 << 20
_DOS_FOLDER = 0x10  # the MS-DOS folder bit of a zip member's external attributes


def check_archive(file: Path, kind: str) -> str:
    """Check every member of the zip archive ``file`` (a ``kind``: ``"checkpoint"``,
    ``"weights file"``) against its CRC-32, as torch.load does not; ``"checked"`` when all
    pass.

    ``"legacy"`` when ``file`` is no zip archive (PyTorch's legacy format, or no checkpoint
    at all: :func:`not_torch_file` says which), ``"unreadable"`` when it looks like one that
    Python's zipfile cannot open (torch.load then most likely fails too, and says why).
    A file that starts as a zip archive but lacks its end (the zip directory) is refused
    as incomplete: a copy cut short.

    .. versionchanged:: 0.2
       A TorchScript model (``torch.jit.save``) or a zip archive torch.save did not write
       (a NumPy ``.npz``, no ``data.pkl``) is refused here, in words, rather than left to
       ``torch.load`` (which ran the TorchScript loader, or named a line of its C++ code).

    Raises
    ------
    ValueError
        If a member fails its CRC-32 check or cannot be read: the file is damaged. If the
        file lacks the end of its zip archive: it is incomplete. If the
        archive is a TorchScript model or one torch.save did not write: what it is, and what
        to pass instead.
    """
    if not zipfile.is_zipfile(file):
        with open_regular(file) as stream:
            started = stream.read(len(_ZIP_MEMBER)) == _ZIP_MEMBER
        if started:  # a zip archive without its end: its directory is written last
            raise _incomplete_file_error(file, kind)
        return "legacy"
    try:
        archive = zipfile.ZipFile(file)
    except Exception:  # zipfile's errors for a damaged directory are of many kinds
        return "unreadable"
    with archive:
        members = archive.infolist()
        foreign = _other_archive([m.filename for m in members], kind)
        if foreign is not None:  # torch.load would dispatch to torch.jit.load, or fail in C++
            raise ValueError(f"{kind} {str(file)!r} is {foreign}")
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


_WANTED = {
    "checkpoint": "pass a checkpoint written by retinalnet (best.pt or last.pt)",
    "weights file": "pass a state dict saved with torch.save(model.state_dict(), path)",
}


def _other_archive(names: list[str], kind: str) -> str | None:
    """What a zip archive that torch.save did not write is, and what to pass instead, for
    a ``kind`` of file; ``None`` for one torch.save wrote."""
    parts = [name.split("/") for name in names]
    if any(len(p) >= 2 and (p[-1] == "constants.pkl" or p[1] == "code") for p in parts):
        if kind == "weights file":
            return (
                "a TorchScript model (torch.jit.save), not a state dict: torch.save("
                "torch.jit.load(path).state_dict(), 'weights.pth') writes its weights as one "
                "to pass instead"
            )
        return (
            f"a TorchScript model (torch.jit.save), not a {kind} retinalnet loads: "
            f"torch.jit.load(path) runs it; {_WANTED.get(kind, '')}"
        ).removesuffix("; ")
    if any(p[-1] == "data.pkl" for p in parts):
        return None
    shown = ", ".join(repr(name) for name in names[:3]) + (" ..." if len(names) > 3 else "")
    if names and all(name.endswith(".npy") for name in names):
        what = f"a NumPy archive (numpy.savez: {shown})"
    else:
        what = f"a zip archive that torch.save did not write (it holds {shown or 'nothing'})"
    return f"{what}, not a PyTorch file; {_WANTED.get(kind, 'pass a file torch.save wrote')}"


def _incomplete_file_error(file: Path, kind: str) -> ValueError:
    """The error for a ``kind`` of file (``"checkpoint"``, ``"weights file"``) that starts as
    the zip archive torch.save writes but lacks its end (the zip directory, written last):
    a copy or download cut short, or a save that did not finish."""
    other = (
        ", or use another checkpoint of the run (last.pt or best.pt)"
        if kind == "checkpoint"
        else ""
    )
    return ValueError(
        f"{kind} {str(file)!r} is incomplete: it starts as the zip archive torch.save writes "
        f"but has no zip directory at its end ({file.stat().st_size:,} bytes; a copy or "
        f"download cut short?). Copy it again from where it came from{other}"
    )


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
