"""The report from an evaluation: :func:`render_html_report` and :func:`write_html_report`."""

from __future__ import annotations

import datetime
import os
import reprlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retinalnet._core.counts import check_count
from retinalnet._core.files import atomic_write_text
from retinalnet._core.output_kinds import check_output_file
from retinalnet._core.printable import printable
from retinalnet._version import __version__
from retinalnet.report._calibration import calibration_section
from retinalnet.report._figures import confusion_figures, curves_section, history_section
from retinalnet.report._gallery import confident_mistakes, mistakes_section
from retinalnet.report._html import Section, esc, num, page, pct
from retinalnet.report._metrics import confusion_section, metrics_section, referral_section
from retinalnet.report._summary import summary_section

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from retinalnet.checkpoint import Checkpoint
    from retinalnet.metrics import ClassificationReport
    from retinalnet.models import Classifier
    from retinalnet.predictor import SkippedImage
    from retinalnet.training import EvaluationResult

__all__ = ["render_html_report", "write_html_report"]

_NOTICE = (
    "retinalnet is a research tool, not a medical device: do not use these results to "
    "diagnose or treat anyone. They hold for images like these, labelled like these, and "
    "nothing else."
)


def _check_result(result: object, where: str) -> None:
    """Refuse a ``result`` that is not an :class:`~retinalnet.training.EvaluationResult`
    (``None`` from a function that printed it, a report, a checkpoint's path) in one line,
    before any work; it was Python's "'NoneType' object has no attribute 'probabilities'"."""
    from retinalnet.training import EvaluationResult

    if not isinstance(result, EvaluationResult):
        raise TypeError(
            f"{where} takes an EvaluationResult as result, got {type(result).__name__} "
            f"{reprlib.repr(result)}; get one from retinalnet.training.evaluate(model, data) "
            "(or Trainer.evaluate)"
        )


def render_html_report(
    result: EvaluationResult,
    *,
    data: Dataset[Any] | None = None,
    model: Classifier | None = None,
    checkpoint: Checkpoint | str | os.PathLike[str] | None = None,
    report: ClassificationReport | None = None,
    bootstrap: int = 0,
    mistakes: int = 8,
    skipped: Sequence[SkippedImage] = (),
    title: str | None = None,
) -> str:
    """The evaluation report as one self-contained HTML document (a string).

    See :func:`write_html_report` for the parameters and what the page holds.

    .. versionadded:: 0.2

    Raises
    ------
    ValueError
        If ``result`` holds no per-image probabilities, ``data`` does not hold the images
        of ``result``, or ``mistakes`` is negative.
    TypeError
        If ``result`` is not an :class:`~retinalnet.training.EvaluationResult`, ``data``
        has no ``samples`` of ``(file, class)`` pairs, or ``path`` is not a file
        path (``write_html_report(result, path)``: the path comes first); refused before
        any work.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> from retinalnet.report import render_html_report
    >>> text = render_html_report(result, data=test, model=model)  # doctest: +SKIP
    >>> text.startswith("<!DOCTYPE html>")  # doctest: +SKIP
    True
    """
    from retinalnet.checkpoint import Checkpoint, load_checkpoint

    _check_result(result, "render_html_report")
    if result.probabilities is None or result.targets is None:
        raise ValueError(
            "this EvaluationResult holds no per-image probabilities; get one from "
            "retinalnet.training.evaluate(model, data)"
        )
    mistakes = check_count(mistakes, "mistakes", 0, " (how many to show)")
    sources: list[str] = []
    if data is not None:
        sources = _sources(data)
        if len(sources) != result.num_samples:
            raise ValueError(
                f"data holds {len(sources)} images but the result {result.num_samples}; pass "
                "the data set that was evaluated (after any images were left out)"
            )
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(checkpoint)
    if report is None:
        report = result.report(bootstrap=bootstrap)
    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    root = getattr(data, "root", None)  # a str for an ImageFolder, none for other data
    data_dir = Path(root) if isinstance(root, (str, os.PathLike)) else None
    split = getattr(data, "split", None)  # KermanyOCT's; an ImageFolder's folder is its split
    split = split if isinstance(split, str) else None
    folder = None if data_dir is None else data_dir.name or str(data_dir)
    where = f"{split} split of {folder}, " if split and folder else f"{folder}, " if folder else ""
    figure_title = f"{where}{result.num_samples} images"
    wrong = int((result.probabilities.argmax(axis=1) != result.targets).sum())

    sections: list[Section | None] = [
        summary_section(
            result,
            report,
            data_dir=data_dir,
            split=split,
            checkpoint=checkpoint,
            model=model,
            skipped=skipped,
            created=created,
        ),
        metrics_section(result, report),
        referral_section(report),
        confusion_section(result, confusion_figures(result, figure_title)),
        curves_section(result, figure_title),
        calibration_section(result, report, model, figure_title),
        history_section(
            checkpoint.history if checkpoint is not None else (),
            checkpoint.epoch if checkpoint is not None else None,
        ),
        mistakes_section(
            confident_mistakes(result, sources, mistakes) if sources else [],
            result.classes,
            model,
            wrong=wrong,
            named=bool(sources),
        ),
    ]
    arch = (checkpoint.arch if checkpoint is not None else None) or getattr(model, "arch", None)
    heading = title or "Evaluation report" + (f": {arch}" if arch else "")
    subtitle = esc(
        f"{figure_title}, accuracy {pct(report.accuracy)}; "
        f"written {created:%Y-%m-%d %H:%M} UTC by retinalnet {__version__}"
    )
    footer = (
        f"Written by retinalnet {esc(__version__)} on {esc(created.isoformat())}. "
        "This file holds everything it shows (no network, no scripts) and opens offline."
    )
    shown = [s for s in sections if s is not None]
    return page(heading, subtitle, esc(_NOTICE), shown, footer, keys=_key_numbers(report))


def _sources(data: object) -> list[str]:
    """The image file of each sample of ``data`` (``samples`` of ``(path, class)`` pairs,
    as KermanyOCT's and torchvision's ImageFolder's), in data order.

    Raises
    ------
    TypeError
        If ``data`` has no such ``samples``: the report could not name the files.
    """
    samples = getattr(data, "samples", None)
    pairs = list(samples) if isinstance(samples, list | tuple) else None
    path_types = (str, os.PathLike)
    if pairs is None or not all(
        isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[0], path_types)
        for pair in pairs
    ):
        raise TypeError(
            f"data must be the data set that was evaluated, with samples of (file, class) "
            f"pairs (KermanyOCT, torchvision's ImageFolder), got {type(data).__name__}; pass "
            "that data set, or leave data out (the report then names no file)"
        )
    return [os.fspath(path) for path, _ in pairs]


def _key_numbers(report: ClassificationReport) -> list[tuple[str, str]]:
    """The few numbers a reader should see first: accuracy, and the urgent-referral view."""
    keys = [(esc(pct(report.accuracy)), "accuracy"), (esc(num(report.macro["auc"])), "macro AUC")]
    if report.referral is not None:
        keys += [
            (esc(pct(report.referral.sensitivity)), "urgent-referral sensitivity"),
            (esc(pct(report.referral.specificity)), "urgent-referral specificity"),
        ]
    return keys


def write_html_report(
    path: str | os.PathLike[str],
    result: EvaluationResult,
    *,
    data: Dataset[Any] | None = None,
    model: Classifier | None = None,
    checkpoint: Checkpoint | str | os.PathLike[str] | None = None,
    report: ClassificationReport | None = None,
    bootstrap: int = 0,
    mistakes: int = 8,
    skipped: Sequence[SkippedImage] = (),
    title: str | None = None,
) -> Path:
    """Write the evaluation report as one self-contained HTML file, for a clinician to read.

    The file opens offline in any browser: the pictures are PNGs inside it (base64 ``data:``
    URIs), the style is inline, and there is no script and no font or stylesheet to fetch.
    It holds:

    - **Data and model**: split, data folder, images per class, the model, the checkpoint's
      file and SHA-256, its epoch and the retinalnet version that trained it, the date and
      the retinalnet version of the report;
    - **Metrics**: accuracy, macro F1 and AUC, and per class sensitivity, specificity,
      precision, F1 and AUC, with confidence intervals when ``report`` has them;
      the top-k table;
    - **Urgent referral**: CNV and DME against the rest, with the scans it would miss;
    - **Confusion matrix**: as a table, and drawn as counts and as percent of each class;
    - **ROC and precision-recall curves** of each class;
    - **Calibration**, where this version of retinalnet computes it;
    - **Training history** from the checkpoint, when it carries one;
    - **Most confident mistakes**: the wrongly classified scans with the highest probability
      of the wrong class, each with its file name and, given ``model``, its Grad-CAM
      heatmap of the predicted class.

    .. versionadded:: 0.2

    Parameters
    ----------
    path
        The HTML file to write (its folder is created); written whole or not at all.
    result
        From :func:`retinalnet.training.evaluate` (it keeps every image's probabilities).
    data
        The data set that was evaluated, for its folder, split and file names (the gallery
        needs them): a :class:`~retinalnet.datasets.KermanyOCT`, or any data set with
        ``samples`` of ``(file, class)`` pairs, such as torchvision's ``ImageFolder`` (a
        data set of other classes), whose ``root`` names the folder.

        .. versionchanged:: 0.2
           Data sets other than KermanyOCT (an ``ImageFolder``) are taken.
    model
        The evaluated :class:`~retinalnet.models.Classifier`, for the Grad-CAM heatmaps
        (and its calibration temperature); without it the gallery shows the scans alone.
    checkpoint
        The checkpoint the model came from, loaded (:class:`~retinalnet.checkpoint.Checkpoint`)
        or as a path, for the provenance and the training history.
    report
        The clinical report of ``result``; by default ``result.report(bootstrap=bootstrap)``.
    bootstrap
        Bootstrap resamples for confidence intervals when ``report`` is not given (0: none;
        1000 is usual).
    mistakes
        How many mistakes the gallery shows (0: none). Each takes one Grad-CAM pass.
    skipped
        Images left out as unreadable (``Predictor.skipped``), listed in the report.
    title
        The page's title; by default "Evaluation report" and the architecture.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If ``result`` holds no per-image probabilities, ``data`` does not hold the images
        of ``result``, or ``mistakes`` is negative.
    TypeError
        If ``result`` is not an :class:`~retinalnet.training.EvaluationResult`, ``data``
        has no ``samples`` of ``(file, class)`` pairs, or ``path`` is not a file
        path (``write_html_report(result, path)``: the path comes first); refused before
        any work.
    ImportError
        If matplotlib is not installed (``pip install matplotlib``, or the ``plot`` extra).
    OSError
        If the file cannot be written; the message names it and the cause.
    FileExistsError
        If ``path`` is a checkpoint, another PyTorch file or an image, which the report
        would replace (a report there is replaced); a suffix of another kind of file
        (``best.pt``) is a ``ValueError``. Both are refused before any work.

    Examples
    --------
    >>> from retinalnet.report import write_html_report
    >>> result = evaluate(model, test)  # doctest: +SKIP
    >>> write_html_report("report.html", result, data=test, model=model,
    ...                   checkpoint="runs/best.pt", bootstrap=1000)  # doctest: +SKIP
    PosixPath('report.html')
    """
    from retinalnet.checkpoint import checkpoint_epoch

    # before any work: never HTML over a checkpoint or a scan (best.pt given as the path)
    check_output_file(
        path,
        "HTML",
        writer="write_html_report",
        call="write_html_report(path, result, ...)",
        epoch_of=checkpoint_epoch,
    )
    _check_result(result, "write_html_report")  # before the figures are drawn
    text = render_html_report(
        result,
        data=data,
        model=model,
        checkpoint=checkpoint,
        report=report,
        bootstrap=bootstrap,
        mistakes=mistakes,
        skipped=skipped,
        title=title,
    )
    return atomic_write_text(path, printable(text))  # a name that is not UTF-8: with U+FFFD
