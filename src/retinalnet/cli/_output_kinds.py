"""What kind of file each output option writes, and the two refusals that follow from it,
before any work (:mod:`retinalnet._core.output_kinds`, which every Python writer uses too): a
name whose suffix says another kind (JSON into ``last.pt``, ONNX into ``history.csv``), and
an existing file that is a trained model or a scan (a retinalnet checkpoint, an image), which
the output would replace."""

from __future__ import annotations

from pathlib import Path

from retinalnet._core import output_kinds

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
    if written == "manifest":  # write_manifest chooses the format by the suffix given
        given = output.suffix.lower()
        if given not in _MANIFEST_SUFFIXES:
            raise ValueError(
                f"{flag} {said} must end in .csv or .json (the manifest's format), got "
                f"{given or 'no suffix'!r}; pass e.g. {flag} split.csv"
            )
    output_kinds.refuse_another_suffix(
        output, written, writer=command, said=f"{flag} {said}", option=flag
    )


def refuse_replacing_a_model_or_scan(
    command: str, flag: str, output: Path, said: str, *, has_overwrite: bool
) -> None:
    """Refuse replacing the existing file ``output`` when it is a retinalnet checkpoint,
    another PyTorch file or an image (a trained model, a scan), told by its content whatever
    its name. ``has_overwrite``: the command has ``--overwrite``, the way to allow it.

    Raises
    ------
    FileExistsError
        Naming the option, what the file is, and the fix: another name, or deleting it.
    """
    from retinalnet.checkpoint import checkpoint_epoch

    allow = " or allow it (--overwrite)" if has_overwrite else ""
    output_kinds.refuse_replacing_a_model_or_scan(
        output,
        WRITES.get((command, flag), ""),
        writer=command,
        said=f"{flag} {said}",
        fix=f"choose another name or delete it{allow}",
        epoch_of=checkpoint_epoch,  # its header only (memory-mapped), not its weights
    )
