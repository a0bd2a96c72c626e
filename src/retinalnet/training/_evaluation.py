"""Evaluating a model on a whole data set, in batches.

Why this module is long: :class:`EvaluationResult` (its per-image data, the reports per scan
and per patient, text and JSON) and the two functions that fill it belong together; half of
the length is their NumPy docstrings.
"""

from __future__ import annotations

import functools
import math
import os
import reprlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from retinalnet._core.bool_options import check_bool
from retinalnet._core.classes import check_same_classes, output_classes
from retinalnet._core.device import default_num_workers, resident_device, resolve_device
from retinalnet._core.loader_settings import check_batch_size, check_num_workers
from retinalnet._core.loaders import DataSource
from retinalnet._core.patient_ids import is_missing_id, patient_group_key
from retinalnet._core.progress import progress_bar
from retinalnet._core.proportion_text import percent
from retinalnet._core.value_equality import fields_equal
from retinalnet._core.widest_float import widest_float
from retinalnet.datasets._readable import readable_for_scoring, refuse_substitution
from retinalnet.engine import InferenceEngine
from retinalnet.metrics import URGENT_CLASSES, confusion_matrix
from retinalnet.metrics._calibration import calibration_error_or_nan
from retinalnet.models import Classifier
from retinalnet.precision import Precision, precision_name
from retinalnet.training._data import warn_of_own_transform
from retinalnet.training._feature_cache import build_feature_cache, trainable_head
from retinalnet.training._labels import BatchLabels
from retinalnet.training._result_fields import (
    checked_classes,
    checked_matrix,
    checked_probabilities,
    checked_scalars,
)

if TYPE_CHECKING:
    from retinalnet.metrics import ClassificationReport

__all__ = ["EvaluationResult", "evaluate", "run_evaluation"]


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Loss, accuracy and confusion matrix of a model on a data set.

    Two results are equal (``==``) when every attribute is: the confusion matrix and the
    per-image probabilities, targets and patient ids too, arrays compared whole (same dtype,
    shape and values), so ``evaluate(...) == evaluate(...)`` checks that a run repeats.
    A result holds arrays, so it is not hashable.

    .. versionchanged:: 0.2
       ``==`` compares; it raised ("the truth value of an array ... is ambiguous").

    A result built by hand is checked as it is built, and its fields are stored as the
    types below (a list of classes becomes a tuple, a matrix of whole-number floats int64
    counts); :class:`ValueError` or :class:`TypeError` names the field when the confusion
    matrix is not one row and column of image counts per class, the probabilities not one
    column per class, a target not a class index, the per-image fields not of one length,
    the accuracy not a fraction from 0 to 1, or the temperature not positive.

    .. versionchanged:: 0.2
       Those were read as given: a 3x3 matrix for four classes failed in ``str()`` with an
       ``IndexError``, an accuracy of 95 printed as 9500%.

    Attributes
    ----------
    classes : tuple of str
        Class names, in the order of the matrix.
    loss : float
        Mean loss per image.
    accuracy : float
        Top-1 accuracy over all images.
    confusion_matrix : numpy.ndarray
        ``confusion_matrix[true, predicted]`` image counts (int64).
    probabilities : numpy.ndarray or None
        Class probabilities of each image, shape ``(images, classes)``, float64, in data
        order (``None`` when built by hand without them).

        .. versionadded:: 0.2
    targets : numpy.ndarray or None
        True class of each image (int64), in data order.

        .. versionadded:: 0.2
    tta : bool
        Whether the probabilities average each image and its horizontal mirror.

        .. versionadded:: 0.2
    temperature : float
        The calibration temperature the probabilities were computed with (1.0:
        uncalibrated); see :attr:`Classifier.temperature
        <retinalnet.models.Classifier.temperature>`.

        .. versionadded:: 0.2
    patient_ids : tuple or None
        The patient of each image, in data order, as the data set's ``patient_ids`` give it
        (for :class:`~retinalnet.datasets.KermanyOCT`, the id in the file name
        ``CLASS-PATIENT-N.jpeg`` as written, or the manifest's; ``None`` for a name without
        one), so it joins with the data set's; :meth:`patient_report` compares them by the
        rule of :func:`~retinalnet.metrics.patient_level` (``"0042"`` is ``"42"``, an
        empty id is a patient of its own). ``None`` when the data did not say (a
        DataLoader, or a data set without ``patient_ids``).

        .. versionadded:: 0.2
        .. versionchanged:: 0.2
           Kept as given: leading zeros were removed here, which made ``""`` patient
           ``"0"`` and failed on int or NaN ids.
    precision : str
        The precision the model ran in: ``"fp32"``, or ``"bf16"`` / ``"fp16"``, which
        ``precision="auto"`` picks on a GPU and on a CPU with native bf16 (faster; its
        probabilities differ from fp32's by up to about one point, enough to move an image
        near a decision boundary). Pass ``precision="fp32"`` for numbers that do not depend
        on the hardware; the text and :meth:`to_dict` say which it was.

        .. versionadded:: 0.2
    """

    classes: tuple[str, ...]
    loss: float
    accuracy: float
    confusion_matrix: np.ndarray[Any, np.dtype[np.int64]]
    probabilities: np.ndarray[Any, np.dtype[np.float64]] | None = field(default=None, repr=False)
    targets: np.ndarray[Any, np.dtype[np.int64]] | None = field(default=None, repr=False)
    tta: bool = False
    temperature: float = 1.0
    patient_ids: tuple[Hashable | None, ...] | None = field(default=None, repr=False)
    precision: str = "fp32"

    def __post_init__(self) -> None:
        # a result may be built by hand: its fields are read as given, so checked as given
        classes = checked_classes(self.classes)
        matrix = checked_matrix(self.confusion_matrix, classes)
        per_image = checked_probabilities(
            self.probabilities, self.targets, self.patient_ids, classes
        )
        scalars = checked_scalars(self.loss, self.accuracy, self.temperature)
        for name, value in zip(
            ("classes", "confusion_matrix", "probabilities", "targets", "patient_ids"),
            (classes, matrix, *per_image),
            strict=True,
        ):
            object.__setattr__(self, name, value)
        for name, number in zip(("loss", "accuracy", "temperature"), scalars, strict=True):
            object.__setattr__(self, name, number)

    def __eq__(self, other: object) -> bool:
        return fields_equal(self, other)

    __hash__ = None  # type: ignore[assignment]  # holds arrays, as a list holds items

    @property
    def ece(self) -> float:
        """Top-label expected calibration error (15 bins) of the probabilities; NaN without
        them, or for probabilities that are not distributions (rows that do not sum to 1),
        as in :meth:`report` (see :func:`~retinalnet.metrics.expected_calibration_error`).

        .. versionadded:: 0.2
        """
        if self.probabilities is None or self.targets is None or not len(self.targets):
            return math.nan
        return calibration_error_or_nan(
            np.asarray(self.probabilities, dtype=np.float64), np.asarray(self.targets)
        )

    @property
    def num_samples(self) -> int:
        """Number of images evaluated."""
        return int(self.confusion_matrix.sum())

    @property
    def per_class_accuracy(self) -> dict[str, float]:
        """Top-1 accuracy (recall) of each class; NaN for a class with no images."""
        support = self.confusion_matrix.sum(axis=1)
        return {
            name: float(self.confusion_matrix[i, i] / support[i]) if support[i] else math.nan
            for i, name in enumerate(self.classes)
        }

    def report(
        self,
        *,
        urgent: Sequence[str] | None = URGENT_CLASSES,
        topk: Sequence[int] | None = None,
        bootstrap: int = 0,
        confidence: float = 0.95,
        seed: int = 0,
    ) -> ClassificationReport:
        """The clinical report: sensitivity, specificity, AUC, top-k table, urgent referral.

        See :func:`retinalnet.metrics.classification_report` for the arguments.

        .. versionadded:: 0.2

        Raises
        ------
        ValueError
            If this result holds no per-image probabilities (built by hand).

        Examples
        --------
        >>> result = evaluate(model, KermanyOCT("OCT2017", "test"))  # doctest: +SKIP
        >>> print(result.report(bootstrap=1000))  # doctest: +SKIP
        """
        from retinalnet.metrics import classification_report

        if self.probabilities is None or self.targets is None:
            raise ValueError(
                "this EvaluationResult has no per-image probabilities; get one from "
                "retinalnet.training.evaluate(...) or pass probabilities= and targets="
            )
        return classification_report(
            self.targets,
            self.probabilities,
            classes=self.classes,
            urgent=urgent,
            topk=topk,
            bootstrap=bootstrap,
            confidence=confidence,
            seed=seed,
        )

    def patient_report(
        self,
        *,
        urgent: Sequence[str] | None = URGENT_CLASSES,
        topk: Sequence[int] | None = None,
        bootstrap: int = 0,
        confidence: float = 0.95,
        seed: int = 0,
    ) -> ClassificationReport:
        """The clinical report per patient: each patient's scans of one label averaged.

        See :func:`retinalnet.metrics.patient_level` for the rule (mean probability over a
        patient's scans; a patient whose scans carry several labels gives one group per
        label) and :meth:`report` for the arguments.

        .. versionadded:: 0.2

        Raises
        ------
        ValueError
            If this result holds no per-image probabilities or no patient ids.

        Examples
        --------
        >>> result = evaluate(model, KermanyOCT("OCT2017", "test"))  # doctest: +SKIP
        >>> print(result.patient_report())  # doctest: +SKIP
        """
        from retinalnet.metrics import patient_level

        if self.probabilities is None or self.targets is None or self.patient_ids is None:
            raise ValueError(
                "this EvaluationResult has no per-image probabilities or patient ids; "
                "evaluate a data set with patient_ids (KermanyOCT) with "
                "retinalnet.training.evaluate(...)"
            )
        return patient_level(
            self.probabilities,
            self.targets,
            self.patient_ids,
            classes=self.classes,
            urgent=urgent,
            topk=topk,
            bootstrap=bootstrap,
            confidence=confidence,
            seed=seed,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (NaN becomes ``None``)."""
        ece = self.ece
        return {
            "classes": list(self.classes),
            "num_samples": self.num_samples,
            "loss": self.loss,
            "accuracy": self.accuracy,
            "per_class_accuracy": {
                name: None if math.isnan(value) else value
                for name, value in self.per_class_accuracy.items()
            },
            "confusion_matrix": self.confusion_matrix.tolist(),
            "temperature": self.temperature,
            "ece": None if math.isnan(ece) else ece,
            "precision": self.precision,
        }

    def __str__(self) -> str:
        width = max(8, *(len(name) + 1 for name in self.classes))
        lines = [
            f"images {self.num_samples}  loss {self.loss:.4f}  "
            f"accuracy {percent(self.accuracy, 2)}  ECE {percent(self.ece)}  "
            f"temperature {self.temperature:#.3g}"
            + ("" if self.precision == "fp32" else f"  precision {self.precision}"),
            "",
            "true \\ predicted".ljust(18)
            + "".join(n.rjust(width) for n in self.classes)
            + "  accuracy".rjust(11),
        ]
        for i, name in enumerate(self.classes):
            row = "".join(str(v).rjust(width) for v in self.confusion_matrix[i])
            accuracy = self.per_class_accuracy[name]
            lines.append(name.ljust(18) + row + percent(accuracy).rjust(11))
        return "\n".join(lines)


def _refuse_nonfinite_outputs(probabilities: np.ndarray[Any, Any], loader: Any, where: str) -> None:
    """Refuse scores built on a NaN or infinite output, naming the first image it came from
    (its file, when the data set lists its samples)."""
    finite = np.isfinite(probabilities).all(axis=1)
    if finite.all():
        return
    row = int(np.flatnonzero(~finite)[0])
    data = getattr(loader, "dataset", None)
    while data is not None and not hasattr(data, "samples") and hasattr(data, "dataset"):
        # through wrappers that keep the order (a transform); a Subset's rows are others
        data = None if hasattr(data, "indices") else data.dataset
    samples = getattr(data, "samples", None)
    name = f"image {row}"
    if isinstance(samples, Sequence) and row < len(samples) and isinstance(samples[row], tuple):
        name = repr(str(samples[row][0]))
    raise ValueError(
        f"{where}: the model's output for {name} is NaN or infinite ({int((~finite).sum())} "
        f"of {len(finite)} images), and its argmax would count it as the first class: nothing "
        "is scored. Check the model's weights, or evaluate in fp32 (precision='fp32')"
    )


def run_evaluation(
    engine: InferenceEngine,
    loader: DataLoader[Any],
    *,
    loss: nn.Module,
    classes: Sequence[str],
    progress: bool = False,
    patient_ids: Sequence[Hashable | None] | None = None,
    where: str = "evaluation",
    refuse_nonfinite: bool = True,
) -> EvaluationResult:
    """Evaluate on a prepared loader of ``(inputs, targets)`` through an inference engine.

    The loop the Trainer runs after each epoch and :func:`evaluate` runs once. ``loss`` gets
    the log-probabilities (of the mirror-averaged probabilities with TTA, scaled by the
    engine's temperature), which suits ``NLLLoss`` and ``CrossEntropyLoss`` alike.
    ``patient_ids`` (one per image, in loader order) go into the result as given; they are
    checked before the model runs.

    Raises
    ------
    ValueError
        If the loader reads a ``KermanyOCT(on_error="skip")``, whose substitutes for
        unreadable images would be scored (its callers leave those images out first, see
        ``readable_for_scoring``); ``where`` names the
        caller in the message. With ``refuse_nonfinite`` (the default), also if the model's
        output for an image is NaN or infinite: its argmax would count it as the first
        class. The Trainer's validation passes ``False`` and stops on the NaN loss itself,
        naming the epoch. If a label is outside the classes (or the labels are not one
        per image), naming the image and its label, before the loss sees it.
    TypeError
        If the loader's targets are not a tensor of class indices (class names, floats),
        or (before the model runs) a patient id cannot name a patient (a list).
    """
    refuse_substitution(loader, where=where)
    patients = _patients(patient_ids, where)
    num_classes = len(classes)
    # summed in float64 (float32 on MPS, which has no float64), on the device: no wait
    total_loss = torch.zeros((), dtype=widest_float(engine.device), device=engine.device)
    all_probabilities: list[torch.Tensor] = []
    all_targets: list[torch.Tensor] = []
    bar = functools.partial(
        progress_bar, total=len(loader), description="evaluate", enabled=progress
    )
    temperature = engine.temperature  # no batch, no row: the engine's
    # each batch's labels checked before the loss: torch's says "Target 4 is out of bounds"
    to_device = BatchLabels(num_classes, where=where, loader=loader, in_order=True)
    for batch, (log_probabilities, (targets, *_)) in enumerate(engine.run(loader, progress=bar)):
        # the one every row is divided by, read when the run began
        temperature = engine.session_temperature or temperature  # (a temperature is > 0)
        if not isinstance(targets, torch.Tensor):
            shown = reprlib.repr(targets)
            raise TypeError(
                f"{where}: the data's targets are {type(targets).__name__} {shown}; targets "
                "must be class indices (ints, 0 for the first of the classes), as KermanyOCT "
                "yields them: map names with classes.index(name)"
            )
        targets = to_device(targets, engine.device, batch=batch)
        total_loss += loss(log_probabilities, targets).to(total_loss.dtype) * len(targets)
        all_probabilities.append(log_probabilities.exp())
        all_targets.append(targets)
    probabilities_array = (
        torch.cat(all_probabilities).cpu().double().numpy()  # float64 from MPS's float32 too
        if all_probabilities
        else np.empty((0, num_classes))
    )
    targets_array = (
        torch.cat(all_targets).cpu().to(torch.int64).numpy()
        if all_targets
        else np.empty(0, dtype=np.int64)
    )
    if refuse_nonfinite:
        _refuse_nonfinite_outputs(probabilities_array, loader, where)
    # the most probable class is the model's argmax: softmax keeps the order of its outputs
    matrix = confusion_matrix(targets_array, probabilities_array.argmax(axis=1), num_classes)
    count = len(targets_array)
    return EvaluationResult(
        classes=tuple(classes),
        loss=float(total_loss) / count if count else math.nan,
        accuracy=float(np.trace(matrix) / count) if count else math.nan,
        confusion_matrix=matrix,
        probabilities=probabilities_array,
        targets=targets_array,
        tta=engine.tta,
        temperature=temperature,
        patient_ids=patients if patients is not None and len(patients) == count else None,
        precision=precision_name(engine.dtype),
    )


def _patients(
    patient_ids: Sequence[Hashable | None] | None, where: str
) -> tuple[Hashable | None, ...] | None:
    """The patient ids as given, checked before the model runs: one that cannot name a
    patient (a list) would fail :meth:`EvaluationResult.patient_report` after the whole
    pass. They are compared (``"0042"`` is ``"42"``, ``""`` and NaN are no id) by
    :func:`~retinalnet.metrics.patient_level` alone, so ``patient_level`` on the data set's
    own ids gives the numbers of the report."""
    if patient_ids is None:
        return None
    given = tuple(patient_ids)
    for row, patient in enumerate(given):
        if not is_missing_id(patient):
            try:
                patient_group_key(patient, row=row)
            except TypeError as error:
                raise TypeError(f"{where}: {error}") from None
    return given


def evaluate(
    model: nn.Module,
    data: DataSource,
    *,
    loss: nn.Module | None = None,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    num_workers: int | None = None,
    classes: Sequence[str] | None = None,
    progress: bool = False,
    tta: bool = False,
    feature_cache: bool | str | os.PathLike[str] = False,
    precision: Precision = "auto",
) -> EvaluationResult:
    """Loss, accuracy per class and overall, and the confusion matrix, batch by batch.

    The result also keeps every image's probabilities, so
    :meth:`EvaluationResult.report` gives the clinical report (sensitivity, specificity,
    ROC AUC, urgent referral, calibration error, bootstrap intervals) without running the
    model again, and, for a data set that knows each image's patient (:class:`KermanyOCT
    <retinalnet.datasets.KermanyOCT>`), :meth:`EvaluationResult.patient_report` the
    report per patient.

    The probabilities are calibrated with the model's temperature
    (:attr:`Classifier.temperature <retinalnet.models.Classifier.temperature>`, 1.0 when
    uncalibrated), and the loss is that of the calibrated probabilities.

    Parameters
    ----------
    model
        A :class:`~retinalnet.models.Classifier` (its preprocessing and class names are
        used) or any module producing log-probabilities.
    data
        A data set of ``(image, target)`` or a DataLoader. A data set that yields PIL
        images is prepared with the model's evaluation preprocessing.
    loss
        Loss on the log-probabilities (``log_softmax(outputs / temperature)``, whatever the
        network returns: logits or log-probabilities); ``NLLLoss`` by default, which is the
        cross-entropy of those.
    batch_size, num_workers
        Loader settings when ``data`` is a data set.
    device
        ``"auto"`` (CUDA, then MPS, then CPU) or a device.
    classes
        The names of the model's outputs, in output order, when ``model`` is not a
        Classifier (required then). A Classifier's outputs are named by its own
        :attr:`~retinalnet.models.Classifier.classes`: ``classes`` may repeat them but is
        refused in another order or with other names, which would name every row and
        column of the result after another class.

        .. versionchanged:: 0.2
           Refused for a Classifier unless equal to its classes (it was used as given).
    progress
        Show a batch progress bar (needs tqdm).
    tta
        Test-time augmentation: average the probabilities of each image and of its
        horizontal mirror (a left eye mirrors a right eye). It runs the model twice, so
        evaluation takes about twice as long; the loss is then that of the averaged
        probabilities.

        .. versionadded:: 0.2
    feature_cache
        Run the frozen backbone once through
        :func:`~retinalnet.training.build_feature_cache` (``True``: in memory; a folder: on
        disk, reused by later evaluations of the same files, including a cache the Trainer
        built with the same precision) and only the head on the features.
        Not with ``tta``.

        .. versionadded:: 0.2
    precision
        Precision of the forward passes (and of the feature cache), the same policy as
        everywhere: ``"auto"`` (default) uses bf16 on GPUs and on CPUs with native bf16,
        fp32 elsewhere, so a cache the Trainer built is reused here; ``"fp32"`` for exact
        fp32 numbers.

        .. versionadded:: 0.2

    Returns
    -------
    EvaluationResult
        Over the images that could be read (see the notes).

    Raises
    ------
    ValueError
        If the classes are unknown (a model that is not a Classifier without ``classes``),
        ``classes`` differs from a Classifier's own classes, the classes differ from the
        data's, ``tta`` comes with ``feature_cache``, no image of ``data`` can be read, or
        ``data`` is a DataLoader
        (or a ``Subset``) over a :class:`~retinalnet.datasets.KermanyOCT` with
        ``on_error="skip"``: the images it cannot read could not be left out, and the
        scans it puts in their place would be counted twice; pass the data set itself.
        If an image's label is not one of the classes (naming the image and the label).
    TypeError
        If ``feature_cache`` is asked of a model that is not a Classifier, ``classes`` is
        one string rather than a list of names, or the labels are not integers.

    Notes
    -----
    The forward passes go through :class:`~retinalnet.engine.InferenceEngine`, like the
    Predictor's; files are decoded and prepared by the model's own
    :class:`~retinalnet.transforms.Preprocessing`.

    A :class:`~retinalnet.datasets.KermanyOCT` with ``on_error="skip"`` is scored on the
    images it can read: each is decoded once first (as ``retinalnet evaluate --on-error
    skip`` does), and the unreadable ones are left out, with a logged warning naming them,
    rather than replaced by the next readable scan (which would count that scan twice, under
    another image's patient).

    Examples
    --------
    >>> from retinalnet.training import evaluate
    >>> result = evaluate(model, KermanyOCT("OCT2017", "test"))  # doctest: +SKIP
    >>> print(result)  # doctest: +SKIP
    """
    check_batch_size(batch_size)
    check_num_workers(num_workers)
    progress, tta = check_bool(progress, "progress"), check_bool(tta, "tta")
    target_device = resolve_device(device)
    own = model.classes if isinstance(model, Classifier) else None
    classes = output_classes(own, classes, where="evaluate")
    check_same_classes(classes, data, where="evaluate", given=own is None)
    warn_of_own_transform(model, data, where="evaluate()")
    workers = default_num_workers(target_device, num_workers)
    data, _ = readable_for_scoring(
        data,
        model.preprocessing.load if isinstance(model, Classifier) else None,
        where="evaluate()",
        progress=progress,
        num_workers=workers,
    )
    patient_ids = None if isinstance(data, DataLoader) else getattr(data, "patient_ids", None)
    forward: nn.Module = model
    if feature_cache is not False:
        if tta:
            raise ValueError(
                "tta mirrors images, but with feature_cache the model sees features computed "
                "once per image; use one or the other"
            )
        if not isinstance(model, Classifier):
            raise TypeError("feature_cache needs a retinalnet Classifier model")
        cache = build_feature_cache(
            model,
            data,
            cache_dir=None if isinstance(feature_cache, bool) else feature_cache,
            batch_size=batch_size,
            num_workers=workers,
            device=target_device,
            precision=precision,
            progress=progress,
        )
        data = cache.dataset(resident_device(cache.features.nbytes, target_device))
        forward = trainable_head(model)[1]
        model.to(target_device)
    engine = InferenceEngine(
        forward,
        device=target_device,
        precision=precision,
        tta=tta,
        preprocessing=model.preprocessing if isinstance(model, Classifier) else None,
        temperature=model.temperature if isinstance(model, Classifier) else None,
    )
    loader = engine.loader(data, batch_size=batch_size, num_workers=workers)
    return run_evaluation(
        engine,
        loader,
        loss=loss if loss is not None else nn.NLLLoss(),
        classes=classes,
        progress=progress,
        patient_ids=patient_ids,
        where="evaluate()",
    )
