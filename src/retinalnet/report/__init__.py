"""Clinic-ready evaluation reports: one self-contained HTML file that opens offline.

:func:`write_html_report` turns an evaluation into a page a clinician can read in a browser:
data and model provenance (with the checkpoint's SHA-256), the clinical metrics with
confidence intervals, the urgent-referral view, confusion matrices, ROC and precision-recall
curves, calibration where available, the training history, and a gallery of the most
confident mistakes with Grad-CAM heatmaps. ``retinalnet evaluate --report report.html``
writes it from the command line.

Needs matplotlib (``pip install matplotlib``, or the ``plot`` extra), like
:mod:`retinalnet.plots`.

.. versionadded:: 0.2

Examples
--------
>>> from retinalnet.report import write_html_report
>>> result = evaluate(model, test)  # doctest: +SKIP
>>> write_html_report("report.html", result, data=test, model=model)  # doctest: +SKIP
PosixPath('report.html')
"""

from retinalnet.report._write import render_html_report as render_html_report
from retinalnet.report._write import write_html_report as write_html_report

__all__ = ["render_html_report", "write_html_report"]
