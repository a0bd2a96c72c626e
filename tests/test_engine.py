"""The inference engine: one call, one calibration temperature."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from retinalnet.engine import InferenceEngine
from retinalnet.models import Classifier

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")


class _Logits(nn.Module):
    """A 'network' whose outputs are its inputs' first four numbers: logits chosen by hand."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :4]


def _logit_batches(batches: int = 3, size: int = 2) -> tuple[torch.Tensor, DataLoader[object]]:
    logits = torch.randn(batches * size, 4, generator=torch.Generator().manual_seed(0)) * 3
    inputs = logits.reshape(-1, 1, 4, 1)  # one pixel wide: its mirror is itself
    data = TensorDataset(inputs, torch.zeros(len(logits), dtype=torch.int64))
    return logits, DataLoader(data, batch_size=size)


@contextlib.contextmanager
def recalibrated_during_the_first_batch(model: Classifier, temperature: float) -> Iterator[None]:
    """Set the model's temperature inside its first forward pass: what ``calibrate()`` in
    another thread (or a user's ``model.temperature = t``) may do between two batches."""

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        model.temperature = temperature

    handle = model.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@pytest.mark.parametrize("tta", [False, True])
def test_every_batch_of_a_run_is_at_the_temperature_it_began_with(tta: bool) -> None:
    model = Classifier(_Logits(), classes=CLASSES)
    model.temperature = 2.0
    logits, loader = _logit_batches()
    engine = InferenceEngine(model, device="cpu", precision="fp32", tta=tta)

    with recalibrated_during_the_first_batch(model, 5.0):
        rows = [log_probabilities for log_probabilities, _ in engine.run(loader)]
        assert engine.session_temperature is None  # the run has ended

    expected = torch.log_softmax(logits.double() / 2.0, dim=1)  # the mirror changes nothing
    assert torch.allclose(torch.cat(rows), expected, atol=1e-6)
    assert model.temperature == 5.0  # the next call takes it
    assert torch.allclose(
        engine.log_probabilities(loader.dataset.tensors[0]),  # type: ignore[attr-defined]
        torch.log_softmax(logits.double() / 5.0, dim=1),
        atol=1e-6,
    )


def test_the_session_temperature_is_read_when_the_session_begins() -> None:
    model = Classifier(_Logits(), classes=CLASSES)
    model.temperature = 2.0
    engine = InferenceEngine(model, device="cpu", precision="fp32")
    fixed = InferenceEngine(model, device="cpu", precision="fp32", temperature=1.0)
    assert engine.session_temperature is None
    with engine.session():
        model.temperature = 3.0
        assert engine.session_temperature == 2.0
        assert engine.temperature == 3.0  # the model's, for the next session
        with fixed.session():  # another engine on the model, nested in this thread
            assert fixed.session_temperature == 1.0
        with engine.session():  # nested: begins at the temperature set since
            assert engine.session_temperature == 3.0
        assert engine.session_temperature == 2.0
    assert engine.session_temperature is None
