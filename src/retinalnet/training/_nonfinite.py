"""A loss that is NaN or infinite stops the fit: the error, and its message."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "NonFiniteLossError",
    "check_finite_weights",
    "first_nonfinite",
    "first_nonfinite_state",
    "nonfinite_loss_error",
]


class NonFiniteLossError(FloatingPointError, RuntimeError):
    """The loss became NaN or infinite, so the fit stopped.

    Raised by :meth:`Trainer.fit <retinalnet.training.Trainer.fit>` when the training loss of
    any step, or the validation loss, is not finite, or a trained weight is at the end of an
    epoch: a learning rate too high for the model, NaN or infinite values in the data, an
    overflow in fp16. The epoch in which it happened is neither recorded in the history nor
    saved: ``best.pt`` and ``last.pt`` keep the last good epochs, and the message says which
    epochs they hold. The weights in memory are those of the failed epoch; do not use them.

    It is a :class:`FloatingPointError`, and a :class:`RuntimeError` like other failures of a
    fit, so ``retinalnet train`` reports it in one line and exits with status 1.

    Attributes
    ----------
    stage : str
        ``"training"`` or ``"validation"`` (the loss), or ``"weights"``: a weight became NaN
        or infinite at the last step of an epoch (a NaN gradient), which no loss showed yet.
    epoch : int
        The epoch (from 1) in which the loss was not finite.
    step : int or None
        The first training step (from 1, within the epoch) whose loss was not finite;
        ``None`` for the validation loss, or when it happened in another process's batches.
    value : float
        The loss: ``nan``, ``inf`` or ``-inf``.

    Examples
    --------
    >>> try:  # doctest: +SKIP
    ...     trainer.fit(train, val)
    ... except NonFiniteLossError as error:
    ...     print(error.epoch, error.step)
    3 17

    .. versionadded:: 0.2
    """

    def __init__(
        self, message: str, *, stage: str, epoch: int, step: int | None, value: float
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.epoch = epoch
        self.step = step
        self.value = value

    def __reduce__(
        self,
    ) -> tuple[object, tuple[str, str, int, int | None, float]]:
        return (_rebuild, (str(self), self.stage, self.epoch, self.step, self.value))


def _rebuild(
    message: str, stage: str, epoch: int, step: int | None, value: float
) -> NonFiniteLossError:
    return NonFiniteLossError(message, stage=stage, epoch=epoch, step=step, value=value)


def first_nonfinite(losses: torch.Tensor) -> tuple[int, float] | None:
    """The first step (from 1) whose loss in ``losses`` (one per step) is not finite, and
    that loss; ``None`` if all are finite."""
    bad = torch.nonzero(~torch.isfinite(losses)).flatten()
    if len(bad) == 0:
        return None
    index = int(bad[0])
    return index + 1, float(losses[index])


def first_nonfinite_state(module: nn.Module) -> str | None:
    """The name of the first trainable parameter holding a NaN or infinite value, or
    floating-point buffer holding a NaN, of ``module``; ``None`` if there is none.

    A buffer may hold infinities by design (an attention mask of ``-inf``); a NaN in one
    (batch-norm statistics) comes from a diverged step. One reduction per tensor and one
    read back: cheap once per epoch, even for a whole network being fine-tuned.
    """
    parameters = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    buffers = [(n, b) for n, b in module.named_buffers() if b.is_floating_point()]
    named = parameters + buffers
    if not named:
        return None
    usable = torch.stack(
        [torch.isfinite(value.detach()).all() for _, value in parameters]
        + [~torch.isnan(value.detach()).any() for _, value in buffers]
    )
    if bool(usable.all()):
        return None
    return named[int(torch.nonzero(~usable)[0])][0]


def check_finite_weights(model: nn.Module, where: str) -> None:
    """Refuse to train ``model`` when a trainable weight is already NaN or infinite (or a
    floating-point buffer NaN): an earlier fit diverged, and training again would blame
    the learning rate of this one.

    Raises
    ------
    ValueError
        Naming the first such tensor.

    Examples
    --------
    >>> import torch
    >>> layer = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = layer.weight.fill_(float("nan"))
    >>> try:
    ...     check_finite_weights(layer, "Trainer.fit")
    ... except ValueError as error:
    ...     print(str(error).split(" (")[0])
    Trainer.fit: the model's weight weight is already NaN before training
    """
    name = first_nonfinite_state(model)
    if name is None:
        return
    parameters = dict(model.named_parameters())
    kind = "weight" if name in parameters else "buffer"
    value = parameters[name] if name in parameters else dict(model.named_buffers())[name]
    what = "NaN" if bool(torch.isnan(value.detach()).any()) else "infinite"
    raise ValueError(
        f"{where}: the model's {kind} {name} is already {what} before training (an earlier "
        "fit diverged?): rebuild the model or load best.pt"
    )


def nonfinite_loss_error(
    *,
    stage: str,
    epoch: int,
    value: float,
    step: int | None = None,
    steps: int | None = None,
    parameter: str | None = None,
    lr: float,
    saved: str,
    low_precision: bool,
) -> NonFiniteLossError:
    """The error for a non-finite loss, with a message that names where it happened, what
    is on disk, and what to try."""
    shown = "nan" if math.isnan(value) else str(value)
    lower = f"lower the learning rate (it is {lr:g}: ClassificationTask(lr=...), or --lr)"
    fp32 = ", or train in fp32 (precision='fp32', --precision fp32)" if low_precision else ""
    if stage == "training":
        where = (
            f"at epoch {epoch}, step {step} of {steps}"
            if step is not None
            else (f"at epoch {epoch} (in another process's batches)")
        )
        what = f"the training loss became {shown} {where}: training diverged"
        fix = f"{lower[:1].upper()}{lower[1:]}{fp32}, or check the training data for NaN or "
        fix += "infinite values"
    elif stage == "weights":
        what = (
            f"the weights ({parameter}) became NaN or infinite in epoch {epoch}, though every "
            "step's loss was finite: training diverged"
        )
        fix = f"{lower[:1].upper()}{lower[1:]}{fp32}"
    else:
        what = f"the validation loss is {shown} after epoch {epoch}"
        fix = f"Check the validation data for NaN or infinite values, or {lower}{fp32}"
    return NonFiniteLossError(
        f"{what}. The fit stopped, and nothing of epoch {epoch} was saved: {saved}; the weights "
        f"in memory are not usable. {fix}",
        stage=stage,
        epoch=epoch,
        step=step,
        value=value,
    )
