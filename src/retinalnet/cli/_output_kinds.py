"""What kind of file each output option writes, and the two refusals that follow from it,
before any work: a name whose suffix says another kind (JSON into ``last.pt``, ONNX into
``history.csv``), and an existing file that is a trained model or a scan (a retinalnet
checkpoint, an image), which the output would replace."""

from __future__ import annotations

import os
from pathlib import Path

from retinalnet._core.classes import IMAGE_EXTENSIONS

__all__ = ["WRITES", "refuse_another_suffix", "refuse_replacing_a_model_or_scan"]

WRITES: dict[tuple[str, str], str] = {
    ("evaluate", "--out"): "JSON",
    ("evaluate", "--report"): "HTML",
    ("calibrate", "--out"): "checkpoint",
    ("predict", "--csv"): "CSV",
    ("export", "--out"): "ONNX",
    ("audit", "--out"): "JSON",
    ("split", "--out"): "manifest",
}
"""``{(command, flag): kind}``: what each output file option writes (a ``manifest`` is CSV or
JSON, chosen by the suffix)."""

_SUFFIXES: dict[str, frozenset[str]] = {
    "JSON": frozenset({".json"}),
    "HTML": frozenset({".html", ".htm"}),
    "CSV": frozenset({".csv"}),
    "ONNX": frozenset({".onnx"}),
    "checkpoint": frozenset({".pt", ".pth", ".ckpt"}),
    "image": IMAGE_EXTENSIONS,
}
"""The suffixes that say what a file is; another suffix (``.txt``, none) says nothing."""

_MANIFEST_SUFFIXES = (".csv", ".json")


def refuse_another_suffix(command: str, flag: str, output: Path, said: str) -> None:
    """Refuse an output file whose real suffix names another kind of file than the one
    ``command`` writes with ``flag`` (``evaluate --out last.pt``): it would be read as one
    next time (``--checkpoint last.pt``, a ``.jpeg`` as a scan). A suffix that says nothing
    (``.txt``, none) is written. ``said`` is ``output`` as the message shows it.

    Raises
    ------
    ValueError
        Naming the option, the suffix, what is written, and the suffix to use.
    """
    written = WRITES.get((command, flag))
    if written is None:
        return
    suffix = Path(os.path.realpath(output)).suffix.lower()
    if written == "manifest":  # write_manifest chooses the format by the suffix given
        given = output.suffix.lower()
        if given not in _MANIFEST_SUFFIXES:
            raise ValueError(
                f"{flag} {said} must end in .csv or .json (the manifest's format), got "
                f"{given or 'no suffix'!r}; pass e.g. {flag} split.csv"
            )
        allowed = frozenset(_MANIFEST_SUFFIXES)
    else:
        allowed = _SUFFIXES[written]
    if suffix in allowed:
        return
    for kind, suffixes in _SUFFIXES.items():
        if suffix in suffixes:
            expected = "CSV or JSON" if written == "manifest" else written
            raise ValueError(
                f"{flag} {said} names {_a(kind)} file ({suffix}), but {command} writes "
                f"{_a(expected)} file there; pass a name ending in {min(allowed)} for {flag}"
            )


def refuse_replacing_a_model_or_scan(
    command: str, flag: str, output: Path, said: str, *, has_overwrite: bool
) -> None:
    """Refuse replacing the existing file ``output`` when it is a retinalnet checkpoint or
    an image (a trained model, a scan), told by its content whatever its name.
    ``has_overwrite``: the command has ``--overwrite``, the way to allow it.

    Raises
    ------
    FileExistsError
        Naming the option, what the file is, and the fix: another name, or deleting it.
    """
    from retinalnet.checkpoint import checkpoint_epoch

    real = Path(os.path.realpath(output))
    epoch = checkpoint_epoch(real)  # its header only (memory-mapped), not its weights
    if epoch is not None:
        what = f"a retinalnet checkpoint (trained for {epoch} epoch(s))"
    elif _is_image(real):
        what = "an image"
    else:
        return
    written = WRITES.get((command, flag))
    new = "its output" if written is None else f"{_a(written)} file"
    allow = " or allow it (--overwrite)" if has_overwrite else ""
    raise FileExistsError(
        f"{flag} {said} is {what}: {command} would replace it with {new}; choose another "
        f"name or delete it{allow}"
    )


def _a(kind: str) -> str:
    """``kind`` with its article: ``an ONNX``, ``an image``, ``a checkpoint``, ``a JSON``."""
    return f"an {kind}" if kind[0] in "AEFHILMNORSXaeiou" else f"a {kind}"


def _is_image(file: Path) -> bool:
    """Whether ``file`` is an image the readers decode (its header read, no pixels)."""
    from retinalnet._core.dicom import has_dicom_preamble
    from retinalnet._core.images import image_size

    try:
        if has_dicom_preamble(file):
            return True
        image_size(file)
    except (OSError, ValueError, ImportError):  # not an image (or one no reader here opens)
        return False
    return True
