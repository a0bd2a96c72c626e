"""The records of one class against the rest (:class:`ClassMetrics`) and of the urgent
classes against the rest (:class:`ReferralMetrics`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from retinalnet.metrics._confusion import IntArray

__all__ = ["ClassMetrics", "ReferralMetrics"]


@dataclass(frozen=True)
class ClassMetrics:
    """One class against the rest.

    Attributes
    ----------
    name : str
        Class name.
    precision : float
        Of the images predicted as this class, the fraction that are (positive predictive
        value); 0 when the class is never predicted but has images (0 of 0 predictions, as
        scikit-learn's ``zero_division=0``; :attr:`ClassificationReport.notes
        <retinalnet.metrics.ClassificationReport.notes>` says so), NaN when it has neither.
    recall : float
        Sensitivity: of this class's images, the fraction predicted as it (NaN without images).
    specificity : float
        Of the other classes' images, the fraction not predicted as this class.
    f1 : float
        Harmonic mean of precision and recall, ``2 TP / (2 TP + FP + FN)``: 0 when both
        are 0, and for a class predicted but without images (as scikit-learn); NaN for a
        class neither among the images nor predicted.
    support : int
        Images of this class.
    auc : float
        One-vs-rest ROC AUC of this class's probability (NaN without images of both kinds):
        of its column as given for probabilities, after a softmax for logits and
        log-probabilities.

    Examples
    --------
    >>> from retinalnet.metrics import classification_report
    >>> report = classification_report([0, 1, 1], [[0.8, 0.2], [0.6, 0.4], [0.1, 0.9]],
    ...                                classes=["a", "b"])
    >>> report["b"].sensitivity, report["b"].specificity
    (0.5, 1.0)
    """

    name: str
    precision: float
    recall: float
    specificity: float
    f1: float
    support: int
    auc: float

    @property
    def sensitivity(self) -> float:
        """Same as :attr:`recall`."""
        return self.recall

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (NaN becomes ``None``)."""
        return {
            "precision": _plain(self.precision),
            "recall": _plain(self.recall),
            "specificity": _plain(self.specificity),
            "f1": _plain(self.f1),
            "support": self.support,
            "auc": _plain(self.auc),
        }


@dataclass(frozen=True)
class ReferralMetrics:
    """Urgent referral (Kermany et al.): urgent classes against all others.

    An image is referred urgently when its most probable class is urgent; the AUC ranks
    images by the summed probability of the urgent classes.

    Attributes
    ----------
    urgent : tuple of str
        The urgent classes (CNV and DME by default).
    sensitivity : float
        Of the urgent images, the fraction referred urgently.
    specificity : float
        Of the other images, the fraction not referred urgently.
    auc : float
        ROC AUC of the urgent probability; NaN for scores in [0, 1] whose rows do not sum
        to 1 (one-vs-rest scores: their sum is no probability).
    confusion_matrix : numpy.ndarray
        2x2 counts, rows true (not urgent, urgent), columns referred (no, yes).

    Examples
    --------
    >>> from retinalnet.metrics import classification_report
    >>> report = classification_report([0, 3], [[0.9, 0.0, 0.0, 0.1], [0.6, 0.0, 0.0, 0.4]])
    >>> report.referral.sensitivity, report.referral.specificity
    (1.0, 0.0)
    """

    urgent: tuple[str, ...]
    sensitivity: float
    specificity: float
    auc: float
    confusion_matrix: IntArray

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (NaN becomes ``None``)."""
        return {
            "urgent": list(self.urgent),
            "sensitivity": _plain(self.sensitivity),
            "specificity": _plain(self.specificity),
            "auc": _plain(self.auc),
            "confusion_matrix": self.confusion_matrix.tolist(),
        }


def _plain(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
