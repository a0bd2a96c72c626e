"""What a network must return: class scores (N, C), refused otherwise in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import GoogLeNetOutputs, InceptionOutputs

from retinalnet import Predictor, SyntheticOCT
from retinalnet._core.model_outputs import are_log_probabilities, class_scores
from retinalnet.models import Classifier
from retinalnet.training import evaluate
from retinalnet.transforms import Preprocessing

LOGITS = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, -3.0, 1.0]])


@pytest.mark.parametrize(
    "outputs",
    [LOGITS, torch.log_softmax(LOGITS, dim=1), LOGITS.double(), torch.zeros(0, 4)],
    ids=["logits", "log-probabilities", "float64", "empty batch"],
)
def test_class_scores_are_returned_as_they_are(outputs: torch.Tensor) -> None:
    assert class_scores(outputs, 4) is outputs


@pytest.mark.parametrize(
    ("outputs", "num_classes", "error", "match"),
    [
        ((LOGITS, LOGITS), 4, TypeError, r"returned a tuple of 2 \(a float32 tensor \(2, 4\)"),
        (
            {"logits": LOGITS, "aux": LOGITS},
            4,
            TypeError,
            r"a dict with keys \['logits', 'aux'\].*its \.logits",
        ),
        (
            GoogLeNetOutputs(LOGITS, LOGITS, LOGITS),
            4,
            TypeError,
            r"GoogLeNetOutputs \(fields logits, aux_logits2, aux_logits1\).*aux_logits=False",
        ),
        (InceptionOutputs(LOGITS, LOGITS), 4, TypeError, r"InceptionOutputs.*aux_logits=False"),
        (LOGITS[:, :, None, None], 4, ValueError, r"\(2, 4, 1, 1\).*torch\.flatten\(x, 1\)"),
        (LOGITS[:, 0], 2, ValueError, r"one score per image.*two logits"),
        (LOGITS[:, :1], 2, ValueError, r"one score per image.*nn\.Linear\(in_features, 2\)"),
        (LOGITS[:, 0], 4, ValueError, r"one score per image, not class scores \(N, 4\)"),
        (LOGITS[:, :3], 4, ValueError, r"3 scores per image for 4 classes"),
        (torch.cat([LOGITS, LOGITS[:, :1]], 1), 4, ValueError, r"5 scores per image for 4"),
        (LOGITS.argmax(1, keepdim=True).expand(2, 4), 4, ValueError, r"int64 tensor"),
        (torch.softmax(LOGITS, 1), 4, ValueError, r"probabilities.*remove the Softmax"),
        (
            torch.softmax(LOGITS, 1).bfloat16(),
            4,
            ValueError,
            r"returned probabilities",
        ),
    ],
    ids=[
        "tuple",
        "dict",
        "GoogLeNetOutputs",
        "InceptionOutputs",
        "N-C-1-1",
        "one logit (N,)",
        "one logit (N, 1)",
        "one score for 4 classes",
        "3 of 4",
        "5 of 4",
        "integers",
        "softmax",
        "softmax bf16",
    ],
)
def test_other_outputs_are_refused_in_one_line(
    outputs: object, num_classes: int, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as raised:
        class_scores(outputs, num_classes, model_name="MyNet")

    message = str(raised.value)
    assert message.startswith("MyNet returned ")
    assert "\n" not in message


def test_without_the_number_of_classes_the_columns_are_not_counted() -> None:
    assert class_scores(LOGITS[:, :3], None) is not None
    with pytest.raises(ValueError, match="probabilities"):
        class_scores(torch.softmax(LOGITS, 1), None)


def test_log_probabilities_are_told_from_logits() -> None:
    assert are_log_probabilities(torch.log_softmax(LOGITS, dim=1))
    assert not are_log_probabilities(LOGITS)
    assert not are_log_probabilities(torch.zeros(0, 4))


# --- the prediction doors: Predictor, evaluate, ONNX export -------------------------------


def _classifier(ending: torch.nn.Module, outputs: int = 4) -> Classifier:
    torch.manual_seed(0)
    network = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, outputs),
        ending,
    )
    return Classifier(
        network, classes=("CNV", "DME", "DRUSEN", "NORMAL"), preprocessing=Preprocessing(size=32)
    )


_WRONG = [
    (torch.nn.Softmax(dim=1), 4, r"probabilities.*Softmax"),
    (torch.nn.Identity(), 3, r"3 scores per image for 4 classes"),
    (torch.nn.Identity(), 5, r"5 scores per image for 4 classes"),
]


@pytest.mark.parametrize(("ending", "outputs", "match"), _WRONG, ids=["softmax", "3", "5"])
def test_the_prediction_doors_refuse_what_is_not_class_scores(
    ending: torch.nn.Module, outputs: int, match: str
) -> None:
    # a Softmax network's probabilities were softmaxed again (65% shown as 36%), 3 outputs
    # for 4 classes never named the fourth, 5 outputs gave a phantom class
    model = _classifier(ending, outputs)
    scan = SyntheticOCT(1, shape=(40, 36)).image(0)
    predictor = Predictor(model, device="cpu", precision="fp32")
    for door in (lambda: predictor.topk(scan), lambda: predictor.predict_proba([scan, scan])):
        with pytest.raises(ValueError, match=match):
            door()
    data = SyntheticOCT(2, shape=(40, 36))
    with pytest.raises(ValueError, match=match):
        evaluate(model, data, device="cpu", precision="fp32")


def test_logits_and_log_probabilities_predict_alike() -> None:
    scan = SyntheticOCT(1, shape=(40, 36)).image(0)
    logits = Predictor(_classifier(torch.nn.Identity()), device="cpu", precision="fp32")
    log_softmax = Predictor(_classifier(torch.nn.LogSoftmax(dim=1)), device="cpu", precision="fp32")
    assert torch.allclose(logits.predict_proba([scan]), log_softmax.predict_proba([scan]))


def test_an_onnx_export_refuses_a_network_returning_probabilities(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    from retinalnet.export import to_onnx

    with pytest.raises(ValueError, match=r"probabilities.*Softmax"):
        to_onnx(_classifier(torch.nn.Softmax(dim=1)), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_what_came_back_is_named_with_its_article() -> None:
    from collections import OrderedDict

    with pytest.raises(TypeError, match=r"returned an OrderedDict with keys \['logits'\]"):
        class_scores(OrderedDict(logits=LOGITS), 4)
