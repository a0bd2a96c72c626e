"""Calibration: the ECE and reliability curve against hand computations, temperature scaling
(fitting, the Classifier's temperature, checkpoints, the engine, the Predictor, evaluate,
the TemperatureScaling callback, calibrate) and the command line."""

from __future__ import annotations

import errno
import json
import logging
import math
import shutil
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from retinalnet import Predictor
from retinalnet._core.files import file_digest
from retinalnet._core.model_use import exclusive_use
from retinalnet.checkpoint import (
    load_checkpoint,
    save_checkpoint,
    set_checkpoint_temperature,
)
from retinalnet.cli import main
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.engine import InferenceEngine
from retinalnet.metrics import (
    classification_report,
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
)
from retinalnet.metrics._calibration import temperature_nll
from retinalnet.models import Classifier, create_model, small_cnn
from retinalnet.training import (
    CalibrationResult,
    Callback,
    EarlyStopping,
    TemperatureScaling,
    Trainer,
    _calibration,
    calibrate,
    evaluate,
)
from retinalnet.transforms import Preprocessing

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")

# --- expected calibration error and the reliability curve, by hand ----------------------------

# confidence 0.9 0.8 0.6 0.7 0.55; predicted 0 0 0 1 1; right: yes no yes yes no
PROBABILITIES = [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]]
TARGETS = [0, 1, 0, 1, 0]


def test_reliability_curve_by_hand() -> None:
    # 5 bins: (0, .2] (.2, .4] (.4, .6] (.6, .8] (.8, 1]; 0.6 and 0.8 fall in the bin they close
    confidence, accuracy, count = reliability_curve(PROBABILITIES, TARGETS, bins=5)

    assert count.tolist() == [0, 0, 2, 2, 1]
    assert np.isnan(confidence[:2]).all()
    assert np.isnan(accuracy[:2]).all()
    assert confidence[2:].tolist() == pytest.approx([0.575, 0.75, 0.9])
    assert accuracy[2:].tolist() == pytest.approx([0.5, 0.5, 1.0])


def test_ece_by_hand() -> None:
    # (2 * |0.5 - 0.575| + 2 * |0.5 - 0.75| + 1 * |1 - 0.9|) / 5 = 0.75 / 5
    assert expected_calibration_error(PROBABILITIES, TARGETS, bins=5) == pytest.approx(0.15)


def test_ece_with_one_bin_is_the_gap_between_mean_confidence_and_accuracy() -> None:
    # accuracy 3/5, mean confidence (0.9 + 0.8 + 0.6 + 0.7 + 0.55) / 5 = 0.71
    assert expected_calibration_error(PROBABILITIES, TARGETS, bins=1) == pytest.approx(0.11)


@pytest.mark.parametrize(
    ("probabilities", "expected"),
    [
        ([[1.0, 0.0], [0.0, 1.0]], 0.0),  # all right and sure: calibrated
        ([[0.75, 0.25], [0.25, 0.75]], 0.25),  # all right, 75 % sure: underconfident
    ],
)
def test_ece_when_every_image_is_right(probabilities: list[list[float]], expected: float) -> None:
    assert expected_calibration_error(probabilities, [0, 1]) == pytest.approx(expected)


def test_ece_of_no_images_is_nan_and_bad_input_is_refused() -> None:
    assert math.isnan(expected_calibration_error(np.empty((0, 4)), []))
    with pytest.raises(ValueError, match="bins must be an int from 1 to 1,000"):
        expected_calibration_error(PROBABILITIES, TARGETS, bins=0)
    with pytest.raises(ValueError, match=r"probabilities must be in \[0, 1\]"):
        expected_calibration_error([[-0.1, 1.1]], [0])
    with pytest.raises(ValueError, match="targets must be class indices from 0 to 1"):
        expected_calibration_error(PROBABILITIES, [0, 1, 0, 1, 2])


@pytest.mark.parametrize("door", [expected_calibration_error, reliability_curve])
@pytest.mark.parametrize(
    ("scale", "shown"), [(4.0, r"from 0.4 to 3.6"), (-1.0, r"from -0.9 to -0.1")]
)
def test_values_outside_0_1_are_refused_not_binned(
    door: Callable[..., object], scale: float, shown: str
) -> None:
    # 4 * p once gave an ECE of 0.75: every confidence fell in the last bin
    message = (
        rf"^probabilities must be in \[0, 1\] \(the model's softmax outputs\) or be "
        rf"log-probabilities, got values {shown}; pass softmax\(logits\)$"
    )
    with pytest.raises(ValueError, match=message):
        door(scale * np.array(PROBABILITIES), TARGETS)


@pytest.mark.parametrize("door", [expected_calibration_error, reliability_curve])
@pytest.mark.parametrize("bins", [1001, 10**9, True, 2.0])
def test_bins_must_be_an_int_from_1_to_1000(door: Callable[..., object], bins: object) -> None:
    with pytest.raises(ValueError, match=rf"^bins must be an int from 1 to 1,000 .*, got {bins}"):
        door(PROBABILITIES, TARGETS, bins=bins)
    assert len(reliability_curve(PROBABILITIES, TARGETS, bins=1000)[2]) == 1000


def test_the_report_carries_the_ece_and_nan_for_scores_that_are_not_probabilities() -> None:
    report = classification_report(TARGETS, PROBABILITIES, classes=["a", "b"], urgent=None)
    assert report.ece == pytest.approx(expected_calibration_error(PROBABILITIES, TARGETS))
    assert report.to_dict()["ece"] == pytest.approx(report.ece)
    # log-probabilities (the models' outputs) are the same distributions
    logs = classification_report(TARGETS, np.log(PROBABILITIES), classes=["a", "b"])
    assert logs.ece == pytest.approx(report.ece)
    # logits are none: their softmax is one temperature among many
    scores = classification_report(TARGETS, np.log(PROBABILITIES) + 1.0, classes=["a", "b"])
    assert math.isnan(scores.ece)
    assert scores.to_dict()["ece"] is None


# a probability written as a bin edge k / bins: bin k - 1, as (m / bins, (m + 1) / bins] says,
# whether NumPy or torch stores it in float16, float32 (0.8 is 0.800000012) or float64 (5/6)
EDGE_DTYPES = [np.float16, np.float32, np.float64]


@pytest.mark.parametrize("dtype", EDGE_DTYPES)
@pytest.mark.parametrize("container", ["numpy", "torch"])
@pytest.mark.parametrize("bins", [*range(1, 31), 100, 301, 1000])
def test_a_probability_written_as_an_edge_lies_in_the_bin_below_it(
    dtype: type[np.floating], container: str, bins: int
) -> None:
    edges = [k for k in range(bins + 1) if 2 * k >= bins]  # k / bins, the top of [p, 1 - p]
    rows = np.array([[k / bins, 1 - k / bins] for k in edges], dtype=dtype)
    given = torch.from_numpy(rows) if container == "torch" else rows
    count = reliability_curve(given, [0] * len(edges), bins=bins)[2]
    assert count.tolist() == np.bincount([max(k - 1, 0) for k in edges], minlength=bins).tolist()


@pytest.mark.parametrize("dtype", EDGE_DTYPES)
@pytest.mark.parametrize("bins", [6, 7, 15, 100])
def test_a_probability_one_step_past_an_edge_lies_in_the_next_bin(
    dtype: type[np.floating], bins: int
) -> None:
    for k in range(bins // 2 + 1, bins):
        edge = dtype(k / bins)
        above, below = np.nextafter(edge, dtype(1)), np.nextafter(edge, dtype(0))
        rows = np.array([[above, 1 - above], [below, 1 - below]], dtype=dtype)
        count = reliability_curve(rows, [0, 0], bins=bins)[2]
        assert count[k] == 1, (dtype, bins, k)
        assert count[k - 1] == 1, (dtype, bins, k)


def test_every_door_bins_float32_probabilities_on_an_edge_alike() -> None:
    from retinalnet.metrics import patient_level
    from retinalnet.plots import plot_reliability_diagram
    from retinalnet.report._calibration import _curve_table
    from retinalnet.training import EvaluationResult

    # 0.8 is in (0.733, 0.8] (bin 11 of 15), right; 0.85 in bin 12, wrong:
    # ECE = (|1 - 0.8| + |0 - 0.85|) / 2 = 0.525, not 0.325 (both in bin 12)
    rows = np.array([[0.8, 0.2], [0.85, 0.15]], dtype=np.float32)
    targets = [0, 1]
    expected = pytest.approx(0.525, abs=1e-6)
    assert expected_calibration_error(rows, targets) == expected
    assert expected_calibration_error(torch.from_numpy(rows), targets) == expected
    assert np.flatnonzero(reliability_curve(rows, targets)[2]).tolist() == [11, 12]
    assert classification_report(targets, rows, classes=["a", "b"]).ece == expected
    assert patient_level(rows, targets, ["p", "q"], classes=["a", "b"]).ece == expected
    twice = patient_level(
        np.repeat(rows, 2, axis=0), [0, 0, 1, 1], list("ppqq"), classes=["a", "b"]
    )
    assert twice.ece == expected
    result = EvaluationResult(
        ("a", "b"), 0.1, 0.5, np.eye(2, dtype=np.int64), rows, np.array(targets)
    )
    assert result.ece == expected
    table = _curve_table(result)
    assert "73% to 80%" in table
    assert "80% to 87%" in table
    figure = plot_reliability_diagram(result)
    assert "ECE 52.5%" in figure.axes[0].get_title()


# --- fitting the temperature ------------------------------------------------------------------


def _sampled(temperature: float, n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits / temperature): that T is the true one."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, 4))
    scaled = np.exp(logits / temperature)
    scaled /= scaled.sum(axis=1, keepdims=True)
    labels = (rng.random(n)[:, None] > np.cumsum(scaled, axis=1)).sum(axis=1)
    return logits, labels


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_that_made_the_labels(
    temperature: float,
) -> None:
    logits, labels = _sampled(temperature)
    assert fit_temperature(logits, labels) == pytest.approx(temperature, rel=0.05)


def test_fit_temperature_minimises_the_nll_and_is_deterministic() -> None:
    logits, labels = _sampled(1.7, n=500, seed=1)
    fitted = fit_temperature(logits, labels)
    best = temperature_nll(logits, labels, fitted)
    assert best < temperature_nll(logits, labels, fitted * 1.01)
    assert best < temperature_nll(logits, labels, fitted / 1.01)
    assert fit_temperature(logits, labels) == fitted


def test_log_probabilities_and_logits_give_the_same_temperature() -> None:
    # softmax(log_softmax(z) / T) == softmax(z / T): log_softmax shifts each row by a constant
    logits, labels = _sampled(2.0, n=800, seed=2)
    log_probabilities = torch.log_softmax(torch.from_numpy(logits), dim=1)
    assert torch.allclose(
        torch.softmax(log_probabilities / 2.0, dim=1),
        torch.softmax(torch.from_numpy(logits) / 2.0, dim=1),
    )
    assert fit_temperature(log_probabilities.numpy(), labels) == pytest.approx(
        fit_temperature(logits, labels), rel=1e-6
    )


def test_fit_temperature_returns_the_bound_when_every_image_is_right() -> None:
    logits = np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 0.5]])
    assert fit_temperature(logits, [0, 1, 0]) == 1e-3
    assert fit_temperature(logits, [0, 1, 0], bounds=(0.2, 5.0)) == 0.2
    assert fit_temperature(logits, [1, 0, 1]) == 1e3  # all wrong: as soft as allowed
    # all scores equal: no temperature changes anything
    assert fit_temperature(np.zeros((3, 2)), [0, 1, 0]) == 1.0


@pytest.mark.parametrize(
    ("scores", "targets", "bounds", "message"),
    [
        (np.empty((0, 4)), [], (0.05, 20.0), "at least one image"),
        ([[np.nan, 0.0]], [0], (0.05, 20.0), "finite"),
        ([[1.0, 0.0]], [0], (2.0, 1.0), "0 < low < high"),
        ([[1.0, 0.0]], [0], (0.0, 1.0), "0 < low < high"),
        ([[1.0, 0.0]], [2], (0.05, 20.0), "from 0 to 1"),
    ],
)
def test_fit_temperature_refuses_bad_input(
    scores: object, targets: list[int], bounds: tuple[float, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_temperature(scores, targets, bounds=bounds)  # type: ignore[arg-type]


# --- the temperature on the model, in checkpoints, in the engine -------------------------------


def test_classifier_temperature_defaults_to_1_and_is_checked() -> None:
    model = small_cnn()
    assert model.temperature == 1.0
    model.temperature = 2
    assert model.temperature == 2.0
    assert isinstance(model.temperature, float)
    for bad in (0, -1.0, math.nan, math.inf, True, "2"):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            model.temperature = bad  # type: ignore[assignment]
    with pytest.raises(ValueError, match="temperature"):
        Classifier(nn.Linear(2, 2), classes=["a", "b"], temperature=-2.0)
    assert "temperature=2" in repr(model)


def test_checkpoint_round_trip_keeps_the_temperature(tmp_path: Path) -> None:
    model = small_cnn()
    model.temperature = 1.7
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=3, history=[{"epoch": 1}])

    checkpoint = load_checkpoint(path)
    assert checkpoint.temperature == 1.7
    assert checkpoint.build_model().temperature == 1.7
    assert checkpoint.build_model(small_cnn()).temperature == 1.7  # into a given Classifier

    set_checkpoint_temperature(path, 0.8)
    rewritten = load_checkpoint(path)
    assert rewritten.temperature == 0.8
    assert (rewritten.epoch, rewritten.history) == (3, [{"epoch": 1}])  # the rest is kept
    for name, tensor in checkpoint.state_dict.items():
        assert torch.equal(rewritten.state_dict[name], tensor)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        set_checkpoint_temperature(path, 0.0)
    assert load_checkpoint(path).temperature == 0.8


def _rewrite(path: Path, change: object) -> None:
    data = torch.load(path, weights_only=True)
    if change is None:
        del data["model"]["temperature"]
    else:
        data["model"]["temperature"] = change
    torch.save(data, path)


def test_a_checkpoint_without_a_temperature_loads_uncalibrated(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "old.pt", small_cnn())
    _rewrite(path, None)  # as written before 0.2
    assert load_checkpoint(path).temperature == 1.0
    assert load_checkpoint(path).build_model().temperature == 1.0


@pytest.mark.parametrize("bad", [-1.0, 0.0, math.nan, math.inf, "1.5", True])
def test_a_bad_temperature_in_a_checkpoint_is_a_clear_error(tmp_path: Path, bad: object) -> None:
    path = save_checkpoint(tmp_path / "bad.pt", small_cnn())
    _rewrite(path, bad)
    with pytest.raises(ValueError, match=r"field 'model.temperature' must be a finite number > 0"):
        load_checkpoint(path)


def test_the_engine_divides_the_outputs_by_the_temperature_before_the_softmax() -> None:
    torch.manual_seed(0)
    model = small_cnn(preprocessing=Preprocessing(size=32))
    inputs = torch.randn(6, 3, 32, 32)
    engine = InferenceEngine(model, device="cpu", precision="fp32")
    raw = engine.outputs(inputs).double()  # log-probabilities: small_cnn ends in LogSoftmax

    plain = engine.probabilities(inputs)
    model.temperature = 2.0  # the engine follows the model's temperature
    assert engine.temperature == 2.0
    softened = engine.probabilities(inputs)

    assert torch.allclose(softened, torch.softmax(raw / 2.0, dim=1).float(), atol=1e-6)
    assert torch.allclose(plain, torch.softmax(raw, dim=1).float(), atol=1e-6)
    assert torch.equal(softened.argmax(dim=1), plain.argmax(dim=1))  # same classes
    assert (softened.max(dim=1).values <= plain.max(dim=1).values + 1e-7).all()  # less sure

    fixed = InferenceEngine(model, device="cpu", precision="fp32", temperature=1.0)
    assert torch.allclose(fixed.probabilities(inputs), plain)  # an explicit one wins
    head_only = InferenceEngine(nn.Identity(), device="cpu", precision="fp32")
    assert head_only.temperature == 1.0  # not a Classifier: uncalibrated
    with pytest.raises(ValueError, match="finite number > 0"):
        InferenceEngine(model, device="cpu", temperature=0.0)


def test_the_engine_scales_each_view_before_averaging_with_tta() -> None:
    torch.manual_seed(1)
    model = small_cnn(preprocessing=Preprocessing(size=32))
    model.temperature = 3.0
    inputs = torch.randn(4, 3, 32, 32)
    engine = InferenceEngine(model, device="cpu", precision="fp32", tta=True)
    plain = InferenceEngine(model, device="cpu", precision="fp32", temperature=1.0)
    mirrored = torch.softmax(plain.outputs(inputs.flip(-1)).double() / 3.0, dim=1)
    direct = torch.softmax(plain.outputs(inputs).double() / 3.0, dim=1)
    expected = ((direct + mirrored) / 2).float()
    assert torch.allclose(engine.probabilities(inputs), expected, atol=1e-6)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("calibration") / "data"
    return make_synthetic_kermany(root, train=4, val=3, test=2, shape=(64, 64), seed=3)


def test_predictor_probabilities_change_with_the_temperature_but_not_the_class(
    data: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = small_cnn(preprocessing=Preprocessing(size=32))
    images = [path for path, _ in KermanyOCT(data, "test").samples]
    path = save_checkpoint(tmp_path / "m.pt", model)
    before = Predictor.from_checkpoint(path, device="cpu", precision="fp32")
    assert before.temperature == 1.0
    set_checkpoint_temperature(path, 0.25)
    after = Predictor.from_checkpoint(path, device="cpu", precision="fp32")
    assert after.temperature == 0.25

    p_before, p_after = before.predict_proba(images), after.predict_proba(images)
    assert not torch.allclose(p_before, p_after)
    assert torch.equal(p_before.argmax(dim=1), p_after.argmax(dim=1))
    expected = torch.softmax(torch.log(p_before.double()) / 0.25, dim=1).float()
    assert torch.allclose(p_after, expected, atol=1e-5)


def test_evaluate_uses_the_temperature_with_and_without_the_feature_cache(data: Path) -> None:
    torch.manual_seed(0)
    model = create_model(
        "small_cnn", weights=None, freeze=True, preprocessing=Preprocessing(size=32)
    )
    test = KermanyOCT(data, "test")
    plain = evaluate(model, test, device="cpu", precision="fp32")
    model.temperature = 2.0
    scaled = evaluate(model, test, device="cpu", precision="fp32")
    cached = evaluate(model, test, device="cpu", precision="fp32", feature_cache=True)

    assert (plain.temperature, scaled.temperature, cached.temperature) == (1.0, 2.0, 2.0)
    assert plain.probabilities is not None
    assert scaled.probabilities is not None
    assert cached.probabilities is not None
    expected = np.exp(np.log(plain.probabilities) / 2.0)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scaled.probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(cached.probabilities, expected, atol=1e-5)
    assert np.array_equal(plain.confusion_matrix, scaled.confusion_matrix)
    assert scaled.ece == pytest.approx(
        expected_calibration_error(scaled.probabilities, scaled.targets)  # type: ignore[arg-type]
    )
    assert scaled.to_dict()["temperature"] == 2.0
    assert "temperature 2.00" in str(scaled).splitlines()[0]


# --- calibrate() and the TemperatureScaling callback ---------------------------------------


class _Logits(nn.Module):
    """A 'network' whose outputs are its inputs' first four numbers: logits chosen by hand."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :4]


def _logit_data(logits: np.ndarray, labels: np.ndarray) -> TensorDataset:
    inputs = torch.zeros(len(labels), 1, 2, 2)
    inputs.view(len(labels), -1)[:, :4] = torch.from_numpy(logits).float()
    return TensorDataset(inputs, torch.from_numpy(labels))


def test_calibrate_sets_the_temperature_that_made_the_data() -> None:
    logits, labels = _sampled(2.0, n=4000, seed=4)
    model = Classifier(_Logits(), classes=CLASSES)
    model.temperature = 5.0  # whatever it carried before: the fit starts from the raw outputs

    result = calibrate(model, _logit_data(logits, labels), device="cpu", precision="fp32")

    assert result.applied
    assert result.temperature == pytest.approx(2.0, rel=0.05)
    assert model.temperature == result.temperature
    assert result.num_samples == 4000
    assert result.nll_after < result.nll_before
    assert result.ece_after < result.ece_before
    assert "fitted on 4000 images:" in str(result)  # calibrate() knows no split
    assert json.loads(json.dumps(result.to_dict()))["applied"] is True


def _held_by_another_thread(model: nn.Module, seen: list[float]) -> threading.Thread:
    """Another thread's pass on ``model`` (as a Predictor's call holds it), started now: it
    records the temperature it began and ended at in ``seen``."""
    started = threading.Event()

    def predict() -> None:
        with exclusive_use(model):
            started.set()
            began = getattr(model, "temperature", None)
            time.sleep(0.3)  # a pass: the temperature must not change under it
            seen.extend([began, getattr(model, "temperature", None)])

    thread = threading.Thread(target=predict)
    thread.start()
    assert started.wait(timeout=30)
    return thread


def test_calibrate_sets_the_temperature_between_another_threads_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logits, labels = _sampled(2.0, n=400, seed=4)
    model = Classifier(_Logits(), classes=CLASSES)
    seen: list[float] = []
    threads: list[threading.Thread] = []
    fit = _calibration._fit

    def fit_then_a_prediction_begins(*args: Any) -> CalibrationResult:
        result = fit(*args)
        threads.append(_held_by_another_thread(model, seen))
        return result

    monkeypatch.setattr(_calibration, "_fit", fit_then_a_prediction_begins)
    result = calibrate(model, _logit_data(logits, labels), device="cpu", precision="fp32")
    threads[0].join()

    assert seen == [1.0, 1.0]  # the pass under way ended at the temperature it began with
    assert model.temperature == result.temperature != 1.0  # set once it had ended


def test_temperature_scaling_sets_the_temperature_between_another_threads_passes(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model()
    seen: list[float] = []
    threads: list[threading.Thread] = []
    fit = TemperatureScaling._fit

    def fit_then_a_prediction_begins(*args: Any) -> CalibrationResult:
        result = fit(*args)
        threads.append(_held_by_another_thread(model, seen))
        return result

    monkeypatch.setattr(TemperatureScaling, "_fit", fit_then_a_prediction_begins)
    calibration = TemperatureScaling()
    _trainer(model, [calibration], max_epochs=1).fit(
        KermanyOCT(data, "train"), KermanyOCT(data, "val")
    )
    threads[0].join()

    assert calibration.result is not None
    assert calibration.result.applied
    assert seen == [1.0, 1.0]
    assert model.temperature == calibration.result.temperature != 1.0


def test_one_predict_proba_call_is_at_one_temperature(data: Path) -> None:
    """A temperature set while a call runs (by calibrate() in another thread, between two of
    its batches) applies from the next call: no call mixes two temperatures."""
    model = _model()
    images = [path for path, _ in KermanyOCT(data, "test").samples]
    predictor = Predictor(model, device="cpu", precision="fp32", batch_size=1)
    plain = predictor.predict_proba(images)

    def recalibrated(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        model.temperature = 0.25  # inside the call's first batch

    handle = model.register_forward_pre_hook(recalibrated)
    try:
        during = predictor.predict_proba(images)
    finally:
        handle.remove()
    after = predictor.predict_proba(images)

    assert len(images) > 1
    assert torch.allclose(during, plain, atol=1e-6)  # every row at temperature 1
    expected = torch.softmax(torch.log(plain.double()) / 0.25, dim=1).float()
    assert torch.allclose(after, expected, atol=1e-5)  # the next call at 0.25


def test_calibrate_leaves_the_model_as_it_was_when_every_image_is_right() -> None:
    logits = np.array([[4.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 5.0, 0]])
    model = Classifier(_Logits(), classes=CLASSES)
    with pytest.warns(UserWarning, match="ranks the true class first"):
        result = calibrate(model, _logit_data(logits, np.array([0, 1, 2])), device="cpu")
    assert not result.applied
    assert model.temperature == 1.0


def test_calibrate_needs_a_classifier() -> None:
    with pytest.raises(TypeError, match="calibrate needs a retinalnet Classifier"):
        calibrate(_Logits(), _logit_data(np.zeros((2, 4)), np.array([0, 1])))  # type: ignore[arg-type]


def _trainer(model: Classifier, callbacks: list[Callback], **kwargs: object) -> Trainer:
    return Trainer(
        model,
        callbacks=callbacks,
        batch_size=8,
        device="cpu",
        precision="fp32",
        seed=0,
        progress=False,
        **kwargs,  # type: ignore[arg-type]
    )


def _model() -> Classifier:
    torch.manual_seed(0)
    return small_cnn(preprocessing=Preprocessing(size=32))


def test_temperature_scaling_calibrates_the_model_and_best_pt(data: Path, tmp_path: Path) -> None:
    model = _model()
    calibration = TemperatureScaling()
    trainer = _trainer(
        model, [EarlyStopping(patience=5), calibration], max_epochs=2, out_dir=tmp_path
    )
    trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"))

    result = calibration.result
    assert result is not None
    assert result.applied
    assert model.temperature == result.temperature != 1.0
    assert load_checkpoint(tmp_path / "best.pt").temperature == model.temperature
    assert load_checkpoint(tmp_path / "last.pt").temperature == 1.0  # for resuming
    assert calibration.best_result is None  # best.pt held the weights in memory
    assert "validation images:" in str(result)
    # the temperature is that of calibrate() on the same weights and data
    again = _model()
    again.load_state_dict(model.state_dict())
    alone = calibrate(again, KermanyOCT(data, "val"), device="cpu", precision="fp32")
    assert alone.temperature == pytest.approx(model.temperature, rel=1e-6)
    # the Trainer's own evaluation reports the calibrated probabilities
    assert trainer.evaluate(KermanyOCT(data, "val")).temperature == model.temperature


def test_an_interrupt_while_calibrating_says_best_pt_is_uncalibrated_and_how_to_finish(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def interrupted(self: TemperatureScaling, trainer: Trainer, loader: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(TemperatureScaling, "_fit", interrupted)
        trainer = _trainer(_model(), [TemperatureScaling()], max_epochs=2, out_dir=tmp_path)
        with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
            trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"))

    best, last = str(tmp_path / "best.pt"), str(tmp_path / "last.pt")
    assert load_checkpoint(best).temperature == 1.0
    # was: nothing said (the epochs were done; the interrupt came after them)
    assert (
        f"calibration interrupted (KeyboardInterrupt): {best!r} may be left without its "
        f"temperature (its probabilities uncalibrated); the epochs are done: "
        f"fit(..., resume_from={last!r}) calibrates it without training again"
    ) in caplog.messages
    resumed = _trainer(_model(), [TemperatureScaling()], max_epochs=2, out_dir=tmp_path)
    resumed.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"), resume_from=last)
    assert load_checkpoint(best).temperature != 1.0
    assert len(resumed.history) == 2  # no epoch trained again


class _ChangeWeights(Callback):
    """Scales the head at the end of the fit, so the model in memory is not best.pt's."""

    def on_fit_end(self, trainer: Trainer) -> None:
        with torch.no_grad():
            for parameter in trainer.model.head_module()[1].parameters():  # type: ignore[operator]
                parameter.mul_(3.0)


def test_best_pt_gets_the_temperature_of_its_own_weights(data: Path, tmp_path: Path) -> None:
    model = _model()
    calibration = TemperatureScaling()
    trainer = _trainer(model, [_ChangeWeights(), calibration], max_epochs=1, out_dir=tmp_path)
    trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"))

    assert calibration.result is not None
    assert calibration.best_result is not None
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.temperature == calibration.best_result.temperature
    assert best.temperature != model.temperature  # fitted for other weights
    alone = best.build_model()
    expected = calibrate(alone, KermanyOCT(data, "val"), device="cpu", precision="fp32")
    assert best.temperature == pytest.approx(expected.temperature, rel=1e-6)
    # the model in memory kept its (changed) weights
    changed = [
        name for name, value in model.state_dict().items()
        if not torch.equal(value, best.state_dict[name])
    ]  # fmt: skip
    assert changed


def test_a_fit_starts_uncalibrated_so_early_stopping_sees_the_same_losses(data: Path) -> None:
    histories = []
    for start in (1.0, 4.0):
        model = _model()
        model.temperature = start
        trainer = _trainer(model, [], max_epochs=2)
        history = trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"))
        assert model.temperature == 1.0
        histories.append([record.val_loss for record in history])
    assert histories[0] == histories[1]


@pytest.mark.parametrize(
    ("callbacks", "val", "message"),
    [
        (lambda: [TemperatureScaling(), EarlyStopping()], True, "put it after"),
        (lambda: [TemperatureScaling()], False, "pass it to fit"),
    ],
)
def test_temperature_scaling_refuses_what_it_cannot_calibrate(
    data: Path, callbacks: object, val: bool, message: str
) -> None:
    trainer = _trainer(_model(), callbacks(), max_epochs=1)  # type: ignore[operator]
    validation = KermanyOCT(data, "val") if val else None
    with pytest.raises(ValueError, match=message):
        trainer.fit(KermanyOCT(data, "train"), validation)


# --- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _uncalibrated_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a one-epoch small_cnn run trained with --no-calibrate, trained once."""
    out = tmp_path_factory.mktemp("uncalibrated") / "run"
    assert _train(data, out, "--no-calibrate") == 0
    return out / "best.pt"


@pytest.fixture
def uncalibrated_best(_uncalibrated_run: Path, tmp_path: Path) -> Path:
    """This test's own copy of that best.pt, in ``tmp_path / "run"``."""
    best = tmp_path / "run" / "best.pt"
    best.parent.mkdir()
    shutil.copyfile(_uncalibrated_run, best)
    return best


def _train(data: Path, out: Path, *extra: str) -> int:
    """``retinalnet train`` of small_cnn by the fine-tuning recipe (not its own default, the
    tutorial's: these runs' calibration numbers are the recipe's; its warning is silenced)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "fine_tune: small_cnn has no pretrained weights")
        return main(
            [
                "train", "--data", str(data), "--out", str(out), "--arch", "small_cnn",
                "--size", "32", "--epochs", "1", "--batch-size", "8", "--seed", "0", "-q",
                "--recipe", "finetune", *extra,
            ]
        )  # fmt: skip


def test_train_calibrates_by_default_and_evaluate_reports_it(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(data, tmp_path / "on") == 0
    printed = capsys.readouterr().out
    assert "calibration: temperature" in printed
    temperature = load_checkpoint(tmp_path / "on" / "best.pt").temperature
    assert temperature != 1.0
    assert _train(data, tmp_path / "off", "--no-calibrate") == 0
    assert "calibration" not in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "off" / "best.pt").temperature == 1.0

    argv = ["evaluate", "--checkpoint", str(tmp_path / "on" / "best.pt"), "--data", str(data)]
    assert main([*argv, "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["temperature"] == temperature
    assert report["ece"] == pytest.approx(report["report"]["ece"])
    plots = tmp_path / "plots"
    assert main([*argv, "-q", "--plots", str(plots)]) == 0
    first = capsys.readouterr().out.splitlines()[1]
    assert first.startswith("images 8  loss")
    assert f"temperature {temperature:.2f}" in first
    assert (plots / "reliability_diagram.png").is_file()


def test_the_calibrate_command_writes_the_temperature(
    data: Path, tmp_path: Path, uncalibrated_best: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = uncalibrated_best
    capsys.readouterr()
    copy = tmp_path / "calibrated.pt"
    argv = ["calibrate", "--checkpoint", str(best), "--data", str(data), "-q"]

    assert main([*argv, "--out", str(copy), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["applied"]
    assert printed["checkpoint"] == str(copy)
    assert load_checkpoint(copy).temperature == printed["temperature"]
    assert load_checkpoint(best).temperature == 1.0  # --out leaves the checkpoint alone

    assert main(argv) == 0
    assert f"wrote {best}" in capsys.readouterr().out
    assert load_checkpoint(best).temperature == pytest.approx(printed["temperature"])


# --- a validation set with on_error="skip": fitted on the readable images only ---------------


@pytest.fixture
def val_with_a_broken_scan(data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of ``data`` whose first val scan is not an image; the root and that file."""
    root = tmp_path / "data"
    shutil.copytree(data, root)
    broken = Path(KermanyOCT(root, "val").samples[0][0])
    broken.write_bytes(b"not a scan")
    return root, broken


def test_calibrate_fits_on_the_readable_images_of_a_skipping_data_set(
    val_with_a_broken_scan: tuple[Path, Path],
) -> None:
    root, broken = val_with_a_broken_scan
    readable = KermanyOCT(root, "val").without([broken])
    expected = calibrate(_model(), readable, device="cpu", precision="fp32")

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no neighbour is read in its place
        result = calibrate(
            _model(), KermanyOCT(root, "val", on_error="skip"), device="cpu", precision="fp32"
        )

    assert result.num_samples == len(readable) == len(KermanyOCT(root, "val")) - 1
    assert result.to_dict() == pytest.approx(expected.to_dict())


def test_calibrate_refuses_a_loader_over_a_skipping_data_set(
    val_with_a_broken_scan: tuple[Path, Path],
) -> None:
    root, _ = val_with_a_broken_scan
    model = _model()
    skipping = KermanyOCT(
        root, "val", transform=model.preprocessing.eval_transform(), on_error="skip"
    )
    with pytest.raises(ValueError, match=r"^calibrate\(\): KermanyOCT\(.*\) inside a DataLoader"):
        calibrate(model, torch.utils.data.DataLoader(skipping), device="cpu", precision="fp32")
    assert model.temperature == 1.0


def test_temperature_scaling_fits_on_the_readable_validation_images(
    val_with_a_broken_scan: tuple[Path, Path],
) -> None:
    root, broken = val_with_a_broken_scan
    calibration = TemperatureScaling()
    trainer = _trainer(_model(), [calibration], max_epochs=1)
    trainer.fit(KermanyOCT(root, "train"), KermanyOCT(root, "val", on_error="skip"))

    assert calibration.result is not None
    assert calibration.result.num_samples == len(KermanyOCT(root, "val")) - 1
    loop = trainer._loop
    assert loop is not None
    assert isinstance(loop.val_data, KermanyOCT)
    assert str(broken) not in [path for path, _ in loop.val_data.samples]


def test_a_temperature_is_never_written_into_weights_it_was_not_fitted_on(
    data: Path,
    tmp_path: Path,
    uncalibrated_best: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A training run that writes best.pt while `calibrate` fits it: nothing is written."""
    best = uncalibrated_best
    path = save_checkpoint(tmp_path / "m.pt", small_cnn(), epoch=1)
    fitted_on = file_digest(path).hex()
    save_checkpoint(path, small_cnn(), epoch=2)  # a run writes its next epoch
    with pytest.raises(ValueError, match=r"changed after the temperature was fitted on it"):
        set_checkpoint_temperature(path, 1.5, expected_sha256=fitted_on)
    assert load_checkpoint(path).temperature == 1.0

    from retinalnet.training import _calibration as calibration_module

    real = calibration_module.calibrate

    def and_a_run_writes(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        save_checkpoint(best, load_checkpoint(best).build_model(), epoch=7)
        return result

    monkeypatch.setattr("retinalnet.training.calibrate", and_a_run_writes)
    capsys.readouterr()
    argv = ["calibrate", "--checkpoint", str(best), "--data", str(data), "-q"]
    assert main(argv) == 1
    assert "changed after the temperature was fitted on it (now epoch 7" in capsys.readouterr().err
    assert load_checkpoint(best).temperature == 1.0


def test_calibrate_out_naming_the_checkpoint_itself_writes_it_in_place(
    data: Path, tmp_path: Path, uncalibrated_best: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = uncalibrated_best
    capsys.readouterr()
    same = tmp_path / "run" / "." / "best.pt"
    argv = ["calibrate", "--checkpoint", str(best), "--data", str(data), "--out", str(same)]
    assert main([*argv, "-q"]) == 0  # was: "PosixPath(...) and PosixPath(...) are the same file"
    assert f"wrote {best}" in capsys.readouterr().out


def test_calibrate_out_naming_a_hard_link_of_the_checkpoint_leaves_the_checkpoint_alone(
    data: Path, tmp_path: Path, uncalibrated_best: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = uncalibrated_best
    link = tmp_path / "calibrated.pt"
    link.hardlink_to(best)  # the same file under another name: --out, not the checkpoint
    argv = ["calibrate", "--checkpoint", str(best), "--data", str(data), "--out", str(link)]
    assert main([*argv, "-q"]) == 0
    assert f"wrote {link}" in capsys.readouterr().out
    assert load_checkpoint(link).temperature != 1.0
    assert load_checkpoint(best).temperature == 1.0  # was: the checkpoint rewritten, --out not


def test_calibrate_out_is_written_whole_or_not_at_all(
    data: Path,
    tmp_path: Path,
    uncalibrated_best: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    best = uncalibrated_best
    out = tmp_path / "calibrated.pt"
    out.write_bytes(b"an earlier calibrated model")  # the user's file, kept on a failure
    capsys.readouterr()

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    argv = ["calibrate", "--checkpoint", str(best), "--data", str(data), "-q"]
    assert main([*argv, "--out", str(out)]) == 1
    assert "no space left on device" in capsys.readouterr().err.lower()
    # was: replaced by an uncalibrated copy of the checkpoint before the write failed
    assert out.read_bytes() == b"an earlier calibrated model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibrated.pt", "run"]  # no temp


def test_calibrate_out_is_written_also_when_the_fit_is_left_out(
    data: Path,
    tmp_path: Path,
    uncalibrated_best: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import retinalnet.training

    best = uncalibrated_best
    left_out = CalibrationResult(1000.0, False, 8, 0.1, 0.1, 0.5, 0.5)  # every image right
    monkeypatch.setattr(retinalnet.training, "calibrate", lambda *a, **k: left_out)
    out = tmp_path / "calibrated.pt"
    capsys.readouterr()
    argv = ["calibrate", "--checkpoint", str(best), "--data", str(data), "--out", str(out)]
    assert main([*argv, "-q"]) == 0
    # was: exit 0 and no file, so `calibrate --out c.pt && predict --checkpoint c.pt` failed
    assert out.read_bytes() == best.read_bytes()
    assert f"wrote {out}: {best} as it was, uncalibrated" in capsys.readouterr().out


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_calibrate_names_the_split_it_fitted_on_and_warns_of_the_test_split(
    data: Path,
    tmp_path: Path,
    uncalibrated_best: Path,
    capsys: pytest.CaptureFixture[str],
    split: str,
) -> None:
    best = uncalibrated_best
    capsys.readouterr()
    argv = ["calibrate", "--checkpoint", str(best), "--data", str(data), "--split", split]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*argv, "-q", "--out", str(tmp_path / "c.pt")]) == 0
    images = len(KermanyOCT(data, split))
    assert f"fitted on {images} images of the {split} split:" in capsys.readouterr().out
    warned = any("the temperature on the test split flatters" in str(w.message) for w in caught)
    assert warned == (split == "test")


def test_the_expected_digest_is_read_as_people_write_it_and_refused_when_malformed(
    tmp_path: Path,
) -> None:
    path = save_checkpoint(tmp_path / "m.pt", small_cnn(), epoch=1)
    digest = file_digest(path).hex()
    set_checkpoint_temperature(path, 1.5, expected_sha256=f"  SHA256:{digest.upper()} ")
    assert load_checkpoint(path).temperature == 1.5
    for bad in ("deadbeef", "", 123):
        with pytest.raises(ValueError, match=r"^expected_sha256 must be a SHA-256 digest"):
            set_checkpoint_temperature(path, 1.2, expected_sha256=bad)  # type: ignore[arg-type]
    assert load_checkpoint(path).temperature == 1.5


def test_a_temperature_keeps_the_predicted_classes_but_can_move_an_auc() -> None:
    # what docs/evaluation.rst says: predictions and their rates stay, AUCs of more than two
    # classes can move (a class's probability is ranked across images)
    from retinalnet.metrics import ClassificationReport, classification_report

    def at(
        temperature: float, outputs: list[list[float]], targets: list[int]
    ) -> ClassificationReport:
        scaled = np.exp(np.array(outputs) / temperature)
        classes = ["CNV", "DME", "DRUSEN", "NORMAL"][: scaled.shape[1]]
        probabilities = scaled / scaled.sum(axis=1, keepdims=True)
        return classification_report(targets, probabilities, classes=classes, urgent=None)

    logits = [[4, 0, 3, 0], [0, 0, 0, 0.5], [3, 0, 0, 2.9], [0, 0.1, 0, 0]]
    warm, cold = at(1.0, logits, [0, 3, 0, 1]), at(0.2, logits, [0, 3, 0, 1])
    assert (warm.confusion_matrix == cold.confusion_matrix).all()
    assert warm["NORMAL"].auc == pytest.approx(2 / 3)
    assert cold["NORMAL"].auc == 1.0
    two = [[2.0, 0.0], [0.0, 1.0], [1.0, 0.5], [0.2, 0.0]]
    assert at(1.0, two, [0, 1, 1, 0])["CNV"].auc == at(0.2, two, [0, 1, 1, 0])["CNV"].auc


@pytest.mark.parametrize(("temperature", "shown"), [(0.00123, "0.00123"), (1.469, "1.47")])
def test_a_fitted_temperature_is_printed_to_three_significant_figures(
    temperature: float, shown: str
) -> None:
    # was three decimals: 0.00123 printed as 0.001, off by a fifth, unlike every other door
    result = CalibrationResult(temperature, True, 8, 0.2, 0.1, 0.9, 0.5)
    assert str(result).startswith(f"temperature {shown} fitted on 8 images:")


# --- probabilities and bf16 log-probabilities are what they stand for ------------------------


def _tempered_case() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(2000, 4))
    made = np.exp(logits / 2.0)
    made /= made.sum(axis=1, keepdims=True)
    return logits, np.array([rng.choice(4, p=row) for row in made])


def test_fit_temperature_of_probabilities_is_that_of_their_logits() -> None:
    # was 0.354 for probabilities made at T = 2 (taken for logits), 1.94 for the logits
    logits, targets = _tempered_case()
    probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    expected = fit_temperature(logits, targets)

    assert expected == pytest.approx(2.0, abs=0.15)
    assert fit_temperature(probabilities, targets) == pytest.approx(expected, rel=1e-6)
    rounded = probabilities.astype(np.float32)  # float32, zeros included, rows off 1 a little
    assert fit_temperature(rounded, targets) == pytest.approx(expected, rel=1e-3)


def test_bf16_log_probabilities_are_log_probabilities() -> None:
    # a bf16 log-softmax misses a logsumexp of 0 by up to 0.008: the report's ECE was "-",
    # expected_calibration_error and reliability_curve refused them
    torch.manual_seed(0)
    logits = torch.randn(500, 4) * 3
    targets = torch.randint(0, 4, (500,)).numpy()
    bf16 = torch.log_softmax(logits.bfloat16(), dim=1).float().numpy()
    exact = torch.log_softmax(logits, dim=1).numpy()

    expected = expected_calibration_error(exact, targets)

    assert expected_calibration_error(bf16, targets) == pytest.approx(expected, abs=0.01)
    assert classification_report(targets, bf16).ece == pytest.approx(expected, abs=0.01)
    assert reliability_curve(bf16, targets)[2].sum() == 500
    with pytest.raises(ValueError, match="or be log-probabilities"):
        expected_calibration_error(exact + 0.05, targets)  # logits: still refused


def test_fit_temperature_of_rounded_probabilities_is_near_and_said_approximate() -> None:
    # was: probabilities rounded to 0 read as 1e-45 (a logit gap of 103): 77.9 fitted for a
    # temperature of about 4.3, without a word
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=12.0, size=(500, 4))
    tempered = np.exp(logits / 4.5)
    tempered /= tempered.sum(axis=1, keepdims=True)
    targets = [int(rng.choice(4, p=row)) for row in tempered]
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    exact = fit_temperature(probabilities, targets)
    assert 3.5 < exact < 5.5
    with pytest.warns(UserWarning, match=r"rounded to 2 decimal\(s\), some to 0: those are read"):
        rounded = fit_temperature(np.round(probabilities, 2), targets)
    assert 1.0 < rounded < exact
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # unrounded, or rounded without zeros: no warning
        fit_temperature(probabilities, targets)
        fit_temperature(np.round(np.clip(probabilities, 0.01, None), 2), targets)


def _float32_softmax(logits: list[list[float]]) -> np.ndarray:
    """Float32 probabilities as ``Predictor.predict_proba`` gives them."""
    return torch.log_softmax(torch.tensor(logits, dtype=torch.float64), 1).exp().float().numpy()


@pytest.mark.parametrize(
    ("logits", "was"),
    [
        # the audit's: 4e-18 beside exact zeros, every value within 1e-7 of 0 or 1
        ([[40.0, 0, 0, 0]] * 3 + [[0, 150.0, 0, 0]], 1.363),
        ([[69.0, 0, 0]] * 2 + [[0, 0, 150.0]], 2.161),  # 1e-30
        ([[16.6, 0]] * 6 + [[0, 16.6], [120.0, 0]], 1.540),  # 1 - 6e-8, one float32 step below 1
    ],
)
def test_saturated_float32_probabilities_are_not_taken_for_rounded(
    logits: list[list[float]], was: float
) -> None:
    # was: "rounded to 1 decimal(s)", each 0 read as 0.05 (above the 4e-18 beside it)
    probabilities = _float32_softmax(logits)
    targets = [0] * len(logits)
    zeros_as_documented = np.where(
        probabilities > 0, probabilities, np.finfo(np.float32).smallest_subnormal
    )
    expected = fit_temperature(np.log(zeros_as_documented.astype(np.float64)), targets)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "rounded" warning
        fitted = fit_temperature(probabilities, targets)

    assert fitted == pytest.approx(expected, rel=1e-6)
    assert fitted > 5 * was


def test_the_audits_saturated_model_is_fitted_as_its_float32_probabilities_say() -> None:
    # logits give 117.4; the float32 softmax lost the true class's e^-150 to 0, read as
    # float32's smallest (the documented rule): 54.8, not 1.36 ("almost calibrated")
    logits = [[40.0, 0, 0, 0]] * 3 + [[0, 150.0, 0, 0]]
    assert fit_temperature(np.array(logits), [0] * 4) == pytest.approx(117.378, abs=1e-3)
    assert fit_temperature(_float32_softmax(logits), [0] * 4) == pytest.approx(54.812, abs=1e-3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_rounded_probabilities_are_rounded_in_the_precision_they_are_stored_in(
    dtype: type[np.floating[Any]],
) -> None:
    # float16's 0.12 is 0.11999512: it was not taken for rounded (33.7 fitted for 1.93)
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=12.0, size=(500, 4))
    targets = rng.integers(0, 4, size=500)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    rounded = np.round(probabilities, 2)
    with pytest.warns(UserWarning, match=r"rounded to 2 decimal\(s\), some to 0: .* 0\.005 "):
        expected = fit_temperature(rounded, targets)
    with pytest.warns(UserWarning, match=r"rounded to 2 decimal\(s\), some to 0: .* 0\.005 "):
        assert fit_temperature(rounded.astype(dtype), targets) == pytest.approx(expected, rel=1e-3)


def test_float64_probabilities_below_float32s_smallest_keep_their_logs() -> None:
    # was: raised to 1.4e-45 before the log, 74.7 fitted for the logits' 90.6
    logits = np.array([[200.0, 0.0], [200.0, 0.0], [0.0, 60.0]])
    targets = [0, 0, 0]
    probabilities = torch.softmax(torch.from_numpy(logits), 1).numpy()  # 1.4e-87, no 0
    expected = fit_temperature(logits, targets)
    assert expected == pytest.approx(90.553, abs=1e-3)
    assert fit_temperature(probabilities, targets) == pytest.approx(expected, rel=1e-9)
    assert fit_temperature(np.log(probabilities), targets) == pytest.approx(expected, rel=1e-9)


def test_a_0_among_float64_probabilities_below_float32s_smallest_stays_below_them() -> None:
    # a 0 read as float32's 1.4e-45 would rank above the 1.4e-87 beside it (70.9 for 90.4)
    logits = np.array([[200.0, 0.0], [200.0, 0.0], [0.0, 60.0], [800.0, 0.0]])
    targets = [0, 0, 0, 0]
    probabilities = torch.softmax(torch.from_numpy(logits), 1).numpy()
    assert probabilities[3, 1] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = fit_temperature(probabilities, targets)
    assert fitted == pytest.approx(fit_temperature(logits, targets), rel=1e-2)


def test_temperature_reads_a_models_outputs_as_they_come() -> None:
    # torch's "Can't call numpy() on Tensor that requires grad" / "unsupported ScalarType
    # BFloat16" came out of temperature_nll for a model's raw outputs
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(40, 4, generator=generator, requires_grad=True)
    labels = torch.randint(0, 4, (40,), generator=generator)
    plain = logits.detach().numpy().astype(np.float64)
    for scores in (logits, logits.bfloat16()):
        expected = plain if scores.dtype == torch.float32 else scores.detach().double().numpy()
        assert temperature_nll(scores, labels, 1.5) == pytest.approx(
            temperature_nll(expected, labels.numpy(), 1.5), rel=1e-12
        )
        assert fit_temperature(scores, labels) == pytest.approx(
            fit_temperature(expected, labels.numpy()), rel=1e-9
        )


def test_a_calibrated_best_pt_is_format_2_and_the_uncalibrated_last_pt_format_1(
    data: Path, tmp_path: Path
) -> None:
    # was: format 1 for both, which retinalnet 0.1 loads, ignoring the temperature of
    # best.pt (other probabilities, without a word); format 2 makes it say "upgrade"
    import retinalnet

    calibration = TemperatureScaling()
    trainer = _trainer(_model(), [calibration], max_epochs=1, out_dir=tmp_path)
    trainer.fit(KermanyOCT(data, "train"), KermanyOCT(data, "val"))
    assert calibration.result is not None
    assert calibration.result.applied

    best = torch.load(tmp_path / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert (best["format_version"], last["format_version"]) == (2, 1)
    assert best["written_by"] == last["written_by"] == [retinalnet.__version__]


def test_rounded_float32_probabilities_with_a_column_written_as_1_minus_the_other() -> None:
    # was: float32's 1 - 0.97 (0.029999971) is off the 0.01 grid by a float32 step, so the
    # probabilities were taken for unrounded, each 0 read as 1e-45: 14.87 for the logits' 1.47
    generator = np.random.default_rng(0)
    targets = generator.integers(0, 2, 400)
    logits = 5 * (generator.normal(0, 1, 400) + np.where(targets == 1, 2.0, -2.0))
    positive = np.round(1 / (1 + np.exp(-logits)), 2).astype(np.float32)
    probabilities = np.stack([np.float32(1) - positive, positive], axis=1)
    assert (probabilities == 0).any()

    with pytest.warns(UserWarning, match="rounded to 2 decimal"):
        fitted = fit_temperature(probabilities, targets)

    from_logits = fit_temperature(np.stack([np.zeros(400), logits], axis=1), targets)
    assert fitted == pytest.approx(from_logits, rel=0.5)


def test_unrounded_float32_softmax_outputs_with_zeros_are_never_taken_for_rounded() -> None:
    # was: the slack for a column written as 1 - p covered half of the 1e-6 grid: 55 of
    # 1,568 such batches were "rounded to 6 decimal(s)", with a warning and a wrong T
    generator = np.random.default_rng(1)
    checked = 0
    for _ in range(400):
        classes, rows = int(generator.integers(2, 5)), int(generator.choice([2, 3, 5, 20]))
        logits = generator.normal(0, 3, (rows, classes)).astype(np.float32)
        logits[:, 0] += generator.choice([0, 0, 0, 110], size=rows)  # exact float32 zeros
        probabilities = torch.softmax(torch.from_numpy(logits), 1).numpy()
        if not (probabilities == 0).any() or np.isin(probabilities, (0, 1)).all():
            continue  # no zero, or all 0 and 1: on every grid, rounded or not
        checked += 1
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "rounded" warning
            fit_temperature(probabilities, np.zeros(rows, dtype=np.int64))
    assert checked > 100
