"""The first section: which data, which model (with the checkpoint's sha256), when, which
versions of the software; and the images per class."""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retinalnet._core.classes import in_words
from retinalnet._core.software import software_versions
from retinalnet.report._html import Section, esc, pct, side_by_side, table

if TYPE_CHECKING:
    from retinalnet.checkpoint import Checkpoint
    from retinalnet.metrics import ClassificationReport
    from retinalnet.predictor import SkippedImage
    from retinalnet.training import EvaluationResult

__all__ = ["summary_section"]


def _mono(value: object) -> str:
    return f'<span class="mono">{esc(value)}</span>'


def _model_rows(checkpoint: Checkpoint | None, model: Any | None) -> list[list[str]]:
    rows: list[list[str]] = []
    if checkpoint is not None:
        arch = checkpoint.arch or "a network built by hand (no registered architecture)"
        rows += [
            ["Model", esc(arch)],
            ["Checkpoint", _mono(Path(checkpoint.path).absolute())],
            # of the bytes the model was built from, as the epoch: not of the file now
            ["Checkpoint SHA-256", _mono(checkpoint.sha256 or "not recorded")],
            ["Checkpoint epoch", esc(checkpoint.epoch)],
            ["Trained with", esc(f"retinalnet {checkpoint.retinalnet_version}")],
            ["Input", esc(f"{checkpoint.preprocessing.size} x {checkpoint.preprocessing.size} px")],
        ]
    elif model is not None:
        rows.append(["Model", esc(getattr(model, "arch", None) or type(model).__name__)])
    return rows


def summary_section(
    result: EvaluationResult,
    report: ClassificationReport,
    *,
    data_dir: str | os.PathLike[str] | None,
    split: str | None,
    checkpoint: Checkpoint | None,
    model: Any | None,
    skipped: Sequence[SkippedImage],
    created: datetime.datetime,
) -> Section:
    """Data, model and provenance as a two-column table, then the images of each class."""
    rows: list[list[str]] = []
    if split is not None:
        rows.append(["Split", esc(split)])
    if data_dir is not None:
        rows.append(["Data folder", _mono(Path(data_dir).absolute())])
    images = str(result.num_samples)
    if skipped:
        images += f" ({len(skipped)} unreadable left out, listed below)"
    rows.append(["Images", esc(images)])
    rows += _model_rows(checkpoint, model)
    rows.append(["Classes", esc(in_words(result.classes))])
    rows.append(
        ["Test-time augmentation", "each scan averaged with its mirror" if result.tta else "none"]
    )
    rows.append(["Confidence intervals", esc(report.interval_note or "none")])
    rows.append(["Report written", esc(created.strftime("%Y-%m-%d %H:%M:%S %Z").strip())])
    rows += [[name, esc(version)] for name, version in software_versions().items()]
    summary = table(None, rows, numeric_from=2, css_class="kv summary")

    counts = (
        np.bincount(result.targets, minlength=len(result.classes))
        if result.targets is not None
        else result.confusion_matrix.sum(axis=1)
    )
    total = int(counts.sum())
    per_class = table(
        ["Class", "Images", "Share"],
        [
            [esc(name), str(int(n)), esc(pct(n / total if total else float("nan")))]
            for name, n in zip(result.classes, counts, strict=True)
        ]
        + [["all", str(total), esc(pct(1.0 if total else float("nan")))]],
        row_classes=[""] * len(result.classes) + ["avg"],
        css_class="class-counts",
    )
    body = side_by_side(summary, f"<h3>Images per class</h3>{per_class}")
    if skipped:
        listed = "".join(f"<li>{_mono(s.source)}: {esc(s.reason)}</li>" for s in skipped)
        body += f"<h3>Unreadable images left out</h3><ul>{listed}</ul>"
    return Section("summary", "Data and model", body)
