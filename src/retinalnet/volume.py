"""OCT volumes: every B-scan predicted, the volume summarised by a referral rule.

A volume is the stack of B-scans of one OCT acquisition (a multi-frame DICOM file, a multi-page TIFF
or an animated PNG, or B-scans given in order). :func:`predict_volume` predicts each B-scan with a
:class:`~retinalnet.predictor.Predictor` and :func:`summarise_volume` applies the rule:

    Go through the classes in referral order, highest concern first (``CNV``, ``DME``,
    ``DRUSEN``, then ``NORMAL``). The volume gets the first class that at least
    ``min_scans`` B-scans give a probability of at least ``threshold``; when no class before
    the last one does, it gets the last one (``NORMAL``).

A volume of fewer B-scans than ``min_scans`` is refused (a ``ValueError`` naming it): no class
could reach the rule, so its label would be the fallback whatever its B-scans show.

The default threshold, 0.5, means a B-scan counts for a class when the model finds that class
at least as likely as all the others together (with probabilities summing to 1 it is then the
B-scan's most probable class). Lower it to miss fewer diseased volumes at the cost of more
false referrals; the probabilities are only as meaningful as the model's calibration. One
B-scan suffices by default (``min_scans=1``): a lesion is often visible on a few B-scans of a
volume only.

The B-scans that drove the result (``VolumeSummary.drivers``) are those whose probability of
the volume's class reaches the threshold, most probable first.

.. versionadded:: 0.2

Examples
--------
>>> summary = summarise_volume(
...     [[0.1, 0.1, 0.1, 0.7], [0.6, 0.2, 0.1, 0.1], [0.2, 0.1, 0.6, 0.1]],
...     ("CNV", "DME", "DRUSEN", "NORMAL"),
... )
>>> summary.label, [(s.index, s.probability) for s in summary.drivers]
('CNV', [(1, 0.6)])

Why this module is long: the rule, its checks (the order of classes, the threshold, a volume
shorter than ``min_scans``) and the two ways in (a file of frames, B-scans in memory) are one
contract; split, the rule's refusals would be far from the rule.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import torch

from retinalnet._core.classes import KERMANY_CLASSES, in_words
from retinalnet._core.counts import as_integer, as_number
from retinalnet._core.images import (
    ImageInput,
    ImageNotFoundError,
    UnreadableImageError,
    coerce_volume,
    load_frames,
)
from retinalnet._core.printable import one_line
from retinalnet._core.proportion_text import percent, percent_as_given, percent_beside
from retinalnet.metrics._rates import (
    SUM_TOLERANCE,
    are_class_scores,
    are_probabilities,
    distributions,
    refuse_percentages,
)

if TYPE_CHECKING:
    from PIL import Image

    from retinalnet.export import OnnxPredictor
    from retinalnet.predictor import Predictor

__all__ = [
    "DEFAULT_THRESHOLD",
    "REFERRAL_ORDER",
    "ScanProbability",
    "VolumeSummary",
    "predict_volume",
    "read_volume",
    "summarise_volume",
]

REFERRAL_ORDER: Final[tuple[str, ...]] = ("CNV", "DME", "DRUSEN", "NORMAL")
"""The Kermany classes by clinical concern, highest first: CNV and DME call for an urgent
referral, drusen for a routine one, a normal retina for none (Kermany et al., 2018)."""

DEFAULT_THRESHOLD: Final = 0.5
"""The probability at which a B-scan counts for a class (see the module's rule)."""


@dataclass(frozen=True)
class ScanProbability:
    """One B-scan of a volume (its index, from 0) and the probability of a class.

    ``str()`` gives ``"B-scan 3: 97.2%"``, the probability never rounded to an end it did
    not reach (0.9996 is ``">99.9%"``).

    .. versionchanged:: 0.2
       ``str()`` reads as text, not the dataclass's fields.
    """

    index: int
    probability: float

    def __str__(self) -> str:
        return f"B-scan {self.index}: {percent(self.probability)}"


@dataclass(frozen=True)
class VolumeSummary:
    """The per-B-scan probabilities of a volume and the class the referral rule gives it.

    Attributes
    ----------
    source : str
        The file, or ``"<volume>"`` for B-scans given in memory.
    label : str
        The volume's class by the rule (see :mod:`retinalnet.volume`).
    classes : tuple of str
        The model's classes, in output order (the columns of ``probabilities``).
    probabilities : tuple of tuple of float
        One row per B-scan, in volume order: the probability of each class.
    threshold : float
        The probability at which a B-scan counts for a class.
    order : tuple of str
        The referral order used, highest concern first; the last class is the fallback.
    min_scans : int
        How many B-scans must reach the threshold for a class.
    drivers : tuple of ScanProbability
        The B-scans whose probability of ``label`` reaches the threshold, most probable
        first (ties by index). For the fallback class this may be empty.
    """

    source: str
    label: str
    classes: tuple[str, ...]
    probabilities: tuple[tuple[float, ...], ...]
    threshold: float
    order: tuple[str, ...]
    min_scans: int
    drivers: tuple[ScanProbability, ...]

    @property
    def num_scans(self) -> int:
        """How many B-scans the volume holds."""
        return len(self.probabilities)

    @property
    def array(self) -> npt.NDArray[np.float64]:
        """``probabilities`` as an array ``(num_scans, num_classes)``."""
        return np.asarray(self.probabilities, dtype=np.float64).reshape(-1, len(self.classes))

    @property
    def referred(self) -> bool:
        """Whether a class before the fallback reached the threshold."""
        return self.label != self.order[-1]

    def peak(self, name: str) -> ScanProbability:
        """The B-scan that gives class ``name`` its highest probability (first on ties).

        Raises
        ------
        ValueError
            If ``name`` is not one of :attr:`classes`.
        """
        if name not in self.classes:
            raise ValueError(f"{name!r} is not a class of this volume; choose from {self.classes}")
        column = self.array[:, self.classes.index(name)]
        index = int(column.argmax())
        return ScanProbability(index, float(column[index]))

    @property
    def reason(self) -> str:
        """Why the volume has its class, in one line (no patient data: indices only).

        Class names are quoted when one of them would make the line read otherwise (a comma
        in ``'Ödem, diabetic'``), as in every message naming classes.
        """
        count = len(self.drivers)
        if self.referred:
            return (
                f"{count} of {self.num_scans} B-scans at {in_words([self.label])} >= "
                f"{percent_as_given(self.threshold)}"
                + (f" (needs {self.min_scans})" if self.min_scans > 1 else "")
            )
        concerns = self.order[:-1]
        listed = in_words(concerns)
        peaks = [(name, self.peak(name)) for name in concerns]
        which, highest = max(peaks, key=lambda item: item[1].probability)
        # the highest class written as the list writes it
        shown = which if listed == ", ".join(concerns) else repr(which)
        peak = percent_beside(highest.probability, self.threshold)
        return (
            f"no class of {listed} reached {percent_as_given(self.threshold)} on "
            f"{'a B-scan' if self.min_scans == 1 else f'{self.min_scans} B-scans'}; highest: "
            f"{shown} {peak} at B-scan {highest.index}"
        )

    def __str__(self) -> str:
        source = one_line(self.source)  # a listing of one line per file
        return f"{source}  {self.label}  ({self.num_scans} B-scans; {self.reason})"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the summary, the drivers, and every B-scan's probabilities."""
        return {
            "source": self.source,
            "kind": "volume",
            "label": self.label,
            "num_scans": self.num_scans,
            "threshold": self.threshold,
            "min_scans": self.min_scans,
            "order": list(self.order),
            "classes": list(self.classes),
            "reason": self.reason,
            "drivers": [{"index": s.index, "probability": s.probability} for s in self.drivers],
            "peaks": {
                name: {"index": p.index, "probability": p.probability}
                for name in self.classes
                for p in [self.peak(name)]
            },
            "scans": [
                {
                    "index": index,
                    "label": self.classes[int(np.argmax(row))],
                    "probabilities": dict(zip(self.classes, row, strict=True)),
                }
                for index, row in enumerate(self.probabilities)
            ],
        }


def _check_order(classes: Sequence[str], order: Sequence[str] | None) -> tuple[str, ...]:
    if order is None:
        # a study of some Kermany classes with NORMAL (CNV against NORMAL) keeps the
        # referral order of its classes; without NORMAL there is no fallback to assume
        if not set(classes) <= set(KERMANY_CLASSES) or "NORMAL" not in classes:
            raise ValueError(
                f"the model's classes are {list(classes)}, not the Kermany ones "
                f"{list(KERMANY_CLASSES)} or some of them with NORMAL, so the referral order "
                "CNV > DME > DRUSEN > NORMAL does not apply; pass order=[...], every class "
                "of the model from highest concern to the fallback class"
            )
        return tuple(name for name in REFERRAL_ORDER if name in classes)
    if isinstance(order, str):
        raise TypeError(f"order must be a sequence of class names, got the string {order!r}")
    chosen = tuple(order)
    if sorted(chosen) != sorted(classes) or len(set(chosen)) != len(chosen) or len(chosen) < 2:
        raise ValueError(
            f"order must list every class of the model once, highest concern first and the "
            f"fallback class last; got {list(chosen)} for the classes {list(classes)}"
        )
    return chosen


def _check_threshold(threshold: float) -> float:
    number = as_number(threshold)
    if number is None:
        raise TypeError(f"threshold must be a probability (float), got {threshold!r}")
    if not (math.isfinite(number) and 0 < number <= 1):
        raise ValueError(
            f"threshold must be in (0, 1], got {threshold!r}; the default is {DEFAULT_THRESHOLD}"
        )
    return number


def _check_min_scans(min_scans: int) -> int:
    number = as_integer(min_scans)
    if number is None or number < 1:
        raise ValueError(f"min_scans must be an int >= 1, got {min_scans!r}; the default is 1")
    return number


def _check_enough_scans(num_scans: int, min_scans: int, source: str, fallback: str) -> None:
    """Refuse a volume of fewer B-scans than ``min_scans``: no class can meet the rule, so its
    label would be the fallback class whatever its B-scans show, which is no answer."""
    if num_scans < min_scans:
        raise ValueError(
            f"the volume {source} has {num_scans} B-scan{'' if num_scans == 1 else 's'}, fewer "
            f"than min_scans={min_scans}, so no class can reach the referral rule and its label "
            f"would be the fallback {fallback} whatever its B-scans show; pass "
            f"min_scans={num_scans} or less"
        )


def _check_distributions(array: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The rows of ``array`` (one per B-scan) as probabilities in [0, 1], each summing to 1;
    what else the rule is given is refused, naming the values found and the fix, by the
    metrics' rules of what scores stand for (:mod:`retinalnet.metrics`): percentages,
    log-probabilities (what the models output), logits, and rows that miss a sum of 1 by
    more than :data:`~retinalnet.metrics._rates.SUM_TOLERANCE` (one-vs-rest scores), for
    which the threshold's meaning (a class at least as likely as all the others together)
    does not hold. Values outside [0, 1] by float rounding only are clipped."""
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        if _log_probabilities_of_zeros(array):
            zeros = f"; -inf, the log of a probability of 0, in {len(rows)} of {len(array)} B-scans"
            raise ValueError(_log_probabilities_reason(array, zeros))
        raise ValueError(
            f"probabilities must be finite; {len(rows)} of {len(array)} B-scans hold NaN or "
            f"infinite values, the first B-scan {int(rows[0])}: they come from a model with "
            "non-finite weights or outputs"
        )
    refuse_percentages(array)
    if not are_probabilities(array):
        found = f"got values from {array.min():.3g} to {array.max():.3g}"
        if distributions(array) is not None:  # each row's logsumexp is 0
            raise ValueError(_log_probabilities_reason(array))
        raise ValueError(
            f"probabilities must be in [0, 1]; {found} (logits? pass their softmax, "
            "torch.softmax(logits, dim=1), or the probabilities of Predictor.predict_proba)"
        )
    if are_class_scores(array):
        sums = np.clip(array, 0.0, 1.0).sum(axis=1)
        row = int(np.argmax(np.abs(sums - 1.0) > SUM_TOLERANCE))
        raise ValueError(
            f"each B-scan's probabilities must sum to 1 (give or take {SUM_TOLERANCE:g}); "
            f"B-scan {row}'s sum to {sums[row]:.3g} (rows sum to {sums.min():.3g} to "
            f"{sums.max():.3g}): one-vs-rest (sigmoid) scores are no distribution, and the "
            "threshold means a class at least as likely as all the others together only for "
            "one; pass a softmax's probabilities (those of Predictor.predict_proba)"
        )
    return np.clip(array, 0.0, 1.0)


def _log_probabilities_of_zeros(array: npt.NDArray[np.float64]) -> bool:
    """Whether ``array``, finite but for ``-inf`` values, is log-probabilities: ``-inf`` is
    ``log(0)``, a probability of 0 (``torch.log`` of a softmax that underflowed), no fault
    of the model; each row keeps a finite value and its logsumexp is 0."""
    if np.isnan(array).any() or np.isposinf(array).any():
        return False
    if not np.isfinite(array).any(axis=1).all():  # a row of -inf sums to no distribution
        return False
    with np.errstate(divide="ignore", invalid="ignore"):
        return not are_probabilities(array) and distributions(array) is not None


def _log_probabilities_reason(array: npt.NDArray[np.float64], zeros: str = "") -> str:
    """The refusal of log-probabilities given as probabilities: the values, the fix."""
    return (
        f"probabilities must be in [0, 1]; got values from {array.min():.3g} to "
        f"{array.max():.3g}, log-probabilities (each row's exp sums to 1, what the models "
        f"output{zeros}): pass their exp (tensor.exp(), numpy.exp(array)), or the "
        "probabilities of Predictor.predict_proba"
    )


def summarise_volume(
    probabilities: torch.Tensor | npt.ArrayLike,
    classes: Sequence[str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    order: Sequence[str] | None = None,
    min_scans: int = 1,
    source: str = "<volume>",
) -> VolumeSummary:
    """Apply the referral rule to the per-B-scan probabilities of a volume.

    Parameters
    ----------
    probabilities
        ``(num_scans, num_classes)``: each B-scan's class probabilities (rows sum to 1), as
        :meth:`~retinalnet.predictor.Predictor.predict_proba` gives them.
    classes
        The class of each column (the model's classes, in output order).
    threshold
        The probability at which a B-scan counts for a class, in (0, 1]; default 0.5.
    order
        The classes by concern, highest first, the fallback class last. ``None`` (the
        default) takes :data:`REFERRAL_ORDER` for the model's classes: the four Kermany ones,
        or some of them with NORMAL (a CNV-against-NORMAL study); a model of other classes
        needs an explicit order.
    min_scans
        How many B-scans must reach the threshold for a class (default 1); at most the
        number of B-scans (a shorter volume could only get the fallback class, so it is
        refused).
    source
        How the summary names the volume.

    Returns
    -------
    VolumeSummary

    Raises
    ------
    ValueError
        If the probabilities are not a non-empty ``(num_scans, len(classes))`` array in
        [0, 1] whose rows each sum to 1 (give or take 0.02, rounded probabilities); the
        message names the values found and the fix for percentages (``/ 100``),
        log-probabilities (their ``exp()``, the models output them), logits and
        one-vs-rest scores (a softmax). Or if the threshold is not in (0, 1], ``min_scans``
        is not a positive int or is more than the number of B-scans (no class could then
        reach the rule: the message names the volume, its B-scans and ``min_scans``), or
        the classes are not the Kermany ones and no ``order`` is given (or ``order`` is not
        a permutation of them).

    Examples
    --------
    >>> summary = summarise_volume([[0.2, 0.1, 0.2, 0.5]] * 3, ("CNV", "DME", "DRUSEN", "NORMAL"))
    >>> summary.label, len(summary.drivers)
    ('NORMAL', 3)
    """
    names = tuple(str(name) for name in classes)
    chosen = _check_order(names, order)
    level = _check_threshold(threshold)
    min_scans = _check_min_scans(min_scans)  # an int: np.int64(2) would fail in to_dict's JSON
    if isinstance(probabilities, torch.Tensor):
        probabilities = probabilities.detach().cpu().double().numpy()
    array = np.asarray(probabilities, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(names) or array.shape[0] == 0:
        raise ValueError(
            f"probabilities must have shape (num_scans >= 1, {len(names)}), one column per "
            f"class; got {array.shape}"
        )
    array = _check_distributions(array)
    _check_enough_scans(array.shape[0], min_scans, source, chosen[-1])
    label = chosen[-1]
    for name in chosen[:-1]:
        if int((array[:, names.index(name)] >= level).sum()) >= min_scans:
            label = name
            break
    column = array[:, names.index(label)]
    hits = [int(i) for i in np.flatnonzero(column >= level)]
    hits.sort(key=lambda i: (-column[i], i))
    return VolumeSummary(
        source=source,
        label=label,
        classes=names,
        probabilities=tuple(tuple(float(p) for p in row) for row in array),
        threshold=level,
        order=chosen,
        min_scans=min_scans,
        drivers=tuple(ScanProbability(i, float(column[i])) for i in hits),
    )


def read_volume(path: str | os.PathLike[str]) -> list[Image.Image]:
    """The B-scans of a volume file, in order, as ``"L"`` (or ``"RGB"``) images.

    A multi-frame DICOM file gives its frames, a multi-page TIFF its pages, an animated PNG
    its frames; a single-frame file gives one B-scan. Pixels become grey levels by the rules
    of the docs page "DICOM and OCT volumes"; every frame passes the checks of
    :func:`~retinalnet.datasets.load_image`. Needs the ``dicom`` extra for DICOM files.

    Raises
    ------
    retinalnet.datasets.UnreadableImageError
        If the file cannot be read; the message names the file and never a patient tag.
    ModuleNotFoundError
        For a DICOM file when pydicom is not installed (``pip install "retinalnet[dicom]"``).
    TypeError
        If ``path`` is not one path (a list of B-scans goes to :func:`predict_volume`).

    Examples
    --------
    >>> scans = read_volume("volume.dcm")  # doctest: +SKIP
    >>> len(scans), scans[0].size  # doctest: +SKIP
    (49, (512, 496))
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"read_volume takes one volume file, got {type(path).__name__}; pass a list of "
            "B-scans to predict_volume"
        )
    return load_frames(path)


def predict_volume(
    predictor: Predictor | OnnxPredictor,
    volume: str | os.PathLike[str] | Sequence[ImageInput],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    order: Sequence[str] | None = None,
    min_scans: int = 1,
    source: str | None = None,
) -> VolumeSummary:
    """Predict every B-scan of a volume and summarise it by the referral rule.

    Parameters
    ----------
    predictor
        Gives each B-scan's probabilities (its model, preprocessing, device, TTA): a
        :class:`~retinalnet.predictor.Predictor`, or the
        :class:`~retinalnet.export.OnnxPredictor` of an exported model
        (``Predictor.from_onnx``).
    volume
        A volume file (a multi-frame DICOM file, a multi-page TIFF, an animated PNG; see
        :func:`read_volume`), or the B-scans in order (paths, PIL images, image tensors or
        NumPy arrays, as :class:`~retinalnet.predictor.Predictor` takes them;
        ``list(tensor)`` for a ``(N, H, W)`` tensor or array). B-scans in order are read by
        one rule for the whole volume, as a volume file's frames are: the numbers of 16-bit,
        32-bit and float B-scans (PIL images, files of one B-scan each) by one scale chosen
        from all of them, so a dim B-scan (a blink) stays dim, and DICOM files of one B-scan
        each checked together for their ``BitsStored``, as a multi-frame file's frames
        (:func:`retinalnet._core.images.coerce_volume`); tensors and arrays by their fixed
        rule (uint8, or float in [0, 1]).

        .. versionchanged:: 0.2
           B-scans in order were read one by one: a dim float B-scan was stretched as
           bright as the others, and one dim 16-bit B-scan (or DICOM file without a
           window: "correct BitsStored") had the volume refused.
    threshold, order, min_scans
        The rule's settings (see :func:`summarise_volume`); checked before any B-scan is
        predicted, and so is that the volume holds at least ``min_scans`` B-scans.
    source
        How the summary names the volume; the path, or ``"<volume>"``, by default.

    Returns
    -------
    VolumeSummary

    Raises
    ------
    retinalnet.datasets.UnreadableImageError
        If the volume file or one of its B-scans cannot be read (even with
        ``on_error="skip"``: a volume with a B-scan left out would be summarised wrongly).
    ValueError
        As :func:`summarise_volume`, or if the volume holds no B-scan or fewer than
        ``min_scans`` (before any B-scan is predicted), or a B-scan in memory is no usable
        image (the message names it: ``B-scan 2 ...``), or the B-scans in order have values
        the volume's scale gives no meaning (16-bit files or DICOM files without a window
        that would all be nearly black: 12-bit data, a wrong ``BitsStored``).

    Warns
    -----
    UserWarning
        When the volume's values were stretched from their own range (values no bit depth
        explains; see :func:`~retinalnet._core.images.to_model_mode`).

    Examples
    --------
    >>> from retinalnet import Predictor
    >>> predictor = Predictor.from_checkpoint("best.pt")  # doctest: +SKIP
    >>> summary = predict_volume(predictor, "volume.dcm")  # doctest: +SKIP
    >>> print(summary)  # doctest: +SKIP
    volume.dcm  CNV  (49 B-scans; 3 of 49 B-scans at CNV >= 50%)
    """
    classes = predictor.classes
    chosen = _check_order(classes, order)  # before any work
    level = _check_threshold(threshold)
    min_scans = _check_min_scans(min_scans)
    if isinstance(volume, (str, os.PathLike)):
        name = str(volume) if source is None else source
        scans: Sequence[ImageInput] = read_volume(volume)
    elif isinstance(volume, (list, tuple)):
        name = "<volume>" if source is None else source
        scans = volume
    else:
        raise TypeError(
            f"volume must be a file path or a list of B-scans, got {type(volume).__name__}; "
            "pass list(tensor) for a (N, H, W) tensor, list(array) for a (N, H, W) array"
        )
    if not scans:
        raise ValueError(f"the volume {name} holds no B-scan")
    _check_enough_scans(len(scans), min_scans, name, chosen[-1])  # before any prediction
    if not isinstance(volume, (str, os.PathLike)):  # one scale for all its B-scans
        try:
            scans = coerce_volume(scans, target_size=predictor.preprocessing.decode_size)
        except UnreadableImageError as error:  # keeps its class (ImageNotFoundError)
            raise type(error)(
                error.path or "<volume>",
                f"{error.reason} (B-scan of the volume {name}; a volume is summarised only "
                "when every B-scan is read)",
            ) from None
    probabilities = predictor.predict_proba(scans)
    # B-scans left out (on_error="skip") are told by the count of rows, this call's own:
    # `skipped` may already be another thread's call's on a shared predictor
    if len(probabilities) != len(scans):
        every = "a volume is summarised only when every B-scan is read"
        if not predictor.skipped:
            raise UnreadableImageError(
                name,
                f"{len(scans) - len(probabilities)} of its {len(scans)} B-scans could not be "
                f"read; {every}",
            )
        first = predictor.skipped[0]
        missing = not first.source.startswith("<image ") and not Path(first.source).exists()
        raise (ImageNotFoundError if missing else UnreadableImageError)(
            first.source, f"{first.reason} (B-scan of the volume {name}; {every})"
        )
    # the checked settings go on (an order given as a generator is read once)
    return summarise_volume(
        probabilities, classes, threshold=level, order=chosen, min_scans=min_scans, source=name
    )
