"""The ``ood`` field of every classification result: how unlike the training data an input is.

With a reference in the bundle (:mod:`recog.monitor.reference`) the score is calibrated: the share of
held-out in-distribution validation images that scored lower (0.97 = stranger than 97% of them), and
``unknown`` is true above the bundle's threshold (0.95 at training time: 5% of in-distribution images
are flagged; ``recog ood threshold --ood DIR`` chooses one with a stated OOD set,
:mod:`recog.monitor.threshold`). The ``method`` field names the score and where the threshold came from:

* bundles trained since the feature reference exists (:mod:`recog.monitor.features`): the larger
  z-score of the cosine distance from the input's pooled features to the nearest stored training
  feature and of the logit score below (``knn cosine (features, k=1, N training images) +
  mahalanobis+energy (logits)``); features and logits come from one forward pass on every backend.
  A backend that returns no features (an ONNX file exported before) gets the logit score, and the
  method says so.
* bundles with only the logit reference: ``mahalanobis+energy (logits)``.
* without any reference (bundles trained before, ImageNet presets): ``1 - max softmax probability``,
  uncalibrated, and ``unknown`` is None: the method field says so.

Example:
    >>> import recog                                             # doctest: +SKIP
    >>> recog.load("runs/digits/best").predict("ants.jpg").ood   # doctest: +SKIP
    OutOfDistribution(score=0.9996, unknown=True, threshold=0.95, method='knn cosine (features, k=1, ...')
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
#: the embedding-distance score's range above the highest held-out score (:func:`_tail`).
TAIL = 1e-3

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
            if ref.get("features"):
                from recog.monitor.features import read_bank

                feats = ref["features"]
                ref["features"] = {**feats, "quantiles": np.asarray(feats["quantiles"]),
                                   "bank": read_bank(manifest, feats)}
        if len(_cache) > 32:
            _cache.clear()
        _cache[key] = (manifest.raw, ref)
        return ref


def has_features(manifest: Any) -> bool:
    """Whether ``manifest``'s OOD score uses embedding distance (its bundle stores a feature reference)."""
    ref = reference_of(manifest)
    return bool(ref and ref.get("features"))


def split_outputs(raw: np.ndarray, manifest: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``(logits (N, C), features (N, D) or None)`` of a classifier's raw output: logits, or logits and
    pooled features side by side (:meth:`recog.runtime.predictor.Predictor.infer_scored`)."""
    c = len(getattr(manifest, "labels", None) or ())
    raw = np.asarray(raw)
    return (raw[:, :c], raw[:, c:]) if c and raw.ndim == 2 and raw.shape[1] > c else (raw, None)


def describe(rule: dict[str, Any] | None) -> str:
    """A few words for ``ood.method``: where the threshold came from."""
    if not rule or rule.get("ood_set") is None:
        return "threshold: in-distribution quantile, no OOD set"
    return f"threshold: held-out + OOD set {', '.join(Path(p).name for p in rule['ood_set'])}"


def ood_scores(raw: np.ndarray, manifest: Any, probs: np.ndarray | None = None
               ) -> tuple[np.ndarray, float | None, str]:
    """``(scores (N,), threshold or None, method)`` for ``manifest``'s model: ``raw`` is ``(N, C)`` logits,
    or logits and pooled features side by side (:func:`split_outputs`).

    With a feature reference and features, the score is its rule (:mod:`recog.monitor.features`);
    with a feature reference but no features (an ONNX file exported before features were), the
    logit score, and ``method`` says why."""
    logits, features = split_outputs(raw, manifest)
    ref = _reference(manifest)
    if ref is None:
        if probs is None:  # top probability = 1 / sum(exp((z - z_max) / T))
            z = np.asarray(logits, dtype=np.float64) / manifest.temperature
            top = 1.0 / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)
        else:
            top = probs.max(axis=1)
        return 1.0 - top, None, FALLBACK
    det = ref["detector"]
    raw_logits = combined(logits, det, manifest.temperature)
    feats = ref.get("features")
    if feats is not None and features is not None:
        from recog.monitor.features import method_name, raw_score

        score, rec, method = raw_score(features, raw_logits, feats["bank"], feats), feats, method_name(feats)
    else:
        score, rec, method = raw_logits, det, METHOD
        if feats is not None:
            method += " (this backend returns no features; re-export it for the embedding distance)"
    q = rec["quantiles"]
    cdf = np.interp(score, q, np.linspace(0.0, 1.0, len(q)), left=0.0, right=1.0)
    if rec is feats:
        cdf = _tail(cdf, score, q[-1])
    return cdf, float(rec["threshold"]), f"{method}; {describe(rec.get('threshold_rule'))}"


def _tail(cdf: np.ndarray, score: np.ndarray, top: float, eps: float = TAIL) -> np.ndarray:
    """Scores above every held-out one keep their order instead of all reading 1.0: the calibrated range is
    ``[0, 1 - eps]`` and beyond the highest held-out score the score rises towards 1 with the (z-scored)
    distance. Without it, the clothing test photos beyond the 146 validation photos' highest score tie at
    1.0 with every OOD image (``benchmarks/ood.py``, docs/monitoring.md)."""
    beyond = score > top
    return np.where(beyond, 1.0 - eps * np.exp(-np.maximum(score - top, 0.0)), cdf * (1.0 - eps))


def ood_results(raw: np.ndarray, manifest: Any, probs: np.ndarray | None = None) -> list[OutOfDistribution]:
    """One :class:`~recog.types.OutOfDistribution` per row of ``raw`` (as :func:`ood_scores` takes it)."""
    scores, threshold, method = ood_scores(raw, manifest, probs)
    return [OutOfDistribution(float(s), None if threshold is None else bool(s > threshold), threshold, method)
            for s in scores]
