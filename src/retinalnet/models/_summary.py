"""Counting a model's parameters."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from retinalnet._core.proportion_text import percent
from retinalnet.models._checks import check_module

__all__ = ["ParameterSummary", "parameter_summary"]


@dataclass(frozen=True)
class ParameterSummary:
    """Total and trainable parameter counts."""

    total: int
    trainable: int

    @property
    def frozen(self) -> int:
        """Parameters that do not receive gradients."""
        return self.total - self.trainable

    def __str__(self) -> str:
        share = self.trainable / self.total if self.total else 0.0
        return f"{self.total:,} parameters, {self.trainable:,} trainable ({percent(share, 2)})"


def parameter_summary(model: nn.Module) -> ParameterSummary:
    """Count the parameters of ``model``, and those with ``requires_grad``.

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module``.

    Examples
    --------
    >>> from retinalnet.models import parameter_summary, vgg16_transfer
    >>> print(parameter_summary(vgg16_transfer(weights=None)))  # doctest: +SKIP
    135,310,404 parameters, 1,049,860 trainable (0.78%)
    """
    check_module(model, "parameter_summary")
    total = trainable = 0
    for parameter in model.parameters():
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return ParameterSummary(total=total, trainable=trainable)
