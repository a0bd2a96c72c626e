"""Numeric precision of forward passes: fp32, or bf16/fp16 autocast where it pays off."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, TypeAlias

import torch
from torch import nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

from retinalnet._core.bool_options import check_bool
from retinalnet._core.tensor_stamp import TensorStamp, tensor_stamp

__all__ = [
    "Precision",
    "autocast",
    "cast_forward",
    "cast_weights",
    "cpu_has_native_bf16",
    "low_precision_forward",
    "precision_name",
    "resolve_precision",
]

Precision: TypeAlias = Literal["auto", "fp32", "bf16", "fp16"]
"""``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``."""

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def precision_name(dtype: torch.dtype | None) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"``: the name of an autocast dtype from
    :func:`resolve_precision` (``None``: plain fp32).

    .. versionadded:: 0.2
    """
    names = {dtype: name for name, dtype in _DTYPES.items()}
    return "fp32" if dtype is None else names.get(dtype, str(dtype).removeprefix("torch."))


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 pays off.

    Measured on a 2-core AMD EPYC with AVX512-BF16 (``benchmarks/bench_precision.py``,
    frozen VGG16 at 224 px, batches of 16): 8.6 images/s in fp32, 12.5 in fp32 with
    channels-last, 25.0 in bf16 with channels-last. Without native support, bf16 is
    emulated and slower.
    """
    checker = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(checker()) if checker is not None else False


def resolve_precision(
    precision: str, device: torch.device, *, training: bool = False
) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; ``None`` means plain fp32.

    The one precision policy of retinalnet, with one default, ``"auto"``: bf16 on a CUDA
    GPU that supports it (fp16 on older ones), and on a CPU with native bf16 for inference
    (prediction, evaluation, validation, the feature cache) but not for ``training``
    passes, where bf16 measured 4.5 times slower on 2 CPU cores; fp32 everywhere else (MPS
    included). ``"fp32"``, ``"bf16"`` and ``"fp16"`` force one.

    Raises
    ------
    ValueError
        If ``precision`` is unknown, or asks for something the device cannot do.
    """
    training = check_bool(training, "training")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and not training and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    if precision not in _DTYPES:
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision='fp16' needs a GPU; on a CPU use 'bf16' or 'auto'")
    return _DTYPES[precision]


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` for ``dtype`` on ``device``; with ``dtype=None``, plain fp32.

    fp32 turns autocast off for ``device`` in the block, so a caller's own
    ``torch.autocast`` around a call that asked for fp32 changes nothing: the results are
    those of the same call outside it, bit for bit. Every forward pass of retinalnet
    (prediction, evaluation, validation, training, the feature cache, the learning-rate
    test) gets its precision here.

    Examples
    --------
    >>> cpu = torch.device("cpu")
    >>> with torch.autocast("cpu", dtype=torch.bfloat16), autocast(cpu, None):
    ...     torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype
    torch.float32
    """
    if dtype is None:
        if not torch.amp.is_autocast_available(device.type):  # no autocast to turn off
            yield
            return
        with torch.autocast(device_type=device.type, enabled=False):
            yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def low_precision_forward(
    model: nn.Module, dtype: torch.dtype | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model``'s forward with its convolution and linear weights cast to ``dtype`` once.

    Autocast casts every weight of a convolution or linear layer to ``dtype`` again in
    every forward pass: for VGG16 that is 138 million numbers per batch, about a third of
    the time of a small batch on a CPU. The returned function runs ``model`` with copies of
    those weights cast once (and nothing else changed), so under :func:`autocast` it gives
    the same results, faster; ``model`` itself keeps its fp32 weights. Cast again after
    the weights change. ``dtype=None`` returns ``model`` unchanged.

    Measured on 2 CPU cores with native bf16 (``benchmarks/bench_precision.py``, frozen
    VGG16 at 224 px, channels-last): 16.8 images/s with autocast alone and 24.9 with the
    weights cast once in batches of 4; 22.3 and 25.0 in batches of 16.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Linear(3, 2)
    >>> forward = low_precision_forward(net, torch.bfloat16)
    >>> with autocast(torch.device("cpu"), torch.bfloat16):
    ...     forward(torch.ones(1, 3)).dtype
    torch.bfloat16
    >>> net.weight.dtype
    torch.float32
    """
    if dtype is None:
        return model
    return cast_forward(model, cast_weights(model, dtype))


CastWeights: TypeAlias = dict[str, tuple[TensorStamp | None, torch.Tensor]]
"""Weight name -> (the stamp of the weight cast: which tensor, storage and version it was,
or ``None`` for an inference tensor, which has no version counter; the cast copy)."""


def cast_forward(model: nn.Module, cast: CastWeights) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model``'s forward with the copies of :func:`cast_weights` in place of its weights.

    The model is not touched: no attribute is swapped, even for the length of a call (as
    :func:`torch.func.functional_call` does), so another thread reading the model (its
    ``state_dict()``, a training step, another prediction) sees its own fp32 weights while
    this forward runs. The copies are handed, in the calling thread only, to the
    convolution and linear functions of the forward pass that receive one of those weights
    (a :class:`~torch.overrides.TorchFunctionMode`).

    A model with attention layers (:class:`~torch.nn.MultiheadAttention`, as ViT's) is the
    exception: any function mode turns off torch's fused attention, which made ViT-B/16 40
    times slower on a CPU and moved its bf16 outputs by one bf16 step, so for such a model
    the copies are swapped in for the call (:func:`torch.func.functional_call`). The engine
    holds :func:`~retinalnet._core.model_use.exclusive_use` around it, so no other
    retinalnet call sees the swap; another thread reading such a model meanwhile does.

    .. versionadded:: 0.2
    """
    if any(isinstance(module, nn.MultiheadAttention) for module in model.modules()):
        swapped = {name: copy for name, (_, copy) in cast.items()}

        def swapped_forward(inputs: torch.Tensor) -> torch.Tensor:
            outputs: torch.Tensor = functional_call(model, swapped, (inputs,))
            return outputs

        return swapped_forward
    weights = _weights_by_name(model)
    replacements = {id(weights[name]): (weights[name], copy) for name, (_, copy) in cast.items()}

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        with _Replaced(replacements):
            outputs: torch.Tensor = model(inputs)
        return outputs

    return forward


def _weights_by_name(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters of ``model``'s modules, named as :func:`cast_weights` names them."""
    return {
        f"{prefix}.{name}" if prefix else name: tensor
        for prefix, module in model.named_modules()
        for name, tensor in module.named_parameters(recurse=False)
    }


# what convolution and linear layers compute with: the functions given the cast copies
_WEIGHTED = frozenset(
    {
        torch.conv1d,
        torch.conv2d,
        torch.conv3d,
        torch.conv_transpose1d,
        torch.conv_transpose2d,
        torch.conv_transpose3d,
        nn.functional.linear,
    }
)


class _Replaced(TorchFunctionMode):
    """Give each convolution and linear function the replacement of every weight it
    receives (a torch function mode: it acts in the thread that enters it only).

    Any other use of a weight (``weight.t()`` in a custom layer, a fused attention kernel)
    gets the model's own, which autocast rounds to the same numbers.
    """

    def __init__(self, replacements: Mapping[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__()
        self.replacements = replacements

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        if func not in _WEIGHTED:
            return func(*args, **(kwargs or {}))
        args = tuple(self._replace(value) for value in args)
        kwargs = {key: self._replace(value) for key, value in (kwargs or {}).items()}
        return func(*args, **kwargs)

    def _replace(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            kept = self.replacements.get(id(value))
            return kept[1] if kept is not None and kept[0] is value else value
        return value


def cast_weights(
    model: nn.Module, dtype: torch.dtype | None, previous: CastWeights | None = None
) -> CastWeights:
    """Copies of ``model``'s convolution and linear weights in ``dtype``, for
    :func:`cast_forward`.

    4-d (convolution) weights are made channels-last, the layout of the inputs the engine
    passes. ``dtype=None`` keeps each weight's dtype and copies only the 4-d ones: in fp32 a
    channels-last copy of VGG16's convolution weights measured 12% faster on a CPU than
    reordering them in every call. A weight already in ``previous`` and unchanged since (the
    same tensor, on the same storage, read the same way, with the same version counter)
    keeps its copy, so after a training step only the weights that changed are cast again;
    a weight replaced by another tensor (``load_state_dict(assign=True)``), even one at the
    freed one's address, is cast again. A weight shared by two layers stays shared. The
    model itself is never changed.
    """
    cast: CastWeights = {}
    shared: dict[tuple[object, ...], torch.Tensor] = {}
    for prefix, module in model.named_modules():
        if not isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            continue
        for name, tensor in module.named_parameters(recurse=False):
            if not tensor.is_floating_point() or (dtype is None and tensor.dim() != 4):
                continue
            key = f"{prefix}.{name}" if prefix else name
            kept = previous.get(key) if previous is not None else None
            if kept is not None and kept[0] is not None and kept[0].matches(tensor):
                cast[key] = kept  # its stamp too: nothing to stamp again
                continue
            # None for an inference tensor (a model built under torch.inference_mode): with
            # no version counter to tell an in-place change by, it is cast again every time
            stamp = tensor_stamp(tensor)
            # the same memory read the same way: the same values (a tied weight)
            view = (tensor.device, tensor.data_ptr(), tensor.shape, tensor.stride(), tensor.dtype)
            if view not in shared:
                copy = tensor.detach().to(dtype or tensor.dtype)
                if copy.dim() == 4:
                    copy = copy.contiguous(memory_format=torch.channels_last)
                shared[view] = copy
            cast[key] = (stamp, shared[view])
    return cast
