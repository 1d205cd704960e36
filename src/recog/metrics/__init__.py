"""Evaluation metrics, plots and the self-contained HTML report.

Imported only when evaluation runs; scikit-learn and matplotlib load inside the
functions that need them.

Example:
    >>> from recog.metrics import classification_metrics, write_report  # doctest: +SKIP
    >>> m = classification_metrics(y_true, probs, labels)                 # doctest: +SKIP
    >>> write_report("runs/pets/report", y_true, probs, labels, sources=paths)  # doctest: +SKIP
"""

from recog.metrics.calibration import expected_calibration_error, reliability_bins
from recog.metrics.classification import classification_metrics
from recog.metrics.report import PLOT_FILES, write_report

__all__ = ["PLOT_FILES", "classification_metrics", "expected_calibration_error", "reliability_bins",
           "write_report"]
