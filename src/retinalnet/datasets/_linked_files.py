"""Symbolic links met by the folder walks: each file listed once, none from another split.

A walk reads one *area*: a split folder of a data root (``OCT2017/train``), or the folder
:func:`~retinalnet.datasets.find_images` searches. Every link is decided on the real path
it leads to (one :func:`os.path.realpath` a link; plain folders and files cost no system
call):

- into another split's folder of the same data root (``train/CNV/more -> test/CNV``):
  refused, since the test images would be trained on without a word;
- to a folder or image the walk of its area reads anyway (``train/CNV/x.jpeg ->
  train/CNV/y.jpeg``): skipped with one warning, so the image is read once;
- elsewhere (data stored on another disk, linked in): followed, and a file reached twice
  that way is listed once.

Of two paths to one image, the first reached is kept, the walks taking each folder's entries
in name order (not in the file system's listing order), so a tree copied to another disk
keeps the same one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.classes import IMAGE_EXTENSIONS, KERMANY_SPLITS
from retinalnet.datasets._system_folders import system_folder

__all__ = ["LinkedFiles", "real_path"]


def real_path(path: str, real_folders: dict[str, str]) -> str:
    """The real path of the file ``path`` (links followed, ``..`` and ``.`` taken out): one
    :func:`os.path.realpath` a folder, kept in ``real_folders``, and one ``lstat`` a file
    (a link is resolved itself). The manifest reader's notion of one file, as the walks'."""
    folder, name = os.path.split(path)
    if folder not in real_folders:
        real_folders[folder] = os.path.realpath(folder)
    joined = os.path.join(real_folders[folder], name)  # noqa: PTH118 - no Path a row
    if name in ("", ".", "..") or os.path.islink(joined):  # noqa: PTH114
        joined = os.path.realpath(joined)
    return joined


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


class LinkedFiles:
    """The real paths the walks of one area have met, and what they do with a link.

    Parameters
    ----------
    area
        The real path of the folder the walks read (a split folder, or a searched folder).
    where
        The area in words, for warnings (``"split 'train' under '/data/OCT2017'"``).
    others
        The real paths of the folders no link may lead into, by name (the other splits).
    split
        The split the area is, for the refusal of a link into ``others``.
    loops
        Where the paths of the links skipped go; ``None``: said in warnings instead.
    """

    def __init__(
        self,
        area: str,
        where: str,
        *,
        others: Mapping[str, str] | None = None,
        split: str | None = None,
        loops: list[str] | None = None,
    ) -> None:
        self.area = area
        self.where = where
        self.others = dict(others or {})
        self.split = split
        self.loops = loops
        self._seen: dict[str, str] = {}  # real path -> the path it was listed by (links only)
        self._skipped: list[tuple[str, str]] = []  # (link, the file it is the same as)

    @classmethod
    def of_folder(cls, folder: str, loops: list[str] | None = None) -> LinkedFiles:
        """For a walk of ``folder`` alone (no splits)."""
        return cls(os.path.realpath(folder), f"{folder!r}", loops=loops)

    @classmethod
    def of_split(
        cls,
        root: str | os.PathLike[str],
        split: str,
        *,
        loops: list[str] | None = None,
        refuse_others: bool = True,
    ) -> LinkedFiles:
        """For the walks of the class folders of ``root/split``; links into the other split
        folders of ``root`` are refused unless ``refuse_others`` is false (the audit reports
        them as leakage instead).

        Raises
        ------
        ValueError
            If the split folder itself is (or lies in) another split's folder.
        """
        base = os.fspath(root)
        others = (
            {
                name: os.path.realpath(os.path.join(base, name))  # noqa: PTH118
                for name in KERMANY_SPLITS
                if name != split
            }
            if refuse_others
            else {}
        )
        own = os.path.join(base, split)  # noqa: PTH118
        once = cls(
            os.path.realpath(own),
            f"split {split!r} under {base!r}",
            others=others,
            split=split,
            loops=loops,
        )
        once.refuse_other_split(own, once.area)
        return once

    def start(self, folder: str) -> tuple[str, bool] | None:
        """The real path a walk of ``folder`` (a class folder, or the area) starts from, and
        whether it is reached through a link; ``None`` when it is a link to a folder the
        area's walks read anyway (skipped, said)."""
        real = os.path.realpath(folder)
        if real == self.area or real == os.path.join(self.area, os.path.basename(folder)):  # noqa: PTH118, PTH119
            return real, False
        self.refuse_other_split(folder, real)
        if self._read_there(real, is_file=False):
            self._skip_folder(folder, real)
            return None
        return real, True

    def refuse_other_split(self, path: str, real: str) -> None:
        """Refuse a ``path`` whose real path lies in another split's folder (or holds one)."""
        for name, folder in self.others.items():
            if _under(real, folder) or folder.startswith(real + os.sep):
                raise ValueError(
                    f"the link {path!r} in split {self.split!r} leads to {real!r}, in the "
                    f"{name!r} folder of the same data root, so {name} images would be read "
                    f"as {self.split} images (one image in two splits); remove the link, or "
                    f"copy the image(s) into {self.split!r} if they really belong to both"
                )

    def follows(self, path: str, real: str, chain: tuple[str, ...]) -> bool:
        """Whether the walk follows the folder link ``path`` (real path ``real``; ``chain``:
        the real paths of the folders it is inside); a loop, or a folder read anyway, is
        skipped and said."""
        if any(_under(above, real) for above in chain):
            self._say_folder(
                f"skipping the link {path!r}: it leads back to {real!r}, a folder it is "
                "inside (a loop); remove the link",
                path,
            )
            return False
        self.refuse_other_split(path, real)
        if self._read_there(real, is_file=False):
            self._skip_folder(path, real)
            return False
        return True

    def lists(self, entry: os.DirEntry[str], folder_real: str, linked: bool) -> bool:
        """Whether the walk lists the file ``entry`` in the folder of real path
        ``folder_real`` (reached through a link when ``linked``): not when it is the same
        file as one listed, or a link to an image the area's walks read anyway."""
        link = entry.is_symlink()  # no system call (the folder's listing says it)
        if not (link or linked) or not _is_image_name(entry.name):
            return True  # a plain file of the area, or not read (the callers say so)
        if link:
            real = os.path.realpath(entry.path)
            if not os.path.exists(real):  # noqa: PTH110 - broken: listed, reading names it
                return True
            self.refuse_other_split(entry.path, real)
            if self._read_there(real, is_file=True):
                self._skipped.append((entry.path, real))
                return False
        else:
            real = os.path.join(folder_real, entry.name)  # noqa: PTH118
        first = self._seen.setdefault(real, entry.path)
        if first != entry.path:
            self._skipped.append((entry.path, first))
            return False
        return True

    def said(self) -> None:
        """Say the file links skipped, in one warning (or append them to ``loops``)."""
        if not self._skipped:
            return
        if self.loops is not None:
            self.loops.extend(link for link, _ in self._skipped)
        else:
            link, same = self._skipped[0]
            more = f" (and {len(self._skipped) - 1} more)" if len(self._skipped) > 1 else ""
            warn_caller(
                f"skipping the link {link!r}{more} in {self.where}: it is the same image as "
                f"{same!r}, whose files are read there, each once; remove the link, or copy "
                "the image if it is meant to be read twice",
                RuntimeWarning,
            )
        self._skipped.clear()

    def _read_there(self, real: str, *, is_file: bool) -> bool:
        """Whether the walks of the area read ``real`` anyway (no hidden or system folder
        between; an image by name)."""
        if not real.startswith(self.area + os.sep):
            return False
        parts = real[len(self.area) + 1 :].split(os.sep)  # noqa: PTH206 - no Path a link
        if is_file and not _is_image_name(parts.pop()):
            return False
        return not any(part.startswith(".") or system_folder(part) for part in parts)

    def _skip_folder(self, path: str, real: str) -> None:
        self._say_folder(
            f"skipping the link {path!r}: it leads to {real!r}, a folder under "
            f"{self.area!r} whose files are listed there, each once; remove the link",
            path,
        )

    def _say_folder(self, message: str, path: str) -> None:
        if self.loops is None:
            warn_caller(message, RuntimeWarning)
        else:
            self.loops.append(path)
