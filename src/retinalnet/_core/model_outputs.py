"""The one rule for what a network must return: a tensor of class scores ``(N, C)``.

Everything downstream reads a network's outputs as one row of scores per image, one column
per class, in logits or log-probabilities: the default loss (``CrossEntropyLoss``), the
predicted class (``argmax``), the probabilities (``softmax(outputs / T)``) and Grad-CAM's
score. A network that returns something else (a tuple or a dict, GoogLeNet's or Inception's
outputs in train mode, one logit for two classes, scores shaped ``(N, C, 1, 1)``) or that
already returns probabilities (a forward ending in ``Softmax``, whose outputs the softmax
would flatten towards uniform) trains and predicts wrongly, or fails far from the cause.
:func:`class_scores` refuses such outputs in one line that names what came back and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from retinalnet._core.model_inputs import describe

__all__ = [
    "PROBABILITY_TOLERANCE",
    "are_log_probabilities",
    "class_scores",
    "nll_for_log_probabilities",
]

PROBABILITY_TOLERANCE = 1e-3
"""How far from 1 each row's sum may be for outputs to count as probabilities (float32 and
wider; ten times more for float16 and bfloat16 outputs)."""

_SCORES = "a tensor (N, num_classes) of class scores (logits or log-probabilities)"


def _not_a_tensor(outputs: object, model_name: str) -> str:
    """What came back instead of a tensor, and the fix."""
    fields = getattr(outputs, "_fields", None)  # a namedtuple: GoogLeNetOutputs, InceptionOutputs
    if isinstance(outputs, tuple) and isinstance(fields, tuple):
        what = f"{describe(outputs)} (fields {', '.join(map(str, fields))})"
        names: Sequence[object] = fields
    elif isinstance(outputs, Mapping):
        names = list(outputs)
        what = f"{describe(outputs)} with keys {names!r}"
    elif isinstance(outputs, (tuple, list)):
        parts = ", ".join(describe(item) for item in outputs[:4])
        more = ", ..." if len(outputs) > 4 else ""
        what = f"{describe(outputs)} of {len(outputs)} ({parts}{more})"
        names = []
    else:
        what = describe(outputs)
        names = []
    fix = "wrap the network in a module whose forward returns the class-score tensor alone"
    if "logits" in names:
        fix += " (its .logits, e.g. return self.network(x).logits)"
        if any(str(name).startswith("aux_logits") for name in names):
            fix += ", or build it with aux_logits=False"
    return f"{model_name} returned {what}, not {_SCORES}; {fix}"


def _wrong_shape(outputs: torch.Tensor, num_classes: int | None, model_name: str) -> str | None:
    """What is wrong with the shape of ``outputs`` and the fix, or ``None``."""
    got = f"{model_name} returned {describe(outputs)}"
    wanted = f"(N, {num_classes})" if num_classes is not None else "(N, num_classes)"
    if outputs.dim() == 4 and outputs.shape[2:] == (1, 1):
        return (
            f"{got}, not class scores {wanted}; flatten them at the end of its forward "
            "(torch.flatten(x, 1), or nn.Flatten() before the last layer's output)"
        )
    one_score = outputs.dim() == 1 or (outputs.dim() == 2 and outputs.shape[1] == 1)
    if one_score and num_classes == 2:
        return (
            f"{got}, one score per image, not class scores {wanted}; a two-class model "
            "returns two logits, one per class (end in nn.Linear(in_features, 2) and train it "
            "with the default loss), not a single sigmoid logit"
        )
    if one_score and num_classes != 1:
        return (
            f"{got}, one score per image, not class scores {wanted}; make its last layer "
            "give one output per class"
        )
    if outputs.dim() != 2:
        return f"{got}, not class scores {wanted}; make its forward return one row per image"
    if num_classes is not None and outputs.shape[1] != num_classes:
        return (
            f"{got}: {outputs.shape[1]} scores per image for {num_classes} classes; make its "
            f"last layer give {num_classes} outputs, one per class in the order of the "
            f"classes (e.g. nn.Linear(in_features, {num_classes}), or "
            f"retinalnet.models.replace_head(network, {num_classes}))"
        )
    return None


def class_scores(
    outputs: object, num_classes: int | None, *, model_name: str = "the network"
) -> torch.Tensor:
    """``outputs`` if they are class scores ``(N, num_classes)``, else a one-line error.

    Class scores are a floating-point tensor with one row per image and one column per
    class: logits, or log-probabilities (a forward ending in ``LogSoftmax``). Probabilities
    (every row >= 0 and summing to 1 within :data:`PROBABILITY_TOLERANCE`: a forward ending
    in ``Softmax``) are refused, since softmax and the loss would be applied to them again.

    The probability test reads one value back from the device (a GPU waits once): call
    this on the first batch of a pass, not on every batch.

    Parameters
    ----------
    outputs
        What the network's forward returned for a batch.
    num_classes
        The number of classes; ``None`` (a plain module whose classes are not known)
        checks everything but the number of columns.
    model_name
        How the message names the network, e.g. ``"ResNet"``.

    Returns
    -------
    torch.Tensor
        ``outputs`` itself.

    Raises
    ------
    TypeError
        If ``outputs`` is not a tensor (a tuple, a dict, torchvision's ``GoogLeNetOutputs``
        or ``InceptionOutputs`` of a network in train mode), naming its fields or keys.
    ValueError
        If it is not a floating-point tensor ``(N, num_classes)`` (one logit per image for a
        binary model, ``(N, C, 1, 1)``, another number of columns), or it holds
        probabilities.

    Examples
    --------
    >>> import torch
    >>> class_scores(torch.zeros(8, 4), 4).shape
    torch.Size([8, 4])
    >>> class_scores(torch.softmax(torch.randn(8, 4), 1), 4)
    Traceback (most recent call last):
    ...
    ValueError: the network returned probabilities (every row >= 0, summing to 1), not ...
    """
    if not isinstance(outputs, torch.Tensor):
        raise TypeError(_not_a_tensor(outputs, model_name))
    problem = _wrong_shape(outputs, num_classes, model_name)
    if problem is not None:
        raise ValueError(problem)
    if not outputs.is_floating_point():
        raise ValueError(
            f"{model_name} returned {describe(outputs)}, not {_SCORES}; return the "
            "floating-point scores, not the predicted classes"
        )
    if outputs.numel() and _are_probabilities(outputs.detach()):
        raise ValueError(
            f"{model_name} returned probabilities (every row >= 0, summing to 1), not "
            f"{_SCORES}: its forward ends in Softmax; remove the Softmax and end in the "
            "logits or in LogSoftmax (the library takes the softmax itself, with the "
            "calibration temperature)"
        )
    return outputs


def _are_probabilities(outputs: torch.Tensor) -> bool:
    """Whether every row is >= 0 and sums to 1 (one read-back from the device)."""
    wide = outputs.float()
    tolerance = PROBABILITY_TOLERANCE * (10 if outputs.element_size() < 4 else 1)
    rows_sum_to_one = (wide.sum(dim=1) - 1).abs() <= tolerance
    return bool(((wide >= 0).all(dim=1) & rows_sum_to_one).all())


def are_log_probabilities(outputs: torch.Tensor, *, tolerance: float = 1e-4) -> bool:
    """Whether every row of ``outputs`` is log-probabilities: its ``logsumexp`` is 0 within
    ``tolerance`` (a forward ending in ``LogSoftmax``; logits almost never are). Reads one
    value back from the device.

    Examples
    --------
    >>> import torch
    >>> logits = torch.tensor([[2.0, -1.0, 0.5]])
    >>> are_log_probabilities(torch.log_softmax(logits, 1)), are_log_probabilities(logits)
    (True, False)
    """
    if not outputs.numel():
        return False
    totals = torch.logsumexp(outputs.detach().float(), dim=1)
    return bool((totals.abs() <= tolerance).all())


def nll_for_log_probabilities(criterion: nn.Module, outputs: torch.Tensor) -> nn.Module:
    """``criterion``, or, when it is a plain ``CrossEntropyLoss`` and ``outputs`` are
    log-probabilities (a network ending in ``LogSoftmax``), the ``NLLLoss`` it equals on them.

    ``log_softmax`` gives log-probabilities back, so the two losses agree, but only up to
    rounding: computed as ``NLLLoss``, as in 0.1, such a network trains to the same weights bit
    for bit. Logits keep the cross-entropy.
    """
    if (
        type(criterion) is nn.CrossEntropyLoss
        and criterion.label_smoothing == 0.0
        and are_log_probabilities(outputs)
    ):
        return nn.NLLLoss(weight=criterion.weight, ignore_index=criterion.ignore_index)
    return criterion
