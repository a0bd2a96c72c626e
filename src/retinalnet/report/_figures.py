"""The sections of pictures: confusion-matrix figures, ROC and precision-recall curves, and
the training history; each figure drawn by :mod:`retinalnet.plots` and embedded as PNG."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from retinalnet.report._html import Section, esc, pct, table
from retinalnet.report._images import figure_png, img

if TYPE_CHECKING:
    from retinalnet.training import EvaluationResult

__all__ = ["confusion_figures", "curves_section", "figures", "history_section"]


def figures(items: Sequence[tuple[bytes, str, str]]) -> str:
    """Figures side by side (one column on a narrow screen): ``(png, alt, caption)``."""
    cells = "".join(
        f"<figure>{img(png, alt)}<figcaption>{esc(caption)}</figcaption></figure>"
        for png, alt, caption in items
    )
    return f'<div class="figures">{cells}</div>'


def confusion_figures(result: EvaluationResult, title: str) -> str:
    """The confusion matrix drawn twice: counts, and percent of each true class."""
    from retinalnet.plots import plot_confusion_matrix

    counts = figure_png(plot_confusion_matrix(result, title=title))
    shares = figure_png(plot_confusion_matrix(result, normalize=True, title=title))
    return figures(
        [
            (counts, "confusion matrix, counts", "Counts of scans per true and predicted class."),
            (
                shares,
                "confusion matrix, percent of each true class",
                "Percent of each true class; the diagonal is each class's sensitivity.",
            ),
        ]
    )


def curves_section(result: EvaluationResult, title: str) -> Section:
    """One ROC and one precision-recall curve per class (that class against the rest)."""
    from retinalnet.plots import plot_precision_recall_curves, plot_roc_curves

    roc = figure_png(plot_roc_curves(result, title=f"ROC curves, {title}"))
    pr = figure_png(plot_precision_recall_curves(result, title=f"precision-recall, {title}"))
    body = (
        "<p>Each curve shows one class against the rest as the decision threshold moves. "
        "ROC: sensitivity against 1 - specificity (the diagonal is chance). "
        "Precision-recall: how many of the scans called the class are it, at each "
        "sensitivity (the dotted line, the class's share of the scans, is chance).</p>"
        + figures(
            [
                (roc, "ROC curves per class", "ROC curves, with each class's AUC."),
                (
                    pr,
                    "precision-recall curves per class",
                    "Precision-recall curves, with each class's average precision (AP).",
                ),
            ]
        )
    )
    return Section("curves", "ROC and precision-recall curves", body)


def _cell(value: Any, show: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return esc(show(value))


def history_section(records: Sequence[Mapping[str, Any]], epoch: int | None) -> Section | None:
    """Loss and accuracy per epoch from the checkpoint, drawn and as a foldable table."""
    from retinalnet.plots import plot_history
    from retinalnet.training._history import drawable_history

    history = drawable_history(records)
    if history is None:
        return None
    picture = figure_png(plot_history(history))
    rows = [
        [
            str(r.epoch),
            _cell(r.train_loss, lambda v: f"{v:.4f}"),
            _cell(r.train_accuracy, pct),
            _cell(r.val_loss, lambda v: f"{v:.4f}"),
            _cell(r.val_accuracy, pct),
            _cell(r.lr, lambda v: f"{v:.2g}"),
        ]
        for r in history
    ]
    epochs = table(
        ["Epoch", "Train loss", "Train accuracy", "Val. loss", "Val. accuracy", "Learning rate"],
        rows,
        css_class="history",
    )
    held = "" if epoch is None else f" The checkpoint holds the weights of epoch {epoch}."
    body = (
        f"<p>Training as the checkpoint recorded it: {len(history)} "
        f"epoch{'' if len(history) == 1 else 's'}.{esc(held)} "
        "A validation loss that rises while the training loss falls means overfitting.</p>"
        + figures([(picture, "training history", "Loss and accuracy per epoch.")])
        + f"<details><summary>The numbers per epoch</summary>{epochs}</details>"
    )
    return Section("history", "Training history", body)
