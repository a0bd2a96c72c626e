"""The gallery of the most confident mistakes, each scan with its Grad-CAM overlay."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from retinalnet._core.images import load_image
from retinalnet.report._html import Section, esc, pct
from retinalnet.report._images import heatmap_pair, image_png, img, shrink, shrink_heatmap

if TYPE_CHECKING:
    from retinalnet.models import Classifier
    from retinalnet.training import EvaluationResult

__all__ = ["Mistake", "confident_mistakes", "mistakes_section"]

logger = logging.getLogger(__name__)

THUMBNAIL = 240
"""Longest side, in pixels, of a scan in the gallery (the file stays small)."""


@dataclass(frozen=True)
class Mistake:
    """One wrongly classified image: where it is, its true and predicted class."""

    index: int
    source: str
    true: int
    predicted: int
    confidence: float  # probability of the (wrong) predicted class
    true_probability: float


def confident_mistakes(
    result: EvaluationResult, sources: Sequence[str | os.PathLike[str]], count: int
) -> list[Mistake]:
    """The ``count`` wrong predictions with the highest probability of the wrong class."""
    if result.probabilities is None or result.targets is None or count == 0:
        return []
    probabilities, targets = result.probabilities, result.targets
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != targets)
    confidence = probabilities[wrong, predicted[wrong]]
    # highest confidence first; ties keep data order (a stable sort of the negated values)
    order = wrong[np.argsort(-confidence, kind="stable")][:count]
    return [
        Mistake(
            index=int(i),
            source=os.fspath(sources[i]),
            true=int(targets[i]),
            predicted=int(predicted[i]),
            confidence=float(probabilities[i, predicted[i]]),
            true_probability=float(probabilities[i, targets[i]]),
        )
        for i in order
    ]


def _picture(mistake: Mistake, model: Classifier | None) -> bytes:
    """The scan, small; with a model, beside its Grad-CAM of the predicted class."""
    scan = load_image(mistake.source, target_size=THUMBNAIL)
    thumbnail = shrink(scan.convert("L"), THUMBNAIL)
    if model is None:
        return image_png(thumbnail)
    from retinalnet.gradcam import grad_cam_image

    heatmap = grad_cam_image(model, mistake.source, class_index=mistake.predicted)
    pair = heatmap_pair(thumbnail, shrink_heatmap(heatmap, thumbnail.size))
    # 256 colours: half the bytes of full colour for a speckled scan, no visible difference
    return image_png(pair.quantize(256, dither=Image.Dither.NONE))


def mistakes_section(
    mistakes: Sequence[Mistake],
    classes: Sequence[str],
    model: Classifier | None,
    *,
    wrong: int,
    named: bool,
) -> Section:
    """One card per mistake: picture, file name, true and predicted class.

    ``wrong`` is how many images were classified wrongly; ``named`` whether their files are
    known (without them there is nothing to show).
    """
    if wrong == 0 or not named:
        body = (
            "<p>No image was classified wrongly.</p>"
            if wrong == 0
            else f"<p>{wrong} images were classified wrongly, but their files were not "
            "given, so they cannot be shown.</p>"
        )
        return Section("mistakes", "Most confident mistakes", body)
    if model is not None:
        logger.info("Grad-CAM of the %d most confident mistakes", len(mistakes))
    no_cam = ""
    try:
        pictures = [_picture(mistake, model) for mistake in mistakes]
    except ValueError as error:  # a Grad-CAM the model cannot give (a 1 x 1 map at its size)
        logger.warning("report: the mistakes are shown without Grad-CAM: %s", error)
        no_cam = f" No Grad-CAM heatmaps: {error}"
        model = None
        pictures = [_picture(mistake, None) for mistake in mistakes]
    cards = []
    for rank, (mistake, picture) in enumerate(zip(mistakes, pictures, strict=True), start=1):
        name = Path(mistake.source).name
        true, predicted = classes[mistake.true], classes[mistake.predicted]
        cards.append(
            '<div class="card">'
            + img(picture, f"scan {name}")
            + f'<div class="file mono">{rank}. {esc(name)}</div>'
            f"<div>true <b>{esc(true)}</b>, predicted "
            f'<span class="bad">{esc(predicted)} {esc(pct(mistake.confidence))}</span>'
            f" (probability of {esc(true)}: {esc(pct(mistake.true_probability))})</div>"
            f'<div class="mono" title="{esc(mistake.source)}">{esc(mistake.source)}</div>'
            "</div>"
        )
    explained = (
        " Left: the scan; right: its Grad-CAM heatmap for the predicted class, where the "
        "model found evidence for it (red: most, blue: none)."
        if model is not None
        else esc(no_cam)
    )
    body = (
        f"<p>The {len(mistakes)} of the {wrong} wrongly classified scans with the highest "
        f"probability of the wrong class: the errors the model is surest of.{explained}</p>"
        f'<div class="gallery">{"".join(cards)}</div>'
    )
    return Section("mistakes", "Most confident mistakes", body)
