"""Plots: each builds a Figure headless, returns it and writes the file it is asked to."""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure

from retinalnet import SyntheticOCT
from retinalnet.datasets import (
    KermanyOCT,
    count_images,
    make_synthetic_kermany,
)
from retinalnet.metrics import classification_report
from retinalnet.plots import (
    plot_class_counts,
    plot_confusion_matrix,
    plot_gradcam,
    plot_history,
    plot_image_sizes,
    plot_precision_recall_curves,
    plot_prediction,
    plot_reliability_diagram,
    plot_roc_curves,
)
from retinalnet.predictor import ClassProbability, Prediction
from retinalnet.training import EpochRecord, EvaluationResult, History


def _png(path: Path) -> tuple[int, int]:
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def _history() -> History:
    return History(
        [
            EpochRecord(
                epoch, 1.0 / epoch, 0.5 + epoch / 10, 1.2 / epoch, 0.4 + epoch / 10, 1.0, 1e-3
            )
            for epoch in range(1, 5)
        ]
    )


def test_plotting_leaves_pyplot_alone(tmp_path: Path) -> None:
    plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], save=tmp_path / "m.png")

    assert (
        "matplotlib.pyplot" not in sys.modules
        or not __import__("matplotlib.pyplot").pyplot.get_fignums()
    )


def test_history(tmp_path: Path) -> None:
    figure = plot_history(_history(), save=tmp_path / "history.png", dpi=50)

    assert isinstance(figure, Figure)
    assert len(figure.axes) == 2
    assert [a.get_ylabel() for a in figure.axes] == ["loss", "accuracy"]
    assert len(figure.axes[0].lines) == 2  # train and validation
    width, height = _png(tmp_path / "history.png")
    assert (width, height) == (450, 170)


def test_history_without_epochs_is_refused() -> None:
    with pytest.raises(ValueError, match=r"the history has no epochs"):
        plot_history(History())


def test_confusion_matrix_from_a_report_and_normalised(tmp_path: Path) -> None:
    report = classification_report([0, 1, 1, 2, 3], np.eye(4)[[0, 1, 2, 2, 3]])

    figure = plot_confusion_matrix(report, normalize=True, save=tmp_path / "cm.png")

    texts = [t.get_text() for t in figure.axes[0].texts]
    assert texts[:6] == ["100%", "0%", "0%", "0%", "0%", "50%"]
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == list(report.classes)
    _png(tmp_path / "cm.png")


def test_confusion_matrix_counts_and_errors() -> None:
    figure = plot_confusion_matrix([[3, 1], [0, 2]], ["a", "b"])

    assert [t.get_text() for t in figure.axes[0].texts] == ["3", "1", "0", "2"]
    with pytest.raises(ValueError, match=r"must be square, got shape \(1, 2\)"):
        plot_confusion_matrix([[1, 2]])
    with pytest.raises(ValueError, match=r"3 class names for a 2x2 matrix"):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b", "c"])


def test_prediction_beside_its_bars(tmp_path: Path) -> None:
    image = SyntheticOCT(1, shape=(60, 80), seed=0).image(0)
    prediction = Prediction(
        "<image 0>",
        (
            ClassProbability("CNV", 0, 0.7),
            ClassProbability("DME", 1, 0.2),
            ClassProbability("NORMAL", 3, 0.1),
        ),
    )

    figure = plot_prediction(image, prediction, true_label="CNV", save=tmp_path / "p.png")

    image_axes, bar_axes = figure.axes
    assert image_axes.get_title() == "true CNV, predicted CNV"
    assert [t.get_text() for t in bar_axes.get_yticklabels()] == ["NORMAL", "DME", "CNV"]
    assert [round(p.get_width(), 3) for p in bar_axes.patches] == [0.1, 0.2, 0.7]
    _png(tmp_path / "p.png")


def test_gradcam_overlay(tmp_path: Path) -> None:
    image = SyntheticOCT(1, shape=(60, 80), seed=0).image(0)
    heatmap = np.zeros((60, 80))
    heatmap[20:30, 30:40] = 1

    figure = plot_gradcam(image, heatmap, title="CNV", save=tmp_path / "cam.png")

    assert figure.axes[1].get_title() == "Grad-CAM"
    _png(tmp_path / "cam.png")
    with pytest.raises(ValueError, match=r"heatmap shape \(80, 60\) is not the image's"):
        plot_gradcam(image, heatmap.T)


def test_class_counts_and_image_sizes(tmp_path: Path) -> None:
    root = make_synthetic_kermany(tmp_path / "data", train=2, val=1, test=1, shape=(48, 40))

    counts = plot_class_counts(count_images(root), save=tmp_path / "counts.png")
    sizes = plot_image_sizes(KermanyOCT(root, "train"), save=tmp_path / "sizes.png")

    assert [a.get_title() for a in counts.axes] == ["train (8)", "val (4)", "test (4)"]
    assert sizes.get_suptitle() == "8 images: width median 40, height median 48"
    _png(tmp_path / "counts.png")
    _png(tmp_path / "sizes.png")
    plot_image_sizes([(512, 496), (768, 496)], save=tmp_path / "list.png")
    _png(tmp_path / "list.png")


def test_without_matplotlib_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    said = r"with matplotlib, .*: pip install 'retinalnet\[plot\]' \(or pip install matplotlib\)$"
    with pytest.raises(ImportError, match=said):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"])


def test_confusion_matrix_titles_say_what_the_cells_hold_and_the_bar_matches() -> None:
    counts = plot_confusion_matrix([[3, 1], [0, 2]], ["a", "b"], title="test split, 6 images")
    shares = plot_confusion_matrix([[3, 1], [0, 2]], ["a", "b"], normalize=True)

    assert counts.axes[0].get_title() == (
        "test split, 6 images\nimages per true and predicted class"
    )
    assert counts.axes[1].get_ylabel() == "images"
    assert shares.axes[0].get_title() == (
        "confusion matrix\npercent of each true class (rows sum to 100%)"
    )
    assert shares.axes[1].get_ylabel() == "share of the true class"
    shares.canvas.draw()
    ticks = [t.get_text() for t in shares.axes[1].get_yticklabels() if t.get_text()]
    assert ticks[0] == "0%"
    assert ticks[-1] == "100%"


def test_a_class_with_no_image_has_no_shares_in_the_normalized_matrix() -> None:
    # was "0% 0% 0%" under "rows sum to 100%"; the text report shows "-" for that row
    shares = plot_confusion_matrix(
        [[3, 1, 0], [0, 0, 0], [1, 1, 2]], ["a", "b", "c"], normalize=True
    )
    texts = [t.get_text() for t in shares.axes[0].texts]
    assert texts == ["75%", "25%", "0%", "-", "-", "-", "25%", "25%", "50%"]
    assert shares.axes[0].get_title().endswith("(rows sum to 100%, - for a class with no image)")


def test_one_image_of_2000_is_never_drawn_as_0_or_100_percent() -> None:
    # was "100%" and "0%" in the row of a class with 1 of 2,000 images called the other,
    # as in one with none; the ROC label "AUC 1.000" and a bar of 0.9996 "100.0%" likewise
    shares = plot_confusion_matrix([[1999, 1], [0, 2000]], ["a", "b"], normalize=True)
    assert [t.get_text() for t in shares.axes[0].texts] == [">99%", "<1%", "0%", "100%"]

    targets = np.array([0] * 2000 + [1] * 2000)
    probabilities = np.zeros((4000, 2))
    probabilities[np.arange(4000), targets] = 0.9
    probabilities[np.arange(4000), 1 - targets] = 0.1
    probabilities[0] = [0.05, 0.95]  # one "a" image called "b", ranked below every "b"
    roc = plot_roc_curves((targets, probabilities), ["a", "b"])
    assert [line.get_label() for line in roc.axes[0].lines][:2] == [
        "a (AUC >0.999)",
        "b (AUC >0.999)",
    ]
    sure = Prediction(
        "<image 0>", (ClassProbability("CNV", 0, 0.9996), ClassProbability("DME", 1, 0.0004))
    )
    image = SyntheticOCT(1, shape=(60, 80), seed=0).image(0)
    bars = plot_prediction(image, sure).axes[1]
    assert [t.get_text() for t in bars.texts] == ["<0.1%", ">99.9%"]


def _evaluation() -> EvaluationResult:
    targets = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    probabilities = np.full((8, 4), 0.1)
    probabilities[np.arange(8), [0, 1, 1, 1, 2, 0, 3, 3]] = 0.7
    return EvaluationResult(
        classes=("CNV", "DME", "DRUSEN", "NORMAL"),
        loss=0.5,
        accuracy=0.75,
        confusion_matrix=np.eye(4, dtype=np.int64) * 2,
        probabilities=probabilities,
        targets=targets,
    )


@pytest.mark.parametrize(
    "plot", [plot_confusion_matrix, plot_roc_curves, plot_precision_recall_curves]
)
def test_a_results_classes_are_never_renamed_by_classes_given(plot: Any) -> None:
    result = _evaluation()
    reordered = ["NORMAL", "DRUSEN", "DME", "CNV"]  # was ignored without a word
    with pytest.raises(ValueError, match=r"classes=\['NORMAL', .* differs from the classes of the"):
        plot(result, reordered)
    figure = plot(result, list(result.classes))  # the result's own: taken
    assert isinstance(figure, Figure)


def test_roc_curves_one_per_class_with_its_auc(tmp_path: Path) -> None:
    figure = plot_roc_curves(_evaluation(), title="test split", save=tmp_path / "roc.png")

    axes = figure.axes[0]
    labels = [line.get_label() for line in axes.lines]
    # CNV: its images score 0.7 and 0.1, the others five 0.1 and one 0.7: 8 of 12 pairs
    # (ties a half); DME: 11 of 12; DRUSEN (0.7 and 0.1 against six 0.1): 9 of 12
    assert labels == [
        "CNV (AUC 0.667)",
        "DME (AUC 0.917)",
        "DRUSEN (AUC 0.750)",
        "NORMAL (AUC 1.000)",
        "chance",
    ]
    assert axes.get_title() == "test split"
    _png(tmp_path / "roc.png")


def test_a_roc_curve_draws_ties_as_the_diagonal_its_auc_counts() -> None:
    figure = plot_roc_curves(([0, 1], [[0.5, 0.5], [0.5, 0.5]]), ["a", "b"])
    line = figure.axes[0].lines[0]
    assert line.get_label() == "a (AUC 0.500)"
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert line.get_drawstyle() == "default"  # was steps-post: right, then up, area 0
    assert float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2)) == pytest.approx(0.5)


def test_precision_recall_curves_with_average_precision_and_chance(tmp_path: Path) -> None:
    figure = plot_precision_recall_curves(
        ([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), ["a", "b"], save=tmp_path / "pr.png"
    )

    axes = figure.axes[0]
    curves = [line for line in axes.lines if not line.get_label().startswith("_")]
    assert [line.get_label() for line in curves] == ["a (AP 1.000)", "b (AP 1.000)"]
    assert sorted(round(line.get_ydata()[0], 3) for line in axes.lines if line not in curves) == [
        0.333,
        0.667,
    ]  # chance: each class's share of the images
    _png(tmp_path / "pr.png")


def test_curves_refuse_mismatched_input() -> None:
    with pytest.raises(ValueError, match=r"3 class names for 2 probability columns"):
        plot_roc_curves(([0, 1], [[0.9, 0.1], [0.2, 0.8]]), ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"shape \(images, classes\) = \(3, >= 2\), got \(2, 2\)"):
        plot_precision_recall_curves(([0, 1, 1], [[0.9, 0.1], [0.2, 0.8]]))
    without = EvaluationResult(("a", "b"), 0.1, 1.0, np.eye(2, dtype=np.int64))
    with pytest.raises(ValueError, match="holds no per-image probabilities"):
        plot_roc_curves(without)


def test_reliability_diagram_bars_are_the_accuracy_of_each_bin(tmp_path: Path) -> None:
    # _evaluation(): confidence 0.7 / 1.0 for all eight images (rows 0.7 + 3 * 0.1), 6 right
    figure = plot_reliability_diagram(_evaluation(), bins=10, save=tmp_path / "rel.png")

    top, bottom = figure.axes
    heights = {round(bar.get_x(), 2): bar.get_height() for bar in top.patches[:1]}
    assert heights == {0.6: pytest.approx(0.75)}  # the bin (0.6, 0.7]: 6 of 8 right
    counts = [bar.get_height() for bar in bottom.patches]
    assert counts == [0, 0, 0, 0, 0, 0, 8, 0, 0, 0]
    # ECE |0.75 - 0.7| = 5.0 %, and the result's temperature
    assert "(ECE 5.0%, temperature 1.00, 10 bins)" in top.get_title()
    _png(tmp_path / "rel.png")


def test_reliability_diagram_of_a_pair_of_arrays() -> None:
    figure = plot_reliability_diagram(([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), bins=5)
    assert "temperature" not in figure.axes[0].get_title()
    with pytest.raises(ValueError, match="holds no per-image probabilities"):
        plot_reliability_diagram(EvaluationResult(("a", "b"), 0.1, 1.0, np.eye(2, dtype=np.int64)))


@pytest.mark.parametrize("dpi", [0, -50, float("nan"), float("inf"), True, "100"])
def test_a_bad_dpi_is_refused_in_one_line(tmp_path: Path, dpi: object) -> None:
    with pytest.raises(ValueError, match=r"dpi must be a finite number > 0 \(dots per inch\), got"):
        plot_confusion_matrix(
            [[1, 0], [0, 1]],
            ["a", "b"],
            dpi=dpi,  # type: ignore[arg-type]
            save=tmp_path / "x.png",
        )
    assert not (tmp_path / "x.png").exists()


def test_a_dpi_too_large_for_a_raster_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dpi=100000 makes a .* pixel image, over the 65535"):
        plot_history(_history(), save=tmp_path / "h.png", dpi=100_000)


def test_a_folder_as_save_path_is_refused_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    with pytest.raises(ValueError, match=rf"the save path '{re.escape(str(folder))}' is a folder"):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], save=folder)
    with pytest.raises(ValueError, match=r"is a folder; pass a file path such as"):
        plot_history(_history(), save=str(folder))
    assert not (tmp_path / "data.png").exists()


@pytest.mark.parametrize(
    ("name", "found"), [("figure", "no suffix"), ("figure.foo", "suffix '.foo'")]
)
def test_a_save_path_without_a_format_suffix_is_refused(
    tmp_path: Path, name: str, found: str
) -> None:
    with pytest.raises(ValueError, match=rf"has {re.escape(found)}; end it in the format"):
        plot_history(_history(), save=tmp_path / name)
    assert not any(tmp_path.iterdir())


# --- the (targets, probabilities) form: checked as the metrics check it (fixer M2) ------------

_PAIR_PROBABILITIES = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.45, 0.55]])


def _legend(figure: Figure) -> list[str]:
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([0.9, 1.2, 1.0, 0.0], r"integer class indices, got dtype float64"),  # was truncated
        ([0, 1, 7, 0], r"class indices from 0 to 1, got values from 0 to 7"),  # was drawn
        ([0, 1, -1, 0], r"class indices from 0 to 1, got values from -1 to 1"),
        (["a", "b", "a", "a"], r"got dtype <U1 \(first value 'a'\); pass indices"),
    ],
)
def test_every_plot_of_a_pair_refuses_bad_targets(targets: list[object], message: str) -> None:
    pair = (targets, _PAIR_PROBABILITIES)
    for plot in (plot_roc_curves, plot_precision_recall_curves, plot_confusion_matrix):
        with pytest.raises(ValueError, match=message):
            plot(pair, ["a", "b"])
    with pytest.raises(ValueError, match=message):
        plot_reliability_diagram(pair)


def test_the_confusion_matrix_takes_targets_and_probabilities() -> None:
    figure = plot_confusion_matrix(([0, 1, 1, 0], _PAIR_PROBABILITIES), ["a", "b"])
    # predicted a, b, a, b: one of each in every cell
    assert [text.get_text() for text in figure.axes[0].texts] == ["1", "1", "1", "1"]
    two_rows = plot_confusion_matrix(([5, 1], [0, 4]), ["a", "b"])  # still a 2x2 matrix
    assert [text.get_text() for text in two_rows.axes[0].texts] == ["5", "1", "0", "4"]


def test_curves_of_logits_are_those_of_their_probabilities() -> None:
    logits = np.log(_PAIR_PROBABILITIES) + np.array([[3.0], [-2.0], [0.5], [7.0]])
    pair = ([0, 1, 1, 0], _PAIR_PROBABILITIES)
    for plot in (plot_roc_curves, plot_precision_recall_curves):
        assert _legend(plot(([0, 1, 1, 0], logits), ["a", "b"])) == _legend(plot(pair, ["a", "b"]))
    with pytest.raises(ValueError, match="divide them by 100"):
        plot_roc_curves(([0, 1, 1, 0], _PAIR_PROBABILITIES * 100), ["a", "b"])


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ("list", r"got a list of 1: plot each one"),
        ("dict", r"got a dict$"),
    ],
)
def test_prediction_must_be_one_prediction(given: str, match: str) -> None:
    image = SyntheticOCT(1, shape=(60, 80), seed=0).image(0)
    prediction = Prediction("<image 0>", (ClassProbability("CNV", 0, 0.7),))
    value = [prediction] if given == "list" else prediction.to_dict()
    with pytest.raises(TypeError, match=r"^prediction must be one Prediction.*" + match):
        plot_prediction(image, value)  # type: ignore[arg-type]


def _pairwise_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The AUC by its definition: (positive, negative) pairs ranked right, ties one half."""
    pos, neg = scores[positive][:, None], scores[~positive][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def test_curves_of_scores_in_0_1_rank_each_column_as_given() -> None:
    # one-vs-rest (sigmoid) scores, rows summing to 0.8 to 1.7: the curves were those of
    # each row divided by its sum (b's AUC 0.778, a's AP 0.867), not those of the column
    targets = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([[0.9, 0.8], [0.6, 0.2], [0.5, 0.9], [0.4, 0.7], [0.7, 0.95], [0.3, 0.7]])
    auc = [_pairwise_auc(scores[:, c], targets == c) for c in range(2)]
    assert _legend(plot_roc_curves((targets, scores), ["a", "b"]))[:2] == [
        f"a (AUC {auc[0]:.3f})",
        f"b (AUC {auc[1]:.3f})",
    ]
    assert auc[1] == pytest.approx(5 / 9)
    # a's AP by hand: ranked 0.9 (a), 0.7, 0.6 (a), 0.5 (a), 0.4, 0.3
    ap = (1 / 3) * (1 + 2 / 3 + 3 / 4)
    assert _legend(plot_precision_recall_curves((targets, scores), ["a", "b"]))[0] == (
        f"a (AP {ap:.3f})"
    )


@pytest.mark.parametrize("plot", [plot_roc_curves, plot_precision_recall_curves])
def test_each_class_has_its_own_line_with_more_than_ten_classes(plot: Any) -> None:
    """Twelve classes drew class0 and class10 alike (matplotlib's ten colours), and a class
    without images shifted every later class's colour between the two figures."""
    rng = np.random.default_rng(0)
    names = [f"class{i}" for i in range(12)]
    targets = np.array([i for i in range(12) if i != 3 for _ in range(3)])  # class3: none
    scores = rng.dirichlet(np.ones(12), size=len(targets))
    figure = plot((targets, scores), names)
    lines = {
        line.get_label().split(" (")[0]: (line.get_color(), line.get_linestyle())
        for line in figure.axes[0].get_lines()
        if str(line.get_label()).startswith("class")
    }
    assert len(set(lines.values())) == len(lines) == 11  # every drawn class told apart
    assert lines["class4"] == ("C4", "-")  # its own look, though class3 drew nothing
    assert lines["class10"] == ("C0", "--")


@pytest.mark.parametrize(
    ("plot", "given"),
    [
        (plot_confusion_matrix, [[1, 0], [0, 1]]),
        (plot_roc_curves, ([0, 1], [[0.8, 0.2], [0.3, 0.7]])),
        (plot_precision_recall_curves, ([0, 1], [[0.8, 0.2], [0.3, 0.7]])),
    ],
)
def test_class_names_given_as_one_string_are_refused_not_read_as_letters(
    plot: Any, given: Any
) -> None:
    with pytest.raises(TypeError, match="classes must be a list of class names"):
        plot(given, "CN")


_NOT_COUNTS = [
    ([[0.8, 0.2], [0.1, 0.9]], r"fractions \(0\.8 at row 0, column 0\)"),  # normalize="true"
    ([[1.0, 0.0], [0.25, 0.75]], r"fractions \(0\.25 at row 1, column 0\)"),
    ([[5, -1], [0, 4]], r"a negative count \(-1 at row 0, column 1\)"),
    ([[5.7, 1], [0, 4]], r"a count that is not a whole number \(5\.7 at row 0, column 0\)"),
    ([[1, math.nan], [0, 1]], r"a value that is not a number \(nan at row 0, column 1\)"),
    ([[1, 0], [math.inf, 1]], r"an infinite value \(inf at row 1, column 0\)"),
    ([["3", "1"], ["0", "2"]], r"got dtype <U1"),
]


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize(("matrix", "found"), _NOT_COUNTS)
def test_a_matrix_that_is_not_counts_is_refused_naming_the_cell_and_the_fix(
    matrix: list[list[Any]], found: str, normalize: bool
) -> None:
    # fractions were drawn as "0" in every cell, a negative count as "125%" and "-25%",
    # 5.7 as "5"
    with pytest.raises(
        ValueError,
        match=r"^the confusion matrix must hold counts of images \(whole numbers >= 0\)"
        rf"(, but it holds |, ){found}; pass the counts \(normalize=True draws each row as "
        r"fractions of its true class\)$",
    ):
        plot_confusion_matrix(matrix, ["a", "b"], normalize=normalize)


def test_whole_counts_as_floats_are_counts() -> None:
    figure = plot_confusion_matrix(np.array([[3.0, 1.0], [0.0, 2.0]]), ["a", "b"])
    assert [t.get_text() for t in figure.axes[0].texts] == ["3", "1", "0", "2"]


def test_a_result_built_by_hand_is_checked_as_a_bare_matrix() -> None:
    # refused where it is built, before any plot reads it (tests/test_result_fields.py)
    message = r"^EvaluationResult: confusion_matrix must hold counts .* fractions \(0\.5 at row 0"
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(
            _evaluation(), confusion_matrix=np.array([[0.5, 0.5, 0, 0]] + [[0, 0, 0, 1]] * 3)
        )
