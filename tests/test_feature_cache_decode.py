"""The feature cache's tensor path: workers read bytes, the device decodes a batch ahead,
and the features are those of the PIL path within the documented tolerance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from _training_helpers import CLASSES
from retinalnet.datasets import (
    KermanyOCT,
    SyntheticOCT,
    UnreadableImageError,
    make_synthetic_kermany,
)
from retinalnet.models import Classifier, build_head, freeze
from retinalnet.training import _tensor_batches
from retinalnet.training._feature_cache import build_feature_cache
from retinalnet.transforms import Preprocessing


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("decode") / "data"
    return make_synthetic_kermany(root, train=5, val=0, test=0, shape=(80, 72), seed=3)


def frozen_model(**preprocessing: object) -> Classifier:
    torch.manual_seed(0)
    trunk = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    )
    freeze(trunk)
    network = nn.Sequential(trunk, build_head(16, 4, hidden=8, dropout=0.2))
    prep = Preprocessing(size=32, **preprocessing)  # type: ignore[arg-type]
    return Classifier(network, classes=CLASSES, preprocessing=prep)


def _build(model: Classifier, data: object, **kwargs: object) -> torch.Tensor:
    cache = build_feature_cache(
        model, data, batch_size=3, device="cpu", precision="fp32", progress=False,
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    return cache.features


@pytest.mark.parametrize("workers", [0, 2])
def test_tensor_decoding_gives_the_pil_features_in_order(tree: Path, workers: int) -> None:
    model = frozen_model()
    data = KermanyOCT(tree, "train")
    pil = build_feature_cache(model, data, batch_size=3, device="cpu", precision="fp32",
                              progress=False, decode="pil")  # fmt: skip
    tensor = build_feature_cache(model, data, batch_size=3, device="cpu", precision="fp32",
                                 progress=False, decode="tensor", num_workers=workers)  # fmt: skip
    assert torch.equal(tensor.targets, pil.targets)
    # inputs within a grey level or so: features of this small trunk move by a few 1e-3
    torch.testing.assert_close(tensor.features, pil.features, atol=0.02, rtol=0.0)
    assert tensor.fingerprint != pil.fingerprint  # the two never stand in for each other


def test_auto_decodes_with_pil_on_a_cpu(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tensor path ran")

    monkeypatch.setattr("retinalnet.training._feature_cache.tensor_batches", refuse)
    _build(frozen_model(), KermanyOCT(tree, "train"))  # decode="auto"
    _build(frozen_model(reduced_decode=True), KermanyOCT(tree, "train"), decode="tensor")


def test_tensor_decoding_needs_a_data_set_of_files(tree: Path) -> None:
    with pytest.raises(TypeError, match="decode='pil'"):
        _build(frozen_model(), SyntheticOCT(2, shape=(64, 64), seed=0), decode="tensor")
    own_transform = KermanyOCT(tree, "train", transform=Preprocessing(size=32).eval_transform())
    with pytest.raises(TypeError, match="default loader"):
        _build(frozen_model(), own_transform, decode="tensor")
    with pytest.raises(ValueError, match="decode must be"):
        _build(frozen_model(), KermanyOCT(tree, "train"), decode="gpu")


def test_a_broken_file_stops_the_build_and_is_named(tree: Path, tmp_path: Path) -> None:
    data = KermanyOCT(tree, "train")
    broken = tmp_path / "broken.jpeg"
    broken.write_bytes(Path(data.samples[4][0]).read_bytes()[:300])
    data.samples[4] = (str(broken), data.samples[4][1])
    with pytest.raises(UnreadableImageError, match=r"broken\.jpeg"):
        _build(frozen_model(), data, decode="tensor")


def test_the_reading_thread_stops_when_the_caller_stops(tree: Path) -> None:
    samples = _tensor_batches.file_samples(KermanyOCT(tree, "train"))
    assert samples is not None
    batches, total = _tensor_batches.tensor_batches(
        samples, Preprocessing(size=32), device=torch.device("cpu"), batch_size=2,
        num_workers=0, depth=1,
    )  # fmt: skip
    assert total == 10
    inputs, _ = next(batches)
    assert inputs.shape == (2, 3, 32, 32)
    batches.close()  # runs the generator's finally: the thread is told to stop and joined
    import threading

    assert not any(t.name == "retinalnet-tensor-batches" for t in threading.enumerate())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_auto_decodes_there_and_gives_the_pil_features(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retinalnet.training import _feature_cache

    calls: list[torch.device] = []
    original = _feature_cache.tensor_batches

    def spying(*args: object, **kwargs: object) -> object:
        calls.append(kwargs["device"])  # type: ignore[arg-type]
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_feature_cache, "tensor_batches", spying)
    model, data = frozen_model(), KermanyOCT(tree, "train")
    options = {"batch_size": 3, "precision": "fp32", "progress": False}
    pil = build_feature_cache(model, data, device="cpu", decode="pil", **options)  # type: ignore[arg-type]
    gpu = build_feature_cache(model, data, device="cuda", **options)  # type: ignore[arg-type]
    assert [device.type for device in calls] == ["cuda"]
    assert torch.equal(gpu.targets, pil.targets)
    torch.testing.assert_close(gpu.features, pil.features, atol=0.05, rtol=0.0)
