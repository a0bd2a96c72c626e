"""Clinical metrics from labels and predicted probabilities, with numpy only.

Everything here takes the true class of each image and the model's class probabilities, and
computes what an ophthalmology paper reports: the confusion matrix; per class precision,
recall (sensitivity), specificity, F1 and support; macro and weighted averages; one-vs-rest
ROC AUC, with the ROC and precision-recall curves; the tutorial's per-class top-k accuracy
table; and Kermany et al.'s urgent-referral view (CNV and DME need an urgent referral,
DRUSEN and NORMAL do not); calibration (the expected calibration error, the reliability
curve, temperature scaling) and the report per patient rather than per scan. Optional
bootstrap confidence intervals are seeded, so a report is reproducible.

**Ties.** When classes have equal probabilities, the lower class index ranks first: a class
ranks before another when its probability is higher, or equal with a lower index. It is
argmax's rule (the first maximum), so the predicted class, the confusion matrix, the top-k
table (whose top-1 row is each class's recall), the reliability curve and
:meth:`Predictor.topk <retinalnet.Predictor.topk>` all agree: four probabilities of 0.25
are CNV, then DME, then DRUSEN.

**Non-finite values are refused.** Every function here that takes probabilities or scores
raises :class:`ValueError` for a NaN or infinite one, saying how many rows (images) hold
them and which is the first: a NaN row has no most probable class and no rank, so any number
computed from it would be wrong. They come from a model with non-finite weights or outputs.

.. versionadded:: 0.2

Examples
--------
>>> import numpy as np
>>> from retinalnet.metrics import classification_report
>>> probabilities = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1],
...                           [0.1, 0.1, 0.2, 0.6], [0.1, 0.1, 0.1, 0.7]])
>>> report = classification_report([0, 1, 2, 3], probabilities)
>>> report.accuracy, report.referral.sensitivity
(0.75, 1.0)
"""

from retinalnet.metrics._calibration import (
    expected_calibration_error as expected_calibration_error,
)
from retinalnet.metrics._calibration import fit_temperature as fit_temperature
from retinalnet.metrics._calibration import reliability_curve as reliability_curve
from retinalnet.metrics._class_metrics import ClassMetrics as ClassMetrics
from retinalnet.metrics._class_metrics import ReferralMetrics as ReferralMetrics
from retinalnet.metrics._confusion import confusion_matrix as confusion_matrix
from retinalnet.metrics._confusion import topk_accuracy as topk_accuracy
from retinalnet.metrics._curves import average_precision as average_precision
from retinalnet.metrics._curves import precision_recall_curve as precision_recall_curve
from retinalnet.metrics._curves import roc_curve as roc_curve
from retinalnet.metrics._patient import patient_level as patient_level
from retinalnet.metrics._report import URGENT_CLASSES as URGENT_CLASSES
from retinalnet.metrics._report import ClassificationReport as ClassificationReport
from retinalnet.metrics._report import PatientGroups as PatientGroups
from retinalnet.metrics._report import classification_report as classification_report
from retinalnet.metrics._roc import roc_auc as roc_auc

__all__ = [
    "URGENT_CLASSES",
    "ClassMetrics",
    "ClassificationReport",
    "PatientGroups",
    "ReferralMetrics",
    "average_precision",
    "classification_report",
    "confusion_matrix",
    "expected_calibration_error",
    "fit_temperature",
    "patient_level",
    "precision_recall_curve",
    "reliability_curve",
    "roc_auc",
    "roc_curve",
    "topk_accuracy",
]
