"""Under torch.set_default_dtype(torch.float64) the library builds its networks in float32
(create_model, the builders, a checkpoint's model, the Predictor) and trains them; the
user's default is left as it was, and a float64 network built by hand is named as such."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from _training_helpers import CLASSES, tiny_cnn
from retinalnet import Predictor, SyntheticOCT
from retinalnet._core.default_dtype import in_float32
from retinalnet._core.model_use import check_float32_weights
from retinalnet.checkpoint import load_checkpoint, save_checkpoint
from retinalnet.models import Classifier, create_model, small_cnn, vgg16_transfer
from retinalnet.training import Trainer
from retinalnet.transforms import Preprocessing


@pytest.fixture
def float64_default() -> Iterator[None]:
    """torch's default dtype float64 for the test, as a scientific notebook sets it."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def _dtypes(model: nn.Module) -> set[torch.dtype]:
    return {
        tensor.dtype
        for tensor in [*model.parameters(), *model.buffers()]
        if tensor.is_floating_point()
    }


def test_in_float32_casts_a_module_built_under_another_default(float64_default: None) -> None:
    module = nn.Linear(2, 2)
    assert in_float32(module) is module
    assert _dtypes(module) == {torch.float32}
    assert torch.get_default_dtype() == torch.float64


def test_the_library_never_switches_the_process_default_dtype(
    float64_default: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default dtype is one setting for every thread of the process: switching it while
    a model was built gave a host thread float32 tensors it had asked as float64 (64,773 of
    119,525 torch.zeros(1) in an audit), and a model built at once in another thread
    float64 weights that the float32 check refused."""
    switched: list[torch.dtype] = []
    monkeypatch.setattr(torch, "set_default_dtype", switched.append)

    model = create_model("small_cnn", weights=None)
    small_cnn(preprocessing=Preprocessing(size=32))

    assert switched == []
    assert _dtypes(model) == {torch.float32}


@pytest.mark.usefixtures("float64_default")
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: create_model("small_cnn", weights=None), id="create_model-small_cnn"),
        pytest.param(lambda: create_model("resnet18", weights=None), id="create_model-resnet18"),
        pytest.param(lambda: small_cnn(preprocessing=Preprocessing(size=32)), id="small_cnn"),
    ],
)
def test_the_library_builds_float32_networks_under_a_float64_default(
    build: object,
) -> None:
    model = build()  # type: ignore[operator]
    assert _dtypes(model) == {torch.float32}  # was float64: refused by every door
    assert torch.get_default_dtype() == torch.float64


@pytest.mark.usefixtures("float64_default")
def test_vgg16_transfer_is_built_in_float32_too() -> None:
    with torch.device("meta"):  # its structure and dtypes, without 138M random weights
        model = vgg16_transfer(weights=None)
    assert _dtypes(model) == {torch.float32}


def test_a_float32_checkpoint_is_loaded_predicted_with_and_trained_under_a_float64_default(
    tmp_path: Path, float64_default: None
) -> None:
    path = save_checkpoint(tmp_path / "model.pt", in_float32(tiny_cnn()))

    rebuilt = load_checkpoint(path).build_model()
    assert _dtypes(rebuilt) == {torch.float32}
    predictor = Predictor.from_checkpoint(path, device="cpu", precision="fp32")
    images = [image for image, _ in SyntheticOCT(2, shape=(40, 36))]
    assert predictor.predict_proba(images).dtype == torch.float32
    trainer = Trainer(rebuilt, device="cpu", progress=False, max_epochs=1, batch_size=2)
    history = trainer.fit(SyntheticOCT(4, shape=(40, 36)))  # ToTensor makes float64 images
    assert len(history) == 1
    assert torch.get_default_dtype() == torch.float64


def test_a_network_built_by_hand_under_a_float64_default_is_named_as_such(
    float64_default: None,
) -> None:
    network = nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.LogSoftmax(dim=1))
    model = Classifier(network, classes=CLASSES)
    with pytest.raises(
        ValueError,
        match=r"^the model's weight 'network\.1\.weight' is torch\.float64, not float32 "
        r"\(torch's default dtype is torch\.float64 \(torch\.set_default_dtype\), which a "
        r"network built by hand takes\), so it cannot be run: call model\.float\(\) first;",
    ):
        check_float32_weights(model, "run")
