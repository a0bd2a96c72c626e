"""What runs on an accelerator other than CUDA (Apple MPS), simulated on a CPU-only machine,
and the copies between the host and a device.

MPS has no float64, torchvision decodes JPEGs on the CPU and CUDA only, and a "cuda" loss
scaler disables itself without CUDA. The "meta" device stands in for MPS: a torch dispatch
mode raises, as MPS does, when an operation makes a float64 tensor on it, and reads its
tensors as zeros where the code reads values back (``float()``, ``.cpu()``), so whole passes
run through it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.data import DataLoader

import retinalnet.tensor_preprocessing as tensor_preprocessing_module
from _training_helpers import CLASSES, linear_classifier, quiet_trainer, separable_data, tiny_cnn
from retinalnet._core import widest_float as widest_float_module
from retinalnet._core.device_copies import copy_to
from retinalnet._core.widest_float import widest_float
from retinalnet.engine import InferenceEngine
from retinalnet.tensor_preprocessing import TensorPreprocessing
from retinalnet.training._calibration import _fit
from retinalnet.training._evaluation import run_evaluation
from retinalnet.training._labels import BatchLabels
from retinalnet.training._tensor_batches import tensor_batches
from retinalnet.transforms import Preprocessing

META = torch.device("meta")
_READS = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default)
_COPIES = (torch.ops.aten._to_copy, torch.ops.aten.to)


class MetaAsMPS(TorchDispatchMode):
    """Raise where an operation makes a float64 tensor off the CPU (MPS: "Cannot convert a
    MPS Tensor to float64 dtype"); read meta tensors back as zeros."""

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        first = args[0] if args else None
        on_meta = isinstance(first, torch.Tensor) and first.device == META
        if on_meta and func in _READS:
            return 0
        to_cpu = kwargs.get("device") == torch.device("cpu")
        if on_meta and func.overloadpacket in _COPIES and to_cpu:
            return torch.zeros(first.shape, dtype=kwargs.get("dtype") or first.dtype)
        out = func(*args, **kwargs)
        for tensor in tree_flatten(out)[0]:
            if (
                isinstance(tensor, torch.Tensor)
                and tensor.device.type != "cpu"
                and (tensor.dtype == torch.float64)
            ):
                raise TypeError(f"[simulated MPS] {func} made a float64 tensor on the device")
        return out


@pytest.fixture
def meta_has_no_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """The package treats the meta device as MPS: no float64 there."""
    monkeypatch.setattr(widest_float_module, "NO_FLOAT64_DEVICE_TYPES", frozenset({"mps", "meta"}))


def _engine_on_meta(tta: bool) -> InferenceEngine:
    engine = InferenceEngine(linear_classifier(), device="cpu", precision="fp32", tta=tta)
    engine.model.to(META)
    engine.device = META
    # meta weights all have data pointer 0: no cached weight copies, the model as it is
    engine._forward_function = lambda: engine.model  # type: ignore[method-assign]
    return engine


def _log_probabilities(engine: InferenceEngine, loader: DataLoader[Any]) -> torch.Tensor:
    return engine.log_probabilities(next(iter(loader))[0])


def _probabilities(engine: InferenceEngine, loader: DataLoader[Any]) -> torch.Tensor:
    return engine.probabilities(next(iter(loader))[0])


def _evaluation(engine: InferenceEngine, loader: DataLoader[Any]) -> np.ndarray[Any, Any]:
    result = run_evaluation(engine, loader, loss=nn.NLLLoss(), classes=CLASSES)
    assert result.probabilities is not None
    return result.probabilities


def _calibration(engine: InferenceEngine, loader: DataLoader[Any]) -> int:
    return _fit(engine, loader).num_samples


# every door through which an engine's log-probabilities or a sum of losses is made
FLOAT_DOORS: dict[str, tuple[Callable[[InferenceEngine, DataLoader[Any]], Any], object]] = {
    "log_probabilities": (_log_probabilities, torch.float32),
    "probabilities": (_probabilities, torch.float32),
    "run_evaluation": (_evaluation, np.float64),
    "calibration": (_calibration, None),
}


@pytest.mark.usefixtures("meta_has_no_float64")
@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.parametrize("door", FLOAT_DOORS)
def test_no_float64_is_made_on_a_device_without_it(door: str, tta: bool) -> None:
    engine = _engine_on_meta(tta)
    loader = DataLoader(separable_data(8), batch_size=4)
    run, dtype = FLOAT_DOORS[door]
    with MetaAsMPS():
        got = run(engine, loader)
    if dtype is not None:
        assert got.dtype == dtype


def test_the_widest_float_is_float64_but_on_mps() -> None:
    assert widest_float(torch.device("cpu")) == torch.float64
    assert widest_float(torch.device("cuda")) == torch.float64
    assert widest_float(torch.device("mps")) == torch.float32


@pytest.mark.parametrize("tta", [False, True])
def test_log_probabilities_on_the_cpu_stay_float64_bit_for_bit(tta: bool) -> None:
    model = linear_classifier()
    engine = InferenceEngine(model, device="cpu", precision="fp32", tta=tta)
    engine.temperature = 1.5
    inputs = separable_data(6).tensors[0]
    got = engine.log_probabilities(inputs)
    with torch.inference_mode():
        scores = model(inputs)
        expected = torch.log_softmax(scores.double() / 1.5, dim=1)
        if tta:
            mirrored = torch.log_softmax(model(inputs.flip(-1)).double() / 1.5, dim=1)
            stacked = torch.stack([expected, mirrored])
            two = torch.tensor(2.0, dtype=torch.float64)
            expected = torch.logsumexp(stacked, dim=0) - torch.log(two)
    assert got.dtype == torch.float64
    assert torch.equal(got, expected)


# --- JPEGs decoded for a device torchvision does not decode on ----------------------------


@pytest.fixture
def mps_is_meta(monkeypatch: pytest.MonkeyPatch, meta_has_no_float64: None) -> None:
    """TensorPreprocessing(device="mps") gets the meta device."""
    resolve = tensor_preprocessing_module.resolve_device
    monkeypatch.setattr(
        tensor_preprocessing_module,
        "resolve_device",
        lambda device: META if device in ("mps", META) else resolve(device),
    )


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def default_dtype(request: pytest.FixtureRequest) -> Iterator[torch.dtype]:
    """Torch's default dtype as a notebook may set it."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(request.param)
    try:
        yield request.param
    finally:
        torch.set_default_dtype(before)


def _jpegs(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index, (size, mode) in enumerate([((80, 72), "L"), ((96, 72), "L"), ((72, 80), "RGB")]):
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"scan{index}.jpeg"
        Image.fromarray(pixels).convert(mode).save(path, "JPEG")
        paths.append(path)
    return paths


def _prepare_files(paths: list[Path], prep: Preprocessing) -> torch.Tensor:
    return TensorPreprocessing(prep, device="mps").prepare_files(paths)


def _batch_with_a_prepared_input(paths: list[Path], prep: Preprocessing) -> torch.Tensor:
    tensor_prep = TensorPreprocessing(prep, device="mps")
    items = [tensor_prep.read(path) for path in paths]
    items[1] = prep.prepare(paths[1])  # what a worker gives for a file PIL prepares
    return tensor_prep.batch(items, names=paths)


def _tensor_batches(paths: list[Path], prep: Preprocessing) -> torch.Tensor:
    # the feature cache's door (build_feature_cache(decode="tensor"))
    samples = [(str(path), 0) for path in paths]
    batches, _ = tensor_batches(samples, prep, device=META, batch_size=2, num_workers=0)
    return torch.cat([inputs for inputs, _ in batches])


@pytest.mark.usefixtures("mps_is_meta", "default_dtype")
@pytest.mark.parametrize("door", [_prepare_files, _batch_with_a_prepared_input, _tensor_batches])
def test_jpegs_are_prepared_for_a_device_torchvision_does_not_decode_on(
    tmp_path: Path, door: Callable[[list[Path], Preprocessing], torch.Tensor]
) -> None:
    paths = _jpegs(tmp_path)
    with MetaAsMPS():
        got = door(paths, Preprocessing(size=32))
    assert got.shape == (3, 3, 32, 32)
    assert got.device == META
    assert got.dtype == torch.float32


@pytest.mark.usefixtures("default_dtype")
def test_a_float64_default_gives_float32_inputs_equal_to_the_float32_default(
    tmp_path: Path,
) -> None:
    paths = _jpegs(tmp_path)
    got = TensorPreprocessing(Preprocessing(size=32), device="cpu").prepare_files(paths)
    torch.set_default_dtype(torch.float32)
    expected = TensorPreprocessing(Preprocessing(size=32), device="cpu").prepare_files(paths)
    assert got.dtype == torch.float32
    assert torch.equal(got, expected)


# --- fp16 training scales its loss on every device it runs on -----------------------------


def _pretend_available(monkeypatch: pytest.MonkeyPatch, device: str) -> None:
    if device == "mps":
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    if device == "cuda":
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)


@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16", "fp16"])
@pytest.mark.parametrize("device", ["cpu", "mps", "cuda"])
def test_fp16_training_scales_its_loss(
    monkeypatch: pytest.MonkeyPatch, device: str, precision: str
) -> None:
    _pretend_available(monkeypatch, device)
    if (device, precision) == ("cpu", "fp16"):  # refused: nothing trains without scaling
        with pytest.raises(ValueError, match="fp16"):
            quiet_trainer(tiny_cnn(), device=device, precision=precision)
        return
    trainer = quiet_trainer(tiny_cnn(), device=device, precision=precision)
    assert trainer._scaler.is_enabled() == (trainer._dtype == torch.float16)


# --- copies toward the CPU are finished before the host reads them ------------------------


def _destination(tensor: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    for value in (kwargs.get("device"), *args):
        if isinstance(value, (torch.device, str)):
            return torch.device(value)
    return tensor.device


@pytest.fixture
def non_blocking_copies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Where retinalnet asks for a non-blocking copy to a device other than CUDA."""
    real = torch.Tensor.to
    seen: list[str] = []

    def spy(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1)
        if kwargs.get("non_blocking") and caller.f_globals["__name__"].startswith("retinalnet"):
            device = _destination(self, args, kwargs)
            if device.type != "cuda":
                seen.append(f"{caller.f_code.co_filename}:{caller.f_lineno} to {device}")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    return seen


def _labels(num_classes: int | None) -> None:
    check = BatchLabels(num_classes, where="test", loader=None, in_order=True)
    check(torch.tensor([0, 1, 2]), torch.device("cpu"), batch=0)


def _fit_and_lr_find() -> None:
    trainer = quiet_trainer(linear_classifier(), max_epochs=1, batch_size=4)
    trainer.fit(separable_data(8), separable_data(8, seed=1))
    trainer.lr_find(separable_data(8), num_steps=8)


def _engine_doors() -> None:
    engine = InferenceEngine(linear_classifier(), device="cpu", precision="fp32")
    engine.probabilities(separable_data(4).tensors[0])
    loader = DataLoader(separable_data(8), batch_size=4)
    run_evaluation(engine, loader, loss=nn.NLLLoss(), classes=CLASSES)


def _prepared_inputs(tmp_path: Path) -> None:
    prep = Preprocessing(size=32)
    TensorPreprocessing(prep, device="cpu").batch([prep.prepare(_jpegs(tmp_path)[0])])


COPY_DOORS: dict[str, Callable[[Path], None]] = {
    "labels, classes unknown": lambda _: _labels(None),
    "labels, classes known": lambda _: _labels(len(CLASSES)),
    "fit and lr_find": lambda _: _fit_and_lr_find(),
    "engine and evaluation": lambda _: _engine_doors(),
    "tensor preprocessing": _prepared_inputs,
}


@pytest.mark.parametrize("door", COPY_DOORS)
def test_no_non_blocking_copy_goes_to_the_cpu(
    non_blocking_copies: list[str], door: str, tmp_path: Path
) -> None:
    COPY_DOORS[door](tmp_path)
    assert non_blocking_copies == []


def test_copies_toward_cuda_alone_are_non_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, bool]] = []

    def record(self: torch.Tensor, device: torch.device, dtype: Any, **kwargs: Any) -> Any:
        asked.append((device.type, kwargs["non_blocking"]))
        return self

    monkeypatch.setattr(torch.Tensor, "to", record)
    for device in ("cuda", "cpu", "mps"):
        copy_to(torch.zeros(2), torch.device(device))
    assert asked == [("cuda", True), ("cpu", False), ("mps", False)]


def test_a_predictors_rows_are_float64_from_an_engine_that_gives_float32() -> None:
    # on MPS the engine's log-probabilities are float32; the Predictor's rows stay float64 as
    # documented, so its ranking and its numbers do not depend on the device
    from retinalnet import Predictor

    predictor = Predictor(tiny_cnn(), device="cpu", precision="fp32")
    run = predictor.engine.run

    def float32_run(loader: Any, **kwargs: Any) -> Iterator[Any]:
        for log_probabilities, rest in run(loader, **kwargs):
            yield log_probabilities.float(), rest

    predictor.engine.run = float32_run  # type: ignore[method-assign]
    image = Image.new("L", (40, 40), 128)
    rows, readable = predictor._log_probabilities([image, image])[:2]

    assert rows.dtype == torch.float64
    assert readable == [True, True]
