"""Feedback on logged predictions, and the export of images worth labelling.

:func:`add_feedback` attaches the true label to a logged prediction (``POST
/v1/models/{name}:feedback``, ``recog feedback add``). :func:`export_for_labelling` writes the
images most worth a person's time into the class-folder layout ``recog train`` reads:
predictions with feedback under their true label (``OUT/LABEL/``), the others (uncertain: low
top-1 probability; OOD: ``unknown``) under ``OUT/.to-label/{ood,uncertain}/``, a hidden folder that
``recog train`` skips, until a person moves each image into its ``OUT/LABEL/``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recog.errors import ConfigError, NotFoundError, RecogError
from recog.monitor.log import connect

MAX_LABEL = 200
#: where exported images without a label wait (hidden: ``recog train`` skips it).
TO_LABEL = ".to-label"
_EXT = {"jpeg": "jpg", "tiff": "tif"}


class LogUnavailableError(RecogError):
    """The prediction log cannot be read or written now (locked by another process, disk full)."""

    code = "log_unavailable"
    http_status = 503


def open_log_db(path: str | Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    """An existing prediction log (a missing file is refused instead of created)."""
    if not Path(path).is_file():
        raise NotFoundError(f"{path}: no prediction log there.",
                            hint="start the service with `recog serve BUNDLE --log-predictions FILE`")
    try:
        return connect(path, timeout=timeout)
    except sqlite3.OperationalError as exc:  # locked, disk full: try later
        raise LogUnavailableError(f"{path}: the prediction log is unavailable ({exc}).",
                                  hint="retry later; GET /health says why the log is degraded") from exc
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: not a readable prediction log ({exc}).") from exc


def add_feedback(db: str | Path, prediction_id: str, label: str, *, model: str | None = None,
                 source: str = "api", timeout: float = 5.0) -> dict[str, Any]:
    """Record ``label`` as the truth for ``prediction_id``; a second call replaces the first.

    Returns:
        ``{"prediction_id", "model", "predicted", "label", "correct"}``.

    Raises:
        NotFoundError: no such prediction (for ``model`` when given).
        ConfigError: an empty or over-long label.
        LogUnavailableError: the log stayed locked for ``timeout`` seconds (or the disk is full).
    """
    label = label.strip()
    if not label or len(label) > MAX_LABEL:
        raise ConfigError(f"a feedback label must be 1-{MAX_LABEL} characters, got {len(label)}.")
    conn = open_log_db(db, timeout=timeout)
    try:
        return _add(conn, prediction_id, label, model, source)
    except sqlite3.OperationalError as exc:
        raise LogUnavailableError(f"{db}: the prediction log is unavailable ({exc}); the feedback was not stored.",
                                  hint="retry later; GET /health says why the log is degraded") from exc
    finally:
        conn.close()


def _add(conn: sqlite3.Connection, prediction_id: str, label: str, model: str | None, source: str) -> dict[str, Any]:
    """Look the prediction up, store the label (one transaction)."""
    row = conn.execute("SELECT model, label FROM predictions WHERE id = ?", (prediction_id,)).fetchone()
    if row is None or (model is not None and row[0] != model):
        where = f" of model {model!r}" if model else ""
        raise NotFoundError(f"no logged prediction {prediction_id!r}{where}.",
                            hint="use the prediction_id a :predict answer returned (ids leave the log "
                                 "when it rotates)")
    with conn:
        conn.execute("INSERT OR REPLACE INTO feedback (id, label, ts, source) VALUES (?, ?, ?, ?)",
                     (prediction_id, label, time.time(), source))
    return {"prediction_id": prediction_id, "model": row[0], "predicted": row[1], "label": label,
            "correct": row[1] == label}


@dataclass(frozen=True)
class ExportResult:
    out: Path
    corrected: int
    confirmed: int
    uncertain: int
    ood: int
    without_image: int


def export_for_labelling(db: str | Path, model: str, out: str | Path, *, uncertain_below: float = 0.6,
                         limit: int = 1000) -> ExportResult:
    """Write the labelled, OOD and uncertain logged images of ``model`` under ``out``.

    Layout: ``out/LABEL/<id>.<ext>`` for predictions with feedback (corrected first, then confirmed
    uncertain or OOD ones), ``out/.to-label/{ood,uncertain}/<id>.<ext>`` for the others, and
    ``out/export.json`` with the prediction record of every file. Predictions logged without ``--log-images`` cannot be
    exported and are counted.

    Raises:
        NotFoundError: no log, or no prediction of ``model`` in it.
    """
    from recog.io.image import sniff_format

    out = Path(out)
    conn = open_log_db(db)
    try:
        if conn.execute("SELECT 1 FROM predictions WHERE model = ? LIMIT 1", (model,)).fetchone() is None:
            names = [r[0] for r in conn.execute("SELECT DISTINCT model FROM predictions")]
            raise NotFoundError(f"{db}: no logged prediction of model {model!r}.",
                                hint=f"models in the log: {', '.join(names) or 'none'}")
        rows = conn.execute(
            """SELECT p.id, p.label, p.score, p.unknown, f.label, p.image IS NOT NULL, p.source, p.ts, p.ood
               FROM predictions p LEFT JOIN feedback f ON f.id = p.id
               WHERE p.model = ? AND ((f.label IS NOT NULL AND f.label != p.label) OR p.unknown = 1 OR p.score < ?)
               ORDER BY (f.label IS NOT NULL) DESC, p.unknown DESC, p.score ASC LIMIT ?""",
            (model, uncertain_below, limit)).fetchall()
        counts = {"corrected": 0, "confirmed": 0, "ood": 0, "uncertain": 0, "without_image": 0}
        records = []
        for pid, predicted, score, unknown, truth, has_image, source, ts, ood in rows:
            if truth is not None:
                kind = "corrected" if truth != predicted else "confirmed"
            else:
                kind = "ood" if unknown == 1 else "uncertain"
            if not has_image:
                counts["without_image"] += 1
                continue
            data = conn.execute("SELECT image FROM predictions WHERE id = ?", (pid,)).fetchone()[0]
            folder = out / _safe_name(truth) if truth is not None else out / TO_LABEL / kind
            folder.mkdir(parents=True, exist_ok=True)
            fmt = sniff_format(data[:16]) or "img"
            path = folder / f"{pid}.{_EXT.get(fmt, fmt)}"
            path.write_bytes(data)
            counts[kind] += 1
            records.append({"file": str(path.relative_to(out)), "prediction_id": pid, "kind": kind,
                            "predicted": predicted, "score": score, "ood": ood, "label": truth, "source": source,
                            "time": ts})
    finally:
        conn.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / "export.json").write_text(json.dumps({"model": model, "log": str(db), "images": records}, indent=1))
    return ExportResult(out, counts["corrected"], counts["confirmed"], counts["uncertain"], counts["ood"],
                        counts["without_image"])


def _safe_name(label: str) -> str:
    """A label as one folder name (no separators, no dot names)."""
    name = "".join("_" if c in '/\\:\0' else c for c in label).strip()
    return name if name not in ("", ".", "..") else "_"
