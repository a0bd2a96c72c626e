"""``retinalnet predict`` for OCT volumes: multi-frame files, summarised per volume.

A multi-frame DICOM file, multi-page TIFF or animated PNG among the paths is a volume: every B-scan
is predicted and the volume summarised by :func:`retinalnet.volume.predict_volume` (one line each,
then the B-scans that drove it); ``--json`` gives every B-scan's probabilities, ``--plots DIR`` a
strip figure per volume, ``--cam DIR`` Grad-CAM overlays of the driving B-scans. Nothing from a
file's patient tags is read, so nothing of them is printed.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TextIO

from retinalnet._core.log_marks import SAID_BY_THE_COMMAND_LINE
from retinalnet._core.proportion_text import percent, percent_as_given
from retinalnet.cli._argtypes import int_in_range, path_argument
from retinalnet.cli._order import check_order, given_order, order_argument

if TYPE_CHECKING:
    from PIL import Image

    from retinalnet.cli._output_names import OutputNames
    from retinalnet.cli._staged_files import StagedFiles
    from retinalnet.predictor import Predictor, SkippedImage
    from retinalnet.volume import VolumeSummary

__all__ = [
    "VolumeOutputs",
    "VolumeRun",
    "add_volume_flags",
    "check_order",
    "predict_volumes",
    "print_volumes",
    "split_volumes",
    "warn_of_unused_rule_flags",
    "write_volume_outputs",
]

logger = logging.getLogger("retinalnet")

_SHOWN = 5  # driving B-scans listed per volume in the text output
_CAMS = 3  # Grad-CAM overlays per volume
_NAMED = 3  # volumes named in a message refusing several
_ONE_FRAME_SUFFIXES = (".jpeg", ".jpg", ".bmp")  # never opened: one picture per file
_THRESHOLD = 0.5  # --threshold when not given
_MIN_SCANS = 1  # --min-scans when not given


def split_volumes(paths: Sequence[Path], args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """The image files and the volumes (multi-frame DICOM, multi-page TIFF, animated PNG,
    GIF or WebP files) among ``paths``.

    Only the headers of files that can hold several frames are read (not JPEG or BMP). A file whose
    header cannot be read stays with the images, where the Predictor reports it (or skips it with
    ``--on-error skip``). Flags that do not fit the volumes found are refused here, before any
    prediction.

    ``--order`` is checked here too, whatever the paths (a duplicated or empty class name),
    before the model is loaded; :func:`check_order` checks it against the model's classes.

    Raises
    ------
    RuntimeError
        If pydicom is not installed and a DICOM file is given (one line, the fix).
    ValueError
        If ``--csv`` is given with a volume, ``--plots`` without one, ``--order`` is empty or
        names a class twice or an empty one, or a volume holds fewer B-scans than
        ``--min-scans`` (no class could reach the rule; ``--on-error skip`` does not leave it
        out: the volume is readable, the setting does not fit it).
    """
    from retinalnet._core.images import UnreadableImageError, frame_count

    given_order(args)  # its own checks before the model is loaded; check_order: the model's classes
    images: list[Path] = []
    volumes: list[tuple[Path, int]] = []
    for path in paths:
        try:
            frames = 1 if path.suffix.lower() in _ONE_FRAME_SUFFIXES else frame_count(path)
        except UnreadableImageError:
            frames = 1
        except ModuleNotFoundError as error:
            raise RuntimeError(str(error)) from None
        if frames > 1:
            volumes.append((path, frames))
        else:
            images.append(path)
    if volumes and args.csv is not None:
        path, frames = volumes[0]
        raise ValueError(
            f"--csv writes one row per image, and {path} is a volume of {frames} B-scans; use "
            "--json for volumes (every B-scan's probabilities), or leave --csv out"
        )
    if not volumes and args.plots is not None:
        raise ValueError(
            "--plots DIR draws the B-scan probabilities of each volume (a multi-frame DICOM, "
            "multi-page TIFF, animated PNG, GIF or WebP file), and no volume was given; leave "
            "--plots out"
        )
    short = [(path, frames) for path, frames in volumes if frames < min_scans(args)]
    if short:
        raise ValueError(_too_few_scans(short, min_scans(args)))
    return images, [path for path, _ in volumes]


def threshold(args: argparse.Namespace) -> float:
    """``--threshold``, or its default when not given."""
    return _THRESHOLD if args.threshold is None else float(args.threshold)


def min_scans(args: argparse.Namespace) -> int:
    """``--min-scans``, or its default when not given."""
    return _MIN_SCANS if args.min_scans is None else int(args.min_scans)


def warn_of_unused_rule_flags(args: argparse.Namespace) -> None:
    """Say that ``--threshold``, ``--min-scans`` and ``--order`` change nothing when no volume
    is given: they set the referral rule of volumes, not which images are reported (a
    ``--threshold 0.9`` read as "only confident predictions" would otherwise pass silently).
    """
    given = [
        flag
        for flag, value in (
            ("--threshold", args.threshold),
            ("--min-scans", args.min_scans),
            ("--order", args.order),
        )
        if value is not None
    ]
    if given:
        verb = "sets" if len(given) == 1 else "set"
        warnings.warn(
            f"{', '.join(given)} {verb} the referral rule of volumes (multi-frame DICOM, "
            "multi-page TIFF, animated PNG, GIF or WebP files), and no volume was given: they "
            "change nothing for single images, which "
            "are reported whatever their probabilities",
            UserWarning,
            stacklevel=1,
        )


def _too_few_scans(short: Sequence[tuple[Path, int]], min_scans: int) -> str:
    """The message refusing volumes of fewer B-scans than ``--min-scans``."""
    fewest = min(frames for _, frames in short)
    if len(short) == 1:
        path, frames = short[0]
        return (
            f"the volume {path} has {frames} B-scan{'' if frames == 1 else 's'}, fewer than "
            f"--min-scans {min_scans}, so no class can reach the referral rule and its label "
            f"would be the fallback class whatever its B-scans show; pass --min-scans {fewest} "
            "or less, or leave the volume out"
        )
    named = ", ".join(f"{path} ({frames})" for path, frames in short[:_NAMED])
    more = f" and {len(short) - _NAMED} more" if len(short) > _NAMED else ""
    return (
        f"{len(short)} volumes have fewer B-scans than --min-scans {min_scans}: {named}{more}, "
        "so no class can reach the referral rule and their labels would be the fallback class "
        f"whatever their B-scans show; pass --min-scans {fewest} or less, or leave those "
        "volumes out"
    )


@dataclass(frozen=True)
class VolumeRun:
    """A volume's summary and its B-scans (kept for the Grad-CAM overlays)."""

    path: Path
    summary: VolumeSummary
    scans: list[Image.Image]


def predict_volumes(
    predictor: Predictor, volumes: Sequence[Path], args: argparse.Namespace
) -> tuple[list[VolumeRun], list[SkippedImage]]:
    """Summarise each volume; with ``--on-error skip`` an unreadable one is listed, not fatal.

    The caller has checked ``--order`` against the model's classes (:func:`check_order`,
    before any image is predicted).

    Raises
    ------
    ValueError
        If a volume holds fewer B-scans than ``--min-scans`` (even with ``--on-error
        skip``).
    retinalnet.datasets.UnreadableImageError
        If a volume cannot be read, unless ``--on-error skip``.
    """
    from retinalnet._core.images import UnreadableImageError
    from retinalnet.predictor import SkippedImage
    from retinalnet.volume import predict_volume, read_volume

    order = given_order(args)  # checked against the model's classes by run_predict (check_order)
    runs: list[VolumeRun] = []
    skipped: list[SkippedImage] = []
    for path in volumes:
        try:
            scans = read_volume(path)
            if len(scans) < min_scans(args):  # as split_volumes, were a header to count wrongly
                raise ValueError(_too_few_scans([(path, len(scans))], min_scans(args)))
            summary = predict_volume(
                predictor,
                scans,
                threshold=threshold(args),
                order=order,
                min_scans=min_scans(args),
                source=str(path),
            )
        except UnreadableImageError as error:
            if args.on_error != "skip":
                raise
            skipped.append(SkippedImage(str(path), error.reason or str(error)))
            continue
        runs.append(VolumeRun(path, summary, scans))
    if skipped:
        logger.warning(
            "skipped %d unreadable volume(s) of %d",
            len(skipped),
            len(volumes),
            extra={SAID_BY_THE_COMMAND_LINE: True},
        )
    return runs, skipped


def print_volumes(runs: Sequence[VolumeRun], file: TextIO | None = None) -> None:
    """One line per volume, then the B-scans that drove it (at most five, most probable), on
    ``file`` (stdout by default)."""
    for run in runs:
        summary = run.summary
        print(summary, file=file)
        if summary.drivers:
            shown = ", ".join(
                f"{scan.index} ({percent(scan.probability)})" for scan in summary.drivers[:_SHOWN]
            )
            more = len(summary.drivers) - _SHOWN
            extra = f" and {more} more" if more > 0 else ""
            at_least = f"{summary.label} >= {percent_as_given(summary.threshold)}"
            print(f"  B-scans at {at_least}: {shown}{extra}", file=file)


class VolumeOutputs(NamedTuple):
    """The files :func:`write_volume_outputs` wrote."""

    plots: list[Path]
    """``--plots``: a strip figure per volume."""
    cams: list[Path]
    """``--cam``: the Grad-CAM overlays of the volumes' driving B-scans."""


def write_volume_outputs(
    predictor: Predictor,
    runs: Sequence[VolumeRun],
    args: argparse.Namespace,
    names: OutputNames,
    staged: StagedFiles,
) -> VolumeOutputs:
    """``--plots DIR``: a strip figure per volume; ``--cam DIR``: overlays of its drivers.

    ``names`` gives every file its own name (``STEM_volume.png``, ``STEM_scanI_cam.png``,
    numbered when a stem comes again), shared with the images' overlays. Each is drawn
    aside by ``staged``, which its caller has put the set in place with once all are drawn
    (an interrupted run leaves the earlier run's figures as they were). The two kinds are
    returned apart: ``--plots`` and ``--cam`` may name one folder.
    """
    written = VolumeOutputs([], [])
    if args.plots is not None:
        from retinalnet.plots_volume import plot_volume

        folder: Path = args.plots
        for run in runs:
            target = names.take(folder, run.path.stem, "volume.png")
            written.plots.append(staged.draw(target, plot_volume, run.summary))
    if args.cam is not None:
        from retinalnet.cli._output_names import shown_names
        from retinalnet.plots import plot_gradcam

        folder = args.cam
        titled = shown_names([run.path for run in runs])  # a name twice: titled with the path
        for run, shown in zip(runs, titled, strict=True):
            summary = run.summary
            index = summary.classes.index(summary.label)
            scans = list(summary.drivers[:_CAMS]) or [summary.peak(summary.label)]
            for scan in scans:
                heatmap = predictor.gradcam(run.scans[scan.index], class_index=index)
                title = f"{shown} B-scan {scan.index}: {summary.label} {percent(scan.probability)}"
                target = names.take(folder, run.path.stem, f"scan{scan.index}_cam.png")
                # its folder made by staged, after a heatmap: none if refused
                staged.draw(target, plot_gradcam, run.scans[scan.index], heatmap, title=title)
                written.cams.append(target)
    return written


def _probability(text: str) -> float:
    """An argparse type: a probability in (0, 1] (``--threshold``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability in (0, 1], got {text}")
    return value


_probability.__name__ = "probability"  # how argparse names the type in its messages


def add_volume_flags(predict: argparse.ArgumentParser) -> None:
    """The flags of ``predict`` for OCT volumes (multi-frame DICOM, multi-page TIFF,
    animated PNG, GIF or WebP files)."""
    volume = predict.add_argument_group(
        "OCT volumes (multi-frame DICOM, multi-page TIFF, animated PNG, GIF or WebP files)"
    )
    volume.add_argument(
        "--threshold",
        type=_probability,
        default=None,
        metavar="P",
        help="a B-scan counts for a class at this probability; the volume gets the first of "
        f"CNV, DME, DRUSEN that enough B-scans reach, else NORMAL (default: {_THRESHOLD})",
    )
    volume.add_argument(
        "--min-scans",
        type=int_in_range(1),
        default=None,
        metavar="N",
        help=f"B-scans that must reach the threshold for a class (default: {_MIN_SCANS})",
    )
    volume.add_argument(
        "--order",
        type=order_argument,
        default=None,
        metavar="A,B,...",
        help="the model's classes by concern, highest first, fallback last, separated by "
        "commas; a name with a comma goes in double quotes, as in a CSV row (needed for a "
        "model whose classes are not CNV, DME, DRUSEN, NORMAL or some of them with NORMAL)",
    )
    volume.add_argument(
        "--plots",
        type=path_argument,
        default=None,
        metavar="DIR",
        help="write a figure of each volume's B-scan probabilities here (needs matplotlib)",
    )
