"""Figures: training history, confusion matrix, ROC and precision-recall curves, reliability
diagram, top-k predictions, Grad-CAM, data summaries.

Needs matplotlib (``pip install matplotlib``, or the ``plot`` extra), imported only when a
function is called. Figures are built with :class:`matplotlib.figure.Figure` directly, not
through ``pyplot``: nothing changes matplotlib's global state or backend, no window opens, and
saving works headless (the Agg renderer). Each function returns the Figure (displayed
inline by Jupyter) and writes it to ``save`` when a path is given.

Why this module is long: it is one public function per figure, each with its NumPy
docstring; they share the one place matplotlib is imported (``_figure``) and saving.

.. versionadded:: 0.2

Examples
--------
>>> from retinalnet.plots import plot_history
>>> figure = plot_history(history, save="history.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypeGuard

import numpy as np
import numpy.typing as npt

from retinalnet._core.articles import type_with_article
from retinalnet._core.bool_options import check_bool
from retinalnet._core.classes import output_classes
from retinalnet._core.images import ImageInput, coerce_image, image_size
from retinalnet._core.printable import check_dpi, fit_title, save_figure
from retinalnet._core.proportion_text import fraction, percent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from retinalnet.datasets import ImageCounts, KermanyOCT
    from retinalnet.metrics import ClassificationReport
    from retinalnet.predictor import Prediction
    from retinalnet.training import EvaluationResult, History

__all__ = [
    "plot_class_counts",
    "plot_confusion_matrix",
    "plot_gradcam",
    "plot_history",
    "plot_image_sizes",
    "plot_precision_recall_curves",
    "plot_prediction",
    "plot_reliability_diagram",
    "plot_roc_curves",
]

SavePath = str | os.PathLike[str] | None


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "the plots and the HTML report draw with matplotlib, which is not installed: "
            "pip install 'retinalnet[plot]' (or pip install matplotlib)"
        ) from error
    return Figure(figsize=(width, height), layout="constrained")


def _finish(figure: Figure, save: SavePath, dpi: int) -> Figure:
    check_dpi(dpi)  # also when not saving: a bad dpi is a mistake either way
    if save is not None:
        save_figure(figure, os.fspath(save), dpi=dpi)
    return figure


def plot_history(history: History, *, save: SavePath = None, dpi: int = 100) -> Figure:
    """Loss and accuracy per epoch, training and validation, side by side.

    The epoch whose weights were restored (the best one) is marked.

    Parameters
    ----------
    history
        From :meth:`retinalnet.training.Trainer.fit`.
    save
        Write the figure to this file (format from the suffix: PNG, PDF, SVG), not a folder.
    dpi
        Resolution when saving, a finite number > 0.

    Raises
    ------
    ValueError
        If the history is empty, ``dpi`` is not a finite number > 0 (or too large for a
        raster image), or ``save`` is a folder or has no suffix of a format matplotlib
        writes.

    Examples
    --------
    >>> history = trainer.fit(train, val)  # doctest: +SKIP
    >>> plot_history(history, save="history.png")  # doctest: +SKIP
    """
    if len(history) == 0:
        raise ValueError("the history has no epochs; train first (Trainer.fit)")
    figure = _figure(9, 3.4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs = [r.epoch for r in history]
    loss_axes.plot(epochs, [r.train_loss for r in history], "o-", label="train")
    accuracy_axes.plot(epochs, [r.train_accuracy for r in history], "o-", label="train")
    if any(r.val_loss is not None for r in history):
        val_loss = [np.nan if r.val_loss is None else r.val_loss for r in history]
        val_acc = [np.nan if r.val_accuracy is None else r.val_accuracy for r in history]
        loss_axes.plot(epochs, val_loss, "s-", label="validation")
        accuracy_axes.plot(epochs, val_acc, "s-", label="validation")
    restored = getattr(history, "restored_epoch", None)
    for axes in (loss_axes, accuracy_axes):
        if restored is not None:
            axes.axvline(restored, color="gray", linestyle=":", label=f"restored ({restored})")
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        axes.legend()
    loss_axes.set_ylabel("loss")
    accuracy_axes.set_ylabel("accuracy")
    accuracy_axes.set_ylim(0, 1.02)
    return _finish(figure, save, dpi)


def plot_confusion_matrix(
    result: EvaluationResult | ClassificationReport | npt.ArrayLike,
    classes: Sequence[str] | None = None,
    *,
    normalize: bool = False,
    title: str = "confusion matrix",
    save: SavePath = None,
    dpi: int = 100,
) -> Figure:
    """The confusion matrix as a heat map with counts (or row fractions) in each cell.

    Parameters
    ----------
    result
        An :class:`~retinalnet.training.EvaluationResult`, a
        :class:`~retinalnet.metrics.ClassificationReport`, a square count matrix
        ``[true, predicted]`` (whole numbers >= 0, not fractions: ``normalize=True``
        computes those), or ``(targets, probabilities)`` as in
        :func:`plot_roc_curves` (each image predicted as its most probable class).

        .. versionchanged:: 0.2
           ``(targets, probabilities)`` is taken, as by the other plots of an evaluation.
           A matrix that is not counts is refused: fractions were drawn as "0", a
           negative count as shares above 100%, 5.7 as "5".
    classes
        Class names, when ``result`` is a bare matrix or a pair of arrays. A result names
        its own: ``classes`` other than its ``classes`` (another order) are refused.
    normalize
        Show each row as fractions of its true class (recall on the diagonal); the cells
        and the colour bar are in percent. A class with no image gets "-" in its row (as
        the text report shows it), not 0%.
    title
        The first line of the title, e.g. which split; a second line says what the cells
        hold (counts, or percent of each true class).

        .. versionadded:: 0.2
    save, dpi
        As in :func:`plot_history`.

    Raises
    ------
    ValueError
        If the matrix is not square, holds anything but counts (whole numbers >= 0: a
        matrix of fractions, NaN or a negative count is refused; pass counts, and
        ``normalize=True`` for fractions), or the class names do not match it; for a pair
        of arrays, as :func:`plot_roc_curves`.
        A bad ``dpi`` or ``save`` is refused as in :func:`plot_history`.

    Examples
    --------
    >>> from retinalnet.plots import plot_confusion_matrix
    >>> figure = plot_confusion_matrix([[5, 1], [0, 4]], ["a", "b"])
    """
    from retinalnet.metrics import ClassificationReport, confusion_matrix
    from retinalnet.metrics._confusion import _as_counts
    from retinalnet.training import EvaluationResult

    normalize = check_bool(normalize, "normalize")
    if isinstance(result, (EvaluationResult, ClassificationReport)):
        # counts checked as a bare matrix's: a result may be built by hand
        matrix = _as_counts(result.confusion_matrix, "the result's confusion matrix")
        classes = _own_classes(result.classes, classes, "plot_confusion_matrix")
    elif _is_pair(result):
        true, scores, classes = _scores(result, classes, "plot_confusion_matrix")
        predicted = scores.argmax(axis=1) if len(true) else true
        matrix = confusion_matrix(true, predicted, scores.shape[1])
    else:
        matrix = _as_counts(result)  # fractions would be drawn as counts of 0
        classes = _given_classes(classes, "plot_confusion_matrix")
    names = list(classes) if classes is not None else [str(i) for i in range(len(matrix))]
    if len(names) != len(matrix):
        raise ValueError(
            f"{len(names)} class names for a {len(matrix)}x{len(matrix)} matrix; pass classes="
        )
    values = matrix.astype(np.float64)
    empty = matrix.sum(axis=1) == 0  # a class with no image: no share of it to show
    if normalize:
        rows = values.sum(axis=1, keepdims=True)
        values = np.divide(values, rows, out=np.zeros_like(values), where=rows > 0)
    side = 1.0 + 0.9 * len(names)
    figure = _figure(side + 1.2, side)
    axes = figure.subplots()
    shown = axes.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    bar = figure.colorbar(shown, ax=axes, shrink=0.8)
    if normalize:
        from matplotlib.ticker import PercentFormatter

        bar.ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        bar.set_label("share of the true class")
        what = "percent of each true class (rows sum to 100%"
        what += ", - for a class with no image)" if empty.any() else ")"
    else:
        bar.set_label("images")
        what = "images per true and predicted class"
    axes.set_title(f"{title}\n{what}", fontsize="medium")
    top = values.max() if values.size else 0
    for (row, column), value in np.ndenumerate(values):
        if normalize:
            text = "-" if empty[row] else percent(value, 0)
        else:
            text = str(int(matrix[row, column]))
        color = "white" if top and value > top / 2 else "black"
        axes.text(column, row, text, ha="center", va="center", color=color)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    return _finish(figure, save, dpi)


def _is_pair(result: object) -> TypeGuard[tuple[npt.ArrayLike, npt.ArrayLike]]:
    """Whether ``result`` is ``(targets, probabilities)``: a 1-d and a 2-d array, not the
    two rows of a 2x2 count matrix."""
    if not (isinstance(result, tuple) and len(result) == 2):
        return False
    try:
        return bool(np.ndim(result[0]) == 1 and np.ndim(result[1]) == 2)
    except ValueError:  # ragged rows
        return False


def _own_classes(own: Sequence[str], given: Sequence[str] | None, where: str) -> tuple[str, ...]:
    """A result's classes: a ``classes=`` argument may repeat them, never rename them."""
    return output_classes(
        own,
        given,
        where=where,
        owner="the result",
        given_for="classes= is for a bare matrix or a pair of arrays: a result names its own",
    )


def _given_classes(given: Sequence[str] | None, where: str) -> tuple[str, ...] | None:
    """The class names given with a bare matrix or a pair of arrays (a string refused: it
    would name the classes by its letters)."""
    return None if given is None else output_classes(None, given, where=where)


def _scores(
    result: EvaluationResult | tuple[npt.ArrayLike, npt.ArrayLike],
    classes: Sequence[str] | None,
    where: str,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], list[str]]:
    """True classes, scores and class names of an evaluation or of a pair of arrays,
    checked as the metrics check them (integer class indices in range, finite scores of
    shape ``(images, classes)``)."""
    from retinalnet.metrics._confusion import _as_probabilities, _as_targets, _refuse_swapped
    from retinalnet.training import EvaluationResult

    targets: npt.ArrayLike
    probabilities: npt.ArrayLike
    names: Sequence[str] | None
    if isinstance(result, EvaluationResult):
        if result.probabilities is None or result.targets is None:
            raise ValueError(
                "this EvaluationResult holds no per-image probabilities (made before 0.2?); "
                "evaluate again with retinalnet.training.evaluate"
            )
        targets, probabilities = result.targets, result.probabilities
        names = _own_classes(result.classes, classes, where)
    else:
        targets, probabilities = result
        _refuse_swapped(targets, probabilities, f"{where}((targets, probabilities))")
        names = _given_classes(classes, where)
    true = _as_targets(targets)
    scores = _as_probabilities(probabilities, len(true))
    true = _as_targets(true, scores.shape[1])
    labels = list(names) if names is not None else [str(i) for i in range(scores.shape[1])]
    if len(labels) != scores.shape[1]:
        raise ValueError(f"{len(labels)} class names for {scores.shape[1]} probability columns")
    return true, scores, labels


def plot_roc_curves(
    result: EvaluationResult | tuple[npt.ArrayLike, npt.ArrayLike],
    classes: Sequence[str] | None = None,
    *,
    title: str = "ROC curves, each class against the rest",
    save: SavePath = None,
    dpi: int = 100,
) -> Figure:
    """One ROC curve per class (that class against the rest), with its AUC.

    .. versionadded:: 0.2

    Parameters
    ----------
    result
        An :class:`~retinalnet.training.EvaluationResult` (it keeps every image's
        probabilities), or ``(targets, probabilities)``: true class indices (integers) and
        an ``(images, classes)`` array. Probabilities (values in [0, 1]) are ranked as
        given, each class's column (one-vs-rest scores too), and log-probabilities or
        logits are turned into probabilities by a softmax first, as for the AUCs of
        :func:`~retinalnet.metrics.classification_report`.
    classes
        Class names, with a pair of arrays. A result names its own: ``classes`` other
        than its ``classes`` (another order) are refused.
    title
        The figure's title, e.g. which split.
    save, dpi
        As in :func:`plot_history`.

    Raises
    ------
    ValueError
        If the shapes do not fit, a target is not an integer class index in range, a
        probability is NaN or infinite or given in percent, or the result holds no
        probabilities.
        A bad ``dpi`` or ``save`` is refused as in :func:`plot_history`.

    Examples
    --------
    >>> from retinalnet.plots import plot_roc_curves
    >>> figure = plot_roc_curves(([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), ["a", "b"])
    """
    from retinalnet.metrics import roc_auc, roc_curve
    from retinalnet.metrics._rates import probabilities_of

    true, given, names = _scores(result, classes, "plot_roc_curves")
    scores = probabilities_of(given)  # ranked as the report's AUCs: a softmax of logits
    figure = _figure(5.2, 4.6)
    axes = figure.subplots()
    for index, name in enumerate(names):
        positive = true == index
        if positive.all() or not positive.any():
            continue  # no curve without images of both kinds
        fpr, tpr, _ = roc_curve(scores[:, index], positive)
        auc = roc_auc(scores[:, index], positive)
        # straight segments: a tie between classes moves both rates at once, a diagonal,
        # which the AUC counts as half; steps would draw less area than the label says
        color, style = _class_style(index)
        axes.plot(fpr, tpr, label=f"{name} (AUC {fraction(auc)})", color=color, linestyle=style)
    axes.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance")
    axes.set_xlabel("false-positive rate (1 - specificity)")
    axes.set_ylabel("true-positive rate (sensitivity)")
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.set_aspect("equal")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    axes.set_title(title, fontsize="medium")
    return _finish(figure, save, dpi)


def _class_style(index: int) -> tuple[str, str]:
    """The line of class ``index`` in every figure: its colour of matplotlib's ten, then,
    from the eleventh class on, another line style (a class keeps its look when another,
    without images, draws no curve; 30 classes are told apart)."""
    return f"C{index % 10}", ("-", "--", "-.")[index // 10 % 3]


def plot_precision_recall_curves(
    result: EvaluationResult | tuple[npt.ArrayLike, npt.ArrayLike],
    classes: Sequence[str] | None = None,
    *,
    title: str = "precision-recall curves, each class against the rest",
    save: SavePath = None,
    dpi: int = 100,
) -> Figure:
    """One precision-recall curve per class, with its average precision (AP).

    A dotted line at each class's share of the images marks chance, which is what AP is
    compared with (not 0.5, as for AUC).

    .. versionadded:: 0.2

    Parameters
    ----------
    result, classes, title, save, dpi
        As in :func:`plot_roc_curves`.

    Raises
    ------
    ValueError
        As :func:`plot_roc_curves`.
        A bad ``dpi`` or ``save`` is refused as in :func:`plot_history`.

    Examples
    --------
    >>> from retinalnet.plots import plot_precision_recall_curves
    >>> pair = ([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    >>> figure = plot_precision_recall_curves(pair, ["a", "b"])
    """
    from retinalnet.metrics import average_precision, precision_recall_curve
    from retinalnet.metrics._rates import probabilities_of

    true, given, names = _scores(result, classes, "plot_precision_recall_curves")
    scores = probabilities_of(given)  # ranked as the report's AUCs: a softmax of logits
    figure = _figure(5.2, 4.6)
    axes = figure.subplots()
    for index, name in enumerate(names):
        positive = true == index
        if not positive.any():
            continue
        precision, recall, _ = precision_recall_curve(scores[:, index], positive)
        ap = average_precision(scores[:, index], positive)
        color, style = _class_style(index)
        label = f"{name} (AP {fraction(ap)})"
        (line,) = axes.plot(
            recall, precision, drawstyle="steps-pre", label=label, color=color, linestyle=style
        )
        axes.axhline(positive.mean(), color=line.get_color(), linestyle=":", linewidth=0.8)
    axes.set_xlabel("recall (sensitivity)")
    axes.set_ylabel("precision (positive predictive value)")
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize="small")
    axes.set_title(
        f"{title}\n(dotted: chance, each class's share of the images)", fontsize="medium"
    )
    return _finish(figure, save, dpi)


def plot_reliability_diagram(
    result: EvaluationResult | tuple[npt.ArrayLike, npt.ArrayLike],
    *,
    bins: int = 15,
    title: str = "reliability diagram",
    save: SavePath = None,
    dpi: int = 100,
) -> Figure:
    """Accuracy against confidence (Guo et al., 2017), with the images per bin below.

    Each bar is a bin of top-class confidence (see
    :func:`~retinalnet.metrics.reliability_curve`): its height is the accuracy of the
    bin's images, and the red part is the gap to their mean confidence. A calibrated model
    follows the diagonal; bars below it mean overconfidence. The title gives the expected
    calibration error and, for an evaluation, the temperature the probabilities were
    computed with.

    .. versionadded:: 0.2

    Parameters
    ----------
    result
        As in :func:`plot_roc_curves`.
    bins
        Equal-width confidence bins (15, as Guo et al. and the ECE of the reports).
    title, save, dpi
        As in :func:`plot_roc_curves`.

    Raises
    ------
    ValueError
        As :func:`plot_roc_curves`, or as :func:`~retinalnet.metrics.reliability_curve`
        (logits are refused: the diagram judges probabilities or log-probabilities).
        A bad ``dpi`` or ``save`` is refused as in :func:`plot_history`.

    Examples
    --------
    >>> from retinalnet.plots import plot_reliability_diagram
    >>> pair = ([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    >>> figure = plot_reliability_diagram(pair, bins=5)
    """
    from retinalnet.metrics import expected_calibration_error, reliability_curve
    from retinalnet.training import EvaluationResult

    true, scores, _ = _scores(result, None, "plot_reliability_diagram")
    confidence, accuracy, count = reliability_curve(scores, true, bins=bins)
    ece = expected_calibration_error(scores, true, bins=bins) if len(true) else float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    used = count > 0
    figure = _figure(5.0, 5.6)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    width = 1.0 / bins
    top.bar(
        edges[:-1][used],
        accuracy[used],
        width=width,
        align="edge",
        color="tab:blue",
        edgecolor="white",
        label="accuracy",
    )
    top.bar(
        edges[:-1][used],
        (confidence - accuracy)[used],
        bottom=accuracy[used],
        width=width,
        align="edge",
        color="tab:red",
        alpha=0.35,
        edgecolor="tab:red",
        label="gap to the mean confidence",
    )
    top.plot([0, 1], [0, 1], color="gray", linestyle=":", label="calibrated")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize="small")
    shown = f"ECE {percent(ece)}" if not np.isnan(ece) else "no images"
    if isinstance(result, EvaluationResult):
        shown += f", temperature {result.temperature:#.3g}"
    top.set_title(f"{title}\n({shown}, {bins} bins)", fontsize="medium")
    bottom.bar(edges[:-1], count, width=width, align="edge", color="gray", edgecolor="white")
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("images")
    bottom.grid(alpha=0.3)
    return _finish(figure, save, dpi)


def plot_prediction(
    image: ImageInput,
    prediction: Prediction,
    *,
    true_label: str | None = None,
    save: SavePath = None,
    dpi: int = 100,
) -> Figure:
    """The tutorial's ``display_prediction``: the scan beside a bar chart of its top-k.

    Parameters
    ----------
    image
        The scan: a path, a PIL image or an image tensor.
    prediction
        From :meth:`retinalnet.Predictor.topk`.
    true_label
        Shown in the title when known.
    save, dpi
        As in :func:`plot_history`.

    Raises
    ------
    TypeError
        If ``prediction`` is not one :class:`~retinalnet.Prediction` (a list of them, or
        its ``to_dict()``).
    ValueError
        A bad ``dpi`` or ``save`` is refused as in :func:`plot_history`.

    Examples
    --------
    >>> prediction = predictor.topk("CNV-1016042-1.jpeg", k=3)  # doctest: +SKIP
    >>> plot_prediction("CNV-1016042-1.jpeg", prediction, save="prediction.png")  # doctest: +SKIP
    """
    from retinalnet.predictor import Prediction  # at call time, as the other imports here

    if not isinstance(prediction, Prediction):
        hint = (
            f"{type_with_article(prediction)} of {len(prediction)}: plot each one, "
            "plot_prediction(image, predictions[i])"
            if isinstance(prediction, (list, tuple))
            else type_with_article(prediction)
        )
        raise TypeError(
            f"prediction must be one Prediction, as predictor.topk(image) gives for one "
            f"image, got {hint}"
        )
    picture = coerce_image(image)
    figure = _figure(9, 3.4)
    image_axes, bar_axes = figure.subplots(1, 2, width_ratios=[1.3, 1])
    image_axes.imshow(picture, cmap="gray" if picture.mode == "L" else None)
    image_axes.axis("off")
    title = f"predicted {prediction.label}"
    if true_label is not None:
        title = f"true {true_label}, " + title
    image_axes.set_title(title)
    names = [c.name for c in prediction.top][::-1]
    probabilities = [c.probability for c in prediction.top][::-1]
    colors = ["tab:blue"] * len(names)
    if true_label in names:
        colors[names.index(true_label)] = "tab:green"
    bar_axes.barh(names, probabilities, color=colors)
    for row, value in enumerate(probabilities):
        bar_axes.text(min(value, 0.85) + 0.02, row, percent(value), va="center")
    bar_axes.set_xlim(0, 1)
    bar_axes.set_xlabel("probability")
    bar_axes.set_title(f"top-{len(names)}")
    return _finish(figure, save, dpi)


def plot_gradcam(
    image: ImageInput,
    heatmap: npt.ArrayLike,
    *,
    title: str | None = None,
    alpha: float = 0.45,
    save: SavePath = None,
    dpi: int = 100,
) -> Figure:
    """A Grad-CAM heatmap over its scan, beside the scan alone.

    Parameters
    ----------
    image
        The scan: a path, a PIL image or an image tensor.
    heatmap
        ``(height, width)`` in [0, 1] at the image's size, as
        :func:`retinalnet.gradcam.grad_cam_image` and
        :meth:`retinalnet.Predictor.gradcam` return.
    title
        Figure title (e.g. the explained class).
    alpha
        Opacity of the heatmap.
    save, dpi
        As in :func:`plot_history`.

    Raises
    ------
    ValueError
        If the heatmap's shape is not the image's.
        A bad ``dpi`` or ``save`` is refused as in :func:`plot_history`.

    Examples
    --------
    >>> heatmap = predictor.gradcam("scan.jpeg")  # doctest: +SKIP
    >>> plot_gradcam("scan.jpeg", heatmap, save="cam.png")  # doctest: +SKIP
    """
    picture = coerce_image(image)
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.shape != (picture.height, picture.width):
        raise ValueError(
            f"heatmap shape {heat.shape} is not the image's (height, width) "
            f"{(picture.height, picture.width)}; map it back with "
            "retinalnet.gradcam.heatmap_to_image"
        )
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    gray = np.asarray(picture.convert("L"))
    aspect = picture.width / picture.height
    figure = _figure(2 * 3.2 * aspect + 0.6, 3.4)
    plain_axes, overlay_axes = figure.subplots(1, 2)
    plain_axes.imshow(gray, cmap="gray")
    overlay_axes.imshow(gray, cmap="gray")
    shown = overlay_axes.imshow(heat, cmap="jet", alpha=alpha, vmin=0, vmax=1)
    figure.colorbar(shown, ax=overlay_axes, shrink=0.8)
    for axes in (plain_axes, overlay_axes):
        axes.axis("off")
    overlay_axes.set_title("Grad-CAM")
    if title is not None:  # as given ($ is no mathtext), in lines: a long name is not cut off
        fit_title(figure.suptitle(title, parse_math=False))
    return _finish(figure, save, dpi)


def plot_class_counts(
    counts: ImageCounts | Mapping[str, Mapping[str, int]],
    *,
    save: SavePath = None,
    dpi: int = 100,
) -> Figure:
    """Images per class, one group of bars per split.

    Parameters
    ----------
    counts
        From :func:`retinalnet.datasets.count_images`, or ``{split: {class: count}}``.
    save, dpi
        As in :func:`plot_history`.

    Raises
    ------
    ValueError
        A bad ``dpi`` or ``save`` is refused as in :func:`plot_history`.

    Examples
    --------
    >>> from retinalnet.plots import plot_class_counts
    >>> counts = {"train": {"CNV": 3, "NORMAL": 5}, "test": {"CNV": 1, "NORMAL": 1}}
    >>> figure = plot_class_counts(counts)
    """
    from retinalnet.datasets import ImageCounts

    table = counts.counts if isinstance(counts, ImageCounts) else counts
    splits = list(table)
    if not splits:
        raise ValueError("no splits to plot; count_images found nothing?")
    classes: list[str] = []
    for per_class in table.values():
        classes += [name for name in per_class if name not in classes]
    figure = _figure(1.8 + 1.6 * len(splits), 3.4)
    axes_list = np.atleast_1d(figure.subplots(1, len(splits), sharey=True))
    for axes, split in zip(axes_list, splits, strict=True):
        values = [table[split].get(name, 0) for name in classes]
        bars = axes.bar(classes, values, color=[f"C{i}" for i in range(len(classes))])
        axes.bar_label(bars, [f"{v:,}" for v in values], fontsize=8)
        axes.set_title(f"{split} ({sum(values):,})")
        axes.tick_params(axis="x", rotation=45)
    axes_list[0].set_ylabel("images")
    return _finish(figure, save, dpi)


def plot_image_sizes(
    data: KermanyOCT | Sequence[tuple[int, int]],
    *,
    save: SavePath = None,
    dpi: int = 100,
) -> Figure:
    """Distribution of image widths and heights (the tutorial's exploration step).

    Parameters
    ----------
    data
        A :class:`~retinalnet.datasets.KermanyOCT` split (each image's header is read), or
        a list of ``(width, height)`` pairs.
    save, dpi
        As in :func:`plot_history`.

    Raises
    ------
    ValueError
        A bad ``dpi`` or ``save`` is refused as in :func:`plot_history`.

    Examples
    --------
    >>> from retinalnet.plots import plot_image_sizes
    >>> figure = plot_image_sizes([(512, 496), (768, 496), (512, 512)])
    """
    from retinalnet.datasets import KermanyOCT

    sizes: list[tuple[int, int]]
    if isinstance(data, KermanyOCT):
        sizes = [image_size(path) for path, _ in data.samples]
    else:
        sizes = [(int(w), int(h)) for w, h in data]
    if not sizes:
        raise ValueError("no images to plot")
    widths = np.array([w for w, _ in sizes])
    heights = np.array([h for _, h in sizes])
    figure = _figure(9, 3.2)
    width_axes, height_axes, scatter_axes = figure.subplots(1, 3)
    width_axes.hist(widths, bins=min(30, max(5, len(set(widths.tolist())))), color="C0")
    width_axes.set_xlabel("width (px)")
    width_axes.set_ylabel("images")
    height_axes.hist(heights, bins=min(30, max(5, len(set(heights.tolist())))), color="C1")
    height_axes.set_xlabel("height (px)")
    scatter_axes.scatter(widths, heights, s=8, alpha=0.5)
    scatter_axes.set_xlabel("width (px)")
    scatter_axes.set_ylabel("height (px)")
    figure.suptitle(
        f"{len(sizes):,} images: width median {np.median(widths):.0f}, "
        f"height median {np.median(heights):.0f}"
    )
    return _finish(figure, save, dpi)
