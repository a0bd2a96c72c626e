"""``retinalnet predict``: the top classes of scans and volumes, as text, JSON or CSV, with
Grad-CAM overlays and volume plots."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from retinalnet._core.json_text import strict_json
from retinalnet._core.printable import one_line
from retinalnet._core.proportion_text import fixed_or_exact, percent

if TYPE_CHECKING:
    from retinalnet.cli._output_names import OutputNames
    from retinalnet.cli._staged_files import StagedFiles
    from retinalnet.cli._volume import VolumeRun
    from retinalnet.predictor import Prediction, Predictor

__all__ = ["print_predictions", "run_predict"]

logger = logging.getLogger("retinalnet")


def _write_named(
    args: argparse.Namespace,
    predictions: Sequence[Prediction],
    runs: Sequence[VolumeRun],
    computed_at: Mapping[str, object],
    cams: Sequence[Path | None],
) -> None:
    """``--csv`` and ``--json``: the results with the overlay each names."""
    if args.csv is not None:
        _write_csv(args.csv, predictions, args.k, computed_at, cams)
    if args.json:
        entries = [
            {**p.to_dict(), "cam": None if cam is None else str(cam)}
            for p, cam in zip(predictions, cams, strict=True)
        ] + [r.summary.to_dict() for r in runs]
        print(strict_json([{**entry, **computed_at} for entry in entries], indent=2))


def _write_csv(
    path: Path,
    predictions: Sequence[Prediction],
    k: int,
    computed_at: Mapping[str, object],
    cams: Sequence[Path | None],
) -> None:
    """``predict --csv``: one row per image, its path, the top-k classes and probabilities,
    then what they were computed at (precision, temperature, TTA, the checkpoint and its
    sha256) and the image's Grad-CAM overlay (empty without ``--cam``).

    Written whole to a temporary file and renamed, so a failed run leaves no half file.
    """
    import csv
    import io

    from retinalnet._core.files import atomic_write_text

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    header = ["path"]
    for rank in range(1, k + 1):
        header += [f"class_{rank}", f"probability_{rank}"]
    writer.writerow([*header, *computed_at, "cam"])
    at = [_cell(value) for value in computed_at.values()]
    for prediction, cam in zip(predictions, cams, strict=True):
        row = [prediction.source]
        for candidate in prediction.top:
            row += [candidate.name, fixed_or_exact(candidate.probability)]
        writer.writerow([*row, *at, "" if cam is None else str(cam)])
    # a file name that is not UTF-8 keeps its own bytes (the path to open it again)
    atomic_write_text(path, text.getvalue(), errors="surrogateescape")


def _cell(value: object) -> str:
    """A CSV cell of what the predictions were computed at: a temperature with 6
    significant digits, ``true``/``false`` as in the JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _computed_at(
    predictor: Predictor, args: argparse.Namespace, sha256: str | None
) -> dict[str, object]:
    """What the probabilities depend on beyond the image, for the JSON and the CSV: the
    precision (bf16 can turn a near-tie), the temperature, test-time augmentation, and the
    checkpoint as given with ``sha256``, the digest of the bytes its weights were loaded from
    (which weights, also when a training run has replaced the file since)."""
    return {
        "precision": predictor.precision_name,
        "temperature": predictor.temperature,
        "tta": bool(args.tta),
        "checkpoint": str(args.checkpoint),
        "checkpoint_sha256": sha256,
    }


def print_predictions(predictions: Sequence[Prediction], file: TextIO | None = None) -> None:
    """One line per image on ``file`` (stdout by default): its name, then its classes."""
    for prediction in predictions:
        scores = "  ".join(f"{c.name} {percent(c.probability):>6}" for c in prediction.top)
        print(f"{one_line(prediction.source)}  {scores}", file=file)  # one line, whatever the name


def _cam_targets(
    predictions: Sequence[Prediction], folder: Path | None, names: OutputNames
) -> list[Path | None]:
    """``--cam DIR``: the overlay file of each image, named after it (``NAME_cam.png``,
    numbered when a name comes again); ``None`` for each without ``--cam``. Named before
    the results are printed, which give each image its overlay's path."""
    if folder is None:
        return [None] * len(predictions)
    return [names.take(folder, Path(p.source).stem, "cam.png") for p in predictions]


def _write_cams(
    predictor: Predictor,
    predictions: Sequence[Prediction],
    targets: Sequence[Path | None],
    staged: StagedFiles,
) -> list[Path]:
    """One Grad-CAM overlay PNG per image, of its predicted class, for its target: drawn
    aside by ``staged``, which puts the set in place once every overlay (and volume figure)
    is drawn; the targets drawn. Titled with the image's name, or with its path as given
    when two inputs share a name (``a/scan.jpeg``, ``b/scan.jpeg``; or ``b/SCAN.jpeg``, one
    name to a macOS or Windows disk): each overlay says which image it shows.

    The folder is made once a heatmap is computed: a refused Grad-CAM leaves no empty folder.
    """
    from retinalnet.cli._output_names import shown_names
    from retinalnet.plots import plot_gradcam

    titled = shown_names([p.source for p in predictions])
    written: list[Path] = []
    for prediction, target, shown in zip(predictions, targets, titled, strict=True):
        if target is None:
            continue
        path = Path(prediction.source)
        # the file itself: decoded as the model's preprocessing says, the map at full size
        heatmap = predictor.gradcam(path, class_index=prediction.top[0].index)
        title = f"{shown}: {prediction.label} {percent(prediction.probability)}"
        staged.draw(target, plot_gradcam, path, heatmap, title=title)
        written.append(target)
    return written


def _log_cams(folder: Path, images: Sequence[Path], volume_cams: Sequence[Path]) -> None:
    """``--cam DIR``: where the overlays went, once all are written (the images' and the
    volumes' B-scans'), and only when there are some: never before an error that left
    nothing, nor for a run with nothing to draw."""
    count = len(images) + len(volume_cams)
    if count:
        logger.info("Grad-CAM overlays: %d in %s", count, folder)


def _k_out_of_range(args: argparse.Namespace, classes: int) -> str | None:
    """Why ``-k`` is out of range for a model of ``classes`` classes (the parser refused
    ``-k 0`` already), in the words argparse refuses ``-k 0`` with; ``None`` when it fits."""
    if args.k <= classes:
        return None
    return (
        f"argument -k/--topk: must be at most {classes}, the number of classes of the model in "
        f"{str(args.checkpoint)!r}, got {args.k}; pass -k {classes} to list them all"
    )


def run_predict(args: argparse.Namespace) -> int:
    from retinalnet.checkpoint import load_checkpoint
    from retinalnet.cli._advice import require_matplotlib
    from retinalnet.cli._image_paths import image_paths
    from retinalnet.cli._order import order_refused
    from retinalnet.cli._output_names import OutputNames
    from retinalnet.cli._skip import print_skipped
    from retinalnet.cli._staged_files import StagedFiles
    from retinalnet.cli._stdout import on_stdout, one_output_on_stdout, results_stream
    from retinalnet.cli._volume import (
        check_order,
        predict_volumes,
        print_volumes,
        split_volumes,
        warn_of_unused_rule_flags,
        write_volume_outputs,
    )
    from retinalnet.predictor import Predictor

    on_stdout_json = {f"--csv {args.csv}": on_stdout(args.csv), "--json": bool(args.json)}
    one_output_on_stdout(on_stdout_json, "write the CSV to a file (--csv predictions.csv)")
    if args.cam is not None:
        require_matplotlib("--cam")
    if args.plots is not None:
        require_matplotlib("--plots")

    images, volumes = split_volumes(image_paths(args.paths), args)  # multi-frame files: volumes
    checkpoint = load_checkpoint(args.checkpoint)  # its sha256: of the bytes loaded
    predictor = Predictor(
        checkpoint.build_model(),
        device=args.device,
        batch_size=args.batch_size,
        tta=args.tta,
        precision=args.precision,
        num_workers=args.workers,
        on_error=args.on_error,
    )
    # -k and --order against the model's classes, before any prediction (volumes only too:
    # said, not unused): a value that does not fit is status 2, as argparse's -k 0
    bad = _k_out_of_range(args, len(predictor.classes)) or order_refused(args, predictor.classes)
    if bad is not None:
        print(f"retinalnet predict: error: {bad}", file=sys.stderr)
        return 2
    check_order(predictor, args)  # what order_refused leaves (nothing for a real model)
    if not volumes:
        warn_of_unused_rule_flags(args)
    predictions = predictor.topk(list(images), k=args.k) if images else []
    skipped = list(predictor.skipped)
    runs, unread_volumes = predict_volumes(predictor, volumes, args)
    skipped += unread_volumes
    names = OutputNames()  # one name per file across --cam and --plots
    cams = _cam_targets(predictions, args.cam, names)  # each result names its overlay
    # the probabilities' precision is part of the answer (bf16 can turn a near-tie), as the
    # temperature, TTA and the weights are: they go with the results, as evaluate's do
    computed_at = (
        _computed_at(predictor, args, checkpoint.sha256)
        if args.json or args.csv is not None
        else {}
    )
    results = results_stream(args.csv)  # stdout carries the CSV alone with --csv -
    if not args.json:
        # printed to the stream, never by swapping sys.stdout: a guest's host has threads
        print_predictions(predictions, results)
        print_volumes(runs, results)
        if predictor.precision_name != "fp32" and (predictions or runs) and not args.quiet:
            print(  # on stderr: stdout keeps one line per image
                f"probabilities computed in {predictor.precision_name} (--precision "
                f"{args.precision}); --precision fp32 for full precision (a near-tie's top "
                "class can differ)",
                file=sys.stderr,
            )
    # every overlay and plot is drawn aside and put in place as a set, and only then is a
    # CSV file that names them written: stopped or failed before, it names no file that is
    # missing or another model's (the earlier run's files stay as they were). What goes to
    # stdout (--json, --csv -) is the result itself and has no earlier file to keep: it is
    # out before anything is drawn, as the text results are (R16: a failed overlay lost it)
    streamed = args.json or on_stdout(args.csv)
    if streamed:
        _write_named(args, predictions, runs, computed_at, cams)
    sys.stdout.flush()  # the results are out before anything is drawn (never None here:
    # main makes a closed stdout the null device, cli._missing_streams)
    with StagedFiles() as staged:
        written_cams = _write_cams(predictor, predictions, cams, staged)
        written = write_volume_outputs(predictor, runs, args, names, staged)
        staged.commit()
    if not streamed:
        _write_named(args, predictions, runs, computed_at, cams)
    if args.cam is not None:
        _log_cams(args.cam, written_cams, written.cams)
    if args.plots is not None:
        where = sys.stderr if args.json else results  # stdout holds only JSON with --json
        print(f"plots: {', '.join(map(str, written.plots))}", file=where)
    print_skipped("predict", skipped)
    return 0
