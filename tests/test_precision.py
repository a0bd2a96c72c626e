"""Precision choices: the one policy (autocast dtype per device and use), weights cast once."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from _training_helpers import linear_classifier, separable_data, tiny_cnn
from retinalnet import Predictor, SyntheticOCT
from retinalnet.precision import (
    autocast,
    cast_weights,
    cpu_has_native_bf16,
    low_precision_forward,
    resolve_precision,
)
from retinalnet.training import EvaluationResult, Trainer, evaluate

CPU = torch.device("cpu")


@pytest.mark.parametrize(("precision", "expected"), [("fp32", None), ("bf16", torch.bfloat16)])
def test_explicit_precisions_on_cpu(precision: str, expected: torch.dtype | None) -> None:
    assert resolve_precision(precision, CPU) is expected


def test_auto_on_cpu_uses_bf16_only_with_native_support() -> None:
    expected = torch.bfloat16 if cpu_has_native_bf16() else None
    assert resolve_precision("auto", CPU) is expected


def test_auto_never_trains_in_bf16_on_a_cpu() -> None:
    assert resolve_precision("auto", CPU, training=True) is None
    assert resolve_precision("bf16", CPU, training=True) is torch.bfloat16


def test_auto_on_mps_is_fp32() -> None:
    assert resolve_precision("auto", torch.device("mps")) is None


@pytest.mark.parametrize(
    ("precision", "message"),
    [
        ("fp16", "precision='fp16' needs a GPU"),
        ("half", "precision must be 'auto', 'fp32', 'bf16' or 'fp16', got 'half'"),
    ],
)
def test_bad_precisions_are_refused(precision: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_precision(precision, CPU)


def test_autocast_none_changes_nothing_and_bf16_computes_in_bf16() -> None:
    layer = nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast(CPU, None):
        assert layer(x).dtype == torch.float32
    with autocast(CPU, torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16


def _conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 14 * 14, 4)
    ).eval()


def test_low_precision_forward_equals_autocast_and_leaves_the_model_in_fp32() -> None:
    model = _conv_net()
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode(), autocast(CPU, torch.bfloat16):
        expected = model(x)
        forward = low_precision_forward(model, torch.bfloat16)
        outputs = forward(x)
    assert outputs.dtype == torch.bfloat16
    assert torch.equal(outputs, expected)  # the same rounding of the same weights
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(b.dtype != torch.bfloat16 for b in model.buffers())  # batch norm untouched
    assert model(x).dtype == torch.float32


def test_low_precision_forward_keeps_a_shared_weight_shared() -> None:
    first = nn.Linear(4, 4)
    second = nn.Linear(4, 4)
    second.weight = first.weight  # tied, as in some language-model heads
    model = nn.Sequential(first, second)
    x = torch.randn(3, 4)
    with torch.inference_mode(), autocast(CPU, torch.bfloat16):
        torch.testing.assert_close(low_precision_forward(model, torch.bfloat16)(x), model(x))


def test_cast_weights_casts_again_only_what_changed() -> None:
    model = _conv_net()
    first = cast_weights(model, torch.bfloat16)
    assert set(first) == {"0.weight", "0.bias", "4.weight", "4.bias"}  # no batch norm
    assert first["0.weight"][1].is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        model[4].weight.add_(1.0)  # an in-place update, as an optimizer step makes
    second = cast_weights(model, torch.bfloat16, first)
    assert second["0.weight"][1] is first["0.weight"][1]  # unchanged: the same copy
    assert second["4.weight"][1] is not first["4.weight"][1]
    torch.testing.assert_close(second["4.weight"][1], model[4].weight.to(torch.bfloat16))


def test_low_precision_forward_without_a_dtype_is_the_model() -> None:
    model = _conv_net()
    assert low_precision_forward(model, None) is model


def test_trainer_trains_under_bf16_autocast_with_fp32_weights() -> None:
    model = linear_classifier()
    trainer = Trainer(model, precision="bf16", max_epochs=2, device="cpu", progress=False)
    history = trainer.fit(separable_data(32), separable_data(16, seed=1))
    assert all(torch.isfinite(torch.tensor(r.train_loss)) for r in history)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_trainer_refuses_a_bad_precision_at_construction() -> None:
    with pytest.raises(ValueError, match="precision must be"):
        Trainer(linear_classifier(), precision="fp8", device="cpu")


def test_cast_weights_in_fp32_copies_only_convolutions_channels_last() -> None:
    model = _conv_net()
    copies = cast_weights(model, None)
    assert set(copies) == {"0.weight"}  # 4-d only; biases and linear weights are used as they are
    weight = copies["0.weight"][1]
    assert weight.dtype == torch.float32
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert model[0].weight.is_contiguous()  # the model's own weight is untouched
    torch.testing.assert_close(weight, model[0].weight, rtol=0, atol=0)


# -- fp32 is fp32 inside a caller's own autocast -----------------------------------------------


def test_autocast_none_turns_off_a_callers_autocast() -> None:
    layer = nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16  # the caller's autocast is on
        with autocast(CPU, None):
            inside = layer(x)
        assert layer(x).dtype == torch.bfloat16  # and on again after the block
    assert inside.dtype == torch.float32
    assert torch.equal(inside, layer(x))


def _fp32_inside_and_outside(run: Callable[[], object]) -> tuple[object, object]:
    """``run()`` plainly, then inside the caller's own bf16 autocast."""
    outside = run()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = run()
    return outside, inside


def test_predictor_in_fp32_ignores_a_callers_autocast() -> None:
    model = tiny_cnn(seed=1).eval()
    images = [SyntheticOCT(1, shape=(40, 36), seed=2).image(i) for i in range(4)]
    predictor = Predictor(model, device="cpu", precision="fp32")
    outside, inside = _fp32_inside_and_outside(lambda: predictor.predict_proba(images))
    assert isinstance(outside, torch.Tensor)
    assert isinstance(inside, torch.Tensor)
    assert inside.dtype == torch.float32
    assert torch.equal(inside, outside)  # bit for bit
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert predictor.precision_name == "fp32"


def test_evaluate_in_fp32_ignores_a_callers_autocast() -> None:
    model = tiny_cnn(seed=1).eval()
    data = SyntheticOCT(2, shape=(40, 36), seed=2)
    outside, inside = _fp32_inside_and_outside(
        lambda: evaluate(model, data, device="cpu", precision="fp32", progress=False)
    )
    assert isinstance(outside, EvaluationResult)
    assert isinstance(inside, EvaluationResult)
    assert inside.loss == outside.loss  # bit for bit
    assert np.array_equal(inside.probabilities, outside.probabilities)
    assert inside.precision == "fp32"


def test_a_fit_in_fp32_ignores_a_callers_autocast() -> None:
    def first_epoch() -> tuple[float, float | None]:
        model = tiny_cnn(seed=3)
        trainer = Trainer(
            model, precision="fp32", max_epochs=1, device="cpu", progress=False, seed=0
        )
        record = trainer.fit(SyntheticOCT(2, shape=(40, 36), seed=4))[-1]
        return record.train_loss, next(iter(model.parameters())).sum().item()

    outside, inside = _fp32_inside_and_outside(first_epoch)
    assert inside == outside  # the loss and the trained weights, bit for bit


class _Attention(nn.Module):
    """Patches, one self-attention layer (batch first, as ViT's), a linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patches = nn.Conv2d(3, 16, kernel_size=8, stride=8)
        self.attention = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(images).flatten(2).transpose(1, 2)
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return torch.log_softmax(self.head(attended.mean(dim=1)), dim=1)


def test_a_model_with_attention_keeps_torchs_fused_attention_in_low_precision() -> None:
    # a function mode around the forward turned off torch's fused attention: ViT-B/16 ran 40
    # times slower in bf16 on a CPU, its outputs one bf16 step off those of plain autocast
    from torch.func import functional_call

    from retinalnet.precision import cast_forward

    model = _Attention().eval()
    images = torch.rand(3, 3, 32, 32)
    cast = cast_weights(model, torch.bfloat16)
    copies = {name: copy for name, (_, copy) in cast.items()}
    seen: list[object] = []
    hook = model.attention.register_forward_pre_hook(
        lambda module, args: seen.append(torch.overrides._get_current_function_mode())
    )
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = functional_call(model, copies, (images,))
        got = cast_forward(model, cast)(images)
    hook.remove()
    assert seen == [None, None]  # no mode: the fused path stays open
    assert torch.equal(got, expected)
