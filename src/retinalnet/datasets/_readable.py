"""What evaluation scores of a data set with ``on_error="skip"``: its readable images only.

:class:`~retinalnet.datasets.KermanyOCT` with ``on_error="skip"`` returns the next readable
sample in place of an unreadable one, so that a training batch keeps its size. Whatever
computes numbers on a data set (``evaluate``, ``calibrate``, the Trainer's validation, the
feature cache) must never score that substitute: it would count the neighbour twice, under
the unreadable image's patient. Each of those doors passes its data through
:func:`readable_for_scoring`, which decodes every image once and leaves the unreadable ones
out (logged), or refuses data whose images it cannot leave out (a DataLoader, a ``Subset``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import torch
import torch.utils.data

from retinalnet._core.articles import type_with_article
from retinalnet._core.images import UnreadableImageError
from retinalnet._core.loaders import decoded_with
from retinalnet._core.progress import progress_bar
from retinalnet._core.worker_start import ExplainedLoader
from retinalnet.datasets._kermany import KermanyOCT

__all__ = [
    "readable_for_scoring",
    "readable_split",
    "refuse_substitution",
    "substituting_dataset",
]

logger = logging.getLogger(__name__)

_LISTED = 10  # unreadable files named in the log line of a skip


def readable_split(
    data: KermanyOCT,
    decode: Callable[[str], Any] | None = None,
    *,
    progress: bool = False,
    num_workers: int = 0,
) -> tuple[KermanyOCT, list[tuple[str, str]]]:
    """The data set without the images it cannot read, and ``(path, reason)`` of those.

    Each image is decoded once, as the evaluation will decode it (``decode``, the model's
    :meth:`~retinalnet.transforms.Preprocessing.load`, when ``data`` reads its files with the
    default loader and has no ``transform``; else its own loader): an evaluation that met an
    unreadable file half-way could only stop or, with ``on_error="skip"``, count another
    image in its place. The data set returned reads with ``on_error="raise"``, so a file that
    becomes unreadable afterwards stops the evaluation, naming it, rather than being replaced.
    ``data`` itself is returned when it reads with ``on_error="raise"`` and every image is
    readable. ``num_workers`` processes share the decoding.

    Raises
    ------
    ValueError
        If no image of ``data`` can be read.
    """
    reader = data.loader
    if decode is not None:  # what the evaluation reads with: see make_loader
        reader = cast(KermanyOCT, decoded_with(data, decode)).loader
    paths = [path for path, _ in data.samples]
    reasons = _unreadable(paths, reader, num_workers=num_workers)
    shown = progress_bar(reasons, total=len(paths), description="checking images", enabled=progress)
    skipped = [(path, reason) for path, reason in zip(paths, shown, strict=True) if reason]
    if skipped and len(skipped) == len(paths):
        raise ValueError(
            f"none of the {len(paths)} images of {str(data.split_dir)!r} can be read "
            f"(first: {skipped[0][0]}: {skipped[0][1]})"
        )
    if not skipped and data.on_error == "raise":
        return data, []
    readable = data.without(path for path, _ in skipped)
    readable.on_error = "raise"
    return readable, skipped


class _Readability(torch.utils.data.Dataset[str]):
    """Why each file cannot be read (``""``: it can), for the workers of a DataLoader."""

    def __init__(self, paths: Sequence[str], reader: Callable[[str], Any]) -> None:
        self.paths = paths
        self.reader = reader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> str:
        try:
            image = self.reader(self.paths[index])
        except UnreadableImageError as error:
            return error.reason or str(error)
        close = getattr(image, "close", None)
        if callable(close):
            close()
        return ""


def _unreadable(
    paths: Sequence[str], reader: Callable[[str], Any], *, num_workers: int
) -> Iterable[str]:
    """Why each of ``paths`` cannot be read, in order (``""`` for a readable one)."""
    check = _Readability(paths, reader)
    if num_workers <= 0:
        return (check[index] for index in range(len(check)))
    batches = ExplainedLoader(  # its own generator: the caller's random numbers left alone
        check,
        batch_size=32,
        num_workers=num_workers,
        collate_fn=list,
        generator=torch.Generator(),
    )
    return (reason for batch in batches for reason in batch)


def substituting_dataset(data: object) -> KermanyOCT | None:
    """The :class:`KermanyOCT` with ``on_error="skip"`` that ``data`` is or reads through (a
    DataLoader's ``dataset``, a ``Subset``'s, a ``ConcatDataset``'s ``datasets``), if any."""
    pending, seen = [data], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, KermanyOCT):
            if current.on_error == "skip":
                return current
            continue
        inner = getattr(current, "dataset", None)
        if inner is not None:
            pending.append(inner)
        pending.extend(getattr(current, "datasets", None) or ())
    return None


def readable_for_scoring(
    data: Any,
    decode: Callable[[str], Any] | None,
    *,
    where: str,
    progress: bool = False,
    num_workers: int = 0,
) -> tuple[Any, list[tuple[str, str]]]:
    """``data`` ready to be scored: a :class:`KermanyOCT` with ``on_error="skip"`` without its
    unreadable images (logged as a warning naming them, see :func:`readable_split`); any
    other data as it is. Returns the data and the ``(path, reason)`` of each image left out.

    Raises
    ------
    ValueError
        If ``data`` reads through a ``KermanyOCT(on_error="skip")`` it does not own (a
        DataLoader, a ``Subset``): its unreadable images cannot be left out, and the
        substitutes would be scored; or if no image can be read.
    """
    if isinstance(data, KermanyOCT):
        if data.on_error != "skip":
            return data, []
        readable, skipped = readable_split(data, decode, progress=progress, num_workers=num_workers)
        if skipped:
            _log_skipped(where, data, skipped)
        return readable, skipped
    refuse_substitution(data, where=where)
    return data, []


def refuse_substitution(data: object, *, where: str) -> None:
    """Refuse data that would score the sample ``on_error="skip"`` substitutes.

    Raises
    ------
    ValueError
        If ``data`` is, or reads through, a ``KermanyOCT(on_error="skip")``; ``where`` names
        the caller.
    """
    inner = substituting_dataset(data)
    if inner is None:
        return
    through = "" if inner is data else f" inside {type_with_article(data)}"
    raise ValueError(
        f"{where}: {inner!r}{through} reads with on_error='skip', which puts the next readable "
        "scan in place of an unreadable one, so that scan would be scored twice; pass the "
        "KermanyOCT itself to retinalnet.training.evaluate() or calibrate() (they leave its "
        "unreadable images out), or build it with on_error='raise'"
    )


def _log_skipped(where: str, data: KermanyOCT, skipped: Sequence[tuple[str, str]]) -> None:
    named = "; ".join(f"{path!r} ({reason})" for path, reason in skipped[:_LISTED])
    more = (
        f"; and {len(skipped) - _LISTED} more (`retinalnet audit` lists every unreadable file)"
        if len(skipped) > _LISTED
        else ""
    )
    logger.warning(
        "%s: left out %d unreadable image(s) of %r (on_error='skip'), not scored and not "
        "replaced by another: %s%s",
        where,
        len(skipped),
        data,
        named,
        more,
    )
