"""What lies under a data root that is not the ``ROOT/{train,val,test}`` layout, in words.

Two layouts come up again and again, and every door that reads a data root
(:class:`~retinalnet.datasets.KermanyOCT`, :func:`~retinalnet.datasets.count_images`, and
through them ``retinalnet train``, ``evaluate`` and ``calibrate``) names them the same way:

- a split folder under another name (``valid``, as the PyTorch transfer-learning tutorials
  name it; ``Train``; ``testing``): it should be renamed, not replaced, since it holds the
  user's own validation (or test) images. :func:`~retinalnet.datasets._audit_report.split_named`
  (the audit's reading of such names) decides what a name means;
- the split folders one or two levels down (Kaggle's ``OCT2017 /``, whose name ends in a
  space that no message shows unquoted; Mendeley's ``CellData/OCT``): that folder is the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from retinalnet._core.classes import KERMANY_CLASSES, KERMANY_SPLITS
from retinalnet.datasets._audit_report import split_named
from retinalnet.datasets._files import is_image_file, walk_files
from retinalnet.datasets._folder_names import shown_name
from retinalnet.datasets._system_folders import system_folder

__all__ = ["RootLayout", "describe_root", "shown_name", "unknown_split_message"]

_CLASS_NAMES = frozenset(name.lower() for name in KERMANY_CLASSES)


def _subfolders(folder: Path) -> list[str]:
    """The names of the folders in ``folder``, sorted (``[]`` when it cannot be read)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entry.name for entry in entries if _is_dir(entry))
    except OSError:
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link to itself (ELOOP)
        return False


def _may_hold_splits(name: str) -> bool:
    """Whether a folder named ``name`` may be a data root below the one given: not hidden,
    not a system folder, not a class folder or a split folder."""
    return not (
        name.startswith(".")
        or system_folder(name) is not None
        or name.lower() in _CLASS_NAMES
        or split_named(name) is not None
    )


def _holds_splits(folder: Path) -> bool:
    return any(split_named(name) is not None for name in _subfolders(folder))


@dataclass(frozen=True)
class RootLayout:
    """The folders directly under a data root, read for advice.

    Attributes
    ----------
    root : Path
        The data root as given.
    folders : tuple of str
        The names of its folders, sorted.
    misnamed : dict of str to str
        Each folder named like a split in another case or spelling, and the split it means
        (``{"valid": "val"}``).
    nested : tuple of Path
        The folders one or two levels down that hold split folders (Kaggle's
        ``OCT2017 /``), when ``root`` holds no split folder itself.
    """

    root: Path
    folders: tuple[str, ...]
    misnamed: dict[str, str]
    nested: tuple[Path, ...]

    @property
    def splits(self) -> tuple[str, ...]:
        """The split folders ``root`` holds under their own names."""
        return tuple(split for split in KERMANY_SPLITS if split in self.folders)

    def found(self) -> str:
        """The folders, for a ``(found: ...)`` note: ``test, train, valid`` or ``nothing``."""
        return ", ".join(shown_name(name) for name in self.folders) or "nothing"

    def images_in(self, folder: str) -> int:
        """The image files under ``root/folder`` (system folders and links read as
        :class:`~retinalnet.datasets.KermanyOCT` reads them, without a word about them)."""
        walk = walk_files(str(self.root / folder), [], [])
        return sum(is_image_file(entry.name) for entry in walk)

    def misnamed_advice(self) -> str | None:
        """What to do with each misnamed split folder, or ``None`` when there is none:
        ``a folder 'valid' (16 images) looks like the val split but is not read under that
        name: rename it to 'val'`` (or, beside a ``val`` folder, move its images there)."""
        if not self.misnamed:
            return None
        phrases = []
        for folder, split in self.misnamed.items():
            does = (
                f"is not read under that name: rename it to {split!r}"
                if split not in self.splits
                else f"is not read, {split!r} is: move its images into {split!r} or remove it"
            )
            count = self.images_in(folder)
            phrases.append(
                f"a folder {folder!r} ({count} image{'' if count == 1 else 's'}) looks like "
                f"the {split} split but {does}"
            )
        return "; ".join(phrases)

    def nested_advice(self) -> str | None:
        """Which folder below ``root`` to pass instead, or ``None`` when none holds split
        folders."""
        if not self.nested:
            return None
        named = [
            repr(str(folder))
            + (" (its name ends in a space)" if folder.name != folder.name.rstrip() else "")
            for folder in self.nested
        ]
        if len(named) == 1:
            return f"the split folders are in {named[0]}: pass that folder as the data root"
        return f"split folders are in {', '.join(named)}: pass one of them as the data root"

    def advice(self) -> str | None:
        """The advice for a root missing a split folder: the misnamed split folders, else
        the folder below that holds the splits, else ``None``."""
        return self.misnamed_advice() or self.nested_advice()


def describe_root(root: Path) -> RootLayout:
    """Read what lies under ``root`` for advice (an existing folder): its folders, those
    named like a split in another case or spelling, and, when it holds no split folder
    at all, the folders one or two levels down that do.

    Only folders are listed (one :func:`os.scandir` per folder looked into, and only on the
    way to an error or a warning); images are counted when the advice is written.
    """
    folders = tuple(_subfolders(root))
    misnamed = {}
    for name in folders:
        split = split_named(name)
        if split is not None and name != split and not _same_folder(root / name, root / split):
            misnamed[name] = split
    nested: list[Path] = []
    if not any(split_named(name) for name in folders):
        candidates = [root / name for name in folders if _may_hold_splits(name)]
        nested = [folder for folder in candidates if _holds_splits(folder)]
        if not nested:  # two levels down: CellData/OCT, archive/OCT2017
            nested = [
                folder / name
                for folder in candidates
                for name in _subfolders(folder)
                if _may_hold_splits(name) and _holds_splits(folder / name)
            ]
    return RootLayout(root, folders, misnamed, tuple(nested))


def _same_folder(first: Path, second: Path) -> bool:
    """Whether two paths are one folder (``Train`` and ``train`` on a case-insensitive
    file system)."""
    try:
        return first.samefile(second)
    except OSError:
        return False


def unknown_split_message(split: object) -> str:
    """The refusal of a split name that is not ``train``, ``val`` or ``test``, pointing at
    the one a near name (``"valid"``, ``"Train"``) means."""
    message = f"split {split!r} is not one of {', '.join(KERMANY_SPLITS)}"
    meant = split_named(split) if isinstance(split, str) else None
    if meant is None:
        return message
    return (
        f"{message}: the {meant} split is {meant!r}, read from the folder ROOT/{meant} "
        f"(a folder named {split!r} is not read: rename it to {meant!r})"
    )
