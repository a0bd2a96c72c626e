"""ONNX export: probabilities out, metadata in, parity checked, torch-free prediction.

Exports are slow (about 5 s each on an idle core, 20 to 40 s on a loaded machine), so this
module exports twice: once through the command line (a checkpoint, shared by most tests) and
once from a model in memory with a calibration temperature.
"""

from __future__ import annotations

import copy
import errno
import json
import logging
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from _checkpoint_swap import rename_over, replaced_after_load, sha256, two_checkpoints
from retinalnet import Predictor
from retinalnet._core.files import file_digest
from retinalnet._core.images import warn_of_full_scale_images
from retinalnet.checkpoint import load_checkpoint, save_checkpoint
from retinalnet.cli import main
from retinalnet.datasets import UnreadableImageError, find_images
from retinalnet.export import (
    OPSET,
    PARITY_TOLERANCE,
    OnnxExportError,
    OnnxPredictor,
    ParityError,
    _export,
    check_parity,
    preprocessing_steps,
    read_metadata,
    synthetic_images,
    to_onnx,
)
from retinalnet.export._parity import _synthetic_for
from retinalnet.models import Classifier, ModelSpec, _registry, create_model, register_model
from retinalnet.models._small_cnn import small_cnn_network
from retinalnet.transforms import Preprocessing

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kermany-sample"


def _model(seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    return create_model("small_cnn", weights=None, preprocessing=Preprocessing(size=32))


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight real test scans, two per class; eight synthetic PNG files without the sample."""
    if SAMPLE.is_dir():
        paths = find_images(SAMPLE / "test")
        return [paths[i * len(paths) // 8] for i in range(8)]
    folder = tmp_path_factory.mktemp("scans")
    paths = [folder / f"scan-{index}.png" for index in range(8)]
    for path, image in zip(paths, synthetic_images(8), strict=True):
        image.save(path)
    return paths


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, scans: list[Path]
) -> tuple[Classifier, Path, Path, str]:
    """``retinalnet export`` of a small CNN checkpoint: (model, checkpoint, onnx file, stdout)."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("export")
    model = _model()
    checkpoint = save_checkpoint(folder / "best.pt", model, epoch=3)
    out = folder / "model.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(
            ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--images"]
            + [str(p) for p in scans]
        )
    assert status == 0
    return model, checkpoint, out, printed.getvalue()


def test_the_command_reports_the_parity_it_checked(
    exported: tuple[Classifier, Path, Path, str],
) -> None:
    _, _, out, printed = exported
    assert printed.startswith(f"wrote {out} (ONNX opset {OPSET}); parity with PyTorch on 8 ")
    assert "tolerance 0.0001" in printed


def test_the_graph_has_a_dynamic_batch_and_probabilities_out(
    exported: tuple[Classifier, Path, Path, str],
) -> None:
    proto = onnx.load(str(exported[2]))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == OPSET
    (graph_input,) = proto.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "input"
    assert dims[0].dim_param  # symbolic: any batch size
    assert not dims[0].dim_value
    assert [d.dim_value for d in dims[1:]] == [3, 32, 32]
    assert [o.name for o in proto.graph.output] == ["probabilities"]


def test_the_metadata_carries_what_a_consumer_needs(
    exported: tuple[Classifier, Path, Path, str],
) -> None:
    model, checkpoint, out, _ = exported
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["classes"]) == list(model.classes)
    assert Preprocessing.from_dict(json.loads(props["preprocessing"])) == model.preprocessing
    assert json.loads(props["preprocessing_steps"]) == preprocessing_steps(model.preprocessing)
    assert props["arch"] == "small_cnn"
    assert props["checkpoint_sha256"] == file_digest(checkpoint).hex()
    assert float(props["temperature"]) == 1.0
    assert float(props["parity_max_abs_diff"]) <= PARITY_TOLERANCE
    metadata = read_metadata(out)
    assert metadata.classes == model.classes
    assert metadata.preprocessing == model.preprocessing
    assert metadata.opset == OPSET
    assert metadata.parity_images == 8


def test_onnx_prediction_equals_the_torch_predictor_on_the_same_files(
    exported: tuple[Classifier, Path, Path, str], scans: list[Path]
) -> None:
    _, checkpoint, out, _ = exported
    torch_predictor = Predictor.from_checkpoint(checkpoint, device="cpu", precision="fp32")
    onnx_predictor = Predictor.from_onnx(out, batch_size=3)  # batches of 3, 3 and 2
    assert isinstance(onnx_predictor, OnnxPredictor)
    assert onnx_predictor.classes == torch_predictor.classes
    expected = torch_predictor.predict_proba(scans)
    got = onnx_predictor.predict_proba(scans)
    assert got.dtype == torch.float32
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < PARITY_TOLERANCE
    one = onnx_predictor.topk(scans[0], k=2)
    many = onnx_predictor.topk(scans, k=4)
    assert type(one) is type(torch_predictor.topk(scans[0], k=2))
    assert [p.source for p in many] == [str(p) for p in scans]
    for got_one, want in zip(many, torch_predictor.topk(scans, k=4), strict=True):
        assert [c.name for c in got_one.top] == [c.name for c in want.top]
        assert got_one.top[0].probability == pytest.approx(want.top[0].probability, abs=1e-4)
    assert one.to_dict()["source"] == str(scans[0])


def test_a_dicom_volume_gets_the_same_summary_from_the_onnx_model(
    exported: tuple[Classifier, Path, Path, str], tmp_path: Path
) -> None:
    """The deploying page's worked example: predict_volume takes the ONNX predictor."""
    pytest.importorskip("pydicom")
    from _dicom_helpers import scans as synthetic_scans
    from _dicom_helpers import write
    from retinalnet.volume import predict_volume

    _, checkpoint, out, _ = exported
    volume = write(tmp_path / "volume.dcm", synthetic_scans(4))
    torch_predictor = Predictor.from_checkpoint(checkpoint, device="cpu", precision="fp32")
    want = predict_volume(torch_predictor, volume)
    got = predict_volume(Predictor.from_onnx(out), volume)
    assert got.label == want.label
    assert [s.index for s in got.drivers] == [s.index for s in want.drivers]
    difference = np.abs(np.array(got.probabilities) - np.array(want.probabilities)).max()
    assert difference < PARITY_TOLERANCE


def test_onnx_predictor_takes_images_in_memory_and_skips_unreadable_files(
    exported: tuple[Classifier, Path, Path, str], scans: list[Path], tmp_path: Path
) -> None:
    model, _, out, _ = exported
    broken = tmp_path / "broken.jpeg"
    broken.write_bytes(b"not a jpeg")
    predictor = Predictor.from_onnx(out, on_error="skip")
    image = Image.open(scans[1])
    tensor = torch.from_numpy(np.asarray(Image.open(scans[2]).convert("L")).copy())
    results = predictor.topk([scans[0], broken, image, tensor], k=1)
    assert [r.source for r in results] == [str(scans[0]), "<image 2>", "<image 3>"]
    assert [s.source for s in predictor.skipped] == [str(broken)]
    reference = Predictor(model, device="cpu", precision="fp32").topk([image, tensor], k=1)
    assert [r.label for r in results[1:]] == [r.label for r in reference]
    with pytest.raises(OSError, match=r"broken\.jpeg"):
        Predictor.from_onnx(out).topk(broken)
    with pytest.raises(ValueError, match="k must be an int from 1 to 4"):
        predictor.topk(scans[0], k=5)


def test_a_single_unreadable_image_is_raised_and_neither_logged_nor_listed_as_skipped(
    exported: tuple[Classifier, Path, Path, str],
    scans: list[Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As with the torch Predictor: no "skipped" line for a request that failed, and a call
    that raises lists nothing in ``skipped``."""
    predictor = Predictor.from_onnx(exported[2], on_error="skip")
    missing = tmp_path / "missing.jpeg"
    with caplog.at_level(logging.WARNING, logger="retinalnet"):
        predictor.topk([scans[0], missing], k=1)
        assert [s.source for s in predictor.skipped] == [str(missing)]
        with pytest.raises(UnreadableImageError, match=r"missing\.jpeg': no such file"):
            predictor.topk(missing)
        assert predictor.skipped == []
    assert [r.getMessage() for r in caplog.records] == [
        "skipped 1 unreadable image(s) of 2: missing.jpeg (OnnxPredictor.skipped lists them)"
    ]


def test_threads_sharing_one_onnx_predictor_each_get_their_own_answer_or_error(
    exported: tuple[Classifier, Path, Path, str],
    scans: list[Path],
    tmp_path: Path,
) -> None:
    """A web service's request threads share one predictor with on_error="skip": a request
    for a good scan gets its prediction, and one for a bad file an error naming that file
    (it got another request's "cannot read broken-N.jpeg", or an IndexError)."""
    predictor = Predictor.from_onnx(exported[2], on_error="skip")
    images = [Image.open(scan).convert("L") for scan in scans[:3]]  # no decoding: more calls
    alone = [predictor.topk(image, k=1) for image in images]
    requests: list[Image.Image | Path] = []
    for number in range(60):
        broken = tmp_path / f"broken-{number}.jpeg"
        broken.write_bytes(b"not a jpeg")
        requests += [broken, *images]

    def request(image: Image.Image | Path) -> str:
        try:
            prediction = predictor.topk(image, k=1)
        except UnreadableImageError as error:
            return "right file" if Path(error.path or "") == image else f"{image}: {error!r}"
        except Exception as error:  # any other error is a wrong answer too
            return f"{image}: {error!r}"
        if isinstance(image, Path):
            return f"{image}: got a prediction"
        return "right answer" if prediction == alone[images.index(image)] else f"{prediction}"

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads take turns often, so a mix-up shows
    try:
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(request, requests))
    finally:
        sys.setswitchinterval(interval)
    wrong = [outcome for outcome in outcomes if outcome not in ("right file", "right answer")]
    assert wrong == []
    assert outcomes.count("right file") == 60


def test_an_onnx_predictor_can_be_deep_copied_and_pickled(
    exported: tuple[Classifier, Path, Path, str],
    scans: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process pool (multiprocessing, joblib) pickles the predictor; the copy opens the
    same file again, even from another working folder, and gives the same probabilities."""
    (tmp_path / "models").mkdir()
    shutil.copy(exported[2], tmp_path / "models" / "model.onnx")
    monkeypatch.chdir(tmp_path)
    predictor = Predictor.from_onnx("models/model.onnx", batch_size=3, on_error="skip")
    expected = predictor.predict_proba(scans[:4])
    monkeypatch.chdir(tmp_path / "models")  # a relative path found again
    for copied in (copy.deepcopy(predictor), pickle.loads(pickle.dumps(predictor))):
        assert copied.session is not predictor.session
        assert (copied.path, copied.batch_size, copied.on_error) == (
            Path("models/model.onnx"),
            3,
            "skip",
        )
        assert copied.metadata == predictor.metadata
        assert torch.equal(copied.predict_proba(scans[:4]), expected)
    pickled = pickle.dumps(predictor)
    os.utime(tmp_path / "models" / "model.onnx", ns=(0, 0))  # as a new export there would
    with pytest.raises(ValueError, match=r"model\.onnx': the file was changed since the pre"):
        pickle.loads(pickled)
    (tmp_path / "models" / "model.onnx").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.onnx': the file is no longer there"):
        copy.deepcopy(predictor)


@pytest.mark.parametrize("one", ["path", "str", "tensor"])
def test_both_predictors_refuse_one_image_where_predict_proba_takes_a_list(
    exported: tuple[Classifier, Path, Path, str], scans: list[Path], one: str
) -> None:
    model, _, out, _ = exported
    image = {
        "path": scans[0],
        "str": str(scans[0]),  # a str is a sequence: it was read letter by letter
        "tensor": torch.zeros(3, 40, 40),  # a tensor is one too: read row by row
    }[one]
    for predictor in (Predictor(model, device="cpu"), Predictor.from_onnx(out)):
        with pytest.raises(TypeError, match=r"^predict_proba takes a list of images, got a "):
            predictor.predict_proba(image)  # type: ignore[arg-type]
        assert predictor.predict_proba([image]).shape == (1, 4)


@pytest.mark.parametrize("kind", ["numpy array", "generator", "pandas Series"])
def test_both_predictors_tell_topk_of_a_collection_to_take_a_list_as_predict_proba_does(
    exported: tuple[Classifier, Path, Path, str], scans: list[Path], kind: str
) -> None:
    # was: topk read np.array(paths) as one image of shape (3,), a Series as one image
    model, _, out, _ = exported
    paths = [str(scan) for scan in scans[:3]]
    for predictor in (Predictor(model, device="cpu"), Predictor.from_onnx(out)):
        for method in ("topk", "predict_proba"):
            given: Any = {
                "numpy array": lambda: np.array(paths),
                "generator": lambda: (path for path in paths),
                "pandas Series": lambda: pytest.importorskip("pandas").Series(paths),
            }[kind]()
            with pytest.raises(
                TypeError, match=rf"got an? \w+( of 3)?; pass it as a list: {method}"
            ):
                getattr(predictor, method)(given)
        assert len(predictor.topk(list(np.array(paths)))) == 3


def test_onnx_predict_proba_refuses_an_output_that_is_not_finite(
    exported: tuple[Classifier, Path, Path, str],
    scans: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, _, out, _ = exported
    predictor = Predictor.from_onnx(out)
    real = predictor._probabilities

    def with_nan(images: Any) -> Any:
        probabilities, *rest = real(images)
        probabilities[1] = float("nan")
        return probabilities, *rest

    monkeypatch.setattr(predictor, "_probabilities", with_nan)
    name = re.escape(repr(str(scans[1])))
    with pytest.raises(ValueError, match=rf"^the model's output for {name} is NaN or infinite"):
        predictor.predict_proba(scans[:3])


def test_the_docs_numpy_preparation_matches_retinalnet(
    exported: tuple[Classifier, Path, Path, str], scans: list[Path], tmp_path: Path
) -> None:
    """The PIL + numpy snippet of docs/deploying.rst prepares images as retinalnet does."""
    from test_docs import page_blocks

    page = Path(__file__).resolve().parents[1] / "docs" / "deploying.rst"
    (snippet,) = [b for b in page_blocks(page) if "def prepare(" in b.code]
    code = snippet.code.split("# -- prediction --")[0]  # the preparation part only
    names: dict[str, Any] = {}
    # was: Pillow's convert("RGB") clipped a 16-bit scan to white, a confident wrong answer
    grey = np.asarray(Image.open(scans[0]).convert("L"), dtype=np.int64)
    sixteen_bit = tmp_path / "scan-16-bit.png"
    Image.fromarray((grey * 257 + grey % 97).astype(np.uint16)).save(sixteen_bit)
    assert Image.open(sixteen_bit).mode.startswith("I;16")
    for scan in [*scans[:3], sixteen_bit]:
        exec(code.replace('"model.onnx"', repr(str(exported[2]))), names)
        prepared = names["prepare"](str(scan))
        expected = exported[0].preprocessing.prepare(scan).numpy()
        assert prepared.dtype == np.float32
        assert np.abs(prepared - expected).max() < 1e-5


def test_check_parity_names_the_image_and_the_difference(
    exported: tuple[Classifier, Path, Path, str], scans: list[Path]
) -> None:
    other = _model(seed=1)  # not the exported weights
    named = r"largest difference is .* on image '[^']+\.(jpeg|png)'"  # real or synthetic scans
    with pytest.raises(ParityError, match=named) as info:
        check_parity(other, exported[2], scans[:2])
    assert info.value.max_abs_diff > PARITY_TOLERANCE
    assert info.value.image in {str(p) for p in scans[:2]}
    report = check_parity(exported[0], exported[2], None)  # synthetic images
    assert report.images == 4
    assert report.max_abs_diff < PARITY_TOLERANCE


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_parity_check_leaves_a_model_on_the_gpu(
    exported: tuple[Classifier, Path, Path, str],
) -> None:
    # the check ran the model itself on the CPU: to_onnx moved a user's CUDA model there
    model = exported[0].cuda()
    try:
        assert check_parity(model, exported[2], None).max_abs_diff < PARITY_TOLERANCE
        assert {weight.device.type for weight in model.parameters()} == {"cuda"}
    finally:
        model.cpu()


def test_a_failed_parity_check_writes_nothing(
    exported: tuple[Classifier, Path, Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    graph = exported[2].read_bytes()
    monkeypatch.setattr(_export, "_export_graph", lambda *args: graph)  # another model's graph
    target = tmp_path / "bad.onnx"
    with pytest.raises(ParityError, match="nothing was written"):
        to_onnx(_model(seed=1), target)
    assert not target.exists()


def test_export_of_an_architecture_marked_not_exportable_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    register_model(
        ModelSpec(
            name="no_export_cnn",
            builder=small_cnn_network,
            head="classifier",
            feature_blocks=lambda network: [network],
            gradcam_layer="features",
            exportable=False,
            export_problem="its layer features.3 uses an operator without an ONNX form",
        )
    )
    model = Classifier(small_cnn_network(), classes=["A", "B", "C", "D"], arch="no_export_cnn")
    with pytest.raises(OnnxExportError, match=r"'no_export_cnn' cannot .*features\.3"):
        to_onnx(model, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="exportable=False needs export_problem"):
        ModelSpec(
            name="x",
            builder=small_cnn_network,
            head="classifier",
            feature_blocks=lambda network: [network],
            gradcam_layer="features",
            exportable=False,
        )


def test_the_probabilities_are_divided_by_the_temperature(tmp_path: Path) -> None:
    model = _model(seed=2)
    model.temperature = 2.0  # type: ignore[assignment]  # what calibration sets
    images: Sequence[Image.Image] = synthetic_images(3)
    result = to_onnx(model, tmp_path / "calibrated.onnx", images=images)
    assert result.metadata["temperature"] == "2.0"
    assert result.metadata["checkpoint_sha256"] == ""  # exported from memory
    inputs = torch.stack([model.preprocessing.prepare(i) for i in images])
    with torch.no_grad():
        log_probabilities = model.eval()(inputs).double()
    expected = torch.softmax(log_probabilities / 2.0, dim=1)
    got = OnnxPredictor(result.path).predict_proba(images).double()
    assert (got - expected).abs().max().item() < PARITY_TOLERANCE
    assert (got - log_probabilities.exp()).abs().max().item() > 1e-3  # not the raw softmax


def test_an_export_inside_a_callers_autocast_is_an_fp32_graph(tmp_path: Path) -> None:
    # the trace recorded the caller's bf16 autocast as Cast nodes, and onnxruntime refused
    # the graph ("Type 'tensor(bfloat16)' ... Conv") instead of a parity check
    images: Sequence[Image.Image] = synthetic_images(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = to_onnx(_model(seed=3), tmp_path / "model.onnx", images=images)
    graph = onnx.load(str(result.path))
    casts = [node for node in graph.graph.node if node.op_type == "Cast"]
    assert all(
        attribute.i != onnx.TensorProto.BFLOAT16 for node in casts for attribute in node.attribute
    )
    assert result.parity.max_abs_diff < PARITY_TOLERANCE


def test_an_operator_without_onnx_form_is_named(tmp_path: Path) -> None:
    @torch.library.custom_op("retinalnet_test::opaque", mutates_args=())
    def opaque(x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @opaque.register_fake
    def _(x: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(x)

    class Opaque(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return opaque(x).mean((2, 3))[:, :2]

    model = Classifier(Opaque(), classes=["A", "B"], preprocessing=Preprocessing(size=32))
    with pytest.raises(OnnxExportError, match=r"'Opaque' .* operator 'retinalnet_test.opaque'"):
        to_onnx(model, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def _wrapped(error: OSError) -> RuntimeError:
    """The exporter's own error, raised while handling the OSError of a failed save."""
    wrapped = RuntimeError("the exporter's own report of a failed save")
    wrapped.__context__ = error
    return wrapped


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), r"\[ENOSPC\]; free some space"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), r"\[EDQUOT\]; free some of your"),
        (OSError(errno.EFBIG, "File too large"), r"\[EFBIG\]; .*ulimit -f"),
        (OSError(errno.EACCES, "Permission denied"), r"\[EACCES\]; set TMPDIR to a folder"),
        (_wrapped(OSError(errno.ENOSPC, "No space left")), r"\[ENOSPC\]; free some space"),
    ],
    ids=["ENOSPC", "EDQUOT", "EFBIG", "EACCES", "ENOSPC-behind-the-exporters-error"],
)
def test_a_refused_write_of_the_graph_names_the_temporary_folder_not_the_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raised: Exception, said: str
) -> None:
    def refused(*args: Any, dynamo: bool, external_data: bool, optimize: bool, **kw: Any) -> None:
        raise raised

    monkeypatch.setattr(torch.onnx, "export", refused)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # TMPDIR, as tempfile reads it
    with pytest.raises(OSError, match=said) as caught:
        to_onnx(_model(), tmp_path / "x.onnx")
    message = str(caught.value)
    assert not isinstance(caught.value, OnnxExportError)
    assert f"in the temporary folder {str(tmp_path)!r}" in message
    assert re.search(r"retinalnet-onnx-\w+/graph\.onnx', a temporary file of the ONNX", message)
    assert "operation" not in message
    assert "exportable" not in message
    assert "\n" not in message
    assert not (tmp_path / "x.onnx").exists()


def test_an_oserror_of_the_exporter_that_is_no_write_is_still_its_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def failing(*args: Any, dynamo: bool, external_data: bool, optimize: bool, **kw: Any) -> None:
        raise OSError("could not get source code")  # inspect's, no errno: not the disk

    monkeypatch.setattr(torch.onnx, "export", failing)
    with pytest.raises(OnnxExportError, match="could not get source code"):
        to_onnx(_model(), tmp_path / "x.onnx")


def test_a_temporary_folder_that_cannot_be_made_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def full(suffix: str | None = None, prefix: str | None = None, dir: str | None = None) -> str:
        made = str(tmp_path / f"{prefix}abc")
        raise OSError(errno.ENOSPC, "No space left on device", made)

    monkeypatch.setattr(tempfile, "mkdtemp", full)
    pattern = (
        r"retinalnet-onnx-abc', a temporary folder of the ONNX export, in the temporary folder "
        r".*\[ENOSPC\]; free some space there, or set TMPDIR to a folder with room$"
    )
    with pytest.raises(OSError, match=pattern):
        to_onnx(_model(), tmp_path / "x.onnx")


_FILE_SIZE_LIMIT = """
import resource, signal, sys, torch
from retinalnet.export import to_onnx
from retinalnet.models import create_model
from retinalnet.transforms import Preprocessing
torch.manual_seed(0)
model = create_model("small_cnn", weights=None, preprocessing=Preprocessing(size=32))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    to_onnx(model, sys.argv[1])
except Exception as error:
    print(type(error).__name__, error)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no RLIMIT_FSIZE on Windows")
def test_the_file_size_limit_met_by_a_real_export_is_said_as_such(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _FILE_SIZE_LIMIT, str(tmp_path / "x.onnx")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=True,
    )
    said = done.stdout.strip()
    assert said.startswith("OSError cannot write "), said
    assert f"in the temporary folder {str(tmp_path)!r}: file too large [EFBIG]" in said
    assert "ulimit -f" in said
    assert "exportable" not in said


def test_a_folder_given_as_the_onnx_model_is_said_to_be_one_listing_its_models(
    exported: tuple[Classifier, Path, Path, str], tmp_path: Path
) -> None:
    """Was: "no ONNX model file 'run1'", for a folder that exists (an export's, a run's)."""
    folder = exported[2].parent  # holds best.pt and model.onnx
    listed = rf"^{re.escape(repr(str(folder)))} is a folder, not an ONNX model file; it holds "
    example = re.escape(repr(str(folder / "model.onnx")))
    for door in (read_metadata, OnnxPredictor, Predictor.from_onnx):
        with pytest.raises(
            IsADirectoryError, match=rf"{listed}model\.onnx: pass one of them, e\.g\. {example}$"
        ):
            door(folder)
    run = tmp_path / "run1"
    run.mkdir()
    shutil.copy(exported[1], run / "best.pt")
    shutil.copy(exported[1], run / "last.pt")
    best = repr(str(run / "best.pt"))
    with pytest.raises(
        IsADirectoryError, match=r"holds no \.onnx file but checkpoints \(best\.pt, last\.pt\)"
    ) as info:
        Predictor.from_onnx(run)
    assert f"Predictor.from_checkpoint({best}) predicts with one" in str(info.value)
    assert f"retinalnet export --checkpoint {run / 'best.pt'} --out model.onnx" in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        IsADirectoryError, match=r"holds no \.onnx file; pass the path of an ONNX model"
    ):
        read_metadata(empty)


def test_read_metadata_refuses_other_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no ONNX model file"):
        read_metadata(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 not protobuf")
    with pytest.raises(ValueError, match=r"garbage\.onnx"):
        read_metadata(garbage)
    plain = tmp_path / "plain.onnx"
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    info = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph([node], "g", [info("x", 1, [1])], [info("y", 1, [1])])
    onnx.save(onnx.helper.make_model(graph), str(plain))
    with pytest.raises(ValueError, match="not an ONNX model exported by retinalnet"):
        read_metadata(plain)


def test_the_metadata_names_the_checkpoint_exported_when_a_run_replaced_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the sha256 of the file after the load, the run's next best.pt, beside the weights
    (and temperature) of the one before."""
    first, newer = two_checkpoints(tmp_path / "epochs")
    best = tmp_path / "best.pt"
    rename_over(first, best)
    replaced_after_load(monkeypatch, "retinalnet.export._export.load_checkpoint", best, newer)

    model, digest = _export._load(best)

    assert digest == sha256(first)
    expected = load_checkpoint(first).build_model().state_dict()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())


def test_info_of_an_export_shows_its_metadata_and_source(
    exported: tuple[Classifier, Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, checkpoint, out, _ = exported
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "onnx"
    assert info["arch"] == "small_cnn"
    assert info["checkpoint_sha256"] == file_digest(checkpoint).hex()
    assert info["sha256"] == file_digest(out).hex()
    assert info["opset"] == OPSET
    assert info["parameters"]["total"] > 100_000  # the small CNN's 106k, BatchNorm folded
    assert main(["info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"checkpoint sha256  {file_digest(checkpoint).hex()}" in printed
    assert "(ONNX model)" in printed


@pytest.mark.parametrize(
    ("count", "size", "message"),
    [
        (-1, (300, 280), r"count must be an int from 1 to 1024 \(images\), got -1"),
        (0, (300, 280), r"count must be an int from 1 to 1024 \(images\), got 0"),
        (2.0, (300, 280), r"count must be an int .* got 2\.0"),
        (2, (0, 0), r"size must be a \(width, height\) pair of ints from 32 to 4096 .* \(0, 0\)"),
        (2, (300, 10**6), r"size must be a \(width, height\) pair .* got \(300, 1000000\)"),
        (2, (300,), r"size must be a \(width, height\) pair .* got \(300,\)"),
    ],
)
def test_synthetic_images_refuse_a_count_or_size_that_makes_no_check(
    count: object, size: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        synthetic_images(count, size=size)  # type: ignore[arg-type]
    assert [image.size for image in synthetic_images(1, size=(32, 4096))] == [(32, 4096)]


def test_info_of_an_export_says_its_count_is_not_the_models(
    exported: tuple[Classifier, Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The auditor's case: "parameters" of the ONNX file and of its checkpoint differed
    (batch norms folded into the convolutions), under the same label."""
    model, checkpoint, out, _ = exported
    label = (
        "values stored in the ONNX graph, where the export folds batch norms into the layers "
        "before them and stores identical constants once: not the model's parameter count, "
        "which retinalnet info on its checkpoint gives"
    )
    assert main(["info", str(out), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)["parameters"]
    assert counts["counted_in"] == label
    assert counts["total"] != sum(p.numel() for p in model.parameters())  # folded
    assert main(["info", str(out)]) == 0
    lines = dict(
        re.split(r"\s{2,}", line, maxsplit=1) for line in capsys.readouterr().out.splitlines()
    )
    assert lines["parameters"] == f"{counts['total']:,} ({label})"
    assert main(["info", str(checkpoint), "--json"]) == 0
    assert "counted_in" not in json.loads(capsys.readouterr().out)["parameters"]


def test_metadata_nested_too_deeply_is_not_valid_json() -> None:
    from retinalnet.export._metadata import metadata_props, parse_metadata

    props = metadata_props(
        classes=("CNV", "NORMAL"), preprocessing=Preprocessing(size=32), temperature=1.0,
        arch=None, version="0.2", checkpoint_sha256=None, opset=17, exporter="torchscript",
        parity_max_abs_diff=0.0, parity_images=1, parity_tolerance=1e-4,
    )  # fmt: skip
    props["classes"] = "[" * 100_000 + "]" * 100_000

    with pytest.raises(
        ValueError, match=r"^cannot read 'deep\.onnx': metadata entry 'classes' is not valid "
        r"JSON \(nested too deeply\); export the model again \(retinalnet export\)$",
    ):  # fmt: skip
        parse_metadata(props, "deep.onnx")


# ---------------------------------------------------------------------------------------------
# A model file is told by its content, not its suffix; one that cannot be parsed is named so


def test_a_checkpoint_named_onnx_is_described_as_the_checkpoint_it_is(
    exported: tuple[Classifier, Path, Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Was: "cannot read 'renamed.onnx' as an ONNX model (DecodeError: ... Wire format was
    corrupt)" from info and Predictor.from_onnx alike."""
    from retinalnet.export import describe

    _, checkpoint, _, _ = exported
    renamed = tmp_path / "renamed.onnx"
    renamed.write_bytes(checkpoint.read_bytes())
    assert describe(renamed)["kind"] == "checkpoint"
    assert main(["info", str(renamed)]) == 0
    assert "(checkpoint, although named .onnx: rename it .pt)" in capsys.readouterr().out
    said = (
        rf"^{re.escape(repr(str(renamed)))} is not an ONNX model but a PyTorch file, as "
        r"torch\.save writes \(a retinalnet checkpoint\?\): Predictor\.from_checkpoint\(.*\) "
        r"predicts with a checkpoint.*; rename it \.pt$"
    )
    for read in (read_metadata, Predictor.from_onnx):
        with pytest.raises(ValueError, match=said):
            read(renamed)


def test_an_export_named_pt_is_read_by_info_as_the_onnx_model_it_is(
    exported: tuple[Classifier, Path, Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, out, _ = exported
    renamed = tmp_path / "model.pt"
    renamed.write_bytes(out.read_bytes())
    assert main(["info", str(renamed), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["kind"], info["arch"]) == ("onnx", "small_cnn")
    assert main(["info", str(renamed)]) == 0
    assert "(ONNX model, although not named .onnx: rename it .onnx)" in capsys.readouterr().out


def test_an_export_cut_short_is_called_damaged_or_incomplete(
    exported: tuple[Classifier, Path, Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, out, _ = exported
    cut = tmp_path / "cut.onnx"
    data = out.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    said = (
        rf"ONNX model {re.escape(repr(str(cut)))} is damaged or incomplete: it starts as an "
        rf"ONNX model but cannot be parsed \({len(data) // 2:,} bytes; a copy or download cut "
        r"short\?\)"
    )
    for read in (read_metadata, Predictor.from_onnx):
        with pytest.raises(ValueError, match=said) as caught:
            read(cut)
        assert "Wire format" not in str(caught.value)
        assert "DecodeError" not in str(caught.value)
    assert main(["info", str(cut)]) != 0
    assert re.search(said, capsys.readouterr().err)


def test_an_uncalibrated_export_and_its_checkpoint_show_the_same_temperature(
    exported: tuple[Classifier, Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: ``none (not calibrated)`` and ``null`` for the checkpoint, ``1`` and ``1.0`` for
    the ONNX file exported from it."""
    _, checkpoint, out, _ = exported
    for path in (checkpoint, out):
        assert main(["info", str(path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["temperature"] is None, path
        assert main(["info", str(path)]) == 0
        lines = dict(
            re.split(r"\s{2,}", line, maxsplit=1) for line in capsys.readouterr().out.splitlines()
        )
        assert lines["temperature"] == "none (not calibrated)", path
    assert read_metadata(out).temperature == 1.0  # the metadata itself keeps its number


def test_an_export_under_a_float64_default_dtype_is_a_float32_graph(tmp_path: Path) -> None:
    # was: "expected scalar type Double but found Float": the example batch the exporter
    # traces was made in torch's default dtype, float64 in a scientific notebook
    model = _model(seed=4)
    images: Sequence[Image.Image] = synthetic_images(2)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        result = to_onnx(model, tmp_path / "model.onnx", images=images)
        got = OnnxPredictor(result.path).predict_proba(images)
    finally:
        torch.set_default_dtype(before)
    graph = onnx.load(str(result.path)).graph
    ends = [*graph.input, *graph.output]
    assert {end.type.tensor_type.elem_type for end in ends} == {onnx.TensorProto.FLOAT}
    assert all(tensor.data_type != onnx.TensorProto.DOUBLE for tensor in graph.initializer)
    assert result.parity.max_abs_diff < PARITY_TOLERANCE
    assert got.shape == (2, len(model.classes))


@pytest.mark.parametrize(
    ("classes", "said"),
    [
        (
            ["CNV", "DME", "DRUSEN\r\x1b[2K", "NORMAL\nfake.jpeg  NORMAL  99.0%"],
            r"its classes must be names that print as they are, got 'DRUSEN\\r\\x1b\[2K' .*: "
            r"it holds U\+000D \(a control character\)",
        ),
        (["CNV", "DME", "DRUSEN", " "], r"its classes must be non-blank names, got ' '"),
        (["CNV", "DME", "CNV", "NORMAL"], r"its classes must be 2 or more distinct names"),
    ],
)
def test_class_names_that_would_forge_result_lines_in_an_export_are_refused(
    exported: tuple[Classifier, Path, Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    classes: list[str],
    said: str,
) -> None:
    # was: read as they were, then printed raw by predict and info (a forged result line,
    # a line erased), or a blank name shown as nothing
    _, _, out, _ = exported
    proto = onnx.load(str(out))
    for entry in proto.metadata_props:
        if entry.key == "classes":
            entry.value = json.dumps(classes)
    forged = tmp_path / "forged.onnx"
    forged.write_bytes(proto.SerializeToString())
    message = rf"^cannot read {re.escape(repr(str(forged)))}: {said}"

    for read in (read_metadata, OnnxPredictor, Predictor.from_onnx):
        with pytest.raises(ValueError, match=message):
            read(forged)
    assert main(["info", str(forged)]) != 0
    captured = capsys.readouterr()
    assert "fake.jpeg" not in captured.out
    assert re.search(said, captured.err)


def test_a_temperature_set_by_another_thread_waits_for_the_export_and_its_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``to_onnx`` read the temperature for the graph and again for its parity check: a
    ``calibrate()`` in another thread between the two made the check fail, blaming the
    export. The other thread now waits until the export is done."""
    import threading

    from retinalnet._core.model_use import exclusive_use
    from retinalnet.export import _export

    model = _model(seed=4)
    build = _export._export_graph

    def calibrated_meanwhile(classifier: Any, temperature: float, folder: Path) -> bytes:
        graph = build(classifier, temperature, folder)

        def calibrate() -> None:  # as calibrate() sets it: between passes of the model
            with exclusive_use(classifier):
                classifier.temperature = 2.5

        other = threading.Thread(target=calibrate)
        other.start()
        other.join(timeout=1.0)  # it ran at once before; it waits for the export now
        return graph

    monkeypatch.setattr(_export, "_export_graph", calibrated_meanwhile)
    result = to_onnx(model, tmp_path / "model.onnx")
    assert result.parity.max_abs_diff < 1e-4


@pytest.mark.parametrize("size", [32, 64, 224])
def test_the_synthetic_parity_images_are_never_taken_for_scans_given_in_memory(size: int) -> None:
    # was: `retinalnet export` without --images, for a model decoding its files at reduced
    # scale, warned "image 0 given in memory ... pass the files' paths" of its own images
    preprocessing = Preprocessing(size=size, reduced_decode=True)
    model = create_model("small_cnn", weights=None, preprocessing=preprocessing)
    images = _synthetic_for(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_of_full_scale_images(images, target_size=model.preprocessing.decode_size)
    assert min(min(image.size) for image in images) >= model.preprocessing.resize


def test_a_missing_onnx_package_is_named_in_both_install_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # was: "(or pip install onnx onnxruntime)" for onnxscript too, which that does not install
    from retinalnet.export._onnx_runtime import require

    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ModuleNotFoundError, match=r"\(or pip install onnxscript\)$"):
        require("onnxscript")
