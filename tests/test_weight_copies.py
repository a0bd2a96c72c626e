"""The copies the engine and the Trainer keep of a model's weights (the cast weights of
``precision.cast_weights``, the cached backbone features) are reused only for the very
tensors they came from: a weight replaced by a new tensor is seen even when the new one has
the old one's address and version counter, as a tensor allocated where the freed one was
has (``load_state_dict(assign=True)`` gave a reused Predictor the old weights' answers)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from PIL import Image
from torch import nn

from _training_helpers import frozen_small_cnn, one_thread, tiny_cnn
from retinalnet import Predictor, SyntheticOCT
from retinalnet._core.tensor_stamp import tensor_stamp
from retinalnet.models import Classifier
from retinalnet.precision import Precision, cast_weights
from retinalnet.training import Trainer

WEIGHT = "network.features.0.weight"  # the first convolution's: cast in fp32 and bf16 alike
VERSION = 5  # the old weight's version counter, which the new one is given too


def _images() -> list[Image.Image]:
    data = SyntheticOCT(1, shape=(40, 36), seed=3)
    return [data.image(i) for i in range(len(data))]


def _bump(tensor: torch.Tensor, version: int) -> None:
    """Move ``tensor``'s version counter up to ``version`` by writes that keep its values."""
    with torch.no_grad():
        while tensor._version < version:
            tensor.add_(0)
    assert tensor._version == version


def _at_address(tensor: torch.Tensor, pointer: int) -> None:
    """Make ``tensor`` report ``pointer`` as its address: the allocator's reuse of a freed
    weight's memory, made certain."""
    tensor.data_ptr = lambda: pointer  # type: ignore[method-assign]


def _by_assign(model: Classifier, values: torch.Tensor, pointer: int) -> None:
    state = dict(model.state_dict())
    state[WEIGHT] = values.clone()
    model.load_state_dict(state, assign=True)
    weight = model.get_parameter(WEIGHT)
    _bump(weight, VERSION)
    _at_address(weight, pointer)


def _by_parameter(model: Classifier, values: torch.Tensor, pointer: int) -> None:
    module = model.get_submodule(WEIGHT.rsplit(".", 1)[0])
    frozen = not module.weight.requires_grad  # a frozen backbone stays frozen
    module.weight = nn.Parameter(values.clone(), requires_grad=not frozen)
    _bump(module.weight, VERSION)
    _at_address(module.weight, pointer)


def _by_data(model: Classifier, values: torch.Tensor, pointer: int) -> None:
    weight = model.get_parameter(WEIGHT)  # the same object, on another storage
    weight.data = values.clone()
    _at_address(weight, pointer)


def _on_old_storage(model: Classifier, values: torch.Tensor, pointer: int) -> None:
    """A new tensor on the old weight's own storage (the same address, really), written
    through: the old weight's cast copy holds the values from before."""
    old = model.get_parameter(WEIGHT)
    new = torch.empty(0)
    with torch.no_grad():
        new.set_(old.untyped_storage(), old.storage_offset(), old.shape, old.stride())
        new.copy_(values)
    assert new.data_ptr() == pointer
    module = model.get_submodule(WEIGHT.rsplit(".", 1)[0])
    module.weight = nn.Parameter(new, requires_grad=old.requires_grad)
    _bump(module.weight, VERSION)


REPLACEMENTS: dict[str, Callable[[Classifier, torch.Tensor, int], None]] = {
    "load_state_dict(assign=True)": _by_assign,
    "module.weight = nn.Parameter(...)": _by_parameter,
    "weight.data = ...": _by_data,
    "a new tensor on the old storage": _on_old_storage,
}


def _replace(model: Classifier, how: str) -> None:
    """Replace ``WEIGHT`` by ``how`` with other values, the new tensor stamped with the old
    one's address and version counter: what a stamp of address and version took for the
    old weight."""
    old = model.get_parameter(WEIGHT)
    pointer, version = old.data_ptr(), old._version
    values = torch.randn(old.shape, generator=torch.Generator().manual_seed(7))
    REPLACEMENTS[how](model, values, pointer)
    new = model.get_parameter(WEIGHT)
    assert (new.data_ptr(), new._version) == (pointer, version)  # the old stamp matches
    assert torch.equal(new.detach(), values)


def _model() -> Classifier:
    model = tiny_cnn(seed=1)
    _bump(model.get_parameter(WEIGHT), VERSION)
    return model.eval()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("how", list(REPLACEMENTS))
def test_a_reused_predictor_sees_a_replaced_weight(precision: Precision, how: str) -> None:
    images = _images()
    with one_thread():
        model = _model()
        predictor = Predictor(model, device="cpu", precision=precision)
        before = predictor.predict_proba(images)
        _replace(model, how)
        reused = predictor.predict_proba(images)
        fresh = Predictor(model, device="cpu", precision=precision).predict_proba(images)
    assert not torch.equal(torch.as_tensor(before), torch.as_tensor(fresh))
    assert torch.equal(torch.as_tensor(reused), torch.as_tensor(fresh))


@pytest.mark.parametrize("how", list(REPLACEMENTS))
def test_the_trainers_cached_features_see_a_replaced_backbone_weight(how: str) -> None:
    data = SyntheticOCT(1, shape=(40, 36), seed=3)
    with one_thread():
        model = frozen_small_cnn()
        _bump(model.get_parameter(WEIGHT), VERSION)
        trainer = Trainer(model, device="cpu", batch_size=4, num_workers=0, progress=False)
        before = trainer.evaluate(data)
        _replace(model, how)
        reused = trainer.evaluate(data)
        fresh_trainer = Trainer(model, device="cpu", batch_size=4, num_workers=0, progress=False)
        fresh = fresh_trainer.evaluate(data)
    assert before.loss != fresh.loss
    assert reused.loss == fresh.loss


def test_a_weight_unchanged_keeps_its_cast_copy() -> None:
    """The cast copies are still reused while the weights stay the same tensors."""
    model = _model()
    first = cast_weights(model, torch.bfloat16)
    again = cast_weights(model, torch.bfloat16, first)
    assert all(again[name][1] is first[name][1] for name in first)
    with torch.no_grad():
        model.get_parameter(WEIGHT).mul_(2)  # in place: this one alone is cast again
    third = cast_weights(model, torch.bfloat16, again)
    assert [name for name in first if third[name][1] is not first[name][1]] == [WEIGHT]


def test_a_stamp_tells_tensors_apart_not_addresses() -> None:
    weight = torch.zeros(3)
    stamp = tensor_stamp(weight)
    assert stamp is not None
    assert stamp.matches(weight)
    twin = torch.empty(0).set_(weight.untyped_storage(), 0, (3,), (1,))
    assert twin.data_ptr() == weight.data_ptr()
    assert not stamp.matches(twin)
    with torch.inference_mode():
        assert tensor_stamp(torch.zeros(3)) is None  # no version counter to follow


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_weight_read_another_way_from_its_own_memory_is_cast_again(precision: Precision) -> None:
    # ``weight.data = weight.data.transpose(2, 3)``: the same tensor, storage, address and
    # version counter, read another way; its cast copy was kept (the answers 0.8 apart)
    images = _images()
    with one_thread():
        model = _model()
        predictor = Predictor(model, device="cpu", precision=precision)
        predictor.predict_proba(images)
        weight = model.get_parameter(WEIGHT)
        weight.data = weight.data.transpose(2, 3)
        reused = predictor.predict_proba(images)
        fresh = Predictor(model, device="cpu", precision=precision).predict_proba(images)
    assert torch.equal(torch.as_tensor(reused), torch.as_tensor(fresh))
