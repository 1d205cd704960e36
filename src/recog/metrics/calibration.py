"""Calibration: expected calibration error and reliability-diagram bins."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Number of equal-width confidence bins (Guo et al., 2017 use 15).
DEFAULT_NUM_BINS = 15


def reliability_bins(y_true: np.ndarray, probs: np.ndarray, num_bins: int = DEFAULT_NUM_BINS) -> list[dict[str, Any]]:
    """Top-label reliability bins over max-probability confidence.

    Bin ``m`` (1-based) is the half-open interval ``((m-1)/M, m/M]``; a
    confidence of exactly 0 falls in the first bin.

    Args:
        y_true: ``(N,)`` integer class indices.
        probs: ``(N, C)`` probabilities.
        num_bins: ``M``, the number of equal-width bins on [0, 1].

    Returns:
        ``M`` dicts ``{lower, upper, count, accuracy, confidence}``; accuracy
        and confidence are the means inside the bin, None for an empty bin.
    """
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    idx = np.clip(np.ceil(conf * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
    bins = []
    for m in range(num_bins):
        mask = idx == m
        n = int(mask.sum())
        bins.append({
            "lower": m / num_bins,
            "upper": (m + 1) / num_bins,
            "count": n,
            "accuracy": float(correct[mask].mean()) if n else None,
            "confidence": float(conf[mask].mean()) if n else None,
        })
    return bins


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray,
                               num_bins: int = DEFAULT_NUM_BINS) -> tuple[float, list[dict[str, Any]]]:
    """Expected calibration error (ECE) of the top label, and its bins.

    Definition (Naeini et al., 2015; Guo et al., 2017): with confidence
    ``conf_i = max_c probs[i, c]``, prediction ``argmax_c probs[i, c]`` and
    ``M`` equal-width bins ``B_m = ((m-1)/M, m/M]`` over confidence,

        ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)|

    where ``acc(B_m)`` is the fraction of correct predictions in ``B_m`` and
    ``conf(B_m)`` the mean confidence there. 0 is perfectly calibrated; the
    value is in [0, 1].

    Args:
        y_true: ``(N,)`` integer class indices, N >= 1.
        probs: ``(N, C)`` probabilities.
        num_bins: ``M``.

    Returns:
        ``(ece, bins)`` with bins as in :func:`reliability_bins`.

    Example:
        >>> import numpy as np
        >>> ece, _ = expected_calibration_error(np.array([0, 1]), np.array([[0.9, 0.1], [0.88, 0.12]]))
        >>> round(ece, 3)   # one bin (0.867, 0.933]: accuracy 0.5, confidence 0.89
        0.39
    """
    bins = reliability_bins(y_true, probs, num_bins)
    n = len(y_true)
    ece = 0.0
    for b in bins:
        if b["count"]:
            ece += b["count"] / n * abs(b["accuracy"] - b["confidence"])
    return float(ece), bins
