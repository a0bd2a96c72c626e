"""The calibration section: how far the model's confidence is from its accuracy.

It uses what this version of retinalnet offers and leaves out what it lacks: the expected
calibration error (``ClassificationReport.ece`` or
``retinalnet.metrics.expected_calibration_error``), the reliability curve
(``retinalnet.metrics.reliability_curve``), its picture
(``retinalnet.plots.plot_reliability_diagram``) and the model's temperature
(``Classifier.temperature``). Without any of them there is no section.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from retinalnet.report._figures import figures
from retinalnet.report._html import Section, esc, pct, table
from retinalnet.report._images import figure_png

if TYPE_CHECKING:
    from retinalnet.metrics import ClassificationReport
    from retinalnet.training import EvaluationResult

__all__ = ["calibration_section"]


def _ece(result: EvaluationResult, report: ClassificationReport) -> float | None:
    import retinalnet.metrics as metrics

    value = getattr(report, "ece", None)
    if value is None:
        compute = getattr(metrics, "expected_calibration_error", None)
        if compute is None:
            return None
        value = compute(probabilities=result.probabilities, targets=result.targets)
    return float(value)


def _curve_table(result: EvaluationResult) -> str:
    import retinalnet.metrics as metrics

    compute = getattr(metrics, "reliability_curve", None)
    if compute is None:
        return ""
    confidence, accuracy, count = compute(
        probabilities=result.probabilities, targets=result.targets
    )
    bins = len(count)
    rows = [
        [
            esc(f"{m / bins:.0%} to {(m + 1) / bins:.0%}"),
            esc(pct(float(confidence[m]))),
            esc(pct(float(accuracy[m]))),
            str(int(count[m])),
        ]
        for m in np.flatnonzero(np.asarray(count) > 0)
    ]
    return (
        "<details><summary>The numbers per confidence bin</summary>"
        + table(["Confidence bin", "Mean confidence", "Accuracy", "Images"], rows)
        + "</details>"
    )


def calibration_section(
    result: EvaluationResult, report: ClassificationReport, model: Any | None, title: str
) -> Section | None:
    """ECE, reliability diagram and table, temperature; ``None`` when none is available."""
    import retinalnet.plots as plots

    if result.probabilities is None or result.targets is None:
        return None
    parts: list[str] = []
    ece = _ece(result, report)
    # the temperature the probabilities were computed with, else the model's
    temperature = getattr(result, "temperature", getattr(model, "temperature", None))
    facts = []
    if ece is not None and not math.isnan(ece):
        facts.append(["Expected calibration error (ECE)", esc(pct(ece))])
    if temperature is not None:
        state = "uncalibrated" if float(temperature) == 1.0 else "temperature-scaled"
        facts.append(["Temperature", esc(f"{float(temperature):#.3g} ({state})")])
    if facts:
        parts.append(table(["Measure", "Value"], facts, css_class="calibration"))
    # no ECE (probabilities that are not distributions): no bins to draw or list either
    binned = ece is not None and not math.isnan(ece)
    draw = getattr(plots, "plot_reliability_diagram", None)
    if draw is not None and binned:
        picture = figure_png(draw(result, title=f"reliability, {title}"))
        parts.append(
            figures(
                [
                    (
                        picture,
                        "reliability diagram",
                        "Accuracy against confidence; a calibrated model lies on the diagonal.",
                    )
                ]
            )
        )
    if binned:
        parts.append(_curve_table(result))
    if not any(parts):
        return None
    intro = (
        "<p>A calibrated model is right 80% of the time when it says 80%. The ECE is the "
        "average gap between confidence (the top probability) and accuracy, over bins of "
        "confidence; temperature scaling, fitted on validation data, narrows it without "
        "changing any predicted class.</p>"
    )
    return Section("calibration", "Calibration", intro + "".join(parts))
