"""What kind of file each writer writes, and the two refusals that follow from it, made
before any work by every writer of files (the CLI's output options, :func:`to_onnx`,
:func:`write_html_report`, :func:`save_checkpoint`, a figure's ``save=``):

- a name whose suffix says another kind of file (JSON into ``last.pt``, ONNX into
  ``history.csv``, a checkpoint into ``scan.png``): it would be read as one next time;
- an existing file that is trained work or a scan, told by its content whatever its name: a
  retinalnet checkpoint or another PyTorch file (``torch.save``), and an image the readers
  decode. A checkpoint writer may replace a checkpoint, and a figure an older figure (a PNG
  matplotlib wrote, or a colour image in another format); nothing else replaces them.

A file of the writer's own kind is replaced freely, as ``torch.save`` and ``savefig`` do
(re-exporting to the same ``.onnx``, writing the same report again). Paths are judged where
they really lead: a symbolic link is written through, onto the file it points to.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

from retinalnet._core.articles import type_with_article, with_article
from retinalnet._core.classes import IMAGE_EXTENSIONS
from retinalnet._core.dicom import DICOM_EXTENSIONS
from retinalnet._core.folder_spelling import names_a_folder

__all__ = [
    "SUFFIXES",
    "check_output_file",
    "output_path",
    "refuse_another_suffix",
    "refuse_replacing_a_model_or_scan",
]

SUFFIXES: dict[str, frozenset[str]] = {
    "JSON": frozenset({".json"}),
    "HTML": frozenset({".html", ".htm"}),
    "CSV": frozenset({".csv"}),
    "ONNX": frozenset({".onnx"}),
    "checkpoint": frozenset({".pt", ".pth", ".ckpt"}),
    "image": IMAGE_EXTENSIONS,
}
"""The suffixes that say what a file is; another suffix (``.txt``, none) says nothing."""

_WRITTEN: dict[str, tuple[str, frozenset[str]]] = {
    **{kind: (kind, suffixes) for kind, suffixes in SUFFIXES.items()},
    "manifest": ("CSV or JSON", frozenset({".csv", ".json"})),
    # a figure is an image (not a DICOM one), or a drawing: PDF, SVG, PostScript
    "figure": (
        "figure",
        (IMAGE_EXTENSIONS - DICOM_EXTENSIONS)
        | frozenset({".pdf", ".svg", ".svgz", ".eps", ".ps", ".pgf", ".raw", ".rgba"}),
    ),
}
"""``{kind written: (its name in messages, the suffixes that say it)}``."""

_SUGGESTED = {"figure": ".png", "HTML": ".html", "checkpoint": ".pt"}
"""The suffix a message suggests, where not the first in order (``.ckpt``, ``.htm``)."""


def output_path(path: object, *, writer: str, call: str | None = None) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is a file path (a ``str`` or an
    ``os.PathLike``), for the Python writer ``writer``. Writers differ in where the path
    goes (``save_checkpoint(path, model)``, ``to_onnx(model, path)``), so a swapped call is
    a likely mistake; ``call`` is the writer's own order, named in the message.

    Raises
    ------
    TypeError
        Naming the writer, the type of what came as the path, and ``call``.
    ValueError
        If ``path`` is spelled as a folder (``preds/``): a file named ``preds`` would be
        written (:func:`~retinalnet._core.folder_spelling.names_a_folder`).

    Examples
    --------
    >>> output_path([], writer="write_manifest", call="write_manifest(rows, path)")
    Traceback (most recent call last):
    TypeError: write_manifest: path must be a file path (str or os.PathLike), got a list; ...
    """
    if isinstance(path, (str, os.PathLike)):
        try:
            given = Path(path)
        except TypeError:  # an os.PathLike of bytes
            pass
        else:
            if names_a_folder(path):
                raise ValueError(
                    f"{writer}: {os.fspath(path)!r} names a folder, where a file is expected; "
                    "name a file in it"
                )
            return given
    got = "None" if path is None else type_with_article(path)
    order = f"; the order is {call}" if call is not None else ""
    raise TypeError(f"{writer}: path must be a file path (str or os.PathLike), got {got}{order}")


def check_output_file(
    path: str | os.PathLike[str],
    writes: str,
    *,
    writer: str,
    call: str | None = None,
    epoch_of: Callable[[Path], int | None] | None = None,
    replaces_checkpoints: bool = False,
) -> None:
    """Both refusals, for the Python writer ``writer`` of a ``writes`` file at ``path``
    (:func:`refuse_another_suffix`, then :func:`refuse_replacing_a_model_or_scan`), worded
    with the fix: another path, or deleting the file first. A ``path`` that is no file path
    is refused first (:func:`output_path`), naming ``call``, the writer's argument order.

    Raises
    ------
    TypeError
        If ``path`` is not a ``str`` or an ``os.PathLike`` (arguments swapped).
    ValueError
        If the suffix of ``path`` names another kind of file.
    FileExistsError
        If ``path`` is trained work or a scan that the file would replace.
    """
    output = output_path(path, writer=writer, call=call)
    said = f"the path {str(output)!r}"
    if output.is_symlink():
        said += f" (a link to {os.path.realpath(output)!r})"
    refuse_another_suffix(output, writes, writer=writer, said=said)
    refuse_replacing_a_model_or_scan(
        output,
        writes,
        writer=writer,
        said=said,
        fix="pass another path, or delete the file first to replace it",
        epoch_of=epoch_of,
        replaces_checkpoints=replaces_checkpoints,
    )


def refuse_another_suffix(
    output: Path, writes: str, *, writer: str, said: str, option: str | None = None
) -> None:
    """Refuse the output file ``output`` whose real suffix names another kind of file than
    the ``writes`` kind ``writer`` writes (``to_onnx(model, "history.csv")``): it would be
    read as one next time (``--checkpoint last.pt``, a ``.jpeg`` as a scan). A suffix that
    says nothing (``.txt``, none) is written. ``said`` is how the message names the output
    (``"--out 'x.pt'"``, ``"path 'x.pt'"``); ``option`` the option to pass another name for.

    Raises
    ------
    ValueError
        Naming the output, its suffix, what is written, and the suffix to use.
    """
    expected, allowed = _WRITTEN[writes]
    suffix = Path(os.path.realpath(output)).suffix.lower()
    if suffix in allowed:
        return
    for kind, suffixes in SUFFIXES.items():
        if suffix in suffixes:
            use = _SUGGESTED.get(writes, min(allowed))
            to = f" for {option}" if option else ""
            raise ValueError(
                f"{said} names {with_article(kind)} file ({suffix}), but {writer} writes "
                f"{with_article(expected)} file there; pass a name ending in {use}{to}"
            )


def refuse_replacing_a_model_or_scan(
    output: Path,
    writes: str,
    *,
    writer: str,
    said: str,
    fix: str,
    epoch_of: Callable[[Path], int | None] | None = None,
    replaces_checkpoints: bool = False,
) -> None:
    """Refuse replacing the existing file ``output`` (its real path) when it is trained work
    or a scan, told by its content: a retinalnet checkpoint (``epoch_of``, its reader, gives
    its epochs), another PyTorch file, or an image the readers decode. With
    ``replaces_checkpoints`` (:func:`save_checkpoint`), a PyTorch file may be replaced; a
    ``figure`` may replace an older figure. ``fix`` ends the message (``"choose another
    name or delete it"``).

    Raises
    ------
    FileExistsError
        Naming the output, what the file is, what would replace it, and ``fix``.
    """
    real = Path(os.path.realpath(output))
    if not real.is_file():
        return
    epoch = epoch_of(real) if epoch_of is not None else None
    if epoch is not None:
        what = f"a retinalnet checkpoint (trained for {epoch} epoch(s))"
    elif _is_torch_file(real):
        what = "a PyTorch file (torch.save)"
    elif _is_image(real) and not (writes == "figure" and _is_figure(real)):
        what = "an image"
    else:
        return
    if replaces_checkpoints and what != "an image":
        return
    new = "its output" if writes not in _WRITTEN else f"{with_article(_WRITTEN[writes][0])} file"
    raise FileExistsError(f"{said} is {what}: {writer} would replace it with {new}; {fix}")


def _is_torch_file(file: Path) -> bool:
    """Whether ``file`` was written by ``torch.save`` (a zip archive holding ``data.pkl``)."""
    try:
        if not zipfile.is_zipfile(file):
            return False
        with zipfile.ZipFile(file) as archive:
            return any(name.endswith("/data.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


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


def _is_figure(file: Path) -> bool:
    """Whether the image ``file`` is a figure, not a scan: a PNG matplotlib wrote (its
    ``Software`` text says so), or a colour image of another format (a JPEG or TIFF figure
    carries no mark; OCT scans are grey, 16-bit or DICOM)."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            if image.format == "PNG":
                return str(image.info.get("Software", "")).startswith("Matplotlib")
            return image.mode in ("RGB", "RGBA")
    except (OSError, ValueError):
        return False
