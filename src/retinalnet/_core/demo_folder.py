"""The demo's data folder: replaced only when the demo wrote it, known by its marker.

``retinalnet demo`` writes its synthetic scans to ``OUT/data`` with a marker file
(``.retinalnet-demo``) that lists them; a later demo replaces the folder only when the marker
is there and lists everything in it, so a folder of the user's is never deleted. The folder
is swapped by renames (the earlier one moved aside, the new one made aside with its marker
and moved in), so a demo stopped at any point leaves nothing that blocks the next.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

from retinalnet._core.files import atomic_write_text
from retinalnet._core.temporary_names import TEMPORARY_SUFFIX, temporary_file_pattern

__all__ = ["fresh_data_dir", "write_marker"]

_MARKER = ".retinalnet-demo"
"""The file in the data folder that says the demo wrote it, and lists the files it wrote."""
_HEADER = "synthetic scans written by `retinalnet demo`"
# what a demo before the marker listed its files wrote: split/CLASS/CLASS-PATIENT-N.jpeg
_DEMO_NAME = re.compile(r"(?:train|val|test)/(CNV|DME|DRUSEN|NORMAL)/\1-\d+-\d+\.jpeg")

_ASIDE = ".retinalnet-demo-aside-"
"""How a folder the demo moves out of the way starts: an earlier ``data/`` being removed, or
a new one being made. Inside the output folder (whose run lock the demo holds), beside
``data/``; one a stopped demo left is removed by the next."""


def fresh_data_dir(data_dir: Path) -> None:
    """Empty ``data_dir`` if an earlier demo wrote it and nothing else is in it; never
    touch anything else.

    The earlier folder is renamed aside in one step and removed there; the new one is made
    aside with its marker and renamed into place: stopped at any point (Ctrl-C, ``kill -9``),
    ``data_dir`` is the earlier demo's folder with its marker, or absent, or the new one with
    its marker, and the next demo replaces it. What a stopped demo left aside
    (``.retinalnet-demo-aside-*``) is removed here.

    Raises
    ------
    FileExistsError
        If ``data_dir`` exists and the demo did not write it, or holds files the demo did
        not write (counted, one named): they would be deleted with the demo's; or if it is
        a symbolic link (dangling or not).
    """
    parent = data_dir.parent
    if data_dir.is_symlink():  # dangling too: renamed onto, or removed through, it misleads
        raise FileExistsError(
            f"{str(data_dir)!r} is a symbolic link; the demo writes a data folder of its own "
            "there: remove the link, or choose another output folder (--out)"
        )
    if data_dir.exists():
        marker = data_dir / _MARKER
        if not marker.is_file():
            raise FileExistsError(
                f"{str(data_dir)!r} exists and was not written by the demo, which would mix its "
                "synthetic scans into it; choose another output folder (--out)"
            )
        others = _not_written_by_the_demo(data_dir, marker)
        if others:
            raise FileExistsError(
                f"{str(data_dir)!r} holds {len(others)} file(s) the demo did not write (e.g. "
                f"{others[0]!r}), which writing its scans again would delete; move them out "
                "of it, or choose another output folder (--out)"
            )
        # renamed aside whole, its marker with it: a removal stopped halfway leaves no
        # unmarked scans in data_dir (shutil.rmtree may remove the marker first)
        data_dir.rename(_aside_name(parent))
    _remove_aside(parent)
    new = _aside_name(parent)
    new.mkdir(parents=True)
    # the demo's until it lists its files: scans of a write cut short are known by name
    atomic_write_text(new / _MARKER, f"{_HEADER}\n")
    new.rename(data_dir)


def _aside_name(parent: Path) -> Path:
    """A new name in ``parent`` for a folder moved aside (no other demo writes there: its
    caller holds the run lock of ``parent``)."""
    while True:
        name = parent / f"{_ASIDE}{secrets.token_hex(4)}"
        if not (name.exists() or name.is_symlink()):
            return name


def _remove_aside(parent: Path) -> None:
    """Remove the folders the demo moved aside in ``parent`` (an earlier ``data/``, or a new
    one a stopped demo did not finish)."""
    if not parent.is_dir():
        return
    for aside in parent.glob(f"{_ASIDE}*"):
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside)


def _files_under(data_dir: Path) -> list[str]:
    """Every file (and link) under ``data_dir``, ``/``-separated and relative to it, the
    marker left out; a link to a folder counts as a file (it is not walked into)."""
    found: list[str] = []
    for folder, folders, files in os.walk(data_dir):
        here = Path(folder).relative_to(data_dir)
        links = [name for name in folders if (Path(folder) / name).is_symlink()]
        found += [(here / name).as_posix() for name in [*files, *links]]
    return sorted(name for name in found if name != _MARKER)


def _not_written_by_the_demo(data_dir: Path, marker: Path) -> list[str]:
    """The files under ``data_dir`` its marker does not list (a marker of a demo before
    0.2 lists none: its scans are known by their names). The temporary file a demo killed
    while writing a scan or the marker left (``.NAME.XXXXXXXX.tmp``) is the demo's too."""
    listed = set(marker.read_text(encoding="utf-8", errors="replace").splitlines()[1:])

    def the_demos(name: str) -> bool:
        return (
            name == _MARKER or name in listed or (not listed and bool(_DEMO_NAME.fullmatch(name)))
        )

    return [
        name
        for name in _files_under(data_dir)
        if not the_demos(name) and not the_demos(_written_through(name) or "")
    ]


_TEMPORARY = re.compile(rf"\.(.+)\.[a-z0-9_]{{8}}{re.escape(TEMPORARY_SUFFIX)}")


def _written_through(name: str) -> str | None:
    """The file ``name`` was to become if it is a temporary file of
    :func:`~retinalnet._core.files.atomic_write` (``train/CNV/.CNV-1-1.jpeg.k3j9x2a1.tmp``:
    ``train/CNV/CNV-1-1.jpeg``), else ``None``."""
    folder, _, base = name.rpartition("/")
    match = _TEMPORARY.fullmatch(base)
    if match is None or not temporary_file_pattern([match.group(1)]).fullmatch(base):
        return None
    return f"{folder}/{match.group(1)}" if folder else match.group(1)


def write_marker(data_dir: Path) -> None:
    """The marker that says the demo wrote ``data_dir``, listing the files it wrote."""
    lines = [_HEADER, *_files_under(data_dir)]
    # whole or not at all: a marker cut short would list only some of the demo's files
    atomic_write_text(data_dir / _MARKER, "\n".join(lines) + "\n")
