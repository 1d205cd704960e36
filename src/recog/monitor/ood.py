"""The ``ood`` field of every classification result: how unlike the training data an input is.

With a reference in the bundle (:mod:`recog.monitor.reference`) the score is calibrated: the share of
held-out in-distribution validation images that scored lower (0.97 = stranger than 97% of them), and
``unknown`` is true above the bundle's threshold (0.95 at training time: 5% of in-distribution images
are flagged; ``recog ood threshold --ood DIR`` chooses one with a stated OOD set,
:mod:`recog.monitor.threshold`). The ``method`` field names the score and where the threshold came from.
Without one (bundles trained before, ImageNet presets) the score is ``1 - max softmax probability``,
uncalibrated, and ``unknown`` is None: the method field says so.

Example:
    >>> import recog                                             # doctest: +SKIP
    >>> recog.load("runs/digits/best").predict("ants.jpg").ood   # doctest: +SKIP
    OutOfDistribution(score=0.999, unknown=True, threshold=0.95, method='mahalanobis+energy (logits); threshold: ...')
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from recog.monitor.reference import combined, reference_of
from recog.types import OutOfDistribution

METHOD = "mahalanobis+energy (logits)"
FALLBACK = "max-softmax (no reference in bundle)"

_cache: dict[int, tuple[Any, dict[str, Any] | None]] = {}
_lock = threading.Lock()


def _reference(manifest: Any) -> dict[str, Any] | None:
    key = id(manifest.raw)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] is manifest.raw:
            return hit[1]
        ref = reference_of(manifest)
        if ref is not None:
            det = ref["detector"]
            arrays = {k: np.asarray(det[k]) for k in ("means", "precision", "quantiles", "center", "projection")
                      if det.get(k) is not None}
            ref = {**ref, "detector": {**det, **arrays}}
        if len(_cache) > 32:
            _cache.clear()
        _cache[key] = (manifest.raw, ref)
        return ref


def describe(rule: dict[str, Any] | None) -> str:
    """A few words for ``ood.method``: where the threshold came from."""
    if not rule or rule.get("ood_set") is None:
        return "threshold: in-distribution quantile, no OOD set"
    return f"threshold: held-out + OOD set {', '.join(Path(p).name for p in rule['ood_set'])}"


def ood_scores(logits: np.ndarray, manifest: Any, probs: np.ndarray | None = None
               ) -> tuple[np.ndarray, float | None, str]:
    """``(scores (N,), threshold or None, method)`` for ``(N, C)`` logits of ``manifest``'s model."""
    ref = _reference(manifest)
    if ref is None:
        if probs is None:  # top probability = 1 / sum(exp((z - z_max) / T))
            z = np.asarray(logits, dtype=np.float64) / manifest.temperature
            top = 1.0 / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)
        else:
            top = probs.max(axis=1)
        return 1.0 - top, None, FALLBACK
    det = ref["detector"]
    raw = combined(logits, det, manifest.temperature)
    q = det["quantiles"]
    cdf = np.interp(raw, q, np.linspace(0.0, 1.0, len(q)), left=0.0, right=1.0)
    return cdf, float(det["threshold"]), f"{METHOD}; {describe(det.get('threshold_rule'))}"


def ood_results(logits: np.ndarray, manifest: Any, probs: np.ndarray | None = None) -> list[OutOfDistribution]:
    """One :class:`~recog.types.OutOfDistribution` per row of ``(N, C)`` logits."""
    scores, threshold, method = ood_scores(logits, manifest, probs)
    return [OutOfDistribution(float(s), None if threshold is None else bool(s > threshold), threshold, method)
            for s in scores]
