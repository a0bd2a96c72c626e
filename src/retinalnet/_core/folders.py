"""Checks of an output path before the work that writes there: a file where a folder is to
be, a folder where a file is to be, a folder that cannot be written.

A run that learns at its end that its output cannot be written has lost its work; these
checks run first and leave nothing behind (a test file is written and removed; no folder is
made). What only the real write can tell (a full disk) is still found when writing. A path
given empty is refused wherever it is given (:func:`nonempty_path`): ``Path("")`` is the
current folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from retinalnet._core.files import os_error_in_words
from retinalnet._core.read_failure import broken_link_on_the_way

__all__ = ["check_file_target", "check_folder", "folder_problem", "nonempty_path", "not_a_folder"]


def nonempty_path(path: str | os.PathLike[str], *, name: str, what: str) -> Path:
    """``path`` as a Path, unless it is empty: ``Path("")`` is the current folder, so an
    empty string (an unset shell variable, a blank field of a form) would read or write all
    of it.

    Raises
    ------
    ValueError
        ``{name} is an empty path, which would mean the current folder; pass {what} (or '.'
        for the current folder)``.
    """
    if os.fspath(path) == "":
        raise ValueError(
            f"{name} is an empty path, which would mean the current folder; pass {what} "
            "(or '.' for the current folder)"
        )
    return Path(path)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a folder we may not look into: the write says what is wrong
        return True


def not_a_folder(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` can be no folder because of a file in the way, in words that follow its
    name (``"is a file, not a folder"``); ``None`` otherwise. Only looks.

    Examples
    --------
    >>> Path("notes.txt").write_text("a file, not a folder")
    20
    >>> not_a_folder("notes.txt")
    'is a file, not a folder'
    >>> not_a_folder("notes.txt/runs")
    "cannot be made: 'notes.txt' is a file, not a folder"
    >>> not_a_folder("runs/new") is None  # made when written
    True
    """
    folder = Path(path)
    found = broken_link_on_the_way(folder)  # a link to nothing: no folder can be made through it
    if found is not None:
        link, target = found
        what = f"is a symbolic link to {target!r}, which does not exist"
        return what if link == folder else f"cannot be made: {str(link)!r} {what}"
    existing = folder
    while not _exists(existing) and existing.parent != existing:
        existing = existing.parent
    try:
        if not existing.exists() or existing.is_dir():
            return None
    except OSError:  # cannot look: the write says what is wrong
        return None
    if existing == folder:
        return "is a file, not a folder"
    return f"cannot be made: {str(existing)!r} is a file, not a folder"


def _write_problem(folder: Path) -> str | None:
    """Why no file can be written in ``folder``, or in the closest of its ancestors that
    exists when it is missing (where it would be made); ``None`` if one can. A test file is
    written there and removed; no folder is made (nor removed, which could race another run
    making it)."""
    existing = folder
    while not _exists(existing) and existing.parent != existing:
        existing = existing.parent
    try:
        handle, name = tempfile.mkstemp(dir=existing, prefix=".retinalnet-write-test-")
        os.close(handle)
        Path(name).unlink()
    except OSError as error:
        where = "" if existing == folder else f" (in {str(existing)!r}, where it would be made)"
        return f"cannot be written{where}: {os_error_in_words(error)}"
    return None


def folder_problem(path: str | os.PathLike[str]) -> str | None:
    """Why no folder can be used (or made) at ``path`` to write in, in words that follow its
    name; ``None`` when one can.

    Tries: a test file is written (and removed) in the folder, or, when it is missing, in
    the closest ancestor that exists.

    Examples
    --------
    >>> Path("notes.txt").write_text("a file, not a folder")
    20
    >>> folder_problem("notes.txt/runs")
    "cannot be made: 'notes.txt' is a file, not a folder"
    >>> folder_problem("runs/new") is None, Path("runs").exists()  # nothing made
    (True, False)
    """
    return not_a_folder(path) or _write_problem(Path(path))


def check_folder(path: str | os.PathLike[str], *, name: str, fix: str) -> None:
    """Refuse ``path`` as a folder to write in, before any work, naming it as ``name``.

    Parameters
    ----------
    path
        The folder (made later, by whoever writes there, if missing).
    name
        What the caller calls it: ``"out_dir"``, ``"--tensorboard"``.
    fix
        What to do instead, said after the problem.

    Raises
    ------
    NotADirectoryError
        If ``path``, or the closest of its ancestors that exists, is a file, or a symbolic
        link to nothing stands in its way.
    PermissionError
        If no file can be written there (no permission, a read-only file system, ...).
    """
    problem = not_a_folder(path)
    if problem is not None:
        raise NotADirectoryError(f"{name} {str(path)!r} {problem}; {fix}")
    problem = _write_problem(Path(path))
    if problem is not None:
        raise PermissionError(f"{name} {str(path)!r} {problem}; {fix}")


def check_file_target(path: str | os.PathLike[str], *, name: str, fix: str) -> None:
    """Refuse ``path`` as a file to write, before any work, naming it as ``name``.

    Its folder may be missing (the writers make it), but must be one that can be made and
    written in.

    Raises
    ------
    IsADirectoryError
        If ``path`` is a folder.
    NotADirectoryError, PermissionError
        If its folder cannot be made or written in (see :func:`check_folder`).
    """
    file = Path(path)
    if file.is_dir():
        raise IsADirectoryError(f"{name} {str(file)!r} is a folder, not a file; {fix}")
    folder = file.parent
    problem = not_a_folder(folder)
    error: type[OSError] = NotADirectoryError
    if problem is None:
        problem, error = _write_problem(folder), PermissionError
    if problem is not None:
        raise error(f"{name} {str(file)!r}: its folder {str(folder)!r} {problem}; {fix}")
