"""``retinalnet predict``: the top classes of scans and volumes, as text, JSON or CSV, with
Grad-CAM overlays and volume plots."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from retinalnet._core.json_text import strict_json
from retinalnet._core.printable import one_line

if TYPE_CHECKING:
    from retinalnet.cli._output_names import OutputNames
    from retinalnet.predictor import Prediction, Predictor

__all__ = ["print_predictions", "run_predict"]

logger = logging.getLogger("retinalnet")


def _write_csv(path: Path, predictions: Sequence[Prediction], k: int, predictor: Predictor) -> None:
    """``predict --csv``: one row per image, its path, the top-k classes and probabilities,
    then the precision and temperature they were computed at.

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
    writer.writerow([*header, "precision", "temperature"])
    computed_at = [predictor.precision_name, f"{predictor.temperature:.6g}"]
    for prediction in predictions:
        row = [prediction.source]
        for candidate in prediction.top:
            row += [candidate.name, f"{candidate.probability:.6f}"]
        writer.writerow([*row, *computed_at])
    # a file name that is not UTF-8 keeps its own bytes (the path to open it again)
    atomic_write_text(path, text.getvalue(), errors="surrogateescape")


def print_predictions(predictions: Sequence[Prediction]) -> None:
    for prediction in predictions:
        scores = "  ".join(f"{c.name} {c.probability:6.1%}" for c in prediction.top)
        print(f"{one_line(prediction.source)}  {scores}")  # one line, whatever the name


def _write_cams(
    predictor: Predictor,
    predictions: Sequence[Prediction],
    folder: Path,
    names: OutputNames,
) -> list[Path]:
    """One Grad-CAM overlay PNG per image, of its predicted class, named after the image;
    the files written.

    The folder is made once a heatmap is computed: a refused Grad-CAM leaves no empty folder.
    """
    from retinalnet.plots import plot_gradcam

    written: list[Path] = []
    for prediction in predictions:
        path = Path(prediction.source)
        # the file itself: decoded as the model's preprocessing says, the map at full size
        heatmap = predictor.gradcam(path, class_index=prediction.top[0].index)
        title = f"{path.name}: {prediction.label} {prediction.probability:.1%}"
        folder.mkdir(parents=True, exist_ok=True)
        target = names.take(folder, path.stem, "cam.png")
        plot_gradcam(path, heatmap, title=title, save=target)
        written.append(target)
    return written


def _log_cams(folder: Path, images: Sequence[Path], volume_cams: Sequence[Path]) -> None:
    """``--cam DIR``: where the overlays went, once all are written (the images' and the
    volumes' B-scans'), and only when there are some: never before an error that left
    nothing, nor for a run with nothing to draw."""
    count = len(images) + len(volume_cams)
    if count:
        logger.info("Grad-CAM overlays: %d in %s", count, folder)


def run_predict(args: argparse.Namespace) -> int:
    from retinalnet.cli._advice import require_matplotlib
    from retinalnet.cli._image_paths import image_paths
    from retinalnet.cli._output_names import OutputNames
    from retinalnet.cli._skip import print_skipped
    from retinalnet.cli._volume import (
        check_order,
        predict_volumes,
        print_volumes,
        split_volumes,
        warn_of_unused_rule_flags,
        write_volume_outputs,
    )
    from retinalnet.predictor import Predictor

    if args.cam is not None:
        require_matplotlib("--cam")
    if args.plots is not None:
        require_matplotlib("--plots")

    images, volumes = split_volumes(image_paths(args.paths), args)  # multi-frame files: volumes
    predictor = Predictor.from_checkpoint(
        args.checkpoint,
        device=args.device,
        batch_size=args.batch_size,
        tta=args.tta,
        precision=args.precision,
        num_workers=args.workers,
        on_error=args.on_error,
    )
    check_order(predictor, args)  # against the model's classes, before any prediction
    if not volumes:
        warn_of_unused_rule_flags(args)
    predictions = predictor.topk(list(images), k=args.k) if images else []
    skipped = list(predictor.skipped)
    runs, unread_volumes = predict_volumes(predictor, volumes, args)
    skipped += unread_volumes
    if args.csv is not None:
        _write_csv(args.csv, predictions, args.k, predictor)
    # the probabilities' precision is part of the answer (bf16 can turn a near-tie), as the
    # temperature is: both go with the results, as evaluate's go with its table
    computed_at = {"precision": predictor.precision_name, "temperature": predictor.temperature}
    if args.json:
        results = [p.to_dict() for p in predictions] + [r.summary.to_dict() for r in runs]
        print(strict_json([{**result, **computed_at} for result in results], indent=2))
    else:
        print_predictions(predictions)
        print_volumes(runs)
        if predictor.precision_name != "fp32" and (predictions or runs) and not args.quiet:
            print(  # on stderr: stdout keeps one line per image
                f"probabilities computed in {predictor.precision_name} (--precision "
                f"{args.precision}); --precision fp32 for full precision (a near-tie's top "
                "class can differ)",
                file=sys.stderr,
            )
    sys.stdout.flush()  # the results are out before anything is drawn
    names = OutputNames()  # one name per file across --cam and --plots
    cams = _write_cams(predictor, predictions, args.cam, names) if args.cam is not None else []
    written = write_volume_outputs(predictor, runs, args, names)
    if args.cam is not None:
        _log_cams(args.cam, cams, written.cams)
    if args.plots is not None:
        where = sys.stderr if args.json else sys.stdout  # stdout holds only JSON with --json
        print(f"plots: {', '.join(map(str, written.plots))}", file=where)
    print_skipped("predict", skipped)
    return 0
