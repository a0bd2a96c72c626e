"""Calibration of a trained model: temperature scaling fitted on validation data, as a
function (:func:`calibrate`) and as a Trainer callback (:class:`TemperatureScaling`)."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.classes import check_same_classes
from retinalnet._core.device import default_num_workers
from retinalnet._core.loader_settings import check_batch_size, check_num_workers
from retinalnet._core.loaders import DataSource
from retinalnet._core.log_marks import SAID_BY_THE_COMMAND_LINE
from retinalnet._core.model_use import exclusive_use
from retinalnet._core.proportion_text import percent
from retinalnet.checkpoint import load_checkpoint, set_checkpoint_temperature
from retinalnet.datasets._readable import readable_for_scoring, refuse_substitution
from retinalnet.engine import InferenceEngine
from retinalnet.metrics import expected_calibration_error, fit_temperature
from retinalnet.metrics._calibration import TEMPERATURE_BOUNDS, temperature_nll
from retinalnet.metrics._temperature_likelihood import tempered_softmax
from retinalnet.models import Classifier
from retinalnet.precision import Precision
from retinalnet.training._callbacks import Callback, EarlyStopping, _changeable_state
from retinalnet.training._data import warn_of_own_transform
from retinalnet.training._labels import BatchLabels
from retinalnet.training._model_checkpoint import ModelCheckpoint

if TYPE_CHECKING:
    from retinalnet.training._trainer import Trainer

__all__ = ["CalibrationResult", "TemperatureScaling", "calibrate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`calibrate` (or :class:`TemperatureScaling`) measured and set.

    .. versionadded:: 0.2

    Attributes
    ----------
    temperature : float
        The temperature fitted, which the model now carries when :attr:`applied`.
    applied : bool
        ``False`` when the fit was left out: the optimum lay at a bound of the search
        (0.001 or 1000), as when every validation image is right and nothing shows how
        overconfident the model is; the model's temperature is then left as it was.
    num_samples : int
        Validation images it was fitted on.
    ece_before, ece_after : float
        Top-label expected calibration error (15 bins) on those images at temperature 1 and
        at :attr:`temperature`.
    nll_before, nll_after : float
        Their mean negative log-likelihood, likewise (the quantity the fit minimises).
    images : str
        What the images were, for the summary line: ``"images"`` from :func:`calibrate`,
        ``"validation images"`` from :class:`TemperatureScaling`, ``"images of the train
        split"`` from ``retinalnet calibrate --split train``.
    """

    temperature: float
    applied: bool
    num_samples: int
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    images: str = "images"

    def __str__(self) -> str:
        if not self.applied:
            return (
                f"temperature not fitted on {self.num_samples} {self.images} (optimum at "
                f"the bound {self.temperature:.3g}); ECE {percent(self.ece_before)}"
            )
        return (
            f"temperature {self.temperature:#.3g} fitted on {self.num_samples} {self.images}: "
            f"ECE {percent(self.ece_before)} -> {percent(self.ece_after)}, NLL "
            f"{self.nll_before:.4f} -> {self.nll_after:.4f}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "temperature": self.temperature,
            "applied": self.applied,
            "num_samples": self.num_samples,
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
            "nll_before": self.nll_before,
            "nll_after": self.nll_after,
        }


def _fit(engine: InferenceEngine, loader: DataLoader[Any]) -> CalibrationResult:
    """Fit the temperature on the uncalibrated log-probabilities the engine gives."""
    refuse_substitution(loader, where="calibration")
    rows, labels = list[torch.Tensor](), list[torch.Tensor]()
    checked: BatchLabels | None = None  # labels named when not the model's class indices
    for batch, (log_probabilities, (targets, *_)) in enumerate(engine.run(loader)):
        classes = log_probabilities.shape[1]
        checked = checked or BatchLabels(classes, where="calibration", loader=loader, in_order=True)
        rows.append(log_probabilities.cpu().double())  # float64 from MPS's float32 too
        labels.append(checked(targets, torch.device("cpu"), batch=batch))
    if not rows:
        raise ValueError("cannot calibrate on no images: the validation data is empty")
    scores = torch.cat(rows).numpy()
    true = torch.cat(labels).numpy()  # int64, checked
    temperature = fit_temperature(scores, true)
    applied = temperature not in TEMPERATURE_BOUNDS
    after = temperature if applied else 1.0
    return CalibrationResult(
        temperature=temperature,
        applied=applied,
        num_samples=len(true),
        ece_before=expected_calibration_error(tempered_softmax(scores, 1.0), true),
        ece_after=expected_calibration_error(tempered_softmax(scores, after), true),
        nll_before=temperature_nll(scores, true, 1.0),
        nll_after=temperature_nll(scores, true, after),
    )


def _not_applied_warning(result: CalibrationResult) -> None:
    why = (
        "the likelihood still rises at the sharpest temperature, as when the model ranks the "
        "true class first on every validation image: nothing shows how overconfident it is"
        if math.isclose(result.temperature, TEMPERATURE_BOUNDS[0])
        else "the likelihood still rises at the softest temperature, as when the model ranks "
        "the true classes lower than chance"
    )
    count = result.num_samples
    images = f"{count} image" if count == 1 else f"{count} images"
    warn_caller(
        f"temperature scaling left out: the best temperature lies at the bound "
        f"{result.temperature:g} of the search ({why}; {images}); the "
        "model's temperature is unchanged. Calibrate on a larger validation split (e.g. one "
        "made by `retinalnet split`)",
        UserWarning,
    )


def calibrate(
    model: Classifier,
    data: DataSource,
    *,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    precision: Precision = "auto",
    num_workers: int | None = None,
) -> CalibrationResult:
    """Fit the model's temperature on validation data (temperature scaling) and set it.

    Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017): the
    network's outputs are divided by one number ``T`` before the softmax, ``T`` chosen to
    minimise the negative log-likelihood of the validation data (see
    :func:`~retinalnet.metrics.fit_temperature`). It never changes the predicted class,
    so accuracy, sensitivity and specificity stay the same (the AUCs of more than two
    classes can move: they rank probabilities across images); it makes the probabilities
    mean what they say. The model's outputs are taken at temperature 1
    (whatever it carried before), without test-time augmentation.

    Use it for a model trained elsewhere; a Trainer fit does it with the
    :class:`TemperatureScaling` callback. Save the model afterwards
    (:func:`~retinalnet.checkpoint.save_checkpoint`) to keep the temperature.

    .. versionadded:: 0.2

    Parameters
    ----------
    model
        A trained :class:`~retinalnet.models.Classifier`; its :attr:`temperature
        <retinalnet.models.Classifier.temperature>` is set.
    data
        Labelled validation data (a data set of ``(image, target)`` or a DataLoader), not
        the test set: a temperature fitted on the test set flatters the test report. A
        :class:`~retinalnet.datasets.KermanyOCT` with ``on_error="skip"`` is fitted on the
        images it can read, as :func:`evaluate` scores it (the others are left out, with a
        logged warning naming them).
    batch_size, device, precision, num_workers
        As for :func:`evaluate`.

    Returns
    -------
    CalibrationResult
        The temperature, and the ECE and NLL before and after. When the optimum lies at a
        bound of the search (every image right), the model is left as it was, with a
        warning.

    Raises
    ------
    TypeError
        If ``model`` is not a Classifier.
    ValueError
        If the data's classes differ from the model's (by name or order: every label would
        be compared with another class's output), ``data`` is empty, none of its images can
        be read, or it is a DataLoader (or a
        ``Subset``) over a ``KermanyOCT(on_error="skip")``, whose unreadable images could
        not be left out: pass the data set itself.

    Examples
    --------
    >>> from retinalnet.training import calibrate
    >>> result = calibrate(model, KermanyOCT("OCT2017", "val"))  # doctest: +SKIP
    >>> print(result)  # doctest: +SKIP
    temperature 2.89 fitted on 91 images: ECE ... -> ..., NLL ... -> ...
    """
    check_batch_size(batch_size)
    check_num_workers(num_workers)
    if not isinstance(model, Classifier):
        raise TypeError(
            f"calibrate needs a retinalnet Classifier, which carries the temperature (got "
            f"{type(model).__name__}); wrap the network with Classifier(network, classes=...)"
        )
    check_same_classes(model.classes, data, where="calibrate")
    warn_of_own_transform(model, data, where="calibrate()")
    engine = InferenceEngine(model, device=device, precision=precision, temperature=1.0)
    data, _ = readable_for_scoring(
        data,
        model.preprocessing.load,
        where="calibrate()",
        num_workers=default_num_workers(engine.device, num_workers),
    )
    loader = engine.loader(data, batch_size=batch_size, num_workers=num_workers)
    result = _fit(engine, loader)
    if result.applied:
        _set_temperature(model, result.temperature)
        logger.info("%s", result, extra={SAID_BY_THE_COMMAND_LINE: True})  # CLI prints it
    else:
        _not_applied_warning(result)
    return result


class TemperatureScaling(Callback):
    """Calibrate the model at the end of a fit: fit its temperature on the validation data.

    When the fit ends (after :class:`EarlyStopping` restored the best weights), the model's
    outputs on the validation data give the temperature (see :func:`calibrate`), which is
    set on the model and logged with the ECE before and after. When the fit writes
    checkpoints (``out_dir``), ``best.pt`` gets the temperature fitted for its own weights
    (the same one when the model in memory holds them), rewritten atomically; ``last.pt``,
    kept for resuming, stays uncalibrated.

    Every fit starts at temperature 1 (the Trainer resets it: new weights need a new
    temperature), so the validation loss that early stopping and ``best.pt`` follow is
    uncalibrated; the temperature is fitted once, after the fit.

    .. versionadded:: 0.2

    Attributes
    ----------
    result : CalibrationResult or None
        What the last fit's calibration of the model in memory measured.
    best_result : CalibrationResult or None
        That of ``best.pt``, when it holds other weights than the model in memory (else
        ``None``: :attr:`result` applies to it).

    Raises
    ------
    ValueError
        When the fit starts without validation data, or with an :class:`EarlyStopping`
        that restores the best weights placed after this callback (it must run first).
    TypeError
        When the fit starts and the model is not a Classifier.

    Examples
    --------
    >>> from retinalnet.training import EarlyStopping, TemperatureScaling, Trainer
    >>> callbacks = [EarlyStopping(patience=3), TemperatureScaling()]
    >>> trainer = Trainer(model, callbacks=callbacks, out_dir="runs/x")  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.result: CalibrationResult | None = None
        self.best_result: CalibrationResult | None = None
        self._calibrating = False  # in on_fit_end: an interrupt there leaves best.pt as is

    def on_fit_start(self, trainer: Trainer) -> None:
        self.result = self.best_result = None
        self._calibrating = False
        if not isinstance(trainer.model, Classifier):
            raise TypeError("TemperatureScaling needs a retinalnet Classifier model")
        if not trainer.has_validation:
            raise ValueError(
                "TemperatureScaling fits the temperature on validation data: pass it to "
                "fit(train, val), or leave the callback out"
            )
        callbacks = trainer._loop.callbacks if trainer._loop is not None else trainer.callbacks
        mine = next(i for i, c in enumerate(callbacks) if c is self)
        if any(
            isinstance(c, EarlyStopping) and c.restore_best_weights for c in callbacks[mine + 1 :]
        ):
            raise ValueError(
                "TemperatureScaling comes before an EarlyStopping that restores the best "
                "weights, so it would calibrate the last epoch's weights: put it after, "
                "callbacks=[EarlyStopping(...), TemperatureScaling()]"
            )

    def on_fit_end(self, trainer: Trainer) -> None:
        loop = trainer._loop
        model = trainer.model
        if loop is None or loop.val_loader is None or not isinstance(model, Classifier):
            return
        self._calibrating = True
        self._calibrate(trainer, loop, model)
        self._calibrating = False

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        if not self._calibrating:
            return
        self._calibrating = False
        loop = trainer._loop
        files = [c for c in (loop.callbacks if loop else []) if isinstance(c, ModelCheckpoint)]
        if not files:
            return  # nothing on disk: the model in memory is all there is
        logger.warning(
            "calibration interrupted (%s): %r may be left without its temperature (its "
            "probabilities uncalibrated); the epochs are done: fit(..., resume_from=%r) "
            "calibrates it without training again",
            type(exception).__name__,
            str(files[0].best_path),
            str(files[0].last_path),
        )

    def _calibrate(self, trainer: Trainer, loop: Any, model: Classifier) -> None:
        result = self.result = self._fit(trainer, loop.val_loader)
        if result.applied:
            _set_temperature(model, result.temperature)
            # `retinalnet train` sums it up at its end
            logger.info("calibration: %s", result, extra={SAID_BY_THE_COMMAND_LINE: True})
        else:
            _not_applied_warning(result)
        if not loop.dist.is_main:
            return
        for checkpoint in (c for c in loop.callbacks if isinstance(c, ModelCheckpoint)):
            self._calibrate_file(trainer, checkpoint, loop.val_loader)

    def _fit(self, trainer: Trainer, loader: DataLoader[Any]) -> CalibrationResult:
        engine = InferenceEngine(
            trainer._forward_module,
            device=trainer.device,
            precision=trainer.precision,
            temperature=1.0,
        )
        return dataclasses.replace(_fit(engine, loader), images="validation images")

    def _calibrate_file(
        self, trainer: Trainer, checkpoint: ModelCheckpoint, loader: DataLoader[Any]
    ) -> None:
        """Give ``best.pt`` the temperature of its own weights: this run's only (a fit whose
        monitored metric was NaN in every epoch wrote none, and an earlier run's is left as
        it is)."""
        path = checkpoint.best_path
        if not path.is_file() or not checkpoint._owns["best"]:
            return
        saved = load_checkpoint(path)
        model = trainer.model
        result = self.result
        if not _same_weights(model, saved.state_dict):
            kept = _changeable_state(model)
            model.load_state_dict(saved.state_dict)
            try:
                result = self.best_result = self._fit(trainer, loader)
            finally:
                model.load_state_dict(kept, strict=False)
        if result is None or not result.applied:
            return
        set_checkpoint_temperature(path, result.temperature)
        logger.info("calibration: %s now carries temperature %.3f", path, result.temperature)


def _set_temperature(model: Classifier, temperature: float) -> None:
    """Give ``model`` its fitted ``temperature`` between two passes, never during one: a
    prediction running in another thread keeps the model until it ends, and ends at the
    temperature it began with."""
    with exclusive_use(model):
        model.temperature = temperature


def _same_weights(model: nn.Module, state: Mapping[str, torch.Tensor]) -> bool:
    current = model.state_dict()
    if current.keys() != state.keys():
        return False
    return all(torch.equal(current[k].detach().cpu(), state[k]) for k in current)
