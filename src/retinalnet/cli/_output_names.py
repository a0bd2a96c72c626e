"""Names for the files one command writes into its output folders, each name used once."""

from __future__ import annotations

from pathlib import Path

__all__ = ["OutputNames"]


class OutputNames:
    """Hands out ``FOLDER/STEM_SUFFIX``, numbering a stem that comes again (``STEM_2_SUFFIX``).

    Two inputs of the same name (``a/scan.jpeg``, ``b/scan.jpeg``), an input whose name is
    another's numbered one (``scan_2.png``), or a volume beside an image of its stem: each
    gets its own file, and none overwrites another's output of the same command.

    Examples
    --------
    >>> names = OutputNames()
    >>> [names.take(Path("cams"), stem, "cam.png").name for stem in ("scan", "scan_2", "scan")]
    ['scan_cam.png', 'scan_2_cam.png', 'scan_3_cam.png']
    """

    def __init__(self) -> None:
        self._taken: set[Path] = set()

    def take(self, folder: Path, stem: str, suffix: str) -> Path:
        """A path in ``folder`` no earlier call returned."""
        target, number = folder / f"{stem}_{suffix}", 2
        while target in self._taken:
            target, number = folder / f"{stem}_{number}_{suffix}", number + 1
        self._taken.add(target)
        return target
