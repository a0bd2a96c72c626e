"""The sections of numbers: overall and per-class metrics, urgent referral, confusion matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retinalnet._core.classes import in_words
from retinalnet.report._html import Section, esc, num, pct, side_by_side, table

if TYPE_CHECKING:
    from retinalnet.metrics import ClassificationReport
    from retinalnet.training import EvaluationResult

__all__ = ["confusion_section", "metrics_section", "referral_section"]


def _with_interval(report: ClassificationReport, value: float, key: str) -> str:
    """A value and, below it in grey, its confidence interval when the report has one, or
    "no interval" when every bootstrap resample scored the same."""
    show = num if "auc" in key else pct
    cell = esc(show(value))
    if key in report.intervals:
        low, high = report.intervals[key]
        cell += f' <span class="ci">{esc(show(low))} to {esc(show(high))}</span>'
    elif key in report.no_interval:
        cell += ' <span class="ci">no interval*</span>'
    return cell


def _interval_note(report: ClassificationReport) -> str:
    if report.interval_note:
        note = (
            "<p>Grey numbers under a value are its confidence interval: the range the value "
            "would likely take on another set of images like these. "
            f"{esc(report.interval_note)} (the bootstrap draws each class's images from its "
            "own, so every class with images is in each resample)."
        )
        if report.no_interval:
            reasons = sorted(set(report.no_interval.values()))
            note += f" *No interval: {esc('; '.join(reasons))}, so there is no spread to show."
        if report.patients is None:
            note += (
                " The intervals treat every scan as independent, though a patient's scans "
                "are alike: read them as a lower bound of the uncertainty."
            )
        return note + "</p>"
    return (
        "<p>No confidence intervals: <code>retinalnet evaluate --bootstrap 1000</code> adds "
        "them. With few images per class a value can be far from the model's true one.</p>"
    )


def metrics_section(result: EvaluationResult, report: ClassificationReport) -> Section:
    """Overall numbers, then one row per class (sensitivity first), then the top-k table."""
    overall = table(
        ["Measure", "Value"],
        [
            ["Images", str(report.num_samples)],
            ["Accuracy", _with_interval(report, report.accuracy, "accuracy")],
            ["Macro F1", _with_interval(report, report.macro["f1"], "macro_f1")],
            ["Macro AUC", _with_interval(report, report.macro["auc"], "macro_auc")],
            ["Mean loss (negative log-likelihood)", esc(f"{result.loss:.4f}")],
        ],
        css_class="overall",
    )
    header = ["Class", "Sensitivity (recall)", "Specificity", "Precision (PPV)", "F1", "AUC"]
    rows = []
    for m in report.per_class:
        rows.append(
            [
                esc(m.name),
                _with_interval(report, m.recall, f"sensitivity[{m.name}]"),
                _with_interval(report, m.specificity, f"specificity[{m.name}]"),
                _with_interval(report, m.precision, f"precision[{m.name}]"),
                _with_interval(report, m.f1, f"f1[{m.name}]"),
                _with_interval(report, m.auc, f"auc[{m.name}]"),
                str(m.support),
            ]
        )
    for label, averages in (("macro average", report.macro), ("weighted average", report.weighted)):
        # the macro F1 and AUC have intervals; the weighted averages none
        key = "macro" if averages is report.macro else "weighted"
        rows.append(
            [
                label,
                esc(pct(averages["recall"])),
                esc(pct(averages["specificity"])),
                esc(pct(averages["precision"])),
                _with_interval(report, averages["f1"], f"{key}_f1"),
                _with_interval(report, averages["auc"], f"{key}_auc"),
                str(report.num_samples),
            ]
        )
    per_class = table(
        [*header, "Images"],
        rows,
        row_classes=[""] * len(report.per_class) + ["avg", "avg"],
        css_class="per-class",
    )
    topk = ""
    if report.topk:
        topk_rows = [
            [f"top-{k}", *(esc(pct(value)) for value in row)] for k, row in report.topk.items()
        ]
        topk = (
            "<h3>Top-k accuracy per class</h3>"
            "<p>The share of each class's scans whose true class is among the model's "
            "<i>k</i> most probable classes.</p>"
            + table(["", *(esc(name) for name in report.classes)], topk_rows, css_class="topk")
        )
    body = [
        side_by_side(f"<h3>Overall</h3>{overall}", topk),
        "<h3>Each class against the rest</h3>",
        "<p><b>Sensitivity</b>: of the scans of the class, the share the model calls that "
        "class. <b>Specificity</b>: of the other scans, the share it does not call that class. "
        "<b>Precision</b> (positive predictive value): of the scans it calls that class, the "
        "share that are. <b>AUC</b>: area under the ROC curve of the class's probability "
        "(0.5 is chance, 1 is perfect). <b>Macro</b> averages weigh the classes equally; "
        "<b>weighted</b> averages weigh each class by its number of images. The macro "
        "average covers the classes with images or predictions here: a class predicted but "
        "with no image counts with precision 0, as scikit-learn's (sensitivity and AUC "
        "average the classes with images); a class never predicted shows precision 0 (0 of 0 "
        "predictions).</p>",
        per_class,
        *(f"<p>{esc(note)}</p>" for note in report.notes),  # the macro average's classes
        _interval_note(report),
    ]
    return Section("metrics", "Metrics", "\n".join(body))


def referral_section(report: ClassificationReport) -> Section | None:
    """Urgent referral (Kermany et al.): urgent classes against all others; ``None`` without."""
    referral = report.referral
    if referral is None:
        return None
    urgent = " or ".join(referral.urgent)
    others = in_words(name for name in report.classes if name not in referral.urgent)
    matrix = referral.confusion_matrix  # rows true (not urgent, urgent), columns referred (no, yes)
    missed, caught = int(matrix[1, 0]), int(matrix[1, 1])
    false_alarms, cleared = int(matrix[0, 1]), int(matrix[0, 0])
    measures = table(
        ["Measure", "Value"],
        [
            ["Sensitivity", _with_interval(report, referral.sensitivity, "referral_sensitivity")],
            ["Specificity", _with_interval(report, referral.specificity, "referral_specificity")],
            ["AUC", _with_interval(report, referral.auc, "referral_auc")],
        ],
        css_class="referral",
    )
    counts = table(
        ["True class", "Referred urgently", "Not referred urgently"],
        [
            [
                f"urgent ({esc(', '.join(referral.urgent))})",
                str(caught),
                f'<span class="bad">{missed}</span>',
            ],
            [f"not urgent ({esc(others)})", str(false_alarms), str(cleared)],
        ],
        css_class="referral-counts",
    )
    body = (
        f"<p>A scan is referred urgently when its most probable class is {esc(urgent)}. "
        "Sensitivity is the share of urgent scans referred; specificity the share of the "
        "others not referred; the AUC ranks scans by the summed probability of the urgent "
        "classes.</p>"
        f"{side_by_side(measures, counts)}"
        f"<p><b>{missed}</b> of {missed + caught} urgent scans would <b>not</b> be referred "
        f"urgently; {false_alarms} of {false_alarms + cleared} other scans would be.</p>"
    )
    return Section("referral", "Urgent referral", body)


def confusion_section(result: EvaluationResult, figures: str) -> Section:
    """The confusion matrix as a table of counts, then its pictures (counts and percent)."""
    matrix = result.confusion_matrix
    rows = []
    for i, name in enumerate(result.classes):
        cells = [
            f'<span class="diag">{int(v)}</span>' if i == j else str(int(v))
            for j, v in enumerate(matrix[i])
        ]
        rows.append([esc(name), *cells, str(int(matrix[i].sum()))])
    counts = table(
        ["true \\ predicted", *(esc(name) for name in result.classes), "Images"],
        rows,
        css_class="confusion",
    )
    body = (
        "<p>Rows are the true class, columns the predicted one; the diagonal holds the scans "
        "classified correctly.</p>"
        f"{counts}{figures}"
    )
    return Section("confusion", "Confusion matrix", body)
