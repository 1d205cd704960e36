"""Drift of logged predictions against the bundle's training reference, window by window.

For each window (a count of predictions, or a time span) of one model in the prediction log:

* **inputs**: two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``) of each input
  statistic (width, height, brightness, contrast, blur) against the training images' sample;
* **embedding**: maximum mean discrepancy between the window's logit vectors and the reference's
  validation sample (Gaussian kernel, median-distance bandwidth), p-value by permutation
  (``scipy.stats.permutation_test``);
* **predictions**: chi-square test of the predicted-class counts against the validation
  predictions (``scipy.stats.chi2_contingency``);
* **confidence**: KS test of the top-1 probability against validation's;
* **ood rate**: one-sided binomial test (``scipy.stats.binomtest``) of the share flagged unknown
  against the 5% the threshold was set for.

A window is flagged ``drift`` when a test's p-value is below ``alpha / number of tests``
(Bonferroni: the whole set of tests raises a false alarm on at most ``alpha`` of undrifted windows).
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from recog.errors import ConfigError, NotFoundError
from recog.monitor.stats import STAT_NAMES

TESTS = ("inputs", "embedding", "predictions", "confidence", "ood_rate")


@dataclass
class Logged:
    """One model's logged predictions, oldest first (arrays of equal length ``N``)."""

    model: str
    ts: np.ndarray
    stats: np.ndarray                 # (N, 5), NaN where the image did not decode
    predicted: np.ndarray             # (N,) class index (-1: label not in the model's labels)
    confidence: np.ndarray            # (N,) top-1 probability
    unknown: np.ndarray               # (N,) 1, 0, or -1 (no verdict)
    logits: np.ndarray | None         # (N, C) when every row has them
    latency_ms: np.ndarray
    versions: list[str]
    labels: tuple[str, ...]
    reference: dict[str, Any] | None
    temperature: float = 1.0
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, idx: np.ndarray) -> "Logged":
        return Logged(self.model, self.ts[idx], self.stats[idx], self.predicted[idx], self.confidence[idx],
                      self.unknown[idx], None if self.logits is None else self.logits[idx], self.latency_ms[idx],
                      self.versions, self.labels, self.reference, self.temperature,
                      [self.ids[i] for i in idx] if self.ids else [])


def read_logged(conn: sqlite3.Connection, model: str, *, since: float | None = None, last: int | None = None
                ) -> Logged:
    """The model's predictions in the log (the ``last`` N only, when given), with the reference
    recorded for its newest version.

    Raises:
        NotFoundError: no prediction of ``model`` (the message lists the models there are).
    """
    rows = conn.execute(
        "SELECT id, ts, width, height, brightness, contrast, blur, label, score, unknown, logits, latency_ms, version "
        "FROM predictions WHERE model = ? AND ts >= ? ORDER BY seq DESC LIMIT ?",
        (model, since or 0.0, -1 if last is None else last)).fetchall()[::-1]
    if not rows:
        names = [r[0] for r in conn.execute("SELECT DISTINCT model FROM predictions")]
        raise NotFoundError(f"no logged prediction of model {model!r}.",
                            hint=f"models in the log: {', '.join(names) or 'none yet'}")
    versions = list(dict.fromkeys(r[12] for r in rows))
    meta = conn.execute("SELECT labels, reference, temperature FROM models WHERE name = ? AND version = ?",
                        (model, versions[-1])).fetchone()
    labels = tuple(json.loads(meta[0])) if meta else ()
    index = {name: i for i, name in enumerate(labels)}
    blobs = [r[10] for r in rows]
    logits = (np.stack([np.frombuffer(b, np.float32) for b in blobs]).astype(np.float64)
              if all(b is not None for b in blobs) and len({len(b) for b in blobs}) == 1 else None)
    return Logged(
        model=model, ts=np.array([r[1] for r in rows]),
        stats=np.array([[np.nan if v is None else v for v in r[2:7]] for r in rows], dtype=np.float64),
        predicted=np.array([index.get(r[7], -1) for r in rows]), confidence=np.array([r[8] for r in rows]),
        unknown=np.array([-1 if r[9] is None else r[9] for r in rows]), logits=logits,
        latency_ms=np.array([r[11] for r in rows]), versions=versions, labels=labels,
        reference=json.loads(meta[1]) if meta and meta[1] else None, temperature=float(meta[2]) if meta else 1.0,
        ids=[r[0] for r in rows])


_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def split_windows(logged: Logged, window: str) -> list[np.ndarray]:
    """Index arrays of consecutive windows: ``"500"`` (predictions each; a short last window joins
    the one before) or ``"1h"``, ``"30m"``, ``"1d"`` (time spans from the first prediction).

    Raises:
        ConfigError: neither a count nor a span.
    """
    n = len(logged)
    if window.isdigit() and int(window) > 0:
        size = int(window)
        starts = list(range(0, n, size))
        if len(starts) > 1 and n - starts[-1] < size // 2:
            starts.pop()
        return [np.arange(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]
    m = _SPAN.match(window)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--window {window!r}: expected a count of predictions (500) or a time span "
                          "(30m, 1h, 1d).")
    span = float(m.group(1)) * _UNIT[m.group(2)]
    bins = ((logged.ts - logged.ts[0]) // span).astype(int)
    return [np.flatnonzero(bins == b) for b in np.unique(bins)]


def mmd_test(x: np.ndarray, y: np.ndarray, *, resamples: int = 500, seed: int = 0) -> tuple[float, float]:
    """``(MMD², p-value)`` of samples ``(n, d)`` and ``(m, d)``: Gaussian kernel, bandwidth the median
    pairwise distance of the pooled sample, p-value from ``scipy.stats.permutation_test``."""
    from scipy.stats import permutation_test

    pooled = np.concatenate([x, y]).astype(np.float64)
    sq = (pooled ** 2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0)
    med = np.median(d2[np.triu_indices(len(pooled), 1)]) or 1.0
    k = np.exp(-d2 / med)

    n, m = len(x), len(y)

    def stat(ix: np.ndarray, iy: np.ndarray, axis: int = -1) -> np.ndarray:
        # mean kernel within x, within y and across, for a batch of assignments (B, n) / (B, m): with
        # 0/1 membership rows a, b: a.K.a / n^2 + b.K.b / m^2 - 2 a.K.b / nm (two matrix products,
        # instead of gathering B x n x n kernel entries)
        ix, iy = np.atleast_2d(ix), np.atleast_2d(iy)
        a = np.zeros((len(ix), len(pooled)))
        np.put_along_axis(a, ix, 1.0, axis=1)
        b = np.zeros_like(a)
        np.put_along_axis(b, iy, 1.0, axis=1)
        ka, kb = a @ k, b @ k
        return (ka * a).sum(1) / n ** 2 + (kb * b).sum(1) / m ** 2 - 2 * (ka * b).sum(1) / (n * m)

    res = permutation_test((np.arange(len(x)), np.arange(len(x), len(pooled))), stat, vectorized=True,
                           n_resamples=resamples, alternative="greater", random_state=seed,
                           permutation_type="independent", batch=50)
    return float(np.ravel(res.statistic)[0]), float(res.pvalue)


def _softmax_top(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    return 1.0 / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)


def window_tests(w: Logged, reference: dict[str, Any] | None, *, resamples: int = 500) -> dict[str, dict[str, Any]]:
    """The p-value (and effect figures) of each drift test on one window; a test the data cannot run
    (no reference, no logits, too few images) is ``{"p": None, "why": ...}``."""
    from scipy.stats import binomtest, chi2_contingency, ks_2samp

    out: dict[str, dict[str, Any]] = {}
    ref = reference or {}
    inputs = np.asarray(ref.get("inputs") or [], dtype=np.float64).reshape(-1, len(STAT_NAMES))
    if len(inputs) >= 5:
        per = {}
        for j, name in enumerate(STAT_NAMES):
            now = w.stats[:, j][~np.isnan(w.stats[:, j])]
            if len(now) >= 5:
                r = ks_2samp(now, inputs[:, j])
                per[name] = {"ks": float(r.statistic), "p": float(r.pvalue), "mean": float(now.mean()),
                             "reference_mean": float(inputs[:, j].mean())}
        # the smallest of the five p-values, Bonferroni-corrected: one figure per test family
        p = min(1.0, min(v["p"] for v in per.values()) * len(per)) if per else None
        out["inputs"] = {"p": p, "stats": per} if per else {"p": None, "why": "no decodable image statistics"}
    else:
        out["inputs"] = {"p": None, "why": "the bundle has no input reference"}
    sample = np.asarray(ref.get("sample") or [], dtype=np.float64)
    if w.logits is not None and len(sample) >= 10 and len(w) >= 5 and sample.shape[1] == w.logits.shape[1]:
        mmd, p = mmd_test(w.logits, sample, resamples=resamples)
        out["embedding"] = {"p": p, "mmd2": mmd}
    else:
        out["embedding"] = {"p": None, "why": "no logits logged or no reference sample"}
    predicted = np.asarray(ref.get("predicted") or [], dtype=np.float64)
    known = w.predicted[w.predicted >= 0]
    if len(predicted) and len(known) >= 5:
        now = np.bincount(known, minlength=len(predicted))[:len(predicted)]
        base = predicted * max(int(ref.get("images", 0)), 1)
        table = np.stack([now, base])
        table = table[:, table.sum(0) > 0]
        if table.shape[1] >= 2:
            r = chi2_contingency(table + 0.5)
            out["predictions"] = {"p": float(r.pvalue), "share": (now / now.sum()).round(4).tolist(),
                                  "reference_share": predicted.round(4).tolist()}
        else:
            out["predictions"] = {"p": None, "why": "one class only"}
    else:
        out["predictions"] = {"p": None, "why": "no reference class distribution"}
    if len(sample) >= 10:
        ref_conf = _softmax_top(sample, w.temperature)
        r = ks_2samp(w.confidence, ref_conf)
        out["confidence"] = {"p": float(r.pvalue), "mean": float(w.confidence.mean()),
                             "reference_mean": float(ref_conf.mean())}
    else:
        out["confidence"] = {"p": None, "why": "no reference sample"}
    verdicts = w.unknown[w.unknown >= 0]
    if len(verdicts) and ref.get("detector"):
        expected = 1.0 - float(ref["detector"]["threshold"])
        r = binomtest(int(verdicts.sum()), len(verdicts), expected, alternative="greater")
        out["ood_rate"] = {"p": float(r.pvalue), "rate": float(verdicts.mean()), "expected": expected}
    else:
        out["ood_rate"] = {"p": None, "why": "no OOD verdicts (bundle without reference)"}
    return out


def verdict(tests: dict[str, dict[str, Any]], alpha: float = 0.05) -> tuple[str, float | None]:
    """``("drift" | "ok" | "unknown", smallest corrected p-value)`` of one window's tests."""
    ps = [t["p"] for t in tests.values() if t.get("p") is not None]
    if not ps:
        return "unknown", None
    corrected = min(1.0, min(ps) * len(ps))
    return ("drift" if corrected < alpha else "ok"), corrected


def drift_windows(logged: Logged, window: str, *, alpha: float = 0.05, resamples: int = 500,
                  progress: Any = None) -> list[dict[str, Any]]:
    """One record per window: its span, size, tests, verdict and summary figures."""
    out = []
    for idx in split_windows(logged, window):
        w = logged.take(idx)
        tests = window_tests(w, logged.reference, resamples=resamples)
        status, p = verdict(tests, alpha)
        known = w.predicted[w.predicted >= 0]
        out.append({"start": float(w.ts[0]), "end": float(w.ts[-1]), "images": len(w), "status": status,
                    "p_value": p, "tests": tests, "mean_confidence": float(w.confidence.mean()),
                    "ood_rate": float((w.unknown == 1).mean()) if (w.unknown >= 0).any() else None,
                    "class_counts": np.bincount(known, minlength=len(logged.labels)).tolist(),
                    "latency_ms_p50": float(np.median(w.latency_ms))})
        if progress:
            progress(1)
    return out


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts of windows by status and the last one's verdict."""
    return {"windows": len(records), "drifted": sum(r["status"] == "drift" for r in records),
            "last": records[-1]["status"] if records else "unknown"}
