"""The calibration temperature a fit sets aside, put back when the fit changed nothing.

A temperature fits the weights it was fitted on, and a fit changes them: it starts from 1.0
(uncalibrated). A fit that ends before it changed the model (refused by a check that comes
after the reset, such as unreadable validation images, failed or interrupted while the
feature cache was built, before the first training batch) leaves the model as it found it,
its temperature too.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from retinalnet._core.tensor_stamp import TensorStamp, all_match, tensor_stamps
from retinalnet.models import Classifier

__all__ = ["FitTemperature"]

logger = logging.getLogger(__name__)


class FitTemperature:
    """A fit's reset of a calibrated model's temperature (:meth:`reset`), undone by
    :meth:`put_back_if_unchanged` when the fit ended before it changed any weight or buffer.
    """

    def __init__(self) -> None:
        self._model: Classifier | None = None
        self._temperature = 1.0
        self._stamps: tuple[TensorStamp | None, ...] = ()

    def reset(self, model: nn.Module) -> None:
        """Set a calibrated ``model``'s temperature to 1.0 for the fit (logged), and remember
        it and the model's state (before a resume loads other weights into it: those, too,
        are a change that keeps 1.0)."""
        self._model, self._stamps = None, ()  # an earlier fit's are not this one's
        if not isinstance(model, Classifier) or model.temperature == 1.0:
            return
        logger.info("temperature %.3g reset to 1.0 for the fit", model.temperature)
        self._model, self._temperature = model, model.temperature
        self._stamps = tensor_stamps(_state_tensors(model))
        model.temperature = 1.0

    def put_back_if_unchanged(self) -> None:
        """After a fit that ended early: put the temperature back when the model's weights
        and buffers are the tensors they were at :meth:`reset`, unchanged in place (no
        optimizer step, no batch-norm statistics moved) and the temperature is still 1.0
        (nothing calibrated meanwhile)."""
        model, self._model = self._model, None
        stamps, self._stamps = self._stamps, ()
        if model is None or model.temperature != 1.0:
            return
        if not all_match(stamps, _state_tensors(model)):
            return
        model.temperature = self._temperature
        logger.info(
            "temperature %.3g put back: the fit ended before it changed the weights",
            self._temperature,
        )


def _state_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The tensors of ``model``'s state (weights and buffers), in ``state_dict`` order."""
    state = model.state_dict(keep_vars=True)
    return [value for value in state.values() if isinstance(value, torch.Tensor)]
