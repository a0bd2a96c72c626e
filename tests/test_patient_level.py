"""Patient-level results: a patient's scans averaged into one diagnosis per label."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from retinalnet.cli import main
from retinalnet.datasets import KermanyOCT
from retinalnet.metrics import classification_report, patient_level
from retinalnet.models import Classifier
from retinalnet.training import evaluate
from retinalnet.transforms import Preprocessing

CLASSES = ["CNV", "DME", "DRUSEN", "NORMAL"]

# patient "7": two CNV scans, averaged to [0.4, 0.35, 0.15, 0.1]: right (one scan alone is not)
# patient "8": a DME and a NORMAL scan: two groups, both right
# two scans without an id: a patient each, one right and one wrong
# patient "9": a NORMAL scan tied with CNV: the first class wins, wrong
PROBABILITIES = np.array(
    [
        [0.6, 0.2, 0.1, 0.1],
        [0.2, 0.5, 0.2, 0.1],
        [0.1, 0.7, 0.1, 0.1],
        [0.1, 0.1, 0.1, 0.7],
        [0.3, 0.2, 0.4, 0.1],
        [0.5, 0.1, 0.3, 0.1],
        [0.4, 0.1, 0.1, 0.4],
    ]
)
TARGETS = [0, 0, 1, 3, 2, 2, 3]
PATIENTS = ["7", "7", "8", "8", None, None, "9"]


def test_patient_level_by_hand() -> None:
    report = patient_level(PROBABILITIES, TARGETS, PATIENTS, classes=CLASSES)

    assert report.patients is not None
    assert report.patients.to_dict() == {
        "scans": 7,
        "patients": 5,  # 7, 8, 9 and the two scans without an id
        "groups": 6,
        "mixed": 1,  # patient 8
        "without_id": 2,
    }
    assert report.num_samples == 6
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.confusion_matrix.tolist() == [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [1, 0, 1, 0],
        [1, 0, 0, 1],
    ]
    per_scan = classification_report(TARGETS, PROBABILITIES)
    assert per_scan.accuracy == pytest.approx(4 / 7)  # patient 7's second scan counts here


def test_a_groups_probabilities_are_the_mean_of_its_scans() -> None:
    report = patient_level(PROBABILITIES[:2], [0, 0], ["7", "7"], classes=CLASSES)
    # one group with probabilities [0.4, 0.35, 0.15, 0.1]: right, 40 % sure
    assert report.num_samples == 1
    assert report.accuracy == 1.0
    assert report.ece == pytest.approx(0.6)


def test_patient_level_text_and_json() -> None:
    report = patient_level(PROBABILITIES, TARGETS, PATIENTS, classes=CLASSES)
    lines = str(report).splitlines()
    assert lines[0].startswith("patients 5  groups 6  scans 7  accuracy 66.67%  ECE ")
    assert lines[1] == (
        "(1 patient(s) have scans of more than one label: each (patient, label) group counts once)"
    )
    data = json.loads(report.to_json())
    assert data["num_samples"] == 6
    assert data["patients"]["mixed"] == 1
    assert classification_report(TARGETS, PROBABILITIES).to_dict()["patients"] is None


def test_patient_level_intervals_are_wilson_intervals_of_the_groups() -> None:
    # three patients, 20 scans each, all right: 3 of 3 groups, not 60 of 60 scans
    targets = [0] * 20 + [1] * 20 + [0] * 20
    probabilities = np.tile([0.2, 0.8], (60, 1))
    probabilities[np.array(targets) == 0] = [0.8, 0.2]
    ids = ["1"] * 20 + ["2"] * 20 + ["3"] * 20

    report = patient_level(
        probabilities, targets, ids, classes=["CNV", "NORMAL"], urgent=None, bootstrap=40
    )

    # was: (1.0, 1.0), from a bootstrap of groups that are all right; Wilson: 3 / (3 + z**2)
    z2 = 1.959964**2
    assert report.intervals["accuracy"] == pytest.approx((3 / (3 + z2), 1.0))
    assert report.intervals["sensitivity[CNV]"] == pytest.approx((2 / (2 + z2), 1.0))
    assert report.interval_methods["accuracy"] == "wilson"
    assert "auc[CNV]" in report.no_interval  # perfectly separated: no "(1.000-1.000)"
    lines = str(report).splitlines()
    assert lines[0].startswith("patients 3  groups 3  scans 60  accuracy 100.00% (43.85%-100.00%)")
    assert lines[1].startswith("(95% intervals: Wilson score for proportions")


def test_patient_level_refuses_ids_that_do_not_match_the_scans() -> None:
    with pytest.raises(ValueError, match="got 2 ids for 7 scans"):
        patient_level(PROBABILITIES, TARGETS, ["7", "8"])


class _Brightness(nn.Module):
    """Scores from the mean brightness of the image: fixed, so the test needs no training."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=False)[:, None]
        return torch.log_softmax(mean * torch.tensor([1.0, -1.0, 0.5, -0.5]), dim=1)


@pytest.fixture
def tree(make_tree: Callable[..., Path]) -> Path:
    # patient 42 is written 0042 once: the same patient; it has CNV and NORMAL scans
    files: Mapping[str, Sequence[str]] = {
        "test/CNV": ["CNV-0042-1.jpeg", "CNV-42-2.jpeg", "CNV-7-1.jpeg"],
        "test/DME": ["DME-8-1.jpeg"],
        "test/DRUSEN": ["drusen scan.jpeg"],
        "test/NORMAL": ["NORMAL-42-3.jpeg"],
    }
    return make_tree(files)


def _model() -> Classifier:
    return Classifier(_Brightness(), classes=CLASSES, preprocessing=Preprocessing(size=32))


def test_evaluate_keeps_each_images_patient_for_the_patient_report(tree: Path) -> None:
    result = evaluate(_model(), KermanyOCT(tree, "test"), device="cpu", precision="fp32")

    assert result.patient_ids is not None
    order = [Path(path).name for path, _ in KermanyOCT(tree, "test").samples]
    ids = dict(zip(order, result.patient_ids, strict=True))
    # kept as written (so they join with the data set's); 0042 is 42 in the grouping
    assert result.patient_ids == tuple(KermanyOCT(tree, "test").patient_ids)
    assert (ids["CNV-0042-1.jpeg"], ids["CNV-42-2.jpeg"], ids["NORMAL-42-3.jpeg"]) == (
        "0042",
        "42",
        "42",
    )
    assert ids["drusen scan.jpeg"] is None
    report = result.patient_report()
    assert report.patients is not None
    assert report.patients.to_dict() == {
        "scans": 6,
        "patients": 4,  # 42, 7, 8 and the scan without an id
        "groups": 5,  # 42 twice (CNV, NORMAL)
        "mixed": 1,
        "without_id": 1,
    }


def test_a_result_without_patients_says_so() -> None:
    data = torch.utils.data.TensorDataset(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    result = evaluate(_model(), data, device="cpu", precision="fp32")
    assert result.patient_ids is None
    with pytest.raises(ValueError, match="no per-image probabilities or patient ids"):
        result.patient_report()


def test_the_evaluate_command_prints_and_writes_the_patient_report(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retinalnet.checkpoint import save_checkpoint

    # a registered architecture, so the checkpoint rebuilds by name
    from retinalnet.models import small_cnn

    checkpoint = save_checkpoint(tmp_path / "m.pt", small_cnn(preprocessing=Preprocessing(size=32)))
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(tree), "-q"]

    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "per patient (mean probability of each patient's scans):" in printed
    assert "patients 4  groups 5  scans 6  accuracy" in printed

    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["patient_report"]["patients"]["groups"] == 5
    assert data["patient_report"]["num_samples"] == 5
    assert data["num_samples"] == 6


def test_an_unreadable_scan_of_a_skipping_data_set_gives_its_patient_nothing(tree: Path) -> None:
    """Its neighbour used to be scored in its place, under its patient: patient 5 appeared,
    with patient 7's scan."""
    broken = tree / "test" / "CNV" / "CNV-5-1.jpeg"  # sorted between CNV-42-2 and CNV-7-1
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    expected = evaluate(
        _model(), KermanyOCT(tree, "test").without([broken]), device="cpu", precision="fp32"
    )

    result = evaluate(
        _model(), KermanyOCT(tree, "test", on_error="skip"), device="cpu", precision="fp32"
    )

    assert result.patient_ids == expected.patient_ids
    assert result.patient_ids is not None
    assert "5" not in result.patient_ids
    assert result.patient_report().to_dict() == expected.patient_report().to_dict()


@pytest.mark.parametrize("form", ["log-probabilities", "logits"])
def test_log_probabilities_or_logits_are_averaged_as_the_probabilities_they_are(
    form: str,
) -> None:
    # one patient, two CNV scans: a sure CNV and an unsure DME; their mean says CNV
    probabilities = np.array([[0.98, 0.01, 0.005, 0.005], [1e-9, 0.6, 0.4 - 2e-9, 1e-9]])
    scores = np.log(probabilities) + (2.0 if form == "logits" else 0.0)

    expected = patient_level(probabilities, [0, 0], ["1", "1"])
    got = patient_level(scores, [0, 0], ["1", "1"])
    assert expected.accuracy == 1.0
    assert got.accuracy == 1.0  # was 0.0: the mean of log-probabilities (another rule)
    if form == "logits":  # no distribution the model was said to give: as per scan
        assert math.isnan(got.ece)
    else:
        assert got.ece == pytest.approx(expected.ece)


def test_probabilities_that_miss_a_sum_of_1_a_little_are_averaged_as_given() -> None:
    # rounded to two decimals (a spreadsheet): the rows sum to 1.00 and 1.01
    probabilities = np.array([[0.71, 0, 0.29, 0], [0, 0.12, 0.52, 0.37]])
    report = patient_level(probabilities, [2, 2], ["7", "7"], urgent=None)
    # the mean is DRUSEN 0.405 against CNV 0.355: was CNV, after a softmax of probabilities
    assert report.confusion_matrix[2].tolist() == [0, 0, 1, 0]
    logits = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    bf16 = torch.softmax(logits, dim=1).to(torch.bfloat16).double().numpy()
    assert not np.allclose(bf16.sum(axis=1), 1.0, atol=1e-3)  # off by up to about 3e-3
    targets = np.arange(50) % 4
    scaled = bf16 / bf16.sum(axis=1, keepdims=True)
    ids = [str(i // 2) for i in range(50)]
    # ranked as given (as scikit-learn ranks each column), not rescaled: within rounding of
    # the rescaled rows' AUC, far from what a softmax of the probabilities would give
    as_given = patient_level(bf16, targets, ids).referral.auc  # type: ignore[union-attr]
    assert as_given == pytest.approx(
        patient_level(scaled, targets, ids).referral.auc,  # type: ignore[union-attr]
        abs=0.01,
    )


def test_patient_level_refuses_urgent_classes_that_are_not_classes() -> None:
    with pytest.raises(ValueError, match=r"^urgent class 'cnv' is not one of CNV, DME, DRUSEN"):
        patient_level(PROBABILITIES, TARGETS, PATIENTS, urgent=["cnv", "dme"])
    # left at the default, a model without DME quietly has no referral view
    two = PROBABILITIES[:, [0, 3]]
    report = patient_level(two, [0, 0, 0, 1, 1, 1, 1], PATIENTS, classes=["CNV", "NORMAL"])
    assert report.referral is None


class _NotAvailable:
    """Stands for ``pandas.NA``: its comparisons are NA, whose truth is ambiguous."""

    def __ne__(self, other: object) -> bool:
        raise TypeError("boolean value of NA is ambiguous")

    def __hash__(self) -> int:
        return 0


@pytest.mark.parametrize("missing", [math.nan, np.float32("nan"), "", _NotAvailable()])
def test_an_empty_cell_read_by_pandas_is_no_patient_id(missing: object) -> None:
    # was: every NaN id one patient (patients=6 became 5 here, without_id 0)
    ids = [missing if patient is None else patient for patient in PATIENTS]

    report = patient_level(PROBABILITIES, TARGETS, ids)

    assert report.patients == patient_level(PROBABILITIES, TARGETS, PATIENTS).patients
    assert report.patients is not None
    assert report.patients.without_id == 2


# one CNV patient, four scans: each class gets the same four probabilities, in another order,
# so the means tie exactly; a floating-point sum in scan order made CNV 0.24999999999999997
ROTATED = [[0.5, 0.09, 0.06, 0.35], [0.35, 0.5, 0.09, 0.06], [0.06, 0.35, 0.5, 0.09]]


@pytest.mark.parametrize(
    "scans",
    [
        [*ROTATED, [0.09, 0.06, 0.35, 0.5]],
        [[0.1, 0.7, 0.2, 0.0], [0.2, 0.1, 0.7, 0.0], [0.7, 0.2, 0.1, 0.0]],
    ],
)
def test_a_tie_between_a_patients_means_goes_to_the_lower_class_index(
    scans: list[list[float]],
) -> None:
    report = patient_level(scans, [0] * len(scans), ["A"] * len(scans), urgent=None)
    # the tie rule: CNV (index 0) is predicted, right; each column sums to 1, so the
    # patient is 1 / scans sure (0.25 of four), and the ECE is the rest
    assert report.confusion_matrix[0].tolist() == [1, 0, 0, 0]
    assert report.accuracy == 1.0
    assert report.ece == pytest.approx(1 - 1 / len(scans))


def test_a_patients_confidence_on_a_bin_edge_is_binned_at_its_scans_precision() -> None:
    # float16 rows that miss a sum of 1 are rescaled: 0.6 becomes 0.60002, still 0.6 in
    # float16, so in (0.533, 0.6] (bin 8 of 15), right; 0.62 in bin 9, wrong:
    # ECE = (|1 - 0.6| + |0 - 0.62|) / 2 = 0.51 (0.11 with both in bin 9)
    rows = np.array([[0.6, 0.25, 0.15], [0.62, 0.2, 0.18]], dtype=np.float16)
    classes = ["CNV", "DME", "NORMAL"]
    per_scan = classification_report([0, 1], rows, classes=classes, urgent=None).ece
    assert per_scan == pytest.approx(0.51, abs=1e-3)
    for ids in (["7", "8"], ["7", "7", "8", "8"]):
        scans = np.repeat(rows, len(ids) // 2, axis=0)
        targets = np.repeat([0, 1], len(ids) // 2)
        report = patient_level(scans, targets, ids, classes=classes, urgent=None)
        assert report.ece == pytest.approx(per_scan)


# --- one rule for patient ids, whichever door they come through ------------------------------

SIX_TARGETS = [0, 0, 1, 2, 3, 3]  # CNV, CNV, DME, DRUSEN, NORMAL, NORMAL


class _Scans(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Six 32-px scans whose patients are the ``patient_ids`` given, as a data set with
    ``patient_ids`` (evaluate reads them as it reads KermanyOCT's)."""

    classes = CLASSES

    def __init__(self, patient_ids: Sequence[object]) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(6, 3, 32, 32, generator=generator)
        self.patient_ids = list(patient_ids)

    def __len__(self) -> int:
        return len(SIX_TARGETS)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], SIX_TARGETS[index]


ID_CASES = {
    # a pandas column after fillna(""): four scans of three labels, each a patient of its own
    # (was: all patient "0", one mixed patient, without_id 0)
    "empty": (["", "", "", "7", "7", ""], (5, 6, 1, 4)),
    # an empty cell read by pandas (was: AttributeError after the whole pass)
    "nan": (["1", "1", math.nan, "2", "2", "3"], (4, 5, 1, 1)),
    # a numeric column read by pandas (was: AttributeError after the whole pass)
    "int": ([4370501, 4370501, 17, 17, 23, 24], (4, 5, 1, 0)),
    # leading zeros and whole numbers: two patients, 200 and 7
    "zeros": (["0200", 200, "200", np.int64(7), "007", 7.0], (2, 4, 2, 0)),
}


@pytest.mark.parametrize("case", list(ID_CASES))
def test_every_door_groups_patient_ids_by_one_rule(case: str) -> None:
    from retinalnet.engine import InferenceEngine
    from retinalnet.training._evaluation import run_evaluation

    ids, (patients, groups, mixed, without_id) = ID_CASES[case]

    result = evaluate(_model(), _Scans(ids), device="cpu", precision="fp32")
    engine = InferenceEngine(_model(), device="cpu", precision="fp32")
    loader = engine.loader(_Scans(ids), batch_size=4, num_workers=0)
    run = run_evaluation(engine, loader, loss=nn.NLLLoss(), classes=CLASSES, patient_ids=ids)

    assert result.patient_ids == run.patient_ids == tuple(ids)  # as given: they join
    assert result.probabilities is not None
    direct = patient_level(result.probabilities, result.targets, ids, classes=CLASSES)
    assert direct.patients is not None
    assert direct.patients.to_dict() == {
        "scans": 6,
        "patients": patients,
        "groups": groups,
        "mixed": mixed,
        "without_id": without_id,
    }
    assert result.patient_report().to_dict() == direct.to_dict()
    assert run.patient_report().to_dict() == direct.to_dict()


class _Unreached(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the model ran: the ids were checked after the pass")


def test_an_id_that_cannot_name_a_patient_is_refused_before_the_model_runs() -> None:
    model = Classifier(_Unreached(), classes=CLASSES, preprocessing=Preprocessing(size=32))
    ids = [["7"], "7", "8", "8", "9", "9"]
    message = r"^evaluate\(\): patient id \['7'\] \(scan 0\) is a list, which cannot name"
    with pytest.raises(TypeError, match=message):
        evaluate(model, _Scans(ids), device="cpu", precision="fp32")
    with pytest.raises(TypeError, match=r"patient id \['7'\] \(scan 0\) is a list"):
        patient_level(np.full((6, 4), 0.25), SIX_TARGETS, ids)


def test_patient_level_on_the_data_sets_own_ids_gives_the_patient_report(tree: Path) -> None:
    data = KermanyOCT(tree, "test")
    assert "0042" in data.patient_ids  # CNV-0042-1.jpeg, patient 42 as CNV-42-2.jpeg
    result = evaluate(_model(), data, device="cpu", precision="fp32")

    direct = patient_level(result.probabilities, result.targets, data.patient_ids)

    # was: 5 patients and 6 groups here against 4 and 5 in the report (0042 apart from 42)
    assert direct.to_dict() == result.patient_report().to_dict()
    assert direct.patients is not None
    assert (direct.patients.patients, direct.patients.groups) == (4, 5)


def test_the_report_says_how_many_scans_have_no_patient_id() -> None:
    text = patient_level(PROBABILITIES, TARGETS, PATIENTS, classes=CLASSES).to_text()
    assert (
        "(2 of 7 scans have no patient id: each counts as a patient of its own, so if some "
        "are one patient's scans, that patient counts several times and the intervals are "
        "too narrow)"
    ) in text.splitlines()
    one = ["7", "7", "8", "8", None, "10", "9"]
    assert "(1 of 7 scans has no patient id:" in str(patient_level(PROBABILITIES, TARGETS, one))
    named = [f"p{i}" if patient is None else patient for i, patient in enumerate(PATIENTS)]
    assert "no patient id" not in str(patient_level(PROBABILITIES, TARGETS, named))
    # said without the headline too (the line the CLI leaves out after the per-scan result)
    report = patient_level(PROBABILITIES, TARGETS, PATIENTS, classes=CLASSES)
    assert "(2 of 7 scans have no patient id" in report.to_text(headline=False)


def test_the_evaluate_command_groups_as_patient_level_and_says_which_scans_have_no_id(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retinalnet.checkpoint import load_checkpoint, save_checkpoint
    from retinalnet.models import small_cnn

    checkpoint = save_checkpoint(tmp_path / "m.pt", small_cnn(preprocessing=Preprocessing(size=32)))
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(tree), "--precision"]
    argv += ["fp32", "-q"]
    data = KermanyOCT(tree, "test")
    result = evaluate(load_checkpoint(checkpoint).build_model(), data, precision="fp32")
    direct = patient_level(result.probabilities, result.targets, data.patient_ids).to_dict()

    assert main([*argv, "--json"]) == 0
    written = json.loads(capsys.readouterr().out)["patient_report"]
    for key in ("patients", "num_samples", "accuracy", "confusion_matrix", "per_class"):
        assert written[key] == direct[key], key
    assert main(argv) == 0
    assert "(1 of 6 scans has no patient id: each counts as a patient of its own" in (
        capsys.readouterr().out
    )
