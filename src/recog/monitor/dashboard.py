"""Figures for the service's dashboard page (``/dashboard``), read from the prediction log.

:func:`dashboard_data` buckets one model's recent predictions in time: requests per minute,
latency p50/p95, predicted classes, OOD rate; plus feedback accuracy (the share of predictions
with feedback that were right) and the last drift verdict the log computed.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import numpy as np


def dashboard_data(conn: sqlite3.Connection, model: str, *, minutes: float = 60.0, buckets: int = 30,
                   now: float | None = None) -> dict[str, Any]:
    """``{"model", "buckets": [{"start", "count", "per_minute", "latency_p50_ms", "latency_p95_ms",
    "ood_rate", "classes": {label: n}}], "feedback": {"count", "accuracy"}, "total", "ood_rate"}`` for the
    last ``minutes`` (``buckets`` equal slices; the top-level ``ood_rate`` is the whole span's, None
    when no prediction carried a verdict)."""
    now = time.time() if now is None else now
    start = now - minutes * 60
    rows = conn.execute("SELECT ts, latency_ms, label, unknown FROM predictions WHERE model = ? AND ts >= ? "
                        "ORDER BY seq", (model, start)).fetchall()
    width = minutes * 60 / buckets
    out = []
    ts = np.array([r[0] for r in rows])
    lat = np.array([r[1] for r in rows])
    which = ((ts - start) // width).astype(int) if len(rows) else np.zeros(0, int)
    for b in range(buckets):
        idx = np.flatnonzero(which == b)
        verdicts = [rows[i][3] for i in idx if rows[i][3] is not None]
        classes: dict[str, int] = {}
        for i in idx:
            classes[rows[i][2]] = classes.get(rows[i][2], 0) + 1
        out.append({"start": start + b * width, "count": int(len(idx)), "per_minute": len(idx) * 60 / width,
                    "latency_p50_ms": float(np.percentile(lat[idx], 50)) if len(idx) else None,
                    "latency_p95_ms": float(np.percentile(lat[idx], 95)) if len(idx) else None,
                    "ood_rate": float(np.mean(verdicts)) if verdicts else None, "classes": classes})
    fb = conn.execute("SELECT count(*), sum(f.label = p.label) FROM feedback f JOIN predictions p ON p.id = f.id "
                      "WHERE p.model = ?", (model,)).fetchone()
    verdicts = [r[3] for r in rows if r[3] is not None]
    return {"model": model, "minutes": minutes, "total": len(rows), "buckets": out,
            "ood_rate": float(np.mean(verdicts)) if verdicts else None,
            "feedback": {"count": fb[0], "accuracy": (fb[1] / fb[0]) if fb[0] else None}}
