"""The class score Grad-CAM differentiates: the logits, before a final (Log)Softmax.

Grad-CAM (Selvaraju et al., 2017) explains ``y^c``, the score of class ``c`` before the
softmax, as pytorch-grad-cam and Captum do for torchvision's networks (which return logits).
The retinalnet builders end in ``nn.LogSoftmax``, whose output ``log p_c = y^c -
logsumexp(y)`` also falls when the other classes' scores rise: its gradient is that of
``y^c`` minus the probability-weighted gradients of all the scores, and the map of the same
weights with and without the final ``LogSoftmax`` differed (correlation 0.82).

:class:`ScoresBeforeSoftmax` watches every ``nn.LogSoftmax`` and ``nn.Softmax`` module of the
model during the pass; when the model's output *is* the output of one of them, taken over the
class dimension, Grad-CAM differentiates that module's input, the logits. A forward that
normalises with a function (``F.log_softmax``) cannot be undone: its logits are only known up
to a constant per image, and the map explains the log-probability, with a warning.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from retinalnet._core.caller_warnings import warn_caller

__all__ = ["ScoresBeforeSoftmax"]

_NORMALISERS = (nn.LogSoftmax, nn.Softmax)

# the autograd nodes of a (log-)softmax: how a functional one in a forward shows
_FUNCTIONAL = ("LogSoftmaxBackward0", "SoftmaxBackward0")


def _over_classes(module: nn.Module, output: torch.Tensor) -> bool:
    """Whether a softmax module normalised an ``(N, C)`` tensor over its classes (dim 1)."""
    if output.dim() != 2:
        return False
    dim = getattr(module, "dim", None)
    return dim is None or int(dim) % 2 == 1  # None: torch's implicit dim, 1 for 2-d inputs


class ScoresBeforeSoftmax:
    """While entered, records each ``nn.LogSoftmax`` / ``nn.Softmax`` call of ``model``;
    :meth:`scores` then maps the model's output to the class scores Grad-CAM explains.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.LogSoftmax(dim=1))
    >>> with ScoresBeforeSoftmax(net) as watch:
    ...     outputs = net(torch.ones(1, 2))
    ...     logits = watch.scores(outputs)
    >>> torch.allclose(logits, net[0](torch.ones(1, 2)))
    True
    """

    def __init__(self, model: nn.Module) -> None:
        self._modules = [m for m in model.modules() if isinstance(m, _NORMALISERS)]
        self._handles: list[RemovableHandle] = []
        self._calls: list[tuple[torch.Tensor | None, torch.Tensor]] = []

    def __enter__(self) -> ScoresBeforeSoftmax:
        for module in self._modules:
            self._handles.append(module.register_forward_hook(self._record))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._calls.clear()

    def _record(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            return
        inputs = args[0] if args else None
        over_classes = (
            isinstance(inputs, torch.Tensor)
            and inputs.shape == output.shape
            and _over_classes(module, output)
        )
        # a softmax over another dimension is recorded too: its output is no functional one
        self._calls.append((inputs if over_classes else None, output))

    def scores(self, outputs: torch.Tensor) -> torch.Tensor:
        """The logits when ``outputs`` is the output of a watched softmax module over the
        classes (its last call), else ``outputs`` as they are (logits), with a warning when
        they come from a functional softmax."""
        for inputs, output in reversed(self._calls):
            if output is outputs:
                return outputs if inputs is None else inputs
        node = type(outputs.grad_fn).__name__ if outputs.grad_fn is not None else ""
        if node in _FUNCTIONAL:
            warn_caller(
                "the model's output is a (log-)softmax computed in its forward "
                "(F.log_softmax or F.softmax, not a module), so the Grad-CAM map explains the "
                "class's (log-)probability, which the other classes' scores pull on, not its "
                "score before the softmax; end the network in nn.LogSoftmax(dim=1) (or return "
                "the logits) to explain the score",
                UserWarning,
            )
        return outputs
