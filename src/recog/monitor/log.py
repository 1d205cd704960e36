"""The service's opt-in prediction log: one SQLite file, written off the request's path.

``recog serve BUNDLE --log-predictions ops.db`` opens a :class:`PredictionLog`. A request only
appends a tuple to a bounded in-memory queue (microseconds); one writer thread hashes the image,
computes its input statistics (:mod:`recog.monitor.stats`) and inserts batches. A log that cannot be
written (locked by another process, disk or ``max_rows`` full, not a database) never fails a
prediction: the rows are dropped and counted, :attr:`PredictionLog.status` turns ``degraded`` with
the reason (``GET /health`` shows it) and the next batch tries again.

What is stored per image (table ``predictions``): prediction id, time, model, version, sha256 of the
bytes, image size and statistics, top-k labels and scores, the OOD score and verdict, the raw logits
(models with up to 64 classes: the drift report's embedding test), latency. The image bytes only
with ``--log-images`` (privacy). Face endpoints are never logged. Size is bounded as a ring: past
``max_rows`` (or ``max_mb`` of file) the oldest rows are deleted (SQLite reuses their pages), so
the file stops growing; feedback (table ``feedback``) is kept by prediction id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    source TEXT,
    width INTEGER, height INTEGER, brightness REAL, contrast REAL, blur REAL,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    top TEXT NOT NULL,
    ood REAL,
    unknown INTEGER,
    logits BLOB,
    latency_ms REAL NOT NULL,
    image BLOB
);
CREATE INDEX IF NOT EXISTS predictions_model_ts ON predictions (model, ts);
CREATE TABLE IF NOT EXISTS models (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    path TEXT NOT NULL,
    labels TEXT NOT NULL,
    temperature REAL NOT NULL,
    reference TEXT,
    first_seen REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    ts REAL NOT NULL,
    source TEXT
);
"""
_COLUMNS = ("id", "ts", "model", "version", "input_sha256", "source", "width", "height", "brightness", "contrast",
            "blur", "label", "score", "top", "ood", "unknown", "logits", "latency_ms", "image")
_INSERT = f"INSERT INTO predictions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
#: logits are stored for models with at most this many classes.
MAX_LOGITS = 64
_STOP = object()
_BOUND_EVERY = 256
_log = logging.getLogger("recog.monitor")


def connect(path: str | Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection to a prediction log with its schema (WAL: readers never block the writer)."""
    conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # a log: losing the last rows in a power cut is acceptable
        conn.executescript(SCHEMA)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


@dataclass(frozen=True)
class LogStatus:
    """What ``/health`` says about the log."""

    status: str           # "ok" or "degraded"
    path: str
    written: int
    dropped: int
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "path": self.path, "written": self.written, "dropped": self.dropped,
                "reason": self.reason}


class PredictionLog:
    """A background SQLite writer for predictions (see the module docstring).

    Args:
        path: the SQLite file (created when missing).
        store_images: keep the image bytes (needed by ``recog feedback export``).
        max_rows, max_mb: the ring's bounds; the oldest rows go first (checked every 256 rows).
        queue_size: entries waiting for the writer; past it new ones are dropped and counted.
        stats_per_s: images a second whose pixel statistics (brightness, contrast, blur) are
            computed; the others get their size only (a decode costs as much as a small model's
            inference: benchmarks/prediction_log.py). The drift tests need a sample, not every image.
        drift_every, drift_interval_s: a model's drift tests (the gauges) run on its last
            ``drift_every`` predictions once that many are new and at least ``drift_interval_s``
            seconds after its previous check: a busy service tests every half minute, not every 3 s
            (the tests share the serving process's CPU).
    """

    def __init__(self, path: str | Path, *, store_images: bool = False, max_rows: int = 1_000_000,
                 max_mb: float = 1024.0, queue_size: int = 10_000, busy_timeout: float = 0.2,
                 drift_every: int = 500, drift_interval_s: float = 30.0, registry: Any = None,
                 stats_per_s: float = 2.0) -> None:
        self.path = Path(path)
        self.store_images = store_images
        self.max_rows = max_rows
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.busy_timeout = busy_timeout
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self._reason: str | None = None
        self._pending = 0   # entries queued or being written
        self._registered: set[tuple[str, str, float | None]] = set()
        self.drift_every = drift_every
        self.drift_interval_s = drift_interval_s
        self._drift_checked: dict[str, float] = {}   # model → monotonic time of its last check
        self.stats_per_s = stats_per_s
        self._next_stats = 0.0
        self._unbounded = _BOUND_EVERY   # check the bounds after the first batch
        self.drift: dict[str, dict[str, Any]] = {}     # model → last window's verdict (the gauges' values)
        self._since_drift: dict[str, int] = {}
        self._gauges = _drift_gauges(registry) if registry is not None else None
        self._thread = threading.Thread(target=self._run, name="recog-prediction-log", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ request side
    def record(self, model: str, version: str, images: Sequence[tuple[bytes, str | None]], results: Sequence[Any],
               logits: np.ndarray, latency_ms: float, manifest: Any = None) -> list[str]:
        """Queue one request's predictions; returns their ids (at once: nothing is written here).

        ``manifest`` (the served bundle's) is recorded once per model version in table ``models``
        (path, labels, temperature, reference): ``recog monitor`` needs nothing but the log.
        """
        ids = [uuid.uuid4().hex for _ in results]
        with self._lock:
            self._pending += 1
        try:
            self._queue.put_nowait((ids, time.time(), model, version, images, results, logits, latency_ms, manifest))
        except queue.Full:
            with self._lock:
                self._pending -= 1
                self.dropped += len(ids)
                self._reason = f"the writer is {self._queue.maxsize} requests behind; rows dropped"
        return ids

    @property
    def status(self) -> LogStatus:
        with self._lock:
            return LogStatus("degraded" if self._reason else "ok", str(self.path), self.written, self.dropped,
                             self._reason)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued entry is written or dropped; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._pending:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self) -> None:
        """Write what is queued, stop the writer, close the file."""
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 256:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(e is _STOP for e in batch)
            entries = [e for e in batch if e is not _STOP]
            if entries:
                self._write(entries)
                with self._lock:
                    self._pending -= len(entries)
            if stop:
                break
        if self._conn is not None:
            try:
                self._bound()
            except sqlite3.Error as exc:
                _log.warning("prediction log %s: could not trim on close: %s", self.path, exc)
            self._conn.close()

    def _rows(self, entry: tuple) -> list[tuple]:
        from recog.monitor.stats import image_size_only, image_stats

        ids, ts, model, version, images, results, logits, latency_ms, _ = entry
        rows = []
        for pid, (data, name), result, raw in zip(ids, images, results, logits):
            now = time.monotonic()
            if now >= self._next_stats:   # pixel statistics for a sample: at most stats_per_s images a second
                self._next_stats = now + 1.0 / self.stats_per_s
                st = image_stats(data) or {}
            else:
                st = image_size_only(data) or {}
            ood = result.ood
            blob = np.asarray(raw, dtype=np.float32).tobytes() if np.size(raw) <= MAX_LOGITS else None
            rows.append((pid, ts, model, version, hashlib.sha256(data).hexdigest(), name,
                         st.get("width"), st.get("height"), st.get("brightness"), st.get("contrast"), st.get("blur"),
                         result.label, float(result.score), json.dumps([[t.label, round(t.score, 6)] for t in result.top]),
                         None if ood is None else float(ood.score),
                         None if ood is None or ood.unknown is None else int(ood.unknown),
                         blob, float(latency_ms), data if self.store_images else None))
        return rows

    def _write(self, entries: list[tuple]) -> None:
        rows = [r for e in entries for r in self._rows(e)]
        try:
            if self._conn is None:
                self._conn = connect(self.path, timeout=self.busy_timeout)
            with self._conn:
                self._conn.executemany(_INSERT, rows)
                self._register(entries)
            self._unbounded += len(rows)
            if self._unbounded >= _BOUND_EVERY:   # one extra write transaction per 256 rows, not per request
                self._unbounded = 0
                self._bound()
        except sqlite3.Error as exc:
            with self._lock:
                self.dropped += len(rows)
                self._reason = f"{type(exc).__name__}: {exc}"
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            return
        with self._lock:
            self.written += len(rows)
            self._reason = None
        for e in entries:
            self._since_drift[e[2]] = self._since_drift.get(e[2], 0) + len(e[0])
        now = time.monotonic()
        for model, n in list(self._since_drift.items()):
            if n >= self.drift_every and now - self._drift_checked.get(model, -np.inf) >= self.drift_interval_s:
                self._since_drift[model] = 0
                self._drift_checked[model] = now
                try:
                    self._check_drift(model)
                except (sqlite3.Error, ValueError, np.linalg.LinAlgError) as exc:  # the log keeps writing
                    _log.warning("drift check of %s failed: %s", model, exc)
                    self.drift[model] = {"status": "error", "reason": str(exc), "time": time.time()}

    def _check_drift(self, model: str) -> None:
        """Drift tests on the model's last ``drift_every`` predictions; sets the Prometheus gauges."""
        from recog.monitor.drift import read_logged, verdict, window_tests

        w = read_logged(self._conn, model, last=self.drift_every)
        status, p = verdict(window_tests(w, w.reference, resamples=200))
        ood = float((w.unknown == 1).mean()) if (w.unknown >= 0).any() else None
        self.drift[model] = {"status": status, "p_value": p, "ood_rate": ood, "images": len(w), "time": time.time()}
        if self._gauges is not None:
            status_g, p_g, ood_g = self._gauges
            status_g.labels(model).set({"ok": 0, "drift": 1}.get(status, -1))
            p_g.labels(model).set(float("nan") if p is None else p)
            ood_g.labels(model).set(float("nan") if ood is None else ood)

    def _register(self, entries: list[tuple]) -> None:
        from recog.monitor.reference import reference_of

        for e in entries:
            model, version, manifest = e[2], e[3], e[8]
            if manifest is None:
                continue
            ref = reference_of(manifest)
            # the version does not cover the reference: `recog ood threshold` + :reload keeps the version
            # and changes the threshold, so the newest reference of a version replaces the one recorded
            key = (model, version, None if ref is None else ref["detector"].get("threshold"))
            if key in self._registered:
                continue
            self._conn.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, version) DO UPDATE "
                               "SET path = excluded.path, reference = excluded.reference",
                               (model, version, str(manifest.path), json.dumps(list(manifest.labels)),
                                manifest.temperature, None if ref is None else json.dumps(ref), time.time()))
            self._registered.add(key)

    def _bound(self) -> None:
        """Delete the oldest rows past ``max_rows``, and a tenth of them while the file is over ``max_mb``."""
        conn = self._conn
        last = conn.execute("SELECT max(seq) FROM predictions").fetchone()[0] or 0
        with conn:
            conn.execute("DELETE FROM predictions WHERE seq <= ?", (last - self.max_rows,))
        if self.path.exists() and os.path.getsize(self.path) > self.max_bytes:
            used = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
            if used * conn.execute("PRAGMA page_size").fetchone()[0] > self.max_bytes:
                first = conn.execute("SELECT min(seq) FROM predictions").fetchone()[0] or 0
                with conn:
                    conn.execute("DELETE FROM predictions WHERE seq <= ?", (first + max(1, (last - first) // 10),))


def _drift_gauges(registry: Any) -> tuple[Any, Any, Any]:
    from prometheus_client import Gauge

    return (Gauge("recog_drift_status", "Drift verdict of the model's last logged window: 0 ok, 1 drift, -1 unknown.",
                  ["model"], registry=registry),
            Gauge("recog_drift_p_value", "Smallest Bonferroni-corrected p-value of the drift tests, last window.",
                  ["model"], registry=registry),
            Gauge("recog_ood_rate", "Share of the last window's predictions flagged unknown.", ["model"],
                  registry=registry))


def open_log(settings: Any, registry: Any = None) -> PredictionLog | None:
    """The service's log for its settings (``log_predictions`` unset: None); drift gauges go to ``registry``."""
    path = getattr(settings, "log_predictions", None)
    if path is None:
        return None
    return PredictionLog(path, store_images=settings.log_images, max_rows=settings.log_max_rows, registry=registry)


_versions: dict[int, tuple[Any, str]] = {}


def _version(manifest: Any) -> str:
    """``manifest.version``, hashed once per loaded manifest (it serialises the manifest: ~0.1 ms a request)."""
    hit = _versions.get(id(manifest))
    if hit is None or hit[0] is not manifest:
        if len(_versions) > 64:
            _versions.clear()
        hit = _versions[id(manifest)] = (manifest, manifest.version)
    return hit[1]


def logged(log: PredictionLog | None, model: str, manifest: Any, uploads: Sequence[Any], results: Sequence[Any],
           logits: np.ndarray, started: float) -> list[dict[str, Any]]:
    """The predictions' JSON, each with its ``prediction_id`` when the service logs (queued, not written here).

    Only classification results are logged (the log's columns are labels, scores and the OOD
    score); other tasks' answers pass through unlogged, never failing the request.
    """
    out = [r.to_dict() for r in results]
    if log is not None and manifest.task == "classify":
        from recog.monitor.ood import split_outputs

        logits = split_outputs(logits, manifest)[0]  # the service's rows may carry pooled features too
        latency_ms = (time.perf_counter() - started) * 1000.0
        ids = log.record(model, _version(manifest), [(u.data, u.name) for u in uploads], results, logits,
                         latency_ms, manifest)
        for d, pid in zip(out, ids):
            d["prediction_id"] = pid
    return out
