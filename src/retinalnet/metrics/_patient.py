"""Patient-level results: the scans of a patient aggregated into one diagnosis."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

from retinalnet._core.classes import KERMANY_CLASSES
from retinalnet._core.patient_ids import is_missing_id, patient_group_key
from retinalnet.metrics._calibration import calibration_error_or_nan, stored_precision
from retinalnet.metrics._confusion import (
    FloatArray,
    _as_probabilities,
    _as_targets,
    _refuse_swapped,
)
from retinalnet.metrics._rates import distributions, probabilities_of
from retinalnet.metrics._report import (
    URGENT_CLASSES,
    ClassificationReport,
    PatientGroups,
    _checked_arguments,
    classification_report,
    urgent_names,
)

__all__ = ["patient_level"]


def patient_level(
    probabilities: npt.ArrayLike,
    targets: npt.ArrayLike,
    patient_ids: Sequence[Hashable | None],
    *,
    classes: Sequence[str] = KERMANY_CLASSES,
    urgent: Sequence[str] | None = URGENT_CLASSES,
    topk: Sequence[int] | None = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> ClassificationReport:
    """The clinical report per patient rather than per scan.

    Diagnoses are made per eye, from all of its B-scans, so a patient's scans are
    aggregated by this rule:

    - the scans of one patient with one label form a group; the group's probabilities are
      the **mean of its scans' probabilities** (from correctly rounded sums, so classes
      whose means are equal tie, and the lower class index wins, as everywhere), its label
      is their label, and it counts once in the report;
    - a patient whose scans carry different labels (Kermany has such patients: one eye
      with CNV, the other normal, or a follow-up visit) gives one group per label, each
      evaluated on its own; :attr:`PatientGroups.mixed` counts these patients;
    - a scan without a patient id (``None``, ``""``, or NaN or ``pandas.NA`` as pandas
      reads an empty cell) is a patient of its own;
    - ids are compared without leading zeros when they are strings of ASCII digits, and a
      whole number that is not negative (an ``int``, a NumPy integer, or a float such as
      ``42.0``, as pandas reads a numeric column with empty cells) counts as the string of
      its digits: ``42``, ``42.0``, ``"42"`` and ``"0042"`` are one patient; any other id
      (``"P-0042"``, ``-3``) is compared as given. This is the rule of
      :func:`~retinalnet.datasets.patient_split` and the audit, so the ids of
      :attr:`KermanyOCT.patient_ids <retinalnet.datasets.KermanyOCT>` can be passed as they
      are, and give the numbers :meth:`EvaluationResult.patient_report
      <retinalnet.training.EvaluationResult.patient_report>` gives.

    The report is the same as :func:`classification_report`'s (confusion matrix,
    sensitivity, specificity, AUC, ECE, confidence intervals over groups), counting
    groups instead of images, with :attr:`ClassificationReport.patients` saying how the
    scans were grouped.

    .. versionadded:: 0.2

    Parameters
    ----------
    probabilities
        Class probabilities of each scan, shape ``(scans, classes)``. Log-probabilities
        (what the models output) or logits are turned into probabilities by a softmax
        first: the rule averages probabilities. The ECE is NaN for logits and for rows
        that do not sum to 1, as in the per-scan report.
    targets
        True class index of each scan.
    patient_ids
        The patient of each scan: a str, an int, or any value that can be a dict key,
        compared by the rule above (for Kermany file names, :attr:`KermanyOCT.patient_ids
        <retinalnet.datasets.KermanyOCT>` as they are).
    classes, urgent, topk, bootstrap, confidence, seed
        As for :func:`classification_report`.

    Returns
    -------
    ClassificationReport

    Raises
    ------
    ValueError
        If the lengths disagree, or as :func:`classification_report` (names in ``urgent``
        that are not classes or that name every class, class names that are not distinct,
        a bad ``topk``, ``bootstrap`` or ``seed``: refused before any grouping); a scan's NaN or
        infinite probabilities are refused before any averaging, naming the scan's row.
    TypeError
        As :func:`classification_report`, or if a patient id cannot be a dict key (a
        list), naming it and its scan.

    Examples
    --------
    Patient ``"7"`` has two CNV scans (averaged: right), patient ``"8"`` one CNV scan and one
    NORMAL scan (two groups: the CNV one is wrong):

    >>> from retinalnet.metrics import patient_level
    >>> report = patient_level(
    ...     [[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]],
    ...     [0, 0, 0, 1],
    ...     ["7", "7", "8", "8"],
    ...     classes=["CNV", "NORMAL"], urgent=None)
    >>> report.num_samples, report.accuracy, report.patients.mixed
    (3, 0.6666666666666666, 1)
    """
    _refuse_swapped(targets, probabilities, "patient_level(probabilities, targets, ...)")
    true = _as_targets(targets)
    # the rule averages probabilities: log-probabilities (the models' output) or logits
    # become probabilities first, as averaging them would follow another rule
    given = _as_probabilities(probabilities, len(true))
    scores = probabilities_of(given)
    # checked here, they are refused before grouping; the checked values (plain Python
    # numbers, a generator's k read once) go on to the report, which stores them
    if urgent is not None and urgent is not URGENT_CLASSES:
        urgent = urgent_names(urgent)  # read twice (checked, then the report's): a generator once
    checked = _checked_arguments(
        classes,
        scores.shape[1],
        urgent,
        topk=topk,
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
    )
    ids = list(patient_ids)
    if len(ids) != len(true):
        raise ValueError(
            f"patient_ids must name the patient of each scan: got {len(ids)} ids for "
            f"{len(true)} scans"
        )
    groups: dict[tuple[Hashable, int], list[int]] = {}
    labels: dict[Hashable, set[int]] = {}
    for index, (patient, target) in enumerate(zip(ids, true.tolist(), strict=True)):
        key = _NoId(index) if is_missing_id(patient) else patient_group_key(patient, row=index)
        groups.setdefault((key, target), []).append(index)
        labels.setdefault(key, set()).add(target)
    members = list(groups.values())
    group_probabilities = (
        np.stack([_mean(scores[rows]) for rows in members])
        if members
        else np.empty((0, scores.shape[1]))
    )
    group_targets = np.array([target for _, target in groups], dtype=np.int64)
    report = classification_report(
        group_targets,
        group_probabilities,
        classes=checked.names,
        urgent=urgent,
        topk=checked.ks,
        bootstrap=checked.bootstrap,
        confidence=checked.confidence,
        seed=checked.seed,
    )
    summary = PatientGroups(
        scans=len(true),
        patients=len(labels),
        groups=len(groups),
        mixed=sum(len(found) > 1 for found in labels.values()),
        without_id=sum(is_missing_id(patient) for patient in ids),
    )
    # the calibration error judges the distributions the scans' scores stand for, as the
    # per-scan report does: none for logits or rows that do not sum to 1 (NaN there too);
    # a group's confidence is compared with the bin edges at its scans' precision
    stored = stored_precision(given)
    ece = (
        calibration_error_or_nan(
            group_probabilities,
            group_targets,
            np.array([stored[rows].max() for rows in members], dtype=np.int64),
        )
        if distributions(given) is not None
        else math.nan
    )
    return dataclasses.replace(report, patients=summary, ece=ece)


def _mean(rows: FloatArray) -> FloatArray:
    """Each column's mean, from sums that are correctly rounded (``math.fsum``): columns
    holding the same values, in any order, get the same mean, so a tie between classes is
    a tie, broken by the documented rule (the lower class index), not by the order of a
    floating-point sum. A second sum, of the values less that first mean, corrects it, so
    the mean of equal values is that value."""
    count = len(rows)
    means = []
    for column in rows.T.tolist():
        first = math.fsum(column) / count
        means.append(first + math.fsum([*column, *[-first] * count]) / count)
    return np.array(means, dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class _NoId:
    """The key of a scan without a patient id: a patient of its own, equal to no id given."""

    scan: int
