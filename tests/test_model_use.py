"""Every door that runs a model (prediction, evaluation, Grad-CAM, the feature cache) puts each
module's train/eval mode back, and threads sharing a model take turns on it: concurrent calls
give the serial results, and the model is never seen with another call's weights."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

from _training_helpers import frozen_small_cnn, tiny_cnn
from retinalnet import Predictor, SyntheticOCT
from retinalnet._core.model_use import exclusive_use, modes_restored
from retinalnet.engine import InferenceEngine
from retinalnet.export import to_onnx
from retinalnet.gradcam import grad_cam, grad_cam_image
from retinalnet.models import Classifier
from retinalnet.training import (
    FineTune,
    Trainer,
    build_feature_cache,
    calibrate,
    evaluate,
    fine_tune,
)

WAIT = 30.0  # seconds before a test calls a wait a hang


def _images(count: int = 8, seed: int = 5) -> list[Image.Image]:
    data = SyntheticOCT(count // 4, shape=(40, 36), seed=seed)
    return [data.image(i) for i in range(len(data))]


def _mixed(model: Classifier) -> Classifier:
    """The transfer-learning mix: the model in train mode, its backbone in eval mode."""
    model.train()
    model.network.features.eval()
    return model


def _modes(model: nn.Module) -> dict[str, bool]:
    return {name: module.training for name, module in model.named_modules()}


# -- modes_restored and exclusive_use ---------------------------------------------------------


def test_modes_restored_puts_back_each_module_after_an_error() -> None:
    model = _mixed(tiny_cnn())
    before = _modes(model)

    def fail() -> None:
        with modes_restored(model):
            model.train()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert _modes(model) == before


def test_exclusive_use_is_reentrant_and_covers_the_modules_inside() -> None:
    model = tiny_cnn()
    head = model.network.classifier
    entered = threading.Event()
    with exclusive_use(model), exclusive_use(head):  # the same thread enters again
        other = threading.Thread(target=lambda: _enter(head, entered))
        other.start()
        assert not entered.wait(0.2)  # a module inside the model waits for it
    assert entered.wait(WAIT)
    other.join(WAIT)


def _enter(model: nn.Module, entered: threading.Event) -> None:
    with exclusive_use(model):
        entered.set()


def test_exclusive_use_lets_other_models_run_at_the_same_time() -> None:
    entered = threading.Event()
    with exclusive_use(tiny_cnn()):
        other = threading.Thread(target=lambda: _enter(tiny_cnn(), entered))
        other.start()
        assert entered.wait(WAIT)
    other.join(WAIT)


# -- train/eval modes through every door --------------------------------------------------------


def _topk(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    return Predictor(model, device="cpu", precision="fp32").topk(image)


def _topk_bf16(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    return Predictor(model, device="cpu", precision="bf16").topk(image)


def _predict_proba(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    return Predictor(model, device="cpu", precision="fp32", tta=True).predict_proba([image])


def _predictor_gradcam(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    return Predictor(model, device="cpu", precision="fp32").gradcam(image)


def _grad_cam(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    return grad_cam(model, model.preprocessing.prepare(image))


def _grad_cam_image(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    return grad_cam_image(model, image)


def _evaluate(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    return evaluate(model, SyntheticOCT(1, shape=(40, 36)), device="cpu", precision="fp32")


def _evaluate_cached(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    data = SyntheticOCT(1, shape=(40, 36))
    return evaluate(model, data, device="cpu", precision="fp32", feature_cache=True)


def _feature_cache(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    data = SyntheticOCT(1, shape=(40, 36))
    return build_feature_cache(model, data, device="cpu", precision="fp32", progress=False)


def _engine_features(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    engine = InferenceEngine(model, device="cpu", precision="bf16")
    return engine.features(model.preprocessing.prepare(image)[None], model.head_module()[1])


def _lr_find(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    trainer = Trainer(model, device="cpu", progress=False, batch_size=2, feature_cache=False)
    return trainer.lr_find(SyntheticOCT(1, shape=(40, 36)), num_steps=8)


DOORS: dict[str, Callable[[Classifier, Image.Image, Path], object]] = {
    "Predictor.topk": _topk,
    "Predictor.topk-bf16": _topk_bf16,
    "Predictor.predict_proba-tta": _predict_proba,
    "Predictor.gradcam": _predictor_gradcam,
    "grad_cam": _grad_cam,
    "grad_cam_image": _grad_cam_image,
    "evaluate": _evaluate,
    "evaluate-feature_cache": _evaluate_cached,
    "build_feature_cache": _feature_cache,
    "InferenceEngine.features": _engine_features,
    "Trainer.lr_find": _lr_find,
}


@pytest.mark.parametrize("door", list(DOORS))
def test_every_door_puts_back_a_mix_of_train_and_eval_modes(door: str, tmp_path: Path) -> None:
    model = _mixed(frozen_small_cnn())  # frozen: the feature cache's doors apply too
    before = _modes(model)
    assert len(set(before.values())) == 2  # a real mix
    DOORS[door](model, _images(4)[0], tmp_path)
    assert _modes(model) == before


def test_modes_are_put_back_when_a_prediction_fails() -> None:
    model = _mixed(tiny_cnn())
    before = _modes(model)
    with torch.no_grad():
        for parameter in model.network.classifier.parameters():
            parameter.fill_(float("nan"))  # NaN outputs: refused
    with pytest.raises(ValueError, match="NaN or infinite"):
        Predictor(model, device="cpu", precision="fp32").topk(_images(4))
    assert _modes(model) == before
    entered = threading.Event()  # and the model is free for other threads
    other = threading.Thread(target=lambda: _enter(model, entered))
    other.start()
    assert entered.wait(WAIT)
    other.join(WAIT)


# -- threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_threads_sharing_a_predictor_get_the_serial_results(precision: str) -> None:
    model = tiny_cnn(seed=7)  # left in train mode, as create_model returns it
    images = _images(8)
    predictor = Predictor(model, device="cpu", precision=precision)  # type: ignore[arg-type]
    serial = [predictor.topk(image, k=4).to_dict() for image in images]

    def call(index: int) -> Any:
        try:
            return predictor.topk(images[index % 8], k=4).to_dict() == serial[index % 8]
        except RuntimeError as error:  # "Inference tensors do not track version counter"
            return str(error)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(call, range(96)))
    assert outcomes == [True] * 96
    assert model.training
    assert all(module.training for module in model.modules())


def test_one_predictor_per_thread_on_one_model_gets_the_serial_results() -> None:
    model = tiny_cnn(seed=8).eval()
    images = _images(8)
    serial = Predictor(model, device="cpu", precision="bf16").predict_proba(images)
    local = threading.local()

    def call(index: int) -> Any:
        if not hasattr(local, "predictor"):
            local.predictor = Predictor(model, device="cpu", precision="bf16")
        try:
            return torch.equal(
                local.predictor.predict_proba(images[index % 8 :][:1]), serial[index % 8 :][:1]
            )
        except RuntimeError as error:
            return str(error)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(call, range(64)))
    assert outcomes == [True] * 64


def test_gradcam_from_threads_equals_the_serial_maps() -> None:
    model = tiny_cnn(seed=9)
    images = _images(4)
    predictor = Predictor(model, device="cpu", precision="bf16")
    serial = [predictor.gradcam(image) for image in images]  # topk nested inside gradcam
    with ThreadPoolExecutor(3) as pool:
        maps = list(pool.map(lambda index: predictor.gradcam(images[index % 4]), range(12)))
    assert all((heatmap == serial[i % 4]).all() for i, heatmap in enumerate(maps))


def _pause_inside_the_forward(
    model: Classifier, inside: threading.Event, release: threading.Event
) -> Callable[[], None]:
    """Make the next forward pass of ``model`` wait, inside it, for ``release``."""
    once = [True]

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        if once[0] and threading.current_thread().name == "paused":
            once[0] = False
            inside.set()
            release.wait(WAIT)

    return model.network.classifier.register_forward_pre_hook(hook).remove


def test_another_thread_sees_the_models_own_weights_during_a_prediction() -> None:
    model = tiny_cnn(seed=10).eval()
    expected = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    inside, release = threading.Event(), threading.Event()
    remove = _pause_inside_the_forward(model, inside, release)
    predictor = Predictor(model, device="cpu", precision="bf16")
    paused = threading.Thread(target=lambda: predictor.topk(_images(4)), name="paused")
    paused.start()
    try:
        assert inside.wait(WAIT)
        seen = model.state_dict()  # while the prediction is inside its forward pass
    finally:
        release.set()
        paused.join(WAIT)
        remove()
    for name, tensor in seen.items():
        assert tensor.dtype == expected[name].dtype, name
        assert not tensor.is_inference(), name
        assert torch.equal(tensor, expected[name]), name


def test_a_second_thread_waits_for_the_prediction_running_on_the_model() -> None:
    model = tiny_cnn(seed=11)
    images = _images(4)
    serial = Predictor(model, device="cpu", precision="fp32").predict_proba(images)
    inside, release = threading.Event(), threading.Event()
    remove = _pause_inside_the_forward(model, inside, release)
    results: dict[str, torch.Tensor] = {}

    def first() -> None:
        results["first"] = Predictor(model, device="cpu", precision="fp32").predict_proba(images)

    def second() -> None:
        results["second"] = evaluate_like(model, images)

    paused = threading.Thread(target=first, name="paused")
    paused.start()
    assert inside.wait(WAIT)
    other = threading.Thread(target=second)
    other.start()
    time.sleep(0.3)  # long enough for the second call to finish, were it not waiting
    try:
        assert "second" not in results
        assert not model.training  # the first call's eval mode, not changed under it
    finally:
        release.set()
        paused.join(WAIT)
        other.join(WAIT)
        remove()
    assert torch.equal(results["first"], serial)
    assert torch.equal(results["second"], serial)
    assert model.training


def evaluate_like(model: Classifier, images: list[Image.Image]) -> torch.Tensor:
    """The probabilities of another Predictor on the same model."""
    return Predictor(model, device="cpu", precision="fp32").predict_proba(images)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_process_forked_while_another_thread_uses_the_model_can_use_it() -> None:
    """The child inherited the record of a thread it does not have as the model's user, and
    its first prediction on the model waited for it forever."""
    model = tiny_cnn(seed=11)
    images = _images(4)
    inside, release = threading.Event(), threading.Event()
    remove = _pause_inside_the_forward(model, inside, release)
    paused = threading.Thread(
        target=lambda: Predictor(model, device="cpu", precision="fp32").predict_proba(images),
        name="paused",
    )
    paused.start()
    try:
        assert inside.wait(WAIT)
        with warnings.catch_warnings():  # fork() in a process with threads: as asked here
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: the paused thread is not here
            status = 1
            try:
                with exclusive_use(model):
                    status = 0
            finally:
                os._exit(status)
        deadline = time.monotonic() + WAIT
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        assert done[0] == pid, "the child waited for the model (a thread it does not have)"
        assert os.waitstatus_to_exitcode(done[1]) == 0
    finally:
        release.set()
        paused.join(WAIT)
        remove()


def test_threads_with_dataloader_workers_do_not_deadlock(tmp_path: Path) -> None:
    model = tiny_cnn(seed=12)
    paths = []
    for index, image in enumerate(_images(4)):
        paths.append(tmp_path / f"scan{index}.png")
        image.save(paths[-1])
    predictor = Predictor(model, device="cpu", precision="fp32", num_workers=2, batch_size=2)
    serial = predictor.predict_proba(paths)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(predictor.predict_proba, paths) for _ in range(2)]
        results = [future.result(timeout=120) for future in futures]
    assert all(torch.equal(result, serial) for result in results)


def _waits_for_a_pass(read: Callable[[Classifier], object]) -> tuple[bool, bool]:
    """Whether ``read(model)`` (in another thread) waited while a pass held the model, and
    then ran once the pass ended."""
    model = tiny_cnn()
    done = threading.Event()

    def reader() -> None:
        read(model)
        done.set()

    with exclusive_use(model):  # as a pass does: a ViT's weights are swapped in here
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        waited = not done.wait(0.5)
    thread.join(60)
    return waited, done.is_set()


def test_a_checkpoint_or_an_export_waits_for_a_pass_on_the_model(tmp_path: Path) -> None:
    # a model with attention has its cast weights swapped in for a pass: a checkpoint saved
    # (or a model exported) from another thread meanwhile held the bf16 copies
    from retinalnet.checkpoint import save_checkpoint

    assert _waits_for_a_pass(lambda model: save_checkpoint(tmp_path / "m.pt", model)) == (
        True,
        True,
    )
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from retinalnet.export import to_onnx

    scan = Image.new("L", (48, 48), 90)
    exported = _waits_for_a_pass(lambda model: to_onnx(model, tmp_path / "m.onnx", images=[scan]))
    assert exported == (True, True)


# -- a model cast to another dtype ------------------------------------------------------------


def _fit(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    trainer = Trainer(model, device="cpu", progress=False, max_epochs=1, feature_cache=False)
    return trainer.fit(SyntheticOCT(1, shape=(40, 36)))


def _fine_tune(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    data = SyntheticOCT(1, shape=(40, 36))
    return fine_tune(model, data, data, FineTune(epochs=1), device="cpu", progress=False)


def _calibrate(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    return calibrate(model, SyntheticOCT(1, shape=(40, 36)), device="cpu")


def _to_onnx(model: Classifier, image: Image.Image, tmp_path: Path) -> object:
    pytest.importorskip("onnxruntime")
    return to_onnx(model, tmp_path / "model.onnx")


CAST_DOORS = {
    **DOORS,
    "Trainer.fit": _fit,
    "fine_tune": _fine_tune,
    "calibrate": _calibrate,
    "to_onnx": _to_onnx,
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("door", list(CAST_DOORS))
def test_every_door_refuses_a_model_cast_from_float32_in_one_line(
    door: str, dtype: torch.dtype, tmp_path: Path
) -> None:
    # torch failed deep in the first layer ("Input type (torch.FloatTensor) and weight type
    # (torch.HalfTensor) should be the same"), or a bf16 model ran where fp32 was asked for
    model = frozen_small_cnn().to(dtype)
    with pytest.raises(ValueError, match=rf"is {dtype}, not float32 .* model\.float\(\)"):
        CAST_DOORS[door](model, _images(4)[0], tmp_path)
    assert {weight.dtype for weight in model.parameters()} == {dtype}  # left as it was
    assert not (tmp_path / "model.onnx").exists()


def test_a_buffer_cast_from_float32_is_named() -> None:
    model = frozen_small_cnn()
    model.network.features[1].running_mean = model.network.features[1].running_mean.double()
    with pytest.raises(ValueError, match=r"buffer 'network\.features\.1\.running_mean'"):
        Predictor(model, device="cpu")


class _WithPrior(nn.Module):
    """A network keeping a float64 constant of its own (a log prior added to its output)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.inner = network
        self.register_buffer("log_prior", torch.zeros(4, dtype=torch.float64))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.inner(inputs) + self.log_prior.float()


def test_a_float64_buffer_of_the_networks_own_is_not_a_cast_model() -> None:
    # refused as "a model cast by .double()": a network that ran before was refused
    model = frozen_small_cnn()
    wrapped = Classifier(
        _WithPrior(model.network),
        classes=model.classes,
        preprocessing=model.preprocessing,
        head="inner.classifier",
    )
    probabilities = Predictor(wrapped, device="cpu", precision="fp32").predict_proba(_images(4))
    assert probabilities.shape == (4, 4)


@pytest.mark.parametrize("door", ["Predictor", "Trainer.evaluate"])
def test_a_model_cast_after_its_predictor_or_trainer_was_built_is_refused(door: str) -> None:
    # the check ran when the engine was built only: the next call failed deep in torch
    model = frozen_small_cnn()
    data = SyntheticOCT(1, shape=(40, 36))
    if door == "Predictor":
        predictor = Predictor(model, device="cpu", precision="fp32")
        predictor.predict_proba(_images(4))
        model.double()
        call: Callable[[], object] = lambda: predictor.predict_proba(_images(4))  # noqa: E731
    else:
        trainer = Trainer(model, device="cpu", progress=False, precision="fp32")
        trainer.evaluate(data)
        model.half()
        call = lambda: trainer.evaluate(data)  # noqa: E731
    with pytest.raises(ValueError, match=r"not float32 .* model\.float\(\)"):
        call()
