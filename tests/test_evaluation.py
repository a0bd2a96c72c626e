"""evaluate(): exact confusion matrix, accuracies and loss on a model whose outputs we choose."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional
from torch.utils.data import DataLoader, Subset, TensorDataset

from _training_helpers import CLASSES, frozen_small_cnn, linear_classifier, tiny_cnn
from retinalnet import SyntheticOCT
from retinalnet.datasets import KermanyOCT
from retinalnet.engine import InferenceEngine
from retinalnet.models import Classifier
from retinalnet.training import EvaluationResult, Trainer, calibrate, evaluate
from retinalnet.training._evaluation import run_evaluation
from retinalnet.transforms import Preprocessing

# Each image's input is its own logits, so the prediction is whatever we put at the argmax.
TARGETS = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0]
PREDICTED = [0, 1, 0, 1, 3, 2, 2, 0, 2, 0]
# rows: true class, columns: predicted class; nothing is NORMAL
MATRIX = [
    [3, 1, 0, 0],
    [0, 1, 0, 1],
    [1, 0, 3, 0],
    [0, 0, 0, 0],
]


def _logits(predicted: list[int], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(len(predicted), len(CLASSES), generator=generator)
    for row, column in enumerate(predicted):
        logits[row, column] = logits[row].max() + 0.5 + torch.rand(1, generator=generator).item()
    return logits


def _data(predicted: list[int] = PREDICTED, targets: list[int] = TARGETS) -> TensorDataset:
    return TensorDataset(_logits(predicted), torch.tensor(targets))


def _model() -> Classifier:
    """Outputs log-probabilities of its input logits."""
    return Classifier(nn.LogSoftmax(dim=1), classes=CLASSES)


def test_evaluate_gives_the_exact_confusion_matrix_and_accuracies() -> None:
    result = evaluate(_model(), _data(), device="cpu")

    assert isinstance(result, EvaluationResult)
    assert result.classes == CLASSES
    assert result.num_samples == 10
    assert result.confusion_matrix.dtype == np.int64
    assert result.confusion_matrix.tolist() == MATRIX
    assert result.accuracy == 0.7
    per_class = result.per_class_accuracy
    assert list(per_class) == list(CLASSES)
    assert (per_class["CNV"], per_class["DME"], per_class["DRUSEN"]) == (0.75, 0.5, 0.75)
    assert math.isnan(per_class["NORMAL"])


def test_the_result_is_at_the_temperature_its_rows_were_computed_at() -> None:
    """A temperature set during a run (calibrate() in another thread, between two batches)
    reaches neither the run's rows nor its result's ``temperature``: both are those the run
    began with (an engine that follows the model's temperature, as a Trainer's validation)."""
    model = _model()
    model.temperature = 2.0

    def recalibrated(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        model.temperature = 5.0  # inside the first batch

    engine = InferenceEngine(model, device="cpu", precision="fp32")
    loader = engine.loader(_data(), batch_size=3)
    handle = model.register_forward_pre_hook(recalibrated)
    try:
        result = run_evaluation(engine, loader, loss=nn.NLLLoss(), classes=CLASSES)
    finally:
        handle.remove()

    expected = functional.softmax(_logits(PREDICTED).double() / 2.0, dim=1).numpy()
    assert result.temperature == 2.0
    assert result.probabilities is not None
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-6)
    assert engine.temperature == 5.0  # the next run's


def test_evaluate_loss_is_the_nll_over_the_whole_set() -> None:
    logits = _logits(PREDICTED)
    expected = nn.NLLLoss()(functional.log_softmax(logits, dim=1), torch.tensor(TARGETS)).item()

    result = evaluate(_model(), _data(), batch_size=3, device="cpu")

    assert result.loss == pytest.approx(expected, rel=1e-6)


def test_evaluate_uses_the_loss_given() -> None:
    logits = _logits(PREDICTED)
    expected = nn.CrossEntropyLoss()(logits, torch.tensor(TARGETS)).item()

    result = evaluate(
        nn.Identity(), _data(), loss=nn.CrossEntropyLoss(), classes=CLASSES, device="cpu"
    )

    assert result.loss == pytest.approx(expected, rel=1e-6)
    assert result.confusion_matrix.tolist() == MATRIX


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_batching_does_not_change_the_result(batch_size: int) -> None:
    reference = evaluate(_model(), _data(), batch_size=10, device="cpu")

    result = evaluate(_model(), _data(), batch_size=batch_size, device="cpu")

    assert np.array_equal(result.confusion_matrix, reference.confusion_matrix)
    assert result.accuracy == reference.accuracy
    assert result.loss == pytest.approx(reference.loss, rel=1e-6)


def test_evaluate_takes_a_data_loader() -> None:
    loader = DataLoader(_data(), batch_size=4)

    result = evaluate(_model(), loader, device="cpu")

    assert result.confusion_matrix.tolist() == MATRIX


def test_a_plain_module_needs_class_names() -> None:
    with pytest.raises(
        ValueError, match=r"pass classes=\[\.\.\.\] when the model is not a retinalnet Classifier"
    ):
        evaluate(nn.LogSoftmax(dim=1), _data(), device="cpu")

    result = evaluate(nn.LogSoftmax(dim=1), _data(), classes=["a", "b", "c", "d"], device="cpu")
    assert result.classes == ("a", "b", "c", "d")
    assert result.confusion_matrix.tolist() == MATRIX


def test_evaluate_runs_in_eval_mode_without_gradients_and_restores_the_mode() -> None:
    seen: list[tuple[bool, bool]] = []

    class Dropping(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dropout = nn.Dropout(0.5)
            self.linear = nn.Linear(4, 4)

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            seen.append((self.training, torch.is_grad_enabled()))
            return functional.log_softmax(self.linear(self.dropout(inputs)), dim=1)

    torch.manual_seed(0)
    model = Classifier(Dropping(), classes=CLASSES).train()

    first = evaluate(model, _data(), batch_size=4, device="cpu")
    second = evaluate(model, _data(), batch_size=4, device="cpu")

    assert set(seen) == {(False, False)}
    assert model.training
    assert first.loss == second.loss
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_prepares_pil_images_with_the_model_eval_preprocessing() -> None:
    model = tiny_cnn().eval()
    data = SyntheticOCT(1, shape=(48, 40), seed=3)
    transform = model.preprocessing.eval_transform()
    inputs = torch.stack([transform(data.image(i)) for i in range(len(data))])
    targets = torch.tensor(data.targets)
    with torch.no_grad():
        outputs = model(inputs)
    expected_loss = functional.nll_loss(outputs, targets).item()
    expected_predictions = outputs.argmax(dim=1)

    # fp32 like the reference: "auto" runs in bf16 on a CPU with native bf16
    result = evaluate(model, data, batch_size=3, device="cpu", precision="fp32")

    assert result.loss == pytest.approx(expected_loss, rel=1e-5)
    expected = np.zeros((4, 4), dtype=np.int64)
    for target, predicted in zip(targets.tolist(), expected_predictions.tolist(), strict=True):
        expected[target, predicted] += 1
    assert np.array_equal(result.confusion_matrix, expected)


def test_a_small_temperature_is_shown_to_three_figures_wherever_it_is_shown(
    tmp_path: Path,
) -> None:
    # fit_temperature searches down to 0.001: 0.0046 was shown as "temperature 0.00"
    from retinalnet.report._calibration import calibration_section

    result = dataclasses.replace(
        evaluate(_model(), _data(), device="cpu", precision="fp32"), temperature=0.004626
    )
    assert str(result).splitlines()[0].endswith("temperature 0.00463")
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from retinalnet.plots import plot_reliability_diagram

    section = calibration_section(result, result.report(), None, "test")
    assert section is not None
    assert "0.00463 (temperature-scaled)" in section.body
    figure = plot_reliability_diagram(result)
    assert "temperature 0.00463" in figure.axes[0].get_title()
    plt.close(figure)


def test_str_is_a_table_of_the_confusion_matrix() -> None:
    result = evaluate(_model(), _data(), device="cpu", precision="fp32")

    lines = str(result).splitlines()

    assert lines[0] == (
        f"images 10  loss {result.loss:.4f}  accuracy 70.00%  ECE {result.ece:.1%}  "
        "temperature 1.00"
    )
    assert result.precision == "fp32"
    assert lines[1] == ""
    assert lines[2].split() == ["true", "\\", "predicted", *CLASSES, "accuracy"]
    assert [line.split() for line in lines[3:]] == [
        ["CNV", "3", "1", "0", "0", "75.0%"],
        ["DME", "0", "1", "0", "1", "50.0%"],
        ["DRUSEN", "1", "0", "3", "0", "75.0%"],
        ["NORMAL", "0", "0", "0", "0", "-"],
    ]
    assert len({len(line) for line in lines[2:]}) == 1  # columns line up
    assert re.search(r"DRUSEN\s+NORMAL\s+accuracy$", lines[2])


def test_str_never_shows_one_missed_scan_of_2000_as_100_percent() -> None:
    # was: CNV's accuracy (1,999 of 2,000) "100.0%", as NORMAL's: the first block of
    # `retinalnet evaluate` read as that of a model that missed no one
    targets = np.array([0] * 2000 + [3] * 2000)
    probabilities = np.zeros((4000, 4))
    probabilities[np.arange(4000), targets] = 0.9
    probabilities[0] = [0.05, 0.0, 0.0, 0.95]
    matrix = np.zeros((4, 4), dtype=np.int64)
    np.add.at(matrix, (targets, probabilities.argmax(axis=1)), 1)
    result = EvaluationResult(
        classes=CLASSES,
        loss=0.1,
        accuracy=3999 / 4000,
        confusion_matrix=matrix,
        probabilities=probabilities,
        targets=targets,
    )

    lines = str(result).splitlines()

    assert " accuracy 99.98% " in lines[0]
    assert lines[3].split()[-1] == ">99.9%"  # CNV
    assert lines[6].split()[-1] == "100.0%"  # NORMAL: none missed
    assert len({len(line) for line in lines[2:]}) == 1  # columns still line up


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_result_says_the_precision_the_model_ran_in(precision: str) -> None:
    result = evaluate(_model(), _data(), device="cpu", precision=precision)  # type: ignore[arg-type]
    assert result.precision == precision
    assert result.to_dict()["precision"] == precision
    said = f"  precision {precision}" in str(result).splitlines()[0]
    assert said == (precision != "fp32")  # bf16 differs by hardware: said where it ran


def test_to_dict_is_plain_json_data() -> None:
    all_classes = [0, 1, 2, 3, 0, 1, 2, 3]
    result = evaluate(
        _model(),
        _data(predicted=[0, 1, 2, 3, 1, 1, 2, 0], targets=all_classes),
        device="cpu",
        precision="fp32",
    )

    data = result.to_dict()

    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data == {
        "classes": list(CLASSES),
        "num_samples": 8,
        "loss": result.loss,
        "accuracy": 0.75,
        "per_class_accuracy": {"CNV": 0.5, "DME": 1.0, "DRUSEN": 1.0, "NORMAL": 0.5},
        "confusion_matrix": [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [1, 0, 0, 1]],
        "temperature": 1.0,
        "ece": result.ece,
        "precision": "fp32",
    }
    assert all(type(v) is int for row in data["confusion_matrix"] for v in row)


def test_to_dict_with_a_class_without_images_has_none_only_there() -> None:
    result = evaluate(_model(), _data(), device="cpu")
    assert math.isnan(result.per_class_accuracy["NORMAL"])

    data = result.to_dict()
    text = json.dumps(data, allow_nan=False)  # strict JSON: undefined is null

    assert json.loads(text)["per_class_accuracy"]["NORMAL"] is None
    assert json.loads(text)["confusion_matrix"] == MATRIX


def test_strict_json_writes_every_undefined_number_as_null() -> None:
    from retinalnet._core.json_text import strict_json

    data = {"a": [math.nan, 1.0, (math.inf, -math.inf)], "b": {"c": math.nan}, "d": "nan"}
    assert json.loads(strict_json(data)) == {
        "a": [None, 1.0, [None, None]],
        "b": {"c": None},
        "d": "nan",
    }


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_evaluate_on_cuda_gives_the_same_result() -> None:
    on_cpu = evaluate(_model(), _data(), batch_size=3, device="cpu")

    on_cuda = evaluate(_model(), _data(), batch_size=3, device="cuda")

    assert on_cuda.confusion_matrix.tolist() == MATRIX
    assert on_cuda.loss == pytest.approx(on_cpu.loss, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Per-image probabilities, the clinical report, and test-time augmentation


def test_evaluate_keeps_each_image_probabilities_and_target_in_data_order() -> None:
    logits = _logits(PREDICTED)

    result = evaluate(_model(), _data(), batch_size=3, device="cpu")

    assert result.probabilities is not None
    assert result.targets is not None
    assert result.probabilities.dtype == np.float64
    assert np.allclose(result.probabilities, torch.softmax(logits.double(), dim=1).numpy())
    assert result.targets.tolist() == TARGETS
    assert result.tta is False


def test_results_compare_by_value_and_are_not_hashable() -> None:
    result = evaluate(_model(), _data(), device="cpu", precision="fp32")
    rerun = evaluate(_model(), _data(), device="cpu", precision="fp32")

    assert result == rerun == copy.deepcopy(result)  # a run repeats: True, not a raise
    assert result != evaluate(_model(), _data(PREDICTED[::-1]), device="cpu", precision="fp32")
    assert result.probabilities is not None
    nudged = result.probabilities.copy()
    nudged[0, 0] += 1e-9
    assert result != dataclasses.replace(result, probabilities=nudged)  # per image too
    assert result != dataclasses.replace(result, probabilities=None)
    assert result != result.to_dict()
    with pytest.raises(TypeError, match="unhashable type: 'EvaluationResult'"):
        hash(result)


def test_report_is_the_clinical_report_of_the_same_images() -> None:
    result = evaluate(_model(), _data(), device="cpu")

    report = result.report()

    assert report.confusion_matrix.tolist() == MATRIX
    assert report.accuracy == result.accuracy
    assert report["DME"].recall == result.per_class_accuracy["DME"]
    assert report.referral is not None
    # urgent (CNV or DME) images 0-4 and 9, predicted 0, 1, 0, 1, 3, 0: 5 of 6 referred;
    # DRUSEN images 5-8, predicted 2, 2, 0, 2: 3 of 4 not referred
    assert report.referral.confusion_matrix.tolist() == [[3, 1], [1, 5]]
    assert report.referral.sensitivity == 5 / 6
    assert report.referral.specificity == 0.75
    assert (
        result.report(bootstrap=40, seed=0).intervals
        == result.report(bootstrap=40, seed=0).intervals
    )


def test_the_reports_of_a_result_refuse_too_few_resamples() -> None:
    result = evaluate(_model(), _data(), device="cpu")
    result = dataclasses.replace(result, patient_ids=("7",) * len(TARGETS))

    # was: bootstrap=1 gave a "95% interval" of one resample, leaving out the estimate
    for report in (result.report, result.patient_report):
        with pytest.raises(ValueError, match=r"^bootstrap=1 is too few resamples for 95% "):
            report(bootstrap=1)
        with pytest.raises(ValueError, match=r"so at least 400 .*pass bootstrap=1000"):
            report(bootstrap=200, confidence=0.995)


def test_a_result_built_by_hand_has_no_report() -> None:
    result = EvaluationResult(("a", "b"), 0.1, 1.0, np.eye(2, dtype=np.int64))

    with pytest.raises(ValueError, match=r"has no per-image probabilities"):
        result.report()


class _Asymmetric(nn.Module):
    """Scores from the left and right halves of a (N, 1, 1, 2) input, so flips matter."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        left, right = inputs[..., 0].flatten(1), inputs[..., 1].flatten(1)
        logits = torch.cat([left, right, torch.zeros_like(left), torch.zeros_like(left)], dim=1)
        return functional.log_softmax(logits, dim=1)


def test_tta_averages_each_image_with_its_mirror() -> None:
    inputs = torch.tensor([[[[2.0, 0.0]]], [[[0.0, 1.0]]]])
    targets = torch.tensor([0, 1])
    data = TensorDataset(inputs, targets)
    model = Classifier(_Asymmetric(), classes=CLASSES)
    plain = torch.softmax(_Asymmetric()(inputs), dim=1).double()
    mirrored = torch.softmax(_Asymmetric()(inputs.flip(-1)), dim=1).double()
    expected = ((plain + mirrored) / 2).numpy()

    result = evaluate(model, data, device="cpu", tta=True)

    assert result.tta is True
    assert result.probabilities is not None
    assert np.allclose(result.probabilities, expected)
    # the two first classes tie after averaging: the first wins
    assert result.confusion_matrix[1].tolist() == [1, 0, 0, 0]
    expected_loss = -np.mean(np.log(expected[[0, 1], [0, 1]]))
    assert result.loss == pytest.approx(expected_loss, rel=1e-5)
    assert evaluate(model, data, device="cpu").accuracy == 1.0


class _Labelled(TensorDataset):
    """Tensors with an ImageFolder-style ``classes`` list."""

    def __init__(self, classes: list[str]) -> None:
        super().__init__(torch.randn(4, 8), torch.tensor([0, 1, 0, 1]))
        self.classes = classes


@pytest.mark.parametrize(
    "data_classes",
    [
        ["CNV", "DME", "DRUSEN"],  # fewer classes: a 3-folder download
        ["CNV", "DME", "NORMAL", "DRUSEN"],  # the same names in another order
        ["cnv", "dme", "drusen", "normal"],  # other names
        ["CNV", "DME", "DRUSEN", "NORMAL", "AMD"],  # more classes
    ],
)
@pytest.mark.parametrize("as_loader", [False, True], ids=["dataset", "loader"])
@pytest.mark.parametrize("door", [evaluate, calibrate], ids=["evaluate", "calibrate"])
def test_classes_that_differ_by_name_or_order_are_refused_before_anything_runs(
    data_classes: list[str], as_loader: bool, door: Callable[..., object]
) -> None:
    model = linear_classifier()
    data = _Labelled(data_classes)
    source = DataLoader(data, batch_size=2) if as_loader else data
    message = (
        re.escape(f"the model's classes are {list(CLASSES)}")
        + r".*"
        + re.escape(f"the data's are {data_classes}")
    )
    with pytest.raises(ValueError, match=message):
        door(model, source, device="cpu")  # calibrate: was a temperature fitted on wrong labels
    assert model.temperature == 1.0


def test_the_same_classes_pass() -> None:
    result = evaluate(linear_classifier(), _Labelled(list(CLASSES)), device="cpu")
    assert result.num_samples == 4


REORDERED = ["NORMAL", "DRUSEN", "DME", "CNV"]


@pytest.mark.parametrize(
    "data",
    [_data(), DataLoader(_data(), batch_size=4), _Labelled(list(CLASSES))],
    ids=["tensors", "loader", "named"],
)
def test_classes_given_with_a_classifier_never_rename_its_outputs(data: object) -> None:
    # was: tensors were scored with every row and column named after another class
    # (DRUSEN's accuracy reported as DME's), and named data blamed the model's classes
    message = (
        re.escape(f"evaluate: classes={REORDERED} differs from the classes of the model, ")
        + re.escape(f"{list(CLASSES)} (output order); classes= is only for a model that is ")
        + r"not a Classifier"
    )
    with pytest.raises(ValueError, match=message):
        evaluate(_model(), data, classes=REORDERED, device="cpu")


def test_classes_given_equal_to_a_classifiers_own_are_taken() -> None:
    result = evaluate(_model(), _data(), classes=list(CLASSES), device="cpu")
    assert result.classes == CLASSES
    assert result.confusion_matrix.tolist() == MATRIX


def test_classes_given_as_one_string_are_refused() -> None:
    with pytest.raises(TypeError, match=r"^evaluate: classes must be a list of class names"):
        evaluate(nn.LogSoftmax(dim=1), _data(), classes="CNV", device="cpu")


def test_classes_naming_a_plain_modules_outputs_are_what_a_mismatch_blames() -> None:
    # was: "the model's classes are [...] ... build the model with create_model(arch, ...)",
    # which a plain module given classes= cannot follow
    data = _Labelled(list(CLASSES))
    message = (
        re.escape(f"evaluate: classes= names the model's outputs {REORDERED} (output order) ")
        + re.escape(f"but the data's classes are {list(CLASSES)}")
        + r".*"
        + re.escape(f"pass classes={list(CLASSES)}")
    )
    with pytest.raises(ValueError, match=message):
        evaluate(
            nn.Sequential(nn.Linear(8, 4), nn.LogSoftmax(dim=1)),
            data,
            classes=REORDERED,
            device="cpu",
        )


# --- a data set with on_error="skip": only the readable images are scored -------------------


@pytest.fixture
def split_with_a_broken_scan(make_tree: Callable[..., Path]) -> Path:
    """The auditor's split: CNV-1-1, an empty CNV/x.jpeg between, then DME-2-1."""
    root = make_tree({"test/CNV": ["CNV-1-1.jpeg", "x.jpeg"], "test/DME": ["DME-2-1.jpeg"]})
    (root / "test" / "CNV" / "x.jpeg").write_bytes(b"")
    return root


@pytest.mark.parametrize("feature_cache", [False, True], ids=["images", "feature_cache"])
def test_evaluate_scores_only_the_readable_images_of_a_skipping_data_set(
    split_with_a_broken_scan: Path, feature_cache: bool, caplog: pytest.LogCaptureFixture
) -> None:
    broken = str(split_with_a_broken_scan / "test" / "CNV" / "x.jpeg")
    model = frozen_small_cnn()
    readable = KermanyOCT(split_with_a_broken_scan, "test").without([broken])
    expected = evaluate(model, readable, device="cpu", precision="fp32")
    skipping = KermanyOCT(split_with_a_broken_scan, "test", on_error="skip")

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no neighbour is read in its place
        result = evaluate(
            model, skipping, device="cpu", precision="fp32", feature_cache=feature_cache
        )

    assert result.num_samples == 2  # was 3: DME-2-1 counted twice
    assert result.targets is not None
    assert result.targets.tolist() == [0, 1]
    assert result.patient_ids == ("1", "2")  # was ("1", "1", "2"): x.jpeg's patient shifted
    assert result.probabilities is not None
    assert expected.probabilities is not None
    np.testing.assert_allclose(result.probabilities, expected.probabilities, atol=1e-5)
    assert result.patient_report().patients is not None
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        m.startswith("evaluate(): left out 1 unreadable image(s)") and repr(broken) in m
        for m in logged
    )


def test_evaluate_refuses_a_loader_over_a_skipping_data_set(split_with_a_broken_scan: Path) -> None:
    model = frozen_small_cnn()
    skipping = KermanyOCT(
        split_with_a_broken_scan,
        "test",
        transform=model.preprocessing.eval_transform(),
        on_error="skip",
    )
    message = (
        r"^evaluate\(\): KermanyOCT\(.*\) inside a DataLoader reads with on_error='skip', which "
        r"puts the next readable scan in place of an unreadable one, so that scan would be "
        r"scored twice; pass the KermanyOCT itself"
    )
    for source in (DataLoader(skipping, batch_size=2), Subset(skipping, [0, 1, 2])):
        with pytest.raises(ValueError, match=message.replace("DataLoader", ".*")):
            evaluate(model, source, device="cpu", precision="fp32")


class _NanLogits(nn.Module):
    """NaN for every image: a model whose weights overflowed."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.full((len(inputs), len(CLASSES)), float("nan"))


def test_a_nan_output_is_refused_at_every_scoring_door_not_counted_as_class_0(
    split_with_a_broken_scan: Path,
) -> None:
    logits = _logits(PREDICTED)
    logits[3] = float("nan")
    data = TensorDataset(logits, torch.tensor(TARGETS))
    message = r"^evaluate\(\): the model's output for image 3 is NaN or infinite \(1 of 10 images\)"
    with pytest.raises(ValueError, match=message):
        evaluate(_model(), data, device="cpu")
    linear = Classifier(nn.Sequential(nn.Linear(4, 4), nn.LogSoftmax(dim=1)), classes=CLASSES)
    trainer = Trainer(linear, device="cpu", progress=False)  # a NaN input gives a NaN output
    with pytest.raises(ValueError, match=r"output for image 3 is NaN or infinite"):
        trainer.evaluate(data)
    files = KermanyOCT(split_with_a_broken_scan, "test", on_error="skip")
    nan_model = Classifier(_NanLogits(), classes=CLASSES, preprocessing=Preprocessing(size=32))
    with pytest.raises(ValueError, match=r"output for '.*\.jpeg' is NaN or infinite"):
        evaluate(nan_model, files, device="cpu")


# --- a data set with its own transform: scored otherwise than the Predictor scores it -----


def _scored_by(door: str, model: Classifier, data: KermanyOCT) -> None:
    trainer = Trainer(model, batch_size=4, device="cpu", progress=False)
    if door == "evaluate":
        evaluate(model, data, device="cpu")
    elif door == "calibrate":
        calibrate(model, data, device="cpu")
    elif door == "Trainer.evaluate":
        trainer.evaluate(data)
    else:
        trainer.fit(data, data)  # the validation data (the training data may augment)


@pytest.mark.parametrize("door", ["evaluate", "calibrate", "Trainer.evaluate", "Trainer.fit"])
def test_scoring_data_with_its_own_transform_warns_that_the_predictor_differs(
    make_tree: Callable[..., Path], door: str
) -> None:
    root = make_tree({"val/CNV": ["CNV-1-1.png", "CNV-2-1.png"], "val/DME": ["DME-3-1.png"]})
    model = tiny_cnn(size=32)
    own = KermanyOCT(root, "val", transform=Preprocessing(size=48).eval_transform())
    with pytest.warns(UserWarning, match=r"own transform, not the model's preprocessing \(size 32"):
        _scored_by(door, model, own)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _scored_by(door, model, KermanyOCT(root, "val"))  # the model's own: nothing to say
        same = KermanyOCT(root, "val", transform=model.preprocessing.eval_transform())
        _scored_by(door, model, same)
    assert not [w for w in caught if "own transform" in str(w.message)]


def test_the_own_transform_warning_points_at_the_callers_line(
    make_tree: Callable[..., Path],
) -> None:
    root = make_tree({"val/CNV": ["CNV-1-1.png"], "val/DME": ["DME-3-1.png"]})
    own = KermanyOCT(root, "val", transform=Preprocessing(size=48).eval_transform())
    model = tiny_cnn(size=32)
    trainer = Trainer(model, batch_size=4, device="cpu", progress=False, max_epochs=1)
    for call in (
        lambda: evaluate(model, own, device="cpu"),
        lambda: trainer.evaluate(own),
        lambda: trainer.fit(own, own),
    ):
        with pytest.warns(UserWarning, match="own transform") as caught:
            call()
        assert {w.filename for w in caught if "own transform" in str(w.message)} == {__file__}


# --- targets that are not class indices ---------------------------------------------------


class _NamedTargets(torch.utils.data.Dataset[tuple[torch.Tensor, str]]):
    """Prepared inputs labelled by class name, not index."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        return torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(index)), "CNV"


@pytest.mark.parametrize(
    ("model", "classes"),
    [(tiny_cnn(size=32), None), (tiny_cnn(size=32).network, CLASSES)],
    ids=["classifier", "plain module"],
)
@pytest.mark.parametrize("as_loader", [False, True], ids=["data set", "DataLoader"])
def test_class_names_as_targets_are_refused_in_one_line(
    model: nn.Module, classes: tuple[str, ...] | None, as_loader: bool
) -> None:
    data: object = DataLoader(_NamedTargets(), batch_size=2) if as_loader else _NamedTargets()
    with pytest.raises(TypeError, match=r"targets must be class indices .*classes\.index"):
        evaluate(model, data, classes=classes, device="cpu", precision="fp32")  # type: ignore[arg-type]
