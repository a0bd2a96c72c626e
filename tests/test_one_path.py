"""One path from image to answer: every door prepares a scan exactly as training does.

Every inference door (Predictor, ``evaluate``, the Trainer's validation and ``evaluate``, the
feature cache, Grad-CAM, ``retinalnet predict`` and ``retinalnet evaluate``) hands its
batches to :class:`~retinalnet.engine.InferenceEngine`; the tests spy on the engine and on
the decoder, and compare what reached the network with ``Preprocessing.prepare(path)``,
decoding scale included.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from retinalnet import engine as engine_module
from retinalnet import transforms as transforms_module
from retinalnet.checkpoint import save_checkpoint
from retinalnet.cli import main
from retinalnet.datasets import KermanyOCT, make_synthetic_kermany
from retinalnet.demo import run_demo
from retinalnet.gradcam import grad_cam_image
from retinalnet.models import Classifier, small_cnn
from retinalnet.predictor import Predictor
from retinalnet.training import Trainer, build_feature_cache, evaluate
from retinalnet.transforms import Preprocessing

# resize 37: a 512 x 496 JPEG decodes at 1/8 scale
PREP = Preprocessing(size=32, reduced_decode=True)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("one-path") / "data"
    make_synthetic_kermany(root, train=2, val=1, test=1, seed=3)
    return root


@pytest.fixture
def model() -> Classifier:
    torch.manual_seed(0)
    return small_cnn(width=4, hidden=8, preprocessing=PREP)


class Spy:
    """Records the inputs the engine sends to a network and every file decode."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []
        self.decodes: list[tuple[str, int | None]] = []


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy()
    to_device = engine_module.InferenceEngine._to_device

    def recording_to_device(self: Any, inputs: torch.Tensor, **options: Any) -> torch.Tensor:
        if inputs.dim() == 4:  # images, not cached features
            spy.inputs.extend(inputs.detach().cpu().float())
        return to_device(self, inputs, **options)

    load_image = transforms_module.load_image

    def recording_load(path: Any, *, target_size: int | None = None) -> Image.Image:
        spy.decodes.append((str(path), target_size))
        return load_image(path, target_size=target_size)

    monkeypatch.setattr(engine_module.InferenceEngine, "_to_device", recording_to_device)
    monkeypatch.setattr(transforms_module, "load_image", recording_load)
    return spy


def _expected(paths: list[str]) -> list[torch.Tensor]:
    return [PREP.prepare(path) for path in paths]


def _assert_same_inputs(seen: list[torch.Tensor], paths: list[str]) -> None:
    assert len(seen) == len(paths)
    for tensor, expected in zip(seen, _expected(paths), strict=True):
        torch.testing.assert_close(tensor, expected, rtol=0, atol=0)


def _test_paths(root: Path) -> list[str]:
    return [path for path, _ in KermanyOCT(root, "test").samples]


def test_the_model_input_of_a_file_is_its_reduced_scale_decode(data_root: Path) -> None:
    path = _test_paths(data_root)[0]
    with Image.open(path) as image:
        assert image.size == (512, 496)
    assert PREP.load(path).size == (64, 62)  # 1/8: the shorter side stays >= 0.95 * 37
    full = Preprocessing(size=32).prepare(path)
    assert not torch.equal(PREP.prepare(path), full)  # the scale is part of the preprocessing


Door = Callable[[Classifier, Path, Path], None]


def _predictor(model: Classifier, root: Path, tmp_path: Path) -> None:
    Predictor(model, device="cpu", precision="fp32").topk(_test_paths(root), k=1)


def _evaluate(model: Classifier, root: Path, tmp_path: Path) -> None:
    evaluate(model, KermanyOCT(root, "test"), device="cpu", precision="fp32")


def _trainer_evaluate(model: Classifier, root: Path, tmp_path: Path) -> None:
    Trainer(model, device="cpu", precision="fp32").evaluate(KermanyOCT(root, "test"))


def _cli_predict(model: Classifier, root: Path, tmp_path: Path) -> None:
    checkpoint = save_checkpoint(tmp_path / "best.pt", model)
    assert main(["predict", "--checkpoint", str(checkpoint), str(root / "test"), "-q"]) == 0


def _cli_evaluate(model: Classifier, root: Path, tmp_path: Path) -> None:
    checkpoint = save_checkpoint(tmp_path / "best.pt", model)
    args = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "-q"]
    assert main(args) == 0


@pytest.mark.parametrize(
    "door",
    [_predictor, _evaluate, _trainer_evaluate, _cli_predict, _cli_evaluate],
    ids=["Predictor", "evaluate", "Trainer.evaluate", "cli-predict", "cli-evaluate"],
)
def test_every_inference_door_gives_the_network_the_same_input(
    door: Door, model: Classifier, data_root: Path, spy: Spy, tmp_path: Path
) -> None:
    door(model, data_root, tmp_path)
    _assert_same_inputs(spy.inputs, _test_paths(data_root))
    assert {target for _, target in spy.decodes} == {PREP.resize}


def test_training_decodes_every_file_as_inference_does(
    model: Classifier, data_root: Path, spy: Spy
) -> None:
    train, val = KermanyOCT(data_root, "train"), KermanyOCT(data_root, "val")
    Trainer(model, max_epochs=1, batch_size=4, device="cpu", precision="fp32").fit(train, val)
    decoded = {path for path, _ in spy.decodes}
    assert decoded == {path for path, _ in train.samples + val.samples}
    assert {target for _, target in spy.decodes} == {PREP.resize}
    _assert_same_inputs(spy.inputs, [path for path, _ in val.samples])  # validation


def test_the_feature_cache_sees_the_same_input(data_root: Path, spy: Spy) -> None:
    torch.manual_seed(0)
    frozen = small_cnn(width=4, hidden=8, preprocessing=PREP)
    frozen.requires_grad_(False)
    frozen.network.classifier.requires_grad_(True)
    build_feature_cache(frozen, KermanyOCT(data_root, "test"), device="cpu", progress=False)
    _assert_same_inputs(spy.inputs, _test_paths(data_root))


def test_gradcam_prepares_a_file_as_prediction_does(
    model: Classifier, data_root: Path, spy: Spy
) -> None:
    path = _test_paths(data_root)[0]
    heatmap = grad_cam_image(model, path)
    assert heatmap.shape == (496, 512)  # the file's own size, though decoded at 1/8
    assert spy.decodes[0] == (path, PREP.resize)


def test_the_demo_predicts_with_the_preprocessing_it_trained_with(tmp_path: Path) -> None:
    result = run_demo(
        tmp_path / "demo",
        epochs=1,
        train_per_class=2,
        eval_per_class=1,
        size=32,
        progress=False,
    )
    restored = Predictor.from_checkpoint(result.checkpoint, device="cpu")
    assert restored.preprocessing == Preprocessing(size=32)
    assert restored.preprocessing.reduced_decode is False
    again = restored.topk([p.source for p in result.predictions], k=2)
    for first, second in zip(result.predictions, again, strict=True):
        assert first.label == second.label


def test_the_cache_fingerprint_follows_the_preprocessing(data_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    frozen = small_cnn(width=4, hidden=8, preprocessing=PREP)
    frozen.requires_grad_(False)
    frozen.network.classifier.requires_grad_(True)
    data = KermanyOCT(data_root, "test")
    fingerprints = set()
    for preprocessing in (PREP, Preprocessing(size=32), Preprocessing(40)):
        frozen.preprocessing = preprocessing
        cache = build_feature_cache(frozen, data, cache_dir=tmp_path, device="cpu", progress=False)
        fingerprints.add(cache.fingerprint)
    assert len(fingerprints) == 3
