"""Reference statistics of a classifier, stored in ``recog.json`` under ``"reference"`` at training time.

Fitted by the classify task after each validation pass (:meth:`recog.tasks.classify.Classify.checkpoint_extras`)
from the validation logits, so a bundle carries everything the OOD score and the drift report compare
against, and needs no access to the training data afterwards:

``detector``
    the out-of-distribution detector: class means of the logits and a shrunk shared precision matrix
    (Mahalanobis distance in logit space; diagonal above :data:`MAX_FULL_COV` classes), the median and
    spread of the Mahalanobis and energy scores, and the quantiles of the combined score on held-out
    images (its empirical CDF is the calibrated ``ood.score``); the ``unknown`` threshold and the rule
    that chose it (``threshold_rule``: the in-distribution quantile until ``recog ood threshold
    --ood DIR`` chooses one with a stated OOD set, :mod:`recog.monitor.threshold`). The validation split is halved: one half
    fits the means and covariance, the other calibrates, so the 5% false-alarm target holds on new
    in-distribution images rather than on the images the means were fitted to.
``confidence``
    quantiles of the top-1 calibrated probability on validation.
``predicted``
    the share of validation images predicted as each class.
``sample``
    up to :data:`MAX_SAMPLE` validation logit rows (for the drift report's two-sample test).
``inputs``
    input statistics (:mod:`recog.monitor.stats`) of up to :data:`MAX_INPUTS` training images.

Design note: the logit distance is measured on the one output every backend (torch, ONNX, int8) and
the service's batcher return, so it works for every bundle. Bundles trained since add an
embedding-distance reference beside it (``features``, :mod:`recog.monitor.features`), which the
default score combines with this one; ``benchmarks/ood.py`` measures both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

REFERENCE_VERSION = 2  # 2: combined score = larger z-score (1 averaged them)
MAX_SAMPLE = 256
MAX_INPUTS = 200
#: classes up to which logits are used as they are (above: their top principal components).
MAX_FULL_COV = 64
#: share of held-out in-distribution images flagged ``unknown`` by default.
FALSE_ALARM = 0.05
_QUANTILES = np.linspace(0.0, 1.0, 201)


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Free energy ``-T * logsumexp(logits / T)`` per row of ``(N, C)``; higher = less familiar."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    m = z.max(axis=1)
    return -temperature * (m + np.log(np.exp(z - m[:, None]).sum(axis=1)))


def fit_detector(logits: np.ndarray, targets: np.ndarray, n_classes: int, *, shrink: float = 0.1) -> dict[str, Any]:
    """Class means and a shrunk shared precision of ``(N, C)`` logits with labels ``(N,)``.

    Above :data:`MAX_FULL_COV` classes the logits are first projected on their top
    :data:`MAX_FULL_COV` principal components (stored as ``projection``), which keeps recog.json
    small (1,000 classes: about 130k numbers instead of a million).
    """
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets)
    extra: dict[str, Any] = {}
    if x.shape[1] > MAX_FULL_COV:
        center = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - center, full_matrices=False)
        proj = vt[:MAX_FULL_COV].T                                           # (C, d)
        extra = {"center": center.round(5).tolist(), "projection": proj.round(6).tolist()}
        x = (x - center) @ proj
    present = [c for c in range(n_classes) if (y == c).any()]
    means = np.stack([x[y == c].mean(axis=0) for c in present])
    resid = x - means[np.searchsorted(present, y)]
    cov = resid.T @ resid / max(1, len(x) - len(present))
    scale = float(np.trace(cov)) / cov.shape[0] or 1.0
    precision = np.linalg.inv(cov * (1 - shrink) + shrink * scale * np.eye(cov.shape[0])).round(6).tolist()
    return {"classes": present, "means": means.round(5).tolist(), "precision": precision, **extra}


def mahalanobis(logits: np.ndarray, detector: dict[str, Any]) -> np.ndarray:
    """Distance of each row of ``(N, C)`` logits to the closest class mean, in the detector's metric."""
    x = np.asarray(logits, dtype=np.float64)
    if detector.get("projection") is not None:
        x = (x - np.asarray(detector["center"])) @ np.asarray(detector["projection"])
    means = np.asarray(detector["means"], dtype=np.float64)
    p = np.asarray(detector["precision"], dtype=np.float64)
    diff = x[:, None, :] - means[None, :, :]                                  # (N, K, C)
    d2 = np.einsum("nkc,cd,nkd->nk", diff, p, diff)
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def _spread(v: np.ndarray) -> list[float]:
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * 1.4826
    return [med, mad if mad > 1e-9 else float(v.std()) or 1.0]


def combined(logits: np.ndarray, detector: dict[str, Any], temperature: float) -> np.ndarray:
    """The raw OOD score: the larger of the robust z-scores of the Mahalanobis distance and the energy.

    The larger, not the mean: an input far from every class often gets *large* logits (low energy,
    a confident wrong answer); averaging lets that confidence hide the distance (benchmarks/ood.py:
    digits vs clothing AUROC 0.978 with the mean, 0.9999 with the larger)."""
    (m_med, m_sd), (e_med, e_sd) = detector["mahalanobis"], detector["energy"]
    zm = (mahalanobis(logits, detector) - m_med) / m_sd
    ze = (energy(logits, temperature) - e_med) / e_sd
    return np.maximum(zm, ze)


def default_rule(images: int, false_alarm: float = FALSE_ALARM) -> dict[str, Any]:
    """The ``threshold_rule`` written at training time: the in-distribution quantile, no OOD set."""
    return {"rule": "in-distribution quantile", "max_false_alarm": false_alarm, "ood_set": None,
            "in_distribution": f"val ({images} images)"}


def fit_reference(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0, *,
                  inputs: np.ndarray | None = None, seed: int = 0) -> dict[str, Any]:
    """The ``"reference"`` record for validation logits ``(N, C)`` and their labels ``(N,)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 3, 90); x = np.eye(3)[y] * 4 + rng.normal(size=(90, 3))
        >>> ref = fit_reference(x, y)
        >>> ref["detector"]["threshold"], len(ref["sample"])
        (0.95, 90)
    """
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets)
    order = np.random.default_rng(seed).permutation(len(x))
    fit_idx, cal_idx = (order[::2], order[1::2]) if len(x) >= 40 else (order, order)
    det = fit_detector(x[fit_idx], y[fit_idx], x.shape[1])
    det["mahalanobis"] = _spread(mahalanobis(x[cal_idx], det))
    det["energy"] = _spread(energy(x[cal_idx], temperature))
    det["quantiles"] = np.quantile(combined(x[cal_idx], det, temperature), _QUANTILES).round(5).tolist()
    det["threshold"] = round(1.0 - FALSE_ALARM, 4)
    det["threshold_rule"] = default_rule(len(cal_idx))
    det["fitted_on"] = f"val ({len(fit_idx)} images fit, {len(cal_idx)} calibrate)"
    z = x / temperature
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    keep = order[:MAX_SAMPLE]
    return {
        "version": REFERENCE_VERSION,
        "detector": det,
        "confidence": np.quantile(probs.max(axis=1), _QUANTILES).round(5).tolist(),
        "predicted": (np.bincount(probs.argmax(axis=1), minlength=x.shape[1]) / len(x)).round(5).tolist(),
        "sample": x[keep].round(4).tolist() if x.shape[1] <= MAX_FULL_COV else None,
        "inputs": None if inputs is None else np.asarray(inputs).round(3).tolist(),
        "images": int(len(x)),
    }


def input_reference(paths: Sequence[str | Path], *, seed: int = 0) -> np.ndarray:
    """Input statistics ``(M, 5)`` of up to :data:`MAX_INPUTS` of ``paths``, drawn evenly at random."""
    from recog.monitor.stats import stats_table

    paths = list(paths)
    if len(paths) > MAX_INPUTS:
        pick = np.sort(np.random.default_rng(seed).choice(len(paths), MAX_INPUTS, replace=False))
        paths = [paths[i] for i in pick]
    return stats_table(paths)


def reference_of(manifest: Any) -> dict[str, Any] | None:
    """The bundle's reference record, or None (bundles trained before it existed, other tasks)."""
    ref = manifest.reference
    return ref if ref is not None and ref.get("version") == REFERENCE_VERSION else None
