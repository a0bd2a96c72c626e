"""Clinical metrics: exact hand-computed cases, then agreement with scikit-learn."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from retinalnet.metrics import (
    URGENT_CLASSES,
    ClassificationReport,
    average_precision,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    patient_level,
    precision_recall_curve,
    reliability_curve,
    roc_auc,
    roc_curve,
    topk_accuracy,
)
from retinalnet.predictor import top_predictions

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")

# Ten images; the predicted class is the argmax of each row.
TARGETS = [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
PROBABILITIES = np.array(
    [
        [0.70, 0.10, 0.10, 0.10],  # CNV    -> CNV
        [0.40, 0.30, 0.20, 0.10],  # CNV    -> CNV
        [0.20, 0.50, 0.20, 0.10],  # CNV    -> DME
        [0.10, 0.60, 0.20, 0.10],  # DME    -> DME
        [0.30, 0.20, 0.10, 0.40],  # DME    -> NORMAL
        [0.10, 0.10, 0.60, 0.20],  # DRUSEN -> DRUSEN
        [0.05, 0.05, 0.50, 0.40],  # DRUSEN -> DRUSEN
        [0.10, 0.10, 0.30, 0.50],  # DRUSEN -> NORMAL
        [0.10, 0.10, 0.20, 0.60],  # NORMAL -> NORMAL
        [0.10, 0.05, 0.15, 0.70],  # NORMAL -> NORMAL
    ]
)
# rows true, columns predicted
MATRIX = [
    [2, 1, 0, 0],
    [0, 1, 0, 1],
    [0, 0, 2, 1],
    [0, 0, 0, 2],
]


def test_confusion_matrix_counts_true_by_predicted() -> None:
    matrix = confusion_matrix(TARGETS, PROBABILITIES.argmax(axis=1), 4)

    assert matrix.dtype == np.int64
    assert matrix.tolist() == MATRIX


@pytest.mark.parametrize(
    ("targets", "predicted", "message"),
    [
        ([0, 1], [0], r"differ in length \(2 vs 1\)"),
        ([0, 4], [0, 1], r"from 0 to 3, got values from 0 to 4"),
        ([[0, 1]], [[0, 1]], r"1-d"),
        ([0.5, 1.0], [0, 1], r"^targets must be integer class indices"),
        ([0, 1], [0, math.nan], r"^predicted must be integer class indices, got dtype float64"),
    ],
)
def test_confusion_matrix_refuses_bad_input(targets: Any, predicted: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        confusion_matrix(targets, predicted, 4)


@pytest.mark.parametrize(
    ("scores", "positive", "expected"),
    [
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),  # one of four pairs misordered
        ([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], 1.0),
        ([0.4, 0.3, 0.2, 0.1], [0, 0, 1, 1], 0.0),
        ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], 0.5),  # all tied: each pair counts one half
        ([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1], 0.875),  # one tied pair: 3.5 of 4
    ],
)
def test_roc_auc_by_hand(scores: list[float], positive: list[int], expected: float) -> None:
    assert roc_auc(scores, positive) == expected


def test_roc_auc_is_nan_without_both_kinds() -> None:
    assert math.isnan(roc_auc([0.1, 0.2], [1, 1]))
    assert math.isnan(roc_auc([0.1, 0.2], [0, 0]))


def _roc_auc_by_searchsorted(scores: np.ndarray, positive: np.ndarray) -> float:
    """The 0.2 formula: each score's mean rank from two binary searches of the sorted scores."""
    ordered = np.sort(scores)
    ranks = (
        np.searchsorted(ordered, scores, "left") + np.searchsorted(ordered, scores, "right") + 1
    ) / 2
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    return (float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@pytest.mark.parametrize(
    ("scores", "positive"),
    [
        ([0.3, 0.3, 0.3, 0.1, 0.9, 0.9], [1, 0, 1, 0, 0, 1]),  # runs of ties at both ends
        ([-0.0, 0.0, 0.0, 1.0], [1, 0, 0, 1]),  # -0.0 and 0.0 are one tie
        ([2.0, 1.0], [1, 0]),  # two images
        ([0.7] * 5 + [0.2], [0, 0, 0, 0, 1, 0]),
    ],
)
def test_roc_auc_with_ties_equals_the_mean_rank_formula(
    scores: list[float], positive: list[int]
) -> None:
    values, labels = np.asarray(scores), np.asarray(positive, dtype=bool)
    assert roc_auc(values, labels) == _roc_auc_by_searchsorted(values, labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_of_many_tied_scores_equals_the_mean_rank_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(5000), 2)  # about 50 images per tied score
    positive = rng.random(5000) < 0.3
    assert roc_auc(scores, positive) == pytest.approx(
        _roc_auc_by_searchsorted(scores, positive), rel=1e-12, abs=0
    )


def test_roc_auc_sorts_once_and_never_searches(monkeypatch: pytest.MonkeyPatch) -> None:
    # the bootstrap calls roc_auc five times per resample: binary searches of every score
    # (the 0.2 formula) took three quarters of an 80,000-image resample
    calls: list[str] = []
    for name in ("sort", "argsort", "searchsorted"):
        original = getattr(np, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(np, name, counted)
    assert roc_auc([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == 0.875
    assert calls == ["argsort"]


def test_topk_table_by_hand() -> None:
    table = topk_accuracy(TARGETS, PROBABILITIES, ks=[1, 2, 4])

    # top-1 is the recall of each class
    assert table[1].tolist() == [2 / 3, 0.5, 2 / 3, 1.0]
    # image 2 (CNV 0.2, tied with DRUSEN behind DME 0.5) is in the top 2: on a tie the lower
    # class index ranks first; image 4 (DME 0.2, third) is not
    assert table[2].tolist() == [1.0, 0.5, 1.0, 1.0]
    assert table[4].tolist() == [1.0, 1.0, 1.0, 1.0]  # top-4 of 4 classes: always 100%


def test_topk_refuses_k_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"each k must be an int from 1 to 4, got 5"):
        topk_accuracy(TARGETS, PROBABILITIES, ks=[5])


def test_report_per_class_by_hand() -> None:
    report = classification_report(TARGETS, PROBABILITIES)

    assert isinstance(report, ClassificationReport)
    assert report.confusion_matrix.tolist() == MATRIX
    assert report.accuracy == 0.7
    cnv, dme, drusen, normal = report.per_class
    # CNV: tp 2, fn 1, fp 0, tn 7
    assert (cnv.precision, cnv.recall, cnv.specificity) == (1.0, 2 / 3, 1.0)
    assert cnv.f1 == pytest.approx(0.8)
    assert cnv.support == 3
    # DME: tp 1, fn 1, fp 1, tn 7
    assert (dme.precision, dme.recall, dme.specificity, dme.f1) == (0.5, 0.5, 7 / 8, 0.5)
    # DRUSEN: tp 2, fn 1, fp 0, tn 7
    assert (drusen.precision, drusen.recall, drusen.specificity) == (1.0, 2 / 3, 1.0)
    # NORMAL: tp 2, fn 0, fp 2, tn 6
    assert (normal.precision, normal.recall, normal.specificity) == (0.5, 1.0, 0.75)
    assert normal.f1 == pytest.approx(2 / 3)
    assert report["NORMAL"] is normal
    assert normal.sensitivity == normal.recall
    # one-vs-rest AUC of CNV, pair by pair: its 3 images' CNV probability against the 7 others'
    positives = [0.70, 0.40, 0.20]
    negatives = [0.10, 0.30, 0.10, 0.05, 0.10, 0.10, 0.10]
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives]
    assert cnv.auc == pytest.approx(sum(pairs) / len(pairs))


def test_report_averages_by_hand() -> None:
    report = classification_report(TARGETS, PROBABILITIES)

    assert report.macro["recall"] == pytest.approx((2 / 3 + 0.5 + 2 / 3 + 1.0) / 4)
    assert report.macro["precision"] == pytest.approx((1.0 + 0.5 + 1.0 + 0.5) / 4)
    # weighted recall is accuracy
    assert report.weighted["recall"] == pytest.approx(0.7)
    assert report.weighted["precision"] == pytest.approx(
        (3 * 1.0 + 2 * 0.5 + 3 * 1.0 + 2 * 0.5) / 10
    )


def test_urgent_referral_by_hand() -> None:
    report = classification_report(TARGETS, PROBABILITIES)

    referral = report.referral
    assert referral is not None
    assert referral.urgent == URGENT_CLASSES == ("CNV", "DME")
    # urgent images 0-4: referred when the top class is CNV or DME -> 0, 1, 2, 3 (4 is NORMAL)
    # other images 5-9: none has a CNV or DME top class
    assert referral.confusion_matrix.tolist() == [[5, 0], [1, 4]]
    assert (referral.sensitivity, referral.specificity) == (0.8, 1.0)
    urgent_score = PROBABILITIES[:, :2].sum(axis=1)
    assert referral.auc == roc_auc(urgent_score, np.array(TARGETS) < 2)
    # the same, pair by pair
    positives, negatives = urgent_score[:5], urgent_score[5:]
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives]
    assert referral.auc == pytest.approx(sum(pairs) / 25)


@pytest.mark.parametrize("form", ["log-probabilities", "logits"])
def test_the_referral_auc_of_log_probabilities_or_logits_is_that_of_their_probabilities(
    form: str,
) -> None:
    # image 0: CNV 0.5 and DME 1e-5 (urgent 0.50001) against image 3: CNV 0.45 (0.45)
    probabilities = np.array(
        [[0.5, 1e-5, 0.49999, 0], [0.3, 0.3, 0.2, 0.2], [0.1, 0.1, 0.4, 0.4], [0.45, 0, 0.55, 0]]
    )
    probabilities = np.clip(probabilities, 1e-6, None)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    scores = np.log(probabilities) + (3.0 if form == "logits" else 0.0)
    targets = [0, 1, 2, 3]

    expected = classification_report(targets, probabilities).referral
    got = classification_report(targets, scores).referral
    assert expected is not None
    assert got is not None
    assert expected.auc == 1.0
    assert got.auc == pytest.approx(1.0)  # was 0.75: the log-probabilities were summed
    # the ECE judges the distributions the scores stand for: log-probabilities are some,
    # logits (a temperature away from any) are none
    ece = classification_report(targets, scores).ece
    if form == "logits":
        assert math.isnan(ece)
    else:
        assert ece == pytest.approx(classification_report(targets, probabilities).ece)


def _held(probabilities: np.ndarray, targets: np.ndarray) -> Any:
    """An EvaluationResult holding only probabilities and targets (as one loaded or built
    by hand)."""
    from retinalnet.training import EvaluationResult

    return EvaluationResult(
        classes=("CNV", "DME", "DRUSEN", "NORMAL"),
        loss=math.nan,
        accuracy=math.nan,
        confusion_matrix=np.zeros((4, 4), dtype=np.int64),
        probabilities=probabilities,
        targets=targets,
    )


def test_the_calibration_error_has_one_rule_per_scan_per_patient_and_when_called() -> None:
    # rounded probabilities (rows of 0.99) were "not probabilities" to the report (ECE NaN)
    # while EvaluationResult.ece and the per-patient report gave a number
    from retinalnet.metrics import expected_calibration_error, patient_level

    rng = np.random.default_rng(0)
    exact = rng.dirichlet(np.ones(4), size=40)
    rounded = np.round(exact, 2)
    assert np.abs(rounded.sum(axis=1) - 1).max() > 1e-3  # some rows miss 1
    targets = rng.integers(0, 4, size=40)
    rescaled = rounded / rounded.sum(axis=1, keepdims=True)
    expected = expected_calibration_error(rescaled, targets)
    result = _held(rounded, targets)
    assert classification_report(targets, rounded).ece == pytest.approx(expected)
    assert expected_calibration_error(rounded, targets) == pytest.approx(expected)
    assert result.ece == pytest.approx(expected)
    ids = [str(i) for i in range(40)]  # one scan per patient: the same groups
    assert patient_level(rounded, targets, ids).ece == pytest.approx(expected)
    # rows of half a distribution (two classes' probabilities of four) stand for none
    half = exact * 0.5
    assert math.isnan(classification_report(targets, half).ece)
    assert math.isnan(patient_level(half, targets, ids).ece)
    with pytest.raises(
        ValueError, match=r"^each image's probabilities must sum to 1.*row \d+ sums to 0.5"
    ):
        expected_calibration_error(half, targets)
    # log-probabilities are the same distributions when called directly too
    logs = np.log(np.clip(exact, 1e-12, None))
    assert expected_calibration_error(logs, targets) == pytest.approx(
        expected_calibration_error(exact, targets)
    )
    # one bound whatever the number of classes: 100 classes' rows scaled by 0.8 are none
    many = rng.dirichlet(np.ones(100), size=40)
    many_targets = rng.integers(0, 100, size=40)
    names = [f"class {i}" for i in range(100)]
    assert math.isnan(classification_report(many_targets, many * 0.8, classes=names).ece)
    with pytest.raises(ValueError, match=r"sums to 0.8"):
        expected_calibration_error(many * 0.8, many_targets)
    assert not math.isnan(classification_report(many_targets, many, classes=names).ece)
    # a result holding such rows (built by hand, loaded) says NaN as its report does, and
    # prints and renders: the property raised, and str() and the HTML report with it
    halves = _held(half, targets)
    assert math.isnan(halves.ece)
    assert str(halves).splitlines()[0].endswith("ECE -  temperature 1.00")
    pytest.importorskip("matplotlib")
    from retinalnet.report import render_html_report

    assert "Calibration" in render_html_report(halves)


def test_bootstrap_intervals_keep_every_class_whatever_its_name() -> None:
    targets = np.array([0] * 20 + [1] * 20)
    probabilities = np.tile([0.9, 0.1], (40, 1))
    report = classification_report(
        targets, probabilities, classes=["1", "0"], urgent=None, bootstrap=50
    )
    # was: "[0]" renamed to "[1]" and then back to "[0]", so sensitivity[1] was lost
    assert {key for key in report.intervals if key.startswith("sensitivity")} == {
        "sensitivity[1]",
        "sensitivity[0]",
    }
    # the bootstrapped ones too: every score alike, so every resample's AUC is 0.5
    assert {key for key in report.no_interval if key.startswith("auc")} == {"auc[1]", "auc[0]"}
    # Wilson: 20 of 20 at 95% is 20 / (20 + z**2) to 1, 0 of 20 is 0 to z**2 / (20 + z**2)
    assert report.intervals["sensitivity[1]"] == pytest.approx((0.838875, 1.0))
    assert report.intervals["sensitivity[0]"] == pytest.approx((0.0, 0.161125))


def test_bootstrap_resamples_keep_the_class_mix_so_macro_averages_keep_their_classes() -> None:
    # CNV 9 and DME 4 right, the one NORMAL scan called CNV: macro F1 (0.947 + 1 + 0) / 3.
    # A plain resample missed the NORMAL scan in a third of the draws, whose macro F1 was
    # (1 + 1) / 2: the interval reached 100% above a point estimate of 65%
    targets = np.array([0] * 9 + [1] * 4 + [3])
    probabilities = np.eye(4)[[0] * 9 + [1] * 4 + [0]] * 0.7 + 0.075
    report = classification_report(targets, probabilities, bootstrap=500, seed=0)
    point = report.macro["f1"]
    assert point == pytest.approx((2 * 0.9 / 1.9 + 1 + 0) / 3)
    # every resample has the same macro F1: no interval, rather than (point, point)
    assert "macro_f1" not in report.intervals
    assert report.no_interval["macro_f1"].startswith("every resample scored the same")
    # 0 of 1 NORMAL scan right: Wilson's 0 to z**2 / (1 + z**2) = 0.793, not 0% to 0%
    assert report.intervals["sensitivity[NORMAL]"] == pytest.approx((0.0, 0.793451), abs=1e-6)


def _wilson_by_hand(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval, written out as in Wilson (1927)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf((1 + confidence) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.mark.parametrize(
    ("k", "n", "confidence", "expected"),
    [  # expected: scipy.stats.binomtest(k, n).proportion_ci(confidence, "wilson")
        (20, 20, 0.95, (0.838875, 1.0)),  # 20 / (20 + z**2): never 100% to 100%
        (0, 20, 0.95, (0.0, 0.161125)),
        (2, 2, 0.95, (0.342380, 1.0)),
        (10, 20, 0.95, (0.299298, 0.700702)),
        (79, 80, 0.95, (0.932537, 0.997790)),
        (7, 9, 0.995, (0.335865, 0.960354)),
    ],
)
def test_wilson_intervals_are_the_closed_form(
    k: int, n: int, confidence: float, expected: tuple[float, float]
) -> None:
    from retinalnet.metrics._intervals import wilson_intervals

    low, high = wilson_intervals(np.array([float(k)]), np.array([float(n)]), confidence)
    assert (low[0], high[0]) == pytest.approx(expected, abs=1e-6)
    assert (low[0], high[0]) == pytest.approx(_wilson_by_hand(k, n, confidence))
    # a proportion of nothing has no interval
    assert np.isnan(wilson_intervals(np.array([0.0]), np.array([0.0]), confidence)).all()


def _twenty_each(wrong_normal: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """20 scans of each class, all right but (optionally) one NORMAL called DRUSEN."""
    targets = np.repeat([0, 1, 2, 3], 20)
    probabilities = np.full((80, 4), 0.1)
    probabilities[np.arange(80), targets] = 0.7
    if wrong_normal:
        probabilities[60] = [0.1, 0.1, 0.7, 0.1]
    return targets, probabilities


def test_proportions_get_wilson_intervals_that_keep_their_width_at_0_and_100_percent() -> None:
    targets, probabilities = _twenty_each()

    report = classification_report(targets, probabilities, bootstrap=40, seed=0)

    # was: sensitivity[CNV] (1.0, 1.0) and specificity[CNV] (1.0, 1.0), from a bootstrap
    # stratified by class, where 20 of 20 right is 20 of 20 right in every resample
    expected = {
        "accuracy": _wilson_by_hand(79, 80),
        "sensitivity[CNV]": _wilson_by_hand(20, 20),
        "specificity[CNV]": _wilson_by_hand(60, 60),
        "precision[CNV]": _wilson_by_hand(20, 20),
        "sensitivity[NORMAL]": _wilson_by_hand(19, 20),
        "precision[DRUSEN]": _wilson_by_hand(20, 21),
        "specificity[DRUSEN]": _wilson_by_hand(59, 60),
        "referral_sensitivity": _wilson_by_hand(40, 40),
        "referral_specificity": _wilson_by_hand(40, 40),
    }
    for key, interval in expected.items():
        assert report.intervals[key] == pytest.approx(interval), key
        assert report.interval_methods[key] == "wilson", key
    assert report.interval_methods["macro_f1"] == "bootstrap"
    assert report.interval_methods["auc[NORMAL]"] == "bootstrap"
    # two images, both right: 34% to 100%, not "100.00% (100.00%-100.00%)"
    two = classification_report([0, 1], [[0.9, 0.1], [0.2, 0.8]], classes=["a", "b"], bootstrap=40)
    assert two.intervals["accuracy"] == pytest.approx(_wilson_by_hand(2, 2))
    assert str(two).splitlines()[0].startswith("images 2  accuracy 100.00% (34.24%-100.00%)")
    # a class without images has no sensitivity, so no interval of it
    none = classification_report([0, 0], [[0.9, 0.1], [0.2, 0.8]], classes=["a", "b"], bootstrap=40)
    assert "sensitivity[b]" not in none.intervals
    assert "sensitivity[b]" not in none.no_interval


def test_a_bootstrap_interval_without_width_is_no_interval_and_says_so() -> None:
    targets, probabilities = _twenty_each()

    report = classification_report(targets, probabilities, bootstrap=40, seed=0)

    # CNV is perfectly separated: every resample's AUC is 1, an interval "(1.000-1.000)"
    assert report["CNV"].auc == 1.0
    for key in ("auc[CNV]", "f1[CNV]", "referral_auc"):
        assert key not in report.intervals, key
        assert report.no_interval[key] == (
            "every resample scored the same, e.g. an AUC of 1 on perfectly separated classes, "
            "or an F1 of 0"
        )
        assert report.interval_methods[key] == "bootstrap"
    low, high = report.intervals["auc[NORMAL]"]
    assert low < high
    data = json.loads(report.to_json())
    assert data["no_interval"]["auc[CNV]"].startswith("every resample scored the same")
    assert "auc[CNV]" not in data["intervals"]
    assert data["interval_methods"]["accuracy"] == "wilson"
    assert data["interval_note"] == report.interval_note
    text = str(report)
    assert "(1.000-1.000)" not in text
    assert "AUC 1.000 (no interval: every resample scored the same" in text
    assert "\nno interval: every resample scored the same, e.g. an AUC of 1 on perfectly" in text


def test_the_text_shows_each_class_intervals_under_a_header_that_names_the_methods() -> None:
    targets, probabilities = _twenty_each()

    lines = str(classification_report(targets, probabilities, bootstrap=40, seed=0)).splitlines()

    assert lines[1] == (
        "(95% intervals: Wilson score for proportions (accuracy, sensitivity, specificity, "
        "precision); stratified percentile bootstrap (40 resamples) for F1 and AUC; "
        "bootstrap seed 0; each class's in the table of intervals)"
    )
    start = lines.index(next(line for line in lines if line.startswith("95% intervals ")))
    assert lines[start].split() == [
        "95%", "intervals", "precision", "recall", "specificity", "f1", "auc"
    ]  # fmt: skip
    assert lines[start + 1].split() == [
        "CNV", "83.9%-100.0%", "83.9%-100.0%", "94.0%-100.0%", "no", "interval", "no", "interval"
    ]  # fmt: skip
    assert lines[start + 4].split()[:3] == ["NORMAL", "83.2%-100.0%", "76.4%-99.1%"]
    assert lines[start + 5].split()[:4] == ["macro", "-", "-", "-"]


@pytest.mark.parametrize(
    ("confidence", "bootstrap", "label"),
    [(0.975, 80, "97.5%"), (0.995, 400, "99.5%"), (0.9, 20, "90%"), (0.95, 40, "95%")],
)
def test_the_level_is_shown_unrounded(confidence: float, bootstrap: int, label: str) -> None:
    report = classification_report(
        TARGETS, PROBABILITIES, bootstrap=bootstrap, confidence=confidence
    )
    # was: 0.995 shown as "100% bootstrap intervals", 0.975 as "98%"
    assert report.interval_note.startswith(f"{label} intervals: Wilson score")
    assert str(report).splitlines()[1].startswith(f"({label} intervals: Wilson score")
    assert f"\n{label} intervals " in str(report)


@pytest.mark.parametrize(
    ("bootstrap", "confidence", "fewest"),
    [(1, 0.95, "40"), (39, 0.95, "40"), (199, 0.99, "200"), (399, 0.995, "400")],
)
def test_too_few_resamples_for_the_level_are_refused(
    bootstrap: int, confidence: float, fewest: str
) -> None:
    # was: bootstrap=1 gave a "95% interval" that left out the point estimate
    message = (
        rf"^bootstrap={bootstrap} is too few resamples for {confidence * 100:g}% intervals: "
        rf"each tail needs at least one resample, so at least {fewest} "
    )
    with pytest.raises(ValueError, match=message):
        classification_report(TARGETS, PROBABILITIES, bootstrap=bootstrap, confidence=confidence)
    with pytest.raises(ValueError, match=message):
        patient_level(
            PROBABILITIES, TARGETS, ["7"] * 10, bootstrap=bootstrap, confidence=confidence
        )
    enough = classification_report(
        TARGETS, PROBABILITIES, bootstrap=int(fewest), confidence=confidence
    )
    assert enough.intervals


def test_a_bootstrap_resample_has_the_class_counts_of_the_data() -> None:
    from retinalnet.metrics._bootstrap import _stratified_resample

    targets = np.array([3, 0, 0, 1, 0, 3, 1, 0, 0])
    members = [np.flatnonzero(targets == c) for c in np.unique(targets)]
    rng = np.random.default_rng(0)
    for _ in range(20):
        pick = _stratified_resample(members, rng)
        assert np.bincount(targets[pick], minlength=4).tolist() == [5, 2, 0, 2]


def test_no_referral_without_the_urgent_classes() -> None:
    report = classification_report([0, 1], [[0.6, 0.4], [0.3, 0.7]], classes=["a", "b"])

    assert report.referral is None
    assert "urgent" not in str(report)


def test_a_class_without_images_is_nan_and_left_out_of_the_averages() -> None:
    targets = [0, 0, 1, 1]
    probabilities = [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]]

    report = classification_report(targets, probabilities, classes=["a", "b", "c"], urgent=None)

    c = report["c"]
    assert c.support == 0
    assert math.isnan(c.recall)
    assert math.isnan(c.precision)
    assert math.isnan(c.auc)
    assert c.specificity == 1.0
    assert report.macro["recall"] == pytest.approx((0.5 + 1.0) / 2)
    data = report.to_dict()
    assert data["per_class"]["c"]["recall"] is None
    json.loads(report.to_json())  # strict JSON: NaN became null


def test_report_to_dict_and_json() -> None:
    report = classification_report(TARGETS, PROBABILITIES, bootstrap=50, seed=1)

    data = report.to_dict()

    assert json.loads(report.to_json()) == data
    assert data["classes"] == list(CLASSES)
    assert data["num_samples"] == 10
    assert data["confusion_matrix"] == MATRIX
    assert data["per_class"]["DME"] == {
        "precision": 0.5,
        "recall": 0.5,
        "specificity": 0.875,
        "f1": 0.5,
        "support": 2,
        "auc": report["DME"].auc,
    }
    assert data["topk"]["1"]["NORMAL"] == 1.0
    assert data["referral"]["sensitivity"] == 0.8
    assert data["bootstrap"] == 50
    assert set(data["intervals"]) >= {"accuracy", "macro_auc", "sensitivity[CNV]"}


def test_str_is_a_readable_table() -> None:
    text = str(classification_report(TARGETS, PROBABILITIES))
    lines = text.splitlines()

    assert lines[0] == f"images 10  accuracy 70.00%  ECE {report_ece():.1%}"
    assert lines[2].split() == [
        "class",
        "precision",
        "recall",
        "specificity",
        "f1",
        "auc",
        "support",
    ]
    assert lines[3].split()[:5] == ["CNV", "100.0%", "66.7%", "100.0%", "80.0%"]
    assert lines[3].split()[-1] == "3"
    assert lines[7].split()[0] == "macro"
    assert "top-1" in text
    assert "top-3" in text
    assert "urgent referral (CNV + DME vs the rest): sensitivity 80.0%" in text


def test_to_text_leaves_the_headline_to_the_evaluation_unless_it_has_an_interval() -> None:
    report = classification_report(TARGETS, PROBABILITIES)
    assert report.to_text(headline=False) == "\n".join(str(report).splitlines()[2:])
    with_interval = classification_report(TARGETS, PROBABILITIES, bootstrap=40, seed=0)
    low, high = with_interval.intervals["accuracy"]
    first = with_interval.to_text(headline=False).splitlines()[0]
    assert first == f"images 10  accuracy 70.00% ({low:.2%}-{high:.2%})  ECE {report_ece():.1%}"


def _random_case(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 4, n)
    probabilities = rng.dirichlet(np.ones(4), n)
    probabilities[np.arange(n), targets] += 0.4  # better than chance
    return targets, probabilities / probabilities.sum(axis=1, keepdims=True)


def test_bootstrap_is_seeded_and_contains_the_point_estimate() -> None:
    targets, probabilities = _random_case()

    first = classification_report(targets, probabilities, bootstrap=200, seed=3)
    again = classification_report(targets, probabilities, bootstrap=200, seed=3)
    other = classification_report(targets, probabilities, bootstrap=200, seed=4)

    assert first.intervals == again.intervals
    assert first.intervals != other.intervals
    assert first.bootstrap == 200
    assert first.confidence == 0.95
    referral = first.referral
    assert referral is not None
    point = {
        "accuracy": first.accuracy,
        "macro_auc": first.macro["auc"],
        "sensitivity[DRUSEN]": first["DRUSEN"].recall,
        "specificity[CNV]": first["CNV"].specificity,
        "auc[NORMAL]": first["NORMAL"].auc,
        "referral_sensitivity": referral.sensitivity,
        "referral_auc": referral.auc,
    }
    for key, value in point.items():
        low, high = first.intervals[key]
        assert low < value < high, key
        assert high - low < 0.25, key  # 300 images: a few points either side
    assert (
        "(95% intervals: Wilson score for proportions (accuracy, sensitivity, specificity, "
        "precision); stratified percentile bootstrap (200 resamples) for F1 and AUC"
    ) in str(first)


def test_a_wider_confidence_gives_a_wider_interval() -> None:
    targets, probabilities = _random_case()

    narrow = classification_report(targets, probabilities, bootstrap=200, confidence=0.5)
    wide = classification_report(targets, probabilities, bootstrap=200, confidence=0.99)

    assert narrow.intervals["accuracy"][0] > wide.intervals["accuracy"][0]
    assert narrow.intervals["accuracy"][1] < wide.intervals["accuracy"][1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"bootstrap": -1},
            r"bootstrap must be an int from 0 to 100,000 \(resamples; 1,000 is usual\), got -1",
        ),
        ({"confidence": 1.5}, r"confidence must be in \(0, 1\), e.g. 0.95, got 1.5"),
        ({"classes": ["a", "b"]}, r"4 probability columns but 2 class names"),
    ],
)
def test_report_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_report(TARGETS, PROBABILITIES, **kwargs)


def test_report_refuses_probabilities_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \(images, classes\) = \(10, >= 2\), got \(9, 4\)"):
        classification_report(TARGETS, PROBABILITIES[:9])


# ---------------------------------------------------------------------------------------------
# Against scikit-learn (a dev dependency; never imported by the library)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scikit_learn(seed: int) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    targets, probabilities = _random_case(seed=seed)
    predicted = probabilities.argmax(axis=1)

    report = classification_report(targets, probabilities)

    assert np.array_equal(report.confusion_matrix, sk.confusion_matrix(targets, predicted))
    precision, recall, f1, support = sk.precision_recall_fscore_support(targets, predicted)
    assert [m.precision for m in report.per_class] == pytest.approx(precision)
    assert [m.recall for m in report.per_class] == pytest.approx(recall)
    assert [m.f1 for m in report.per_class] == pytest.approx(f1)
    assert [m.support for m in report.per_class] == support.tolist()
    for average in ("macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(targets, predicted, average=average)
        averages = getattr(report, average)
        assert (averages["precision"], averages["recall"], averages["f1"]) == pytest.approx(
            (p, r, f)
        )
        assert averages["auc"] == pytest.approx(
            sk.roc_auc_score(targets, probabilities, multi_class="ovr", average=average)
        )
    per_class_auc = sk.roc_auc_score(targets, probabilities, multi_class="ovr", average=None)
    assert [m.auc for m in report.per_class] == pytest.approx(per_class_auc)
    # specificity is the recall of "not this class"
    for c, metrics in enumerate(report.per_class):
        assert metrics.specificity == pytest.approx(sk.recall_score(targets != c, predicted != c))
    assert report.accuracy == pytest.approx(sk.accuracy_score(targets, predicted))
    for k in (1, 2, 3):
        assert np.mean(np.array(report.topk[k])[targets]) == pytest.approx(
            sk.top_k_accuracy_score(targets, probabilities, k=k)
        )
    urgent = targets < 2
    referral = report.referral
    assert referral is not None
    assert referral.sensitivity == pytest.approx(sk.recall_score(urgent, predicted < 2))
    assert referral.specificity == pytest.approx(sk.recall_score(~urgent, predicted >= 2))
    assert referral.auc == pytest.approx(sk.roc_auc_score(urgent, probabilities[:, :2].sum(axis=1)))


def test_roc_auc_agrees_with_scikit_learn_with_ties() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 5, 200) / 4  # many ties
    positive = rng.random(200) < 0.3

    assert roc_auc(scores, positive) == pytest.approx(sk.roc_auc_score(positive, scores))


# ---------------------------------------------------------------------------------------------
# ROC and precision-recall curves


def test_curves_by_hand() -> None:
    # scores 0.9 (pos), 0.7 (neg), 0.7 (pos), 0.2 (neg), 0.1 (pos): 3 positives, 2 negatives;
    # the tie at 0.7 moves both counts at once
    scores = [0.1, 0.7, 0.9, 0.2, 0.7]
    positive = [1, 0, 1, 0, 1]

    fpr, tpr, thresholds = roc_curve(scores, positive)
    assert thresholds.tolist() == [math.inf, 0.9, 0.7, 0.2, 0.1]
    assert fpr.tolist() == [0, 0, 1 / 2, 2 / 2, 2 / 2]
    assert tpr.tolist() == [0, 1 / 3, 2 / 3, 2 / 3, 3 / 3]
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(scores, positive))

    precision, recall, thresholds = precision_recall_curve(scores, positive)
    assert thresholds.tolist() == [math.inf, 0.9, 0.7, 0.2, 0.1]
    assert recall.tolist() == [0, 1 / 3, 2 / 3, 2 / 3, 3 / 3]
    assert precision.tolist() == [1, 1 / 1, 2 / 3, 2 / 4, 3 / 5]
    # AP = 1/3 * 1 + 1/3 * 2/3 + 0 * 1/2 + 1/3 * 3/5
    assert average_precision(scores, positive) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


def test_curves_without_positives_or_negatives_and_bad_input() -> None:
    fpr, tpr, _ = roc_curve([0.2, 0.8], [1, 1])
    assert np.isnan(fpr).all()
    assert tpr.tolist() == [0, 0.5, 1]
    assert math.isnan(average_precision([0.2, 0.8], [0, 0]))
    with pytest.raises(ValueError, match=r"same length, got shapes \(2,\) and \(3,\)"):
        roc_curve([0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match="scores hold NaN"):
        precision_recall_curve([0.1, math.nan], [0, 1])
    for curve in (roc_curve, precision_recall_curve):  # was: a raw IndexError
        with pytest.raises(ValueError, match=r"^got no scores: a curve needs the scores of at"):
            curve([], [])


@pytest.mark.parametrize("seed", [0, 1])
def test_curves_agree_with_scikit_learn(seed: int) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 8, 120) / 7  # ties included
    positive = rng.random(120) < 0.35

    fpr, tpr, thresholds = roc_curve(scores, positive)
    sk_fpr, sk_tpr, sk_thresholds = sk.roc_curve(positive, scores, drop_intermediate=False)
    assert fpr == pytest.approx(sk_fpr)
    assert tpr == pytest.approx(sk_tpr)
    assert thresholds[1:] == pytest.approx(sk_thresholds[1:])
    precision, recall, _ = precision_recall_curve(scores, positive)
    sk_precision, sk_recall, _ = sk.precision_recall_curve(positive, scores)
    assert precision == pytest.approx(sk_precision[::-1])
    assert recall == pytest.approx(sk_recall[::-1])
    assert average_precision(scores, positive) == pytest.approx(
        sk.average_precision_score(positive, scores)
    )


def report_ece() -> float:
    """The ECE of the module's example, as the report's headline shows it."""
    from retinalnet.metrics import expected_calibration_error

    return expected_calibration_error(PROBABILITIES, TARGETS)


# ---------------------------------------------------------------------------------------------
# NaN or infinite probabilities and scores: refused by every function, with one message
# (the first two rows once counted as confident CNV predictions: accuracy 0.75, no error)


def _nonfinite(value: float) -> np.ndarray:
    """Four images, the first two with a non-finite probability of CNV."""
    return np.array(
        [[value, 0.2, 0.2, 0.6], [value] * 4, [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.1, 0.7]]
    )


FOUR = [0, 1, 2, 3]
FIRST_IS_CNV = [1, 0, 0, 0]

DOORS: dict[str, Callable[[np.ndarray], object]] = {
    "topk_accuracy": lambda p: topk_accuracy(FOUR, p),
    "classification_report": lambda p: classification_report(FOUR, p),
    "classification_report, bootstrap": lambda p: classification_report(
        FOUR, p, urgent=None, bootstrap=40
    ),
    "patient_level": lambda p: patient_level(p, FOUR, ["7", "7", "8", None]),
    "expected_calibration_error": lambda p: expected_calibration_error(p, FOUR),
    "reliability_curve": lambda p: reliability_curve(p, FOUR),
    "fit_temperature": lambda p: fit_temperature(p, FOUR),
    "roc_auc": lambda p: roc_auc(p[:, 0], FIRST_IS_CNV),
    "roc_curve": lambda p: roc_curve(p[:, 0], FIRST_IS_CNV),
    "precision_recall_curve": lambda p: precision_recall_curve(p[:, 0], FIRST_IS_CNV),
    "average_precision": lambda p: average_precision(p[:, 0], FIRST_IS_CNV),
}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("door", DOORS)
def test_every_metric_refuses_nonfinite_probabilities_with_one_message(
    door: str, value: float
) -> None:
    message = (
        rf"^(probabilities|scores) hold NaN or infinite values in 2 of 4 rows \(the first is "
        rf"row 0, with {value}\); expected finite numbers\. They come from a model with "
        r"non-finite weights or outputs: check the checkpoint"
    )
    with pytest.raises(ValueError, match=message):
        DOORS[door](_nonfinite(value))


def test_the_nonfinite_message_counts_the_rows_and_names_the_first() -> None:
    probabilities = np.tile([0.7, 0.1, 0.1, 0.1], (5, 1))
    probabilities[3, 2] = math.inf
    with pytest.raises(ValueError, match=r"in 1 of 5 rows \(the first is row 3, with inf\)"):
        classification_report([0, 0, 0, 0, 0], probabilities)
    # a scan's row, not its patient group's: the check comes before the averaging
    with pytest.raises(ValueError, match=r"in 1 of 5 rows \(the first is row 3, with inf\)"):
        patient_level(probabilities, [0] * 5, ["1", "1", "1", "1", "2"])


# ---------------------------------------------------------------------------------------------
# Tied probabilities: the lower class index ranks first, wherever classes are ranked


def test_tied_probabilities_give_the_same_answer_in_the_top_k_table_and_the_matrix() -> None:
    report = classification_report(FOUR, [[0.25] * 4] * 4)

    assert report.accuracy == 0.25  # argmax: every image is called CNV
    assert [m.recall for m in report.per_class] == [1.0, 0.0, 0.0, 0.0]
    assert report.topk[1] == (1.0, 0.0, 0.0, 0.0)  # was (1.0, 1.0, 1.0, 1.0)
    assert report.topk[2] == (1.0, 1.0, 0.0, 0.0)
    assert report.topk[3] == (1.0, 1.0, 1.0, 0.0)


def _tied_case(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Scores with many ties (each from 0 to 2) and random targets."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4, n), rng.integers(0, 3, (n, 4)).astype(np.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_ranks_classes_as_a_stable_descending_sort(seed: int) -> None:
    targets, scores = _tied_case(seed)
    order = np.argsort(-scores, axis=1, kind="stable")  # ties: the lower index first
    rank = (order == targets[:, None]).argmax(axis=1)

    table = topk_accuracy(targets, scores, ks=[1, 2, 3, 4])
    for k, row in table.items():
        expected = [np.mean(rank[targets == c] < k) for c in range(4)]
        assert row.tolist() == pytest.approx(expected), k
    report = classification_report(targets, scores, topk=[1])
    assert report.topk[1] == pytest.approx([m.recall for m in report.per_class])
    assert np.mean(rank == 0) == report.accuracy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_predictor_top_k_orders_tied_classes_as_the_metrics_do(seed: int) -> None:
    (uniform,) = top_predictions(torch.full((1, 4), 0.25), ["a.jpeg"], [True], CLASSES, 3)
    assert [c.name for c in uniform.top] == ["CNV", "DME", "DRUSEN"]  # torch.topk: DRUSEN first

    targets, scores = _tied_case(seed, n=50)
    probabilities = torch.from_numpy(scores / 6)
    predictions = top_predictions(
        probabilities, [f"{i}.jpeg" for i in range(50)], [True] * 50, CLASSES, 4
    )
    for row, prediction in zip(scores, predictions, strict=True):
        assert [c.index for c in prediction.top] == np.argsort(-row, kind="stable").tolist()
    predicted = [CLASSES.index(p.label) for p in predictions]
    assert predicted == scores.argmax(axis=1).tolist()
    report = classification_report(targets, scores, topk=[1])
    assert report.accuracy == np.mean(np.array(predicted) == targets)


# ---------------------------------------------------------------------------------------------
# Bad arguments are refused, naming the value, what was expected and the fix


@pytest.mark.parametrize(
    ("urgent", "message"),
    [
        (["cnv"], r"^urgent class 'cnv' is not one of CNV, DME, DRUSEN, NORMAL \(the classes\)"),
        (["CNV", "GA"], r"^urgent class 'GA' is not one of CNV, DME, DRUSEN, NORMAL"),
        ([], r"^urgent names no class"),
    ],
)
def test_urgent_classes_that_are_not_classes_are_refused(urgent: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_report(TARGETS, PROBABILITIES, urgent=urgent)


def test_urgent_given_as_one_string_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^urgent must be a list of class names, got 'CNV'"):
        classification_report(TARGETS, PROBABILITIES, urgent="CNV")


def test_urgent_given_explicitly_must_be_among_a_subset_of_the_classes() -> None:
    targets, probabilities = [0, 1], [[0.6, 0.4], [0.3, 0.7]]
    # left at the default: a study without DME quietly has no referral view, as documented
    assert classification_report(targets, probabilities, classes=["CNV", "NORMAL"]).referral is None
    assert (
        classification_report(
            targets, probabilities, classes=["CNV", "NORMAL"], urgent=URGENT_CLASSES
        ).referral
        is None
    )
    # given: a name that is not a class is a mistake
    with pytest.raises(ValueError, match=r"urgent class 'DME' is not one of CNV, NORMAL"):
        classification_report(
            targets, probabilities, classes=["CNV", "NORMAL"], urgent=["CNV", "DME"]
        )
    report = classification_report(
        targets, probabilities, classes=["CNV", "NORMAL"], urgent=["CNV"]
    )
    assert report.referral is not None
    assert report.referral.urgent == ("CNV",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, r"^seed must be an int from 0 to 2\*\*32 - 1, got -1"),
        ({"seed": 1.5}, r"^seed must be an int from 0 to 2\*\*32 - 1, got 1.5"),
        ({"seed": True}, r"^seed must be an int from 0 to 2\*\*32 - 1, got True"),
        ({"seed": None}, r"^seed must be an int from 0 to 2\*\*32 - 1, got None"),
        ({"bootstrap": True}, r"^bootstrap must be an int from 0 to 100,000 .*, got True"),
        ({"bootstrap": 2.0}, r"^bootstrap must be an int from 0 to 100,000 .*, got 2.0"),
        ({"bootstrap": 10**9}, r"^bootstrap must be an int from 0 to 100,000 .*, got 1000000000"),
    ],
)
def test_report_refuses_a_bad_seed_or_bootstrap_up_front(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        classification_report(TARGETS, PROBABILITIES, **{"bootstrap": 40, **kwargs})
    with pytest.raises(ValueError, match=message):  # also without resampling, and per patient
        patient_level(PROBABILITIES, TARGETS, ["7"] * 10, **{"bootstrap": 0, **kwargs})


def test_numpy_integers_are_a_seed_and_a_number_of_resamples() -> None:
    report = classification_report(TARGETS, PROBABILITIES, bootstrap=np.int64(40), seed=np.int64(3))
    assert (
        report.intervals
        == classification_report(TARGETS, PROBABILITIES, bootstrap=40, seed=3).intervals
    )


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (["CNV", "DME", "CNV", "NORMAL"], r"^class names must be distinct, got 'CNV' twice"),
        (["a", "a", "a", "b"], r"^class names must be distinct, got 'a' 3 times"),
    ],
)
def test_duplicate_class_names_are_refused(classes: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_report(TARGETS, PROBABILITIES, classes=classes, urgent=None)
    with pytest.raises(ValueError, match=message):
        patient_level(PROBABILITIES, TARGETS, ["7"] * 10, classes=classes, urgent=None)


def test_classes_given_as_one_string_are_refused() -> None:
    with pytest.raises(TypeError, match=r"^classes must be a list of class names, got 'ab'"):
        classification_report([0, 1], [[0.6, 0.4], [0.3, 0.7]], classes="ab")


@pytest.mark.parametrize(
    ("positive", "shown"),
    [([2, 3], "2, 3"), ([0, 2], "2"), ([0.5, 1.0], "0.5"), (["no", "yes"], "'no', 'yes'")],
)
@pytest.mark.parametrize("door", [roc_auc, roc_curve, precision_recall_curve, average_precision])
def test_binary_labels_other_than_0_and_1_are_refused(
    door: Callable[..., object], positive: list[object], shown: str
) -> None:
    message = rf"^positive must be 0/1 or bool labels \(1: positive\), got {shown}; "
    with pytest.raises(ValueError, match=message):
        door([0.1, 0.2], positive)


def test_binary_labels_may_be_bool_0_1_or_0_1_floats() -> None:
    scores = [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(scores, [False, False, True, True]) == 0.75
    assert roc_auc(scores, np.array([0.0, 0.0, 1.0, 1.0])) == 0.75
    assert roc_auc(scores, [0, 0, 1, 1]) == 0.75


def test_float32_rounding_outside_0_1_is_still_a_probability() -> None:
    # a row renormalised in float32 reaches 1.0000001, a subtraction -1e-9: the report took
    # such scores for logits (ECE NaN, a softmax moving the referral AUC from 0.7501 to
    # 0.7560) and the ECE refused them
    rng = np.random.default_rng(0)
    clean = rng.dirichlet(np.ones(4), size=40)
    targets = rng.integers(0, 4, size=40)
    rounded = clean.copy()
    rounded[0] = [1.0000001, 0.0, 0.0, 0.0]
    rounded[1] = [0.5, 0.5 + 1e-9, -1e-9, 0.0]
    fixed = np.clip(rounded, 0, 1)
    fixed /= fixed.sum(axis=1, keepdims=True)
    names = ["CNV", "DME", "DRUSEN", "NORMAL"]
    report, expected = (
        classification_report(targets, scores, classes=names) for scores in (rounded, fixed)
    )
    assert report.ece == pytest.approx(expected.ece)
    assert not np.isnan(report.ece)
    assert report.referral is not None
    assert expected.referral is not None
    assert report.referral.auc == pytest.approx(expected.referral.auc)
    assert expected_calibration_error(rounded, targets) == pytest.approx(
        expected_calibration_error(fixed, targets), abs=1e-6
    )
    with pytest.raises(ValueError, match="probabilities must be in"):
        expected_calibration_error([[1.001, 0, 0, 0]], [0])  # more than rounding: refused


# ---------------------------------------------------------------------------------------------
# Against scikit-learn's rules: macro averages over the classes with images or predictions,
# AUCs of probabilities whatever the scores, percentages refused, undefined precision said
# (fixer M2's block)

# a clinic's test set without DRUSEN; the model calls 4 of the 12 scans DRUSEN
NO_DRUSEN_TARGETS = [0] * 4 + [1] * 4 + [3] * 4
NO_DRUSEN_PREDICTED = [0, 0, 0, 2, 1, 1, 1, 2, 3, 3, 2, 2]


def _confident(predicted: list[int], classes: int = 4) -> np.ndarray:
    probabilities = np.full((len(predicted), classes), 0.1)
    probabilities[np.arange(len(predicted)), predicted] = 1 - 0.1 * (classes - 1)
    return probabilities


def test_macro_averages_count_a_class_predicted_without_images() -> None:
    # was: DRUSEN left out, macro precision and specificity 100%
    report = classification_report(NO_DRUSEN_TARGETS, _confident(NO_DRUSEN_PREDICTED))

    drusen = report["DRUSEN"]
    assert (drusen.support, drusen.precision, drusen.f1) == (0, 0.0, 0.0)
    assert math.isnan(drusen.recall)
    assert report.macro["precision"] == pytest.approx(3 / 4)
    assert report.macro["specificity"] == pytest.approx((1 + 1 + 4 / 6 + 1) / 4)
    assert report.macro["f1"] == pytest.approx((6 / 7 + 6 / 7 + 0 + 2 / 3) / 4)
    assert report.macro["recall"] == pytest.approx((3 / 4 + 3 / 4 + 2 / 4) / 3)  # balanced
    assert report.weighted["precision"] == 1.0  # weighted by images: DRUSEN weighs 0
    data = report.to_dict()
    assert data["macro_classes"] == ["CNV", "DME", "DRUSEN", "NORMAL"]
    assert data["notes"] == [
        "no images of DRUSEN (predicted 4 times): the macro averages cover CNV, DME, "
        "DRUSEN, NORMAL, the classes with images or predictions; recall and AUC only those "
        "with images"
    ]
    assert f"({data['notes'][0]})" in report.to_text().splitlines()


def test_a_class_neither_in_the_images_nor_predicted_is_named_and_left_out() -> None:
    report = classification_report(
        [0, 0, 1, 1], [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]],
        classes=["a", "b", "c"], urgent=None,
    )  # fmt: skip

    assert report.macro["specificity"] == pytest.approx((1.0 + 1 / 2) / 2)  # c's 100% left out
    assert report.to_dict()["macro_classes"] == ["a", "b"]
    assert report.notes == [
        "no images of c: the macro averages cover a, b, the classes with images or predictions"
    ]


def test_a_class_never_predicted_says_its_precision_is_0_of_0() -> None:
    report = classification_report([0, 0, 1, 1], [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]],
                                   classes=["CNV", "NORMAL"], urgent=None)  # fmt: skip

    assert report["NORMAL"].precision == 0.0  # scikit-learn's zero_division=0
    note = "NORMAL was never predicted: its precision is 0 of 0 predictions, shown as 0"
    assert report.notes == [note]
    assert report.to_dict()["notes"] == [note]
    assert f"({note})" in str(report)
    assert classification_report([0, 1], [[0.9, 0.1], [0.2, 0.8]], classes=["a", "b"]).notes == []
    empty = classification_report(np.array([], int), np.empty((0, 2)), classes=["a", "b"])
    assert empty.notes == []


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_macro_averages_agree_with_scikit_learn_when_classes_are_missing(seed: int) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    targets = rng.choice([0, 1, 3], 25)  # no DRUSEN image; DRUSEN is predicted at times
    probabilities = rng.dirichlet(np.ones(4), 25)
    predicted = probabilities.argmax(axis=1)
    labels = sorted(set(targets) | set(predicted))

    report = classification_report(targets, probabilities)

    p, _, f, _ = sk.precision_recall_fscore_support(
        targets, predicted, labels=labels, average="macro", zero_division=0
    )
    assert (report.macro["precision"], report.macro["f1"]) == pytest.approx((p, f))
    assert report.macro["recall"] == pytest.approx(sk.balanced_accuracy_score(targets, predicted))
    p, r, f, _ = sk.precision_recall_fscore_support(
        targets, predicted, average="weighted", zero_division=0
    )
    assert (report.weighted["precision"], report.weighted["recall"]) == pytest.approx((p, r))
    assert report.weighted["f1"] == pytest.approx(f)


def _logits_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) * 2
    logits[np.arange(300), targets] += 1.5
    logits += rng.normal(size=(300, 1)) * 3  # a per-image offset changes no softmax
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return targets, logits, probabilities


def test_the_per_class_aucs_of_logits_are_those_of_their_probabilities() -> None:
    # was: ranked by the raw logits, [0.593, 0.59, 0.611, 0.615] against [0.748, ...]
    sk = pytest.importorskip("sklearn.metrics")
    targets, logits, probabilities = _logits_case()

    report = classification_report(targets, logits, bootstrap=50)
    expected = classification_report(targets, probabilities, bootstrap=50)

    aucs = [m.auc for m in report.per_class]
    assert aucs == pytest.approx([m.auc for m in expected.per_class])
    sk_aucs = sk.roc_auc_score(targets, probabilities, multi_class="ovr", average=None)
    assert aucs == pytest.approx(sk_aucs)
    assert report.macro["auc"] == pytest.approx(expected.macro["auc"])
    for key in ("macro_auc", "auc[CNV]"):
        assert report.intervals[key] == pytest.approx(expected.intervals[key])


def test_probabilities_in_percent_are_refused_at_every_door() -> None:
    # was: taken for logits and softmaxed, moving the referral AUC and patient-level accuracy
    targets, _, probabilities = _logits_case()
    percent = probabilities * 100
    doors: list[Callable[[], object]] = [
        lambda: classification_report(targets, percent),
        lambda: patient_level(percent, targets, [str(i // 3) for i in range(len(targets))]),
        lambda: expected_calibration_error(percent, targets),
        lambda: reliability_curve(percent, targets),
        lambda: fit_temperature(percent, targets),
    ]
    for door in doors:
        with pytest.raises(ValueError, match=r"look like percentages .*; divide them by 100"):
            door()


def test_precision_recall_curve_without_positives_is_scikit_learns() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    scores, positive = [0.1, 0.4, 0.3], [0, 0, 0]

    precision, recall, _ = precision_recall_curve(scores, positive)

    with pytest.warns(UserWarning, match="No positive class"):
        sk_precision, sk_recall, _ = sk.precision_recall_curve(positive, scores)
    assert recall.tolist() == sk_recall[::-1].tolist() == [0, 1, 1, 1]
    assert precision.tolist() == sk_precision[::-1].tolist()
    assert math.isnan(average_precision(scores, positive))  # undefined, as documented


def test_string_targets_are_refused_saying_to_pass_indices() -> None:
    with pytest.raises(ValueError, match=r"got dtype <U3 \(first value 'CNV'\); pass indices"):
        classification_report(["CNV", "DME"], [[0.9, 0.1], [0.2, 0.8]], classes=["CNV", "DME"])


# -- probabilities straight from a model: with gradients, in bf16 -------------------------


def _from_a_model(probabilities: torch.Tensor, form: str) -> torch.Tensor:
    if form == "requires_grad":
        return probabilities.clone().requires_grad_()
    return probabilities.bfloat16()  # an autocast output


@pytest.mark.parametrize("form", ["requires_grad", "bfloat16"])
@pytest.mark.parametrize(
    "metric",
    [
        lambda t, p: classification_report(t, p).accuracy,
        lambda t, p: topk_accuracy(t, p, ks=(1,))[1].tolist(),
        lambda t, p: average_precision(p[:, 0], t == 0),
        lambda t, p: roc_auc(p[:, 0], t == 0),
        lambda t, p: expected_calibration_error(p, t),
    ],
    ids=["classification_report", "topk_accuracy", "average_precision", "roc_auc", "ece"],
)
def test_metrics_read_a_models_probabilities_as_they_come(
    metric: Callable[[torch.Tensor, torch.Tensor], Any], form: str
) -> None:
    targets = torch.tensor([0, 1, 2, 3, 0, 1])
    probabilities = torch.softmax(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), 1)
    given = _from_a_model(probabilities, form)
    plain = given.detach().double()  # the values as given (bf16 rounds them)

    assert metric(targets, given) == metric(targets, plain)


# -- the bootstrap's macro averages keep the point estimate's classes (audit J-stats 1) ----


def _macro_f1_over(matrix: np.ndarray, labels: list[int]) -> float:
    """scikit-learn's ``f1_score(labels=labels, average="macro", zero_division=0)``, by hand:
    2 TP / (2 TP + FP + FN) of each label, 0 where the label has no images or predictions."""
    scores = []
    for c in labels:
        tp = matrix[c, c]
        counted = matrix[c].sum() + matrix[:, c].sum()
        scores.append(2 * tp / counted if counted else 0.0)
    return float(np.mean(scores))


def test_bootstrap_macro_f1_averages_the_point_estimates_classes_in_every_resample() -> None:
    # no DRUSEN images, one CNV scan called DRUSEN: the macro F1 covers 4 classes (DRUSEN's
    # F1 is 0). The resamples that missed that scan averaged 3 classes and scored 1.0, so the
    # interval reached 1.000 above a point estimate of 0.744
    targets = np.repeat([0, 1, 3], 20)
    probabilities = np.full((60, 4), 0.05)
    probabilities[np.arange(60), targets] = 0.85
    probabilities[0] = [0.1, 0.05, 0.8, 0.05]
    report = classification_report(targets, probabilities, bootstrap=200, seed=0)
    assert report.macro["f1"] == pytest.approx((2 * 19 / 39 + 1 + 0 + 1) / 4)

    rng = np.random.default_rng(0)  # the documented resampling, scored by hand
    members = [np.flatnonzero(targets == c) for c in (0, 1, 3)]
    sampled = []
    for _ in range(200):
        pick = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in members])
        matrix = confusion_matrix(targets[pick], probabilities[pick].argmax(axis=1), 4)
        sampled.append(_macro_f1_over(matrix, [0, 1, 2, 3]))
    expected = tuple(np.percentile(sampled, [2.5, 97.5]))
    assert report.intervals["macro_f1"] == pytest.approx(expected, abs=1e-12)
    assert report.intervals["macro_f1"][1] < 0.76  # was 1.0


# -- scores in [0, 1] are ranked as given (audit J-stats 2) --------------------------------


def _pairwise_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The AUC by its definition: the share of (positive, negative) pairs ranked right, a tie
    counting one half."""
    pos, neg = scores[positive][:, None], scores[~positive][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def _one_vs_rest(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid (one-vs-rest) scores of four classes: rows sum to about 1 to 3."""
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, n)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), targets] += 1.5
    return targets, 1 / (1 + np.exp(-logits))


def test_one_vs_rest_scores_get_each_columns_auc_no_referral_auc_and_a_note() -> None:
    targets, scores = _one_vs_rest()
    report = classification_report(targets, scores, bootstrap=40, seed=0)
    # was: the AUCs of each row divided by its sum (CNV 0.885 where the column's is 0.845)
    for c, metrics in enumerate(report.per_class):
        assert metrics.auc == pytest.approx(_pairwise_auc(scores[:, c], targets == c), abs=1e-12)
    assert report.referral is not None
    assert math.isnan(report.referral.auc)  # a sum of one-vs-rest scores is no probability
    assert "referral_auc" not in report.intervals
    assert "referral_auc" not in report.no_interval
    assert math.isnan(report.ece)
    sums = scores.sum(axis=1)
    note = (
        f"the scores are not distributions (rows sum to {sums.min():.2f} to {sums.max():.2f}, "
        "e.g. one-vs-rest scores): each class's AUC ranks its own score as given; no "
        "referral AUC and no ECE, which need probabilities that sum to 1 in each row "
        "(a softmax's)"
    )
    assert report.notes == [note]
    assert report.to_dict()["notes"] == [note]
    assert f"({note})" in report.to_text()
    assert "AUC -" in report.to_text().splitlines()[-1]


def test_rounded_probabilities_are_ranked_as_given_not_rescaled() -> None:
    # two-decimal probabilities (a CSV): rows sum to 0.99 to 1.01. Rescaling each row moved
    # the AUCs by about 1e-3 from roc_auc of the column (and from scikit-learn's)
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) * 1.5
    logits[np.arange(200), targets] += 1.0
    exact = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    rounded = np.round(exact, 2)
    assert np.abs(rounded.sum(axis=1) - 1).max() > 1e-6  # some rows miss 1
    report = classification_report(targets, rounded)
    for c, metrics in enumerate(report.per_class):
        assert metrics.auc == pytest.approx(_pairwise_auc(rounded[:, c], targets == c), abs=1e-12)
    assert report.referral is not None
    urgent = rounded[:, :2].sum(axis=1)
    assert report.referral.auc == pytest.approx(_pairwise_auc(urgent, targets < 2), abs=1e-12)
    assert report.notes == []  # probabilities: no note, and an ECE
    assert not math.isnan(report.ece)


def test_patient_level_averages_one_vs_rest_scores_as_given() -> None:
    targets, scores = _one_vs_rest(60)
    patients = [str(i // 2) for i in range(60)]  # two scans each; mixed labels split
    report = patient_level(scores, targets, patients)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, (patient, target) in enumerate(zip(patients, targets.tolist(), strict=True)):
        groups.setdefault((patient, target), []).append(i)
    means = np.array([scores[rows].mean(axis=0) for rows in groups.values()])
    labels = np.array([target for _, target in groups])
    assert report.num_samples == len(groups)
    # was: the means of each row divided by its sum
    for c, metrics in enumerate(report.per_class):
        assert metrics.auc == pytest.approx(_pairwise_auc(means[:, c], labels == c), abs=1e-12)
    assert report.referral is not None
    assert math.isnan(report.referral.auc)
    assert report.notes[-1].startswith("the scores are not distributions")


def test_logits_in_the_report_still_go_through_a_softmax() -> None:
    targets, scores = _one_vs_rest()
    logits = np.log(scores) * 3  # values below 0: logits, not probabilities
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    report = classification_report(targets, logits)
    for c, metrics in enumerate(report.per_class):
        assert metrics.auc == pytest.approx(_pairwise_auc(softmax[:, c], targets == c), abs=1e-12)
    assert report.referral is not None
    urgent = softmax[:, :2].sum(axis=1)
    assert report.referral.auc == pytest.approx(_pairwise_auc(urgent, targets < 2), abs=1e-12)
    assert report.notes == []


# -- the bootstrap seed is recorded (audit J-stats 6), an empty report's text (7) ----------


def test_the_bootstrap_seed_is_recorded_with_the_intervals() -> None:
    report = classification_report(TARGETS, PROBABILITIES, bootstrap=40, seed=3)
    assert report.seed == 3
    assert report.to_dict()["seed"] == 3
    assert json.loads(report.to_json())["seed"] == 3
    assert report.interval_note.endswith("for F1 and AUC; bootstrap seed 3")
    assert "; bootstrap seed 3; each class's in the table of intervals)" in report.to_text()
    patients = patient_level(PROBABILITIES, TARGETS, list("aabbccddee"), bootstrap=40, seed=5)
    assert patients.to_dict()["seed"] == 5
    assert patients.interval_note.endswith("bootstrap seed 5")


def test_a_report_of_no_images_shows_its_accuracy_as_a_dash() -> None:
    text = classification_report(np.array([], dtype=np.int64), np.empty((0, 4))).to_text()
    # was: "accuracy nan%", where every other cell shows "-"
    assert text.splitlines()[0] == "images 0  accuracy -  ECE -"


# ---------------------------------------------------------------------------------------------
# The default urgent-referral view only where it means something: Kermany classes, one not
# urgent (was: AMD counted as not urgent; CNV and DME alone got 100% sensitivity)
# ---------------------------------------------------------------------------------------------


def _confident_of(targets: list[int], predicted: list[int], classes: int) -> np.ndarray:
    scores = np.full((len(targets), classes), 0.1 / (classes - 1))
    scores[np.arange(len(targets)), predicted] = 0.9
    return scores


_WITH_AMD = ("AMD", "CNV", "DME", "DRUSEN", "NORMAL")
_AMD_NOTE = (
    "no urgent-referral view: AMD is not a Kermany class, so which classes need an urgent "
    "referral is not known; pass urgent=[...] naming them (urgent=['CNV', 'DME'] counts AMD "
    "as not urgent)"
)
_ALL_URGENT_NOTE = (
    "no urgent-referral view: every class is urgent (CNV, DME), so there is no other class "
    "to tell them from (its sensitivity would be 100% by construction)"
)


def _by_scan(
    targets: list[int], scores: np.ndarray, classes: tuple[str, ...], **kwargs: Any
) -> Any:
    return classification_report(targets, scores, classes=classes, **kwargs)


def _by_patient(
    targets: list[int], scores: np.ndarray, classes: tuple[str, ...], **kwargs: Any
) -> Any:
    ids = [str(i) for i in range(len(targets))]
    return patient_level(scores, targets, ids, classes=classes, **kwargs)


def _by_result(
    targets: list[int], scores: np.ndarray, classes: tuple[str, ...], **kwargs: Any
) -> Any:
    from retinalnet.training import EvaluationResult

    true = np.asarray(targets, dtype=np.int64)
    matrix = confusion_matrix(true, scores.argmax(axis=1), len(classes))
    result = EvaluationResult(
        classes=classes, loss=1.0, accuracy=float(np.trace(matrix) / len(true)),
        confusion_matrix=matrix, probabilities=scores, targets=true,
        patient_ids=[str(i) for i in range(len(targets))],
    )  # fmt: skip
    return result.report(**kwargs), result.patient_report(**kwargs)


_DOORS = [_by_scan, _by_patient, _by_result]


@pytest.mark.parametrize("door", _DOORS)
@pytest.mark.parametrize(
    ("classes", "targets", "predicted", "note"),
    [
        (_WITH_AMD, [0, 0, 1, 2, 3, 4], [1, 0, 1, 3, 3, 4], _AMD_NOTE),
        (("CNV", "DME"), [0, 0, 1, 1], [1, 1, 0, 0], _ALL_URGENT_NOTE),  # all wrong: "100%"
    ],
    ids=["with AMD", "CNV and DME only"],
)
def test_the_default_referral_view_is_left_out_with_a_note_where_it_means_nothing(
    door: Callable[..., Any],
    classes: tuple[str, ...],
    targets: list[int],
    predicted: list[int],
    note: str,
) -> None:
    scores = _confident_of(targets, predicted, len(classes))
    made = door(targets, scores, classes, bootstrap=40)
    for report in made if isinstance(made, tuple) else (made,):
        assert report.referral is None
        assert report.referral_note == note
        assert report.notes[-1] == note
        data = report.to_dict()
        assert data["referral"] is None
        assert data["notes"][-1] == note
        assert not [key for key in report.intervals if key.startswith("referral")]
        text = report.to_text()
        assert "urgent referral (" not in text
        assert f"({note})" in text.splitlines()


def test_an_urgent_list_given_for_other_classes_is_the_referral_view_asked_for() -> None:
    targets, predicted = [0, 0, 1, 2, 3, 4], [1, 0, 1, 3, 3, 4]
    scores = _confident_of(targets, predicted, 5)
    report = classification_report(targets, scores, classes=_WITH_AMD, urgent=["CNV", "DME"])
    assert report.referral is not None
    assert report.referral_note == ""
    # AMD counted as not urgent, as asked: one AMD scan referred (called CNV), one not;
    # the DME scan called DRUSEN is missed
    assert report.referral.confusion_matrix.tolist() == [[3, 1], [1, 1]]
    with_amd = classification_report(
        targets, scores, classes=_WITH_AMD, urgent=["AMD", "CNV", "DME"]
    )
    assert with_amd.referral is not None
    assert with_amd.referral.confusion_matrix.tolist() == [[2, 0], [1, 3]]


@pytest.mark.parametrize("classes", [("CNV", "DME", "DRUSEN", "NORMAL"), ("CNV", "DME", "NORMAL")])
def test_kermany_classes_with_one_not_urgent_keep_the_default_referral_view(
    classes: tuple[str, ...],
) -> None:
    targets = list(range(len(classes)))
    report = classification_report(targets, _confident_of(targets, targets, len(classes)),
                                   classes=classes)  # fmt: skip
    assert report.referral is not None
    assert report.referral.urgent == ("CNV", "DME")
    assert report.referral_note == ""
    assert report.notes == []


@pytest.mark.parametrize("door", [_by_scan, _by_patient, _by_result])
@pytest.mark.parametrize(
    ("classes", "urgent"),
    [(("CNV", "DME"), ["CNV", "DME"]), (("CNV", "DME"), ("DME", "CNV")), (("a", "b"), ["b", "a"])],
)
def test_an_urgent_list_naming_every_class_is_refused(
    door: Callable[..., Any], classes: tuple[str, ...], urgent: list[str]
) -> None:
    scores = _confident_of([0, 1], [0, 1], 2)
    with pytest.raises(ValueError, match=r"^urgent=\[.*\] names every class, so no image is of "
                       r"the rest .*; leave the classes that are not urgent out of urgent, or "
                       r"pass urgent=None to leave out the view$"):  # fmt: skip
        door([0, 1], scores, classes, urgent=urgent)


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (lambda p: fit_temperature(p, [0, 1, 0], bounds=(True, 10)), "bounds must be"),
        (lambda p: fit_temperature(p, [0, 1, 0], bounds=("0.05", "10")), "bounds must be"),
        (
            lambda p: classification_report([0, 1, 0], p, classes=["a", "b"], confidence="0.9"),
            "confidence must be in",
        ),
        (
            lambda p: classification_report([0, 1, 0], p, classes=["a", "b"], confidence=True),
            "confidence must be in",
        ),
    ],
)
def test_number_options_of_the_metrics_take_numbers_only(call: Any, said: str) -> None:
    """A bool bound was taken as 1, a string bound as its number, a string confidence gave a
    raw TypeError: the project's number rule, as for every other option."""
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    with pytest.raises(ValueError, match=said):
        call(probabilities)


def _one_of_2000_missed() -> tuple[np.ndarray, np.ndarray]:
    """2,000 CNV and 2,000 NORMAL scans, all right but one CNV scan called NORMAL (0.95)."""
    targets = np.array([0] * 2000 + [3] * 2000)
    probabilities = np.zeros((4000, 4))
    probabilities[np.arange(4000), targets] = 0.9
    probabilities[targets == 0, 3] = 0.1
    probabilities[targets == 3, 0] = 0.1
    probabilities[0] = [0.05, 0.0, 0.0, 0.95]
    return targets, probabilities


def test_one_missed_scan_of_2000_never_reads_as_100_percent_or_an_auc_of_1() -> None:
    # was: CNV's recall, the referral sensitivity (0.9995) "100.0%", the AUCs "1.000" and
    # Wilson upper ends of 0.9999 "100.0%": the text of a model that missed no one
    targets, probabilities = _one_of_2000_missed()
    report = classification_report(targets, probabilities, bootstrap=40, seed=0)
    assert report["CNV"].recall == 0.9995  # the JSON keeps the exact number
    assert report.to_dict()["per_class"]["CNV"]["recall"] == 0.9995

    lines = report.to_text().splitlines()

    assert lines[0].startswith("images 4000  accuracy 99.98% (99.86% to >99.99%)")
    rows = [line for line in lines if line.startswith("CNV ")]
    assert rows[0].split() == ["CNV", "100.0%", ">99.9%", "100.0%", ">99.9%", ">0.999", "2000"]
    assert rows[1].split()[3:6] == ["to", ">99.9%", "99.8%-100.0%"]  # the intervals' recall
    table = lines[lines.index(next(x for x in lines if x.startswith("95% intervals"))) :]
    assert len({len(line) for line in table[:6]}) == 1  # columns widened, still aligned
    assert lines[-1].startswith(
        "urgent referral (CNV + DME vs the rest): sensitivity >99.9% (99.7% to >99.9%)  "
        "specificity 100.0% (99.8%-100.0%)  AUC >0.999 ("
    )
