"""The ``evaluate`` command: metrics, per-patient results, plots and the HTML report."""

from __future__ import annotations

import argparse
import datetime
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retinalnet._core.files import atomic_write_text
from retinalnet._core.json_text import strict_json
from retinalnet._core.patient_ids import is_missing_id

if TYPE_CHECKING:
    from retinalnet.checkpoint import Checkpoint
    from retinalnet.metrics import ClassificationReport
    from retinalnet.predictor import SkippedImage
    from retinalnet.training import EvaluationResult

__all__ = ["run_evaluate"]

_PER_SCAN_CAVEAT = (
    "(the per-scan intervals treat every scan as independent, though a patient's scans are "
    "alike: read them as a lower bound of the uncertainty)"
)


def run_evaluate(args: argparse.Namespace) -> int:
    from retinalnet.checkpoint import load_checkpoint
    from retinalnet.cli._advice import require_matplotlib
    from retinalnet.cli._skip import print_skipped, readable_split
    from retinalnet.cli._split_data import split_data, study_classes
    from retinalnet.cli._stdout import on_stdout, one_output_on_stdout, results_stream
    from retinalnet.cli._trained_on import refuse_images_trained_on
    from retinalnet.training import evaluate

    # one output on stdout: the JSON (--out - and --json print it once) or the report
    one_output_on_stdout(
        {
            "the JSON (--json or --out -)": bool(args.json) or on_stdout(args.out),
            f"--report {args.report}": on_stdout(args.report),
        },
        "write the HTML report to a file (--report report.html)",
    )
    if args.plots is not None:
        require_matplotlib("--plots")
    if args.report is not None:
        require_matplotlib("--report")
    checkpoint = load_checkpoint(args.checkpoint)
    model = checkpoint.build_model()
    # a model of some of the classes (CNV against NORMAL) is scored on their images
    data = split_data(
        args.data, args.split, args.manifest, study_classes(model.classes), on_error=args.on_error
    )
    refuse_images_trained_on(checkpoint, data, args.data, command="evaluate")
    skipped: list[SkippedImage] = []
    if args.on_error == "skip":
        data, skipped = readable_split(data, model.preprocessing.load, progress=not args.quiet)
    result = evaluate(
        model,
        data,
        batch_size=args.batch_size,
        device=args.device,
        tta=args.tta,
        precision=args.precision,
        num_workers=args.workers,
        feature_cache=args.feature_cache or False,
    )
    report = result.report(bootstrap=args.bootstrap)
    patients = _patient_report(result, args.bootstrap)
    data_out = {
        **result.to_dict(),
        "tta": args.tta,
        **_provenance(args, checkpoint),
        "report": report.to_dict(),
        "patient_report": None if patients is None else patients.to_dict(),
        "skipped": [{"source": s.source, "reason": s.reason} for s in skipped],
    }
    if on_stdout(args.out):  # the results themselves: printed first, through the descriptor
        atomic_write_text(args.out, strict_json(data_out, indent=2) + "\n")
    results = results_stream(args.out, args.report)  # stdout carries that file alone
    if args.json and not on_stdout(args.out):  # --out - has printed it: one document
        print(strict_json(data_out, indent=2))
    elif not args.json:
        left_out = f" ({len(skipped)} unreadable left out)" if skipped else ""
        table = report.to_text(headline=False)  # the accuracy is in the result's first line
        lines = [f"{args.split} split of {args.data}{left_out}:\n{result}\n\n{table}"]
        if report.interval_note:
            lines.append(f"\n{_PER_SCAN_CAVEAT}")
        if patients is not None:
            lines.append(f"\nper patient (mean probability of each patient's scans):\n{patients}")
        else:
            lines.append("\nper patient: no file name carries a patient id (CLASS-PATIENT-N.jpeg)")
        print("\n".join(lines), file=results)
    sys.stdout.flush()  # the results are out before anything is drawn (never None here:
    # main makes a closed stdout the null device, cli._missing_streams)
    where = sys.stderr if args.json else results  # stdout holds only JSON with --json
    if args.plots is not None:
        written = _write_plots(args, result, checkpoint.history)
        print(f"plots: {', '.join(map(str, written))}", file=where)
    if args.report is not None:
        from retinalnet.report import write_html_report

        page = write_html_report(
            args.report,
            result,
            data=data,
            model=model,
            checkpoint=checkpoint,
            report=report,
            skipped=skipped,
        )
        print(f"report: {page}", file=where)
    if args.out is not None and not on_stdout(args.out):
        # the file that sums the run up comes last, whole or not at all: written, the plots
        # and the report beside it are this run's; a run stopped or failed before it leaves
        # the earlier run's file as it was
        atomic_write_text(args.out, strict_json(data_out, indent=2) + "\n")
    print_skipped("evaluate", skipped)
    return 0


def _provenance(args: argparse.Namespace, checkpoint: Checkpoint) -> dict[str, object]:
    """Which images and which weights the numbers are of: the split, the data folder and
    the manifest (``None`` without ``--manifest``) as given, the checkpoint as given and the
    sha256 of the bytes its model was built from (not of the file now: a training run may
    have replaced it since); when (UTC) and with which versions of the software."""
    from retinalnet._core.software import software_versions

    return {
        "split": args.split,
        "data": str(args.data),
        "manifest": None if args.manifest is None else str(args.manifest),
        "checkpoint": str(args.checkpoint),
        "checkpoint_sha256": checkpoint.sha256,
        "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "software": software_versions(),
    }


def _patient_report(result: EvaluationResult, bootstrap: int) -> ClassificationReport | None:
    """The patient-level report, or ``None`` when no image's file name gives its patient."""
    if result.patient_ids is None or all(map(is_missing_id, result.patient_ids)):
        return None
    return result.patient_report(bootstrap=bootstrap)


_PLOT_NAMES = (
    "confusion_matrix.png",
    "confusion_matrix_normalized.png",
    "roc_curves.png",
    "precision_recall_curves.png",
    "reliability_diagram.png",
    "history.png",
)
"""The figures ``evaluate --plots DIR`` draws; one of them there that this evaluation does
not draw (an earlier model's ``history.png``, or the user's own file of that name) is left as
it is and named in a warning."""


def _write_plots(
    args: argparse.Namespace, result: EvaluationResult, history: Sequence[Mapping[str, Any]]
) -> list[Path]:
    """The PNGs of ``evaluate --plots DIR``; returns their paths.

    The confusion matrix (counts and normalised), the ROC and precision-recall curves of each
    class, the reliability diagram, and the training history when the checkpoint carries one.
    All are drawn before any is put in place; a file of a :data:`_PLOT_NAMES` name this
    evaluation does not draw is left as it is and named in a warning.
    """
    from retinalnet.cli._staged_files import StagedFiles
    from retinalnet.plots import (
        plot_confusion_matrix,
        plot_history,
        plot_precision_recall_curves,
        plot_reliability_diagram,
        plot_roc_curves,
    )
    from retinalnet.training._history import drawable_history

    folder: Path = args.plots
    title = f"{args.split} split of {args.data.name or args.data}, {result.num_samples} images"
    figures: dict[str, tuple[Callable[..., object], tuple[object, ...], dict[str, object]]] = {
        "confusion_matrix.png": (plot_confusion_matrix, (result,), {"title": title}),
        "confusion_matrix_normalized.png": (
            plot_confusion_matrix,
            (result,),
            {"normalize": True, "title": title},
        ),
        "roc_curves.png": (plot_roc_curves, (result,), {"title": f"ROC curves, {title}"}),
        "precision_recall_curves.png": (
            plot_precision_recall_curves,
            (result,),
            {"title": f"precision-recall, {title}"},
        ),
        "reliability_diagram.png": (
            plot_reliability_diagram,
            (result,),
            {"title": f"reliability, {title}"},
        ),
    }
    drawn = drawable_history(history)
    if drawn is not None:
        figures["history.png"] = (plot_history, (drawn,), {})
    # drawn aside and put in place together: an evaluation stopped or failing while drawing
    # leaves the earlier set whole
    with StagedFiles() as staged:
        for name, (plot, plotted, options) in figures.items():
            staged.draw(folder / name, plot, *plotted, **options)
        left = staged.commit(others=[folder / name for name in _PLOT_NAMES])
    for path in left:  # nothing tells whether it is an earlier run's or the user's own
        warnings.warn(
            f"{str(path)!r} is not of this evaluation (the checkpoint holds no training "
            "history to draw) and was left as it was; delete it, or choose another --plots "
            "folder, so that the folder shows one evaluation",
            UserWarning,
            stacklevel=1,
        )
    return [folder / name for name in figures]
