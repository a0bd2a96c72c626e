"""Objects given where the library takes another (audit AJ, F3, F6 and F7): each refused in
one line naming the argument, what was given and the fix, before it is used (they were
Python's "'int' object has no attribute 'size'", or a path read letter by letter)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from retinalnet.engine import InferenceEngine
from retinalnet.export import check_parity
from retinalnet.models import create_model, small_cnn
from retinalnet.predictor import Predictor
from retinalnet.report import render_html_report, write_html_report
from retinalnet.tensor_preprocessing import TensorPreprocessing, read_encoded
from retinalnet.transforms import Preprocessing


def _model() -> object:
    return small_cnn(width=4, hidden=8, preprocessing=Preprocessing(size=32))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: small_cnn(preprocessing=64),
            r"^preprocessing must be a retinalnet.transforms.Preprocessing or None, got int 64; "
            r"pass preprocessing=Preprocessing\(size=64\)$",
        ),
        (
            lambda: create_model("resnet18", weights=None, preprocessing={"size": 64}),
            r"got dict \{'size': 64\}; pass preprocessing=Preprocessing.from_dict\(settings\)$",
        ),
        (
            lambda: InferenceEngine("best.pt"),  # type: ignore[arg-type]
            r"^InferenceEngine needs a torch nn.Module .*, got str 'best.pt'; .*"
            r"Predictor.from_checkpoint\(path\)$",
        ),
        (
            lambda: InferenceEngine(_model(), preprocessing=64),  # type: ignore[arg-type]
            r"^preprocessing must be a retinalnet.transforms.Preprocessing or None, got int 64",
        ),
        (
            lambda: read_encoded("scan.jpeg", None),  # type: ignore[arg-type]
            r"^preprocessing must be a retinalnet.transforms.Preprocessing, got NoneType None; "
            r"pass the model's \(preprocessing=model.preprocessing\)",
        ),
        (
            lambda: read_encoded(None, Preprocessing(size=32)),  # type: ignore[arg-type]
            r"^read_encoded takes a file path \(str or os.PathLike\), got a NoneType",
        ),
        (
            lambda: TensorPreprocessing(32),  # type: ignore[arg-type]
            r"^preprocessing must be a retinalnet.transforms.Preprocessing, got int 32; pass "
            r"preprocessing=Preprocessing\(size=32\)$",
        ),
        (
            lambda: render_html_report(None),  # type: ignore[arg-type]
            r"^render_html_report takes an EvaluationResult as result, got NoneType None; get "
            r"one from retinalnet.training.evaluate\(model, data\)",
        ),
    ],
)
def test_an_object_of_the_wrong_type_is_refused_in_one_line(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        call()


def test_write_html_report_refuses_a_result_that_is_not_one_before_writing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.html"
    with pytest.raises(TypeError, match=r"^write_html_report takes an EvaluationResult"):
        write_html_report(path, None)  # type: ignore[arg-type]
    assert not path.exists()


@pytest.mark.parametrize("images", ["scan.jpeg", Path("scan.jpeg")], ids=["str", "Path"])
def test_check_parity_refuses_one_path_for_its_list_of_images(images: object) -> None:
    # before any work: the ONNX file is not even read ("cannot read image 'd'" before)
    with pytest.raises(TypeError, match=r"^check_parity takes a list of images, got a"):
        check_parity(_model(), "missing.onnx", images=images)  # type: ignore[arg-type]


@pytest.mark.parametrize("images", ["scan.jpeg", Path("scan.jpeg")])
def test_to_onnx_refuses_one_path_before_exporting(images: object, tmp_path: Path) -> None:
    # was: the graph exported first, then "check_parity ... cannot read image 's'"
    from retinalnet.export import to_onnx

    with pytest.raises(TypeError, match=r"^to_onnx takes a list of images, got a"):
        to_onnx(_model(), tmp_path / "model.onnx", images=images)  # type: ignore[arg-type]
    assert not (tmp_path / "model.onnx").exists()


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    path = tmp_path / "scan.png"
    Image.new("L", (40, 40), 128).save(path)
    return path


@pytest.mark.parametrize(
    ("method", "written"), [("topk", "{}"), ("predict_proba", "[{}]"), ("gradcam", "{}")]
)
def test_an_open_file_is_refused_naming_its_path_and_what_works(
    scan: Path, method: str, written: str
) -> None:
    predictor = Predictor(_model(), device="cpu")  # type: ignore[arg-type]
    with scan.open("rb") as file:
        path = written.format(repr(str(scan)))
        opened = written.format("Image.open(file)")
        with pytest.raises(TypeError) as refused:
            getattr(predictor, method)(file)
    text = str(refused.value)
    assert f"{method} does not read open files, got an open file {str(scan)!r}" in text
    assert f"{method}({path})" in text
    assert f"{method}({opened})" in text
    assert "list(images)" not in text  # the advice that gave lines of bytes
    # and what it advises works
    getattr(predictor, method)(str(scan) if method != "predict_proba" else [str(scan)])
    with Image.open(scan) as image:
        getattr(predictor, method)(image if method != "predict_proba" else [image])


def test_an_open_file_without_a_name_is_refused_too() -> None:
    predictor = Predictor(_model(), device="cpu")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got an open file \(BytesIO\); pass the file's path"):
        predictor.topk(io.BytesIO(b"\x89PNG"))
