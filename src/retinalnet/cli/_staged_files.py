"""A command's figures (Grad-CAM overlays, plots) drawn aside first, then put in place
together, once every one is drawn.

Drawn one by one into their folder, an interrupted or failed run (Ctrl-C, a full disk, a
refused Grad-CAM) left some new figures beside an earlier run's, of another model, under
names that look like one set; and a CSV written before them named overlays that were not
there. Each figure is drawn into a hidden folder inside its own folder
(``.retinalnet-drawing-XXXXXXXX``, on the same disk), and all are renamed onto their names
only once the last one is drawn: until then the folder holds the earlier run's set as it
was. A hidden folder that a killed run (``kill -9``) leaves behind is named for what it is,
and holds only figures.
"""

from __future__ import annotations

import contextlib
import shutil
import stat
import tempfile
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from retinalnet._core.files import (
    FileWriteError,
    _interrupts_held,
    _replace,
    atomic_copy,
    os_error_in_words,
)
from retinalnet._core.output_kinds import check_output_file

__all__ = ["STAGING_PREFIX", "StagedFiles"]

STAGING_PREFIX = ".retinalnet-drawing-"
"""How the hidden folder that figures are drawn into starts."""


class StagedFiles:
    """Figures drawn aside (:meth:`draw`) and put in place together (:meth:`commit`).

    Used as a context manager: on leaving it, whatever was drawn and not put in place is
    removed, with the folders it made, so an error or Ctrl-C leaves each folder as it was.

    Examples
    --------
    >>> with StagedFiles() as staged:  # doctest: +SKIP
    ...     staged.draw(folder / "roc.png", plot_roc_curves, result, title="ROC")
    ...     staged.commit()
    """

    def __init__(self) -> None:
        self._drawn: list[tuple[Path, Path]] = []  # (where drawn, where it goes)
        self._staging: dict[Path, Path] = {}  # a target folder: the hidden folder in it
        self._made: list[Path] = []  # the target folders made here, innermost first

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: types.TracebackType | None,
    ) -> None:
        self.discard()

    def draw(self, target: Path, plot: Callable[..., object], *args: Any, **kwargs: Any) -> Path:
        """``plot(*args, **kwargs, save=path)`` of the figure that goes to ``target``, with
        ``path`` in the hidden folder; returns ``target``. Its folder is made now (after
        what came before, a heatmap: a refused Grad-CAM makes none).

        Raises
        ------
        ValueError, FileExistsError
            If ``target`` is a folder, or a file a figure must not replace (a scan, a
            checkpoint), as :func:`~retinalnet._core.printable.save_figure` refuses it.
        FileWriteError
            If the figure cannot be written (a full disk): naming ``target``, not the hidden
            folder; nothing of this set is in place then.
        """
        if target.is_dir():
            raise ValueError(
                f"the save path {str(target)!r} is a folder; move it away, or choose another "
                "output folder"
            )
        check_output_file(target, "figure", writer="saving the figure")
        staged = self._staging_folder(target) / target.name
        try:
            plot(*args, **kwargs, save=staged)
        except FileWriteError as error:
            raise FileWriteError(target, error.reason, error.errno, _is_file(target)) from error
        self._drawn.append((staged, target))
        return target

    def commit(self, others: Iterable[Path] = ()) -> list[Path]:
        """Put every figure drawn onto its name; Ctrl-C meanwhile takes effect once all are
        in place. Returns the paths of ``others`` (the command's own figure names) that
        this run did not draw but are there: an earlier run's, or the user's own file of
        that name, left as they are for the caller to say (nothing tells whose it is).

        Raises
        ------
        FileWriteError
            If a figure cannot be put in place (naming it).
        """
        drawn = {target for _, target in self._drawn}
        with _interrupts_held():
            for staged, target in self._drawn:
                _move(staged, target)
            self._drawn.clear()
        self.discard()
        return [path for path in others if path not in drawn and _is_there(path)]

    def discard(self) -> None:
        """Remove the hidden folders with what is left in them, and the target folders made
        for them that stayed empty."""
        for staging in self._staging.values():
            shutil.rmtree(staging, ignore_errors=True)
        self._staging.clear()
        self._drawn.clear()
        for folder in self._made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only while empty
        self._made.clear()

    def _staging_folder(self, target: Path) -> Path:
        folder = target.parent
        if folder in self._staging:
            return self._staging[folder]
        missing = [f for f in (folder, *folder.parents) if not f.exists() and not f.is_symlink()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._made += [f for f in missing if f not in self._made]
            staging = Path(tempfile.mkdtemp(dir=folder, prefix=STAGING_PREFIX))
        except OSError as error:
            raise FileWriteError(
                target, os_error_in_words(error), error.errno, _is_file(target)
            ) from error
        self._staging[folder] = staging
        return staging


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _is_there(path: Path) -> bool:
    return path.is_symlink() or _is_file(path)


def _move(staged: Path, target: Path) -> None:
    """``staged`` renamed onto ``target``; through a link, as a figure saved to ``target``
    would be written to the file it points to."""
    try:
        if target.is_symlink():
            atomic_copy(staged, target)  # keeps the mode of the file it points to
            staged.unlink()
        else:
            if target.is_file():  # the replaced figure's permissions, as atomic_write keeps
                staged.chmod(stat.S_IMODE(target.stat().st_mode))
            _replace(staged, target)  # retried while Windows holds the file open
    except FileWriteError:
        raise
    except OSError as error:
        raise FileWriteError(
            target, os_error_in_words(error), error.errno, _is_file(target)
        ) from error
