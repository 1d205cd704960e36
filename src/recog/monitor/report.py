"""``recog monitor``'s output: ``drift.json``, PNG plots and one self-contained ``report.html``.

The page needs nothing but itself (plots inlined as data URIs, no script, a Content-Security-Policy
that forbids loading anything); every model name and label is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recog.monitor.drift import TESTS, Logged, summarize
from recog.monitor.stats import STAT_NAMES


def _fig(w: float, h: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _save(fig, path: Path) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _pvalues_png(records: Sequence[dict[str, Any]], alpha: float, path: Path) -> bytes:
    fig = _fig(8, 3.2)
    ax = fig.add_subplot()
    x = np.arange(1, len(records) + 1)
    for name in TESTS:
        ps = [r["tests"][name].get("p") for r in records]
        if any(p is not None for p in ps):
            ax.plot(x, [-np.log10(max(p, 1e-12)) if p is not None else np.nan for p in ps], marker="o", label=name)
    ax.axhline(-np.log10(alpha / len(TESTS)), color="red", ls="--", lw=1, label=f"alarm (alpha {alpha}, Bonferroni)")
    ax.set_xlabel("window")
    ax.set_ylabel("-log10 p")
    ax.set_title("drift tests per window (higher = stronger evidence of drift)")
    ax.legend(fontsize=7, ncol=3)
    return _save(fig, path)


def _inputs_png(logged: Logged, last: np.ndarray, path: Path) -> bytes:
    fig = _fig(10, 2.6)
    ref = np.asarray((logged.reference or {}).get("inputs") or [], dtype=np.float64).reshape(-1, len(STAT_NAMES))
    for j, name in enumerate(STAT_NAMES):
        ax = fig.add_subplot(1, len(STAT_NAMES), j + 1)
        now = logged.stats[last, j]
        now = now[~np.isnan(now)]
        both = np.concatenate([ref[:, j], now]) if len(ref) else now
        bins = np.histogram_bin_edges(both, 20) if len(both) else 10
        if len(ref):
            ax.hist(ref[:, j], bins=bins, density=True, alpha=0.5, label="training")
        ax.hist(now, bins=bins, density=True, alpha=0.5, label="last window")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.axes[0].legend(fontsize=7)
    return _save(fig, path)


def _classes_png(logged: Logged, records: Sequence[dict[str, Any]], path: Path) -> bytes:
    fig = _fig(8, 3.2)
    ax = fig.add_subplot()
    counts = np.array([r["class_counts"] for r in records], dtype=np.float64)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    ref = (logged.reference or {}).get("predicted")
    rows = ([np.asarray(ref)] if ref else []) + list(share)
    names = (["ref"] if ref else []) + [str(i + 1) for i in range(len(share))]
    bottom = np.zeros(len(rows))
    labels = logged.labels or tuple(str(i) for i in range(counts.shape[1]))
    for c in range(len(labels)):
        vals = np.array([r[c] if c < len(r) else 0 for r in rows])
        ax.bar(names, vals, bottom=bottom, label=labels[c][:16])
        bottom += vals
    ax.set_ylabel("share of predictions")
    ax.set_xlabel("window (ref = validation at training)")
    ax.legend(fontsize=7, ncol=min(5, len(labels)), loc="upper right")
    return _save(fig, path)


def _confidence_png(logged: Logged, records: Sequence[dict[str, Any]], path: Path) -> bytes:
    fig = _fig(8, 3.0)
    ax = fig.add_subplot()
    x = np.arange(1, len(records) + 1)
    ax.plot(x, [r["mean_confidence"] for r in records], marker="o", label="mean top-1 probability")
    ood = [r["ood_rate"] for r in records]
    if any(v is not None for v in ood):
        ax.plot(x, [np.nan if v is None else v for v in ood], marker="s", label="OOD (unknown) rate")
        ax.axhline(0.05, color="grey", ls=":", lw=1, label="expected OOD rate (5%)")
    conf = (records[0]["tests"]["confidence"].get("reference_mean") if records else None)
    if conf is not None:
        ax.axhline(conf, color="C0", ls="--", lw=1, label="validation mean top-1")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("window")
    ax.legend(fontsize=7)
    return _save(fig, path)


def write_drift_report(out: str | Path, logged: Logged, records: Sequence[dict[str, Any]], *, window: str,
                       alpha: float, source: str) -> Path:
    """Write ``drift.json``, ``pvalues.png``, ``inputs.png``, ``classes.png``, ``confidence.png`` and
    ``report.html`` into ``out``; returns the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    last = np.flatnonzero(logged.ts >= records[-1]["start"]) if records else np.arange(len(logged))
    summary = summarize(records)
    doc = {"model": logged.model, "log": source, "versions": logged.versions, "window": window, "alpha": alpha,
           "predictions": len(logged), "has_reference": logged.reference is not None, "summary": summary,
           "windows": list(records), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out / "drift.json").write_text(json.dumps(doc, indent=1))
    plots = {"Drift tests": _pvalues_png(records, alpha, out / "pvalues.png"),
             "Input statistics: training sample vs last window": _inputs_png(logged, last, out / "inputs.png"),
             "Predicted classes per window": _classes_png(logged, records, out / "classes.png"),
             "Confidence and OOD rate": _confidence_png(logged, records, out / "confidence.png")}
    esc = html.escape
    rows = "".join(
        f"<tr class='{esc(r['status'])}'><td>{i + 1}</td><td>{esc(time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(r['start'])))}</td>"
        f"<td>{r['images']}</td><td>{esc(r['status'])}</td>"
        + "".join(f"<td>{'' if r['tests'][t].get('p') is None else format(r['tests'][t]['p'], '.3g')}</td>" for t in TESTS)
        + f"<td>{'' if r['ood_rate'] is None else format(r['ood_rate'], '.3f')}</td></tr>"
        for i, r in enumerate(records))
    figs = "".join(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,"
                   f"{base64.b64encode(png).decode()}'>" for title, png in plots.items())
    note = "" if logged.reference is not None else (
        "<p class='warn'>This bundle has no training reference (trained before recog stored one): only tests "
        "that need none ran; retrain to get them all.</p>")
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>recog drift: {esc(logged.model)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}td,th{{padding:2px 8px;text-align:right}}
tr.drift{{background:#fdd}}.warn{{color:#a40}}img{{max-width:100%}}</style></head><body>
<h1>Drift of {esc(logged.model)}</h1>
<p>{len(logged)} logged predictions in {esc(source)}, version(s) {esc(', '.join(logged.versions))};
windows of {esc(window)}; a window drifts when a test's Bonferroni-corrected p-value is below {alpha}.
<b>{summary['drifted']} of {summary['windows']} windows drifted; last window: {esc(summary['last'])}.</b></p>{note}
<table><tr><th>window</th><th>start (UTC)</th><th>images</th><th>status</th>
{''.join(f'<th>p {esc(t)}</th>' for t in TESTS)}<th>OOD rate</th></tr>{rows}</table>{figs}</body></html>"""
    (out / "report.html").write_text(page)
    return out / "report.html"


def monitor_log(db: str | Path, model: str, out: str | Path, *, window: str = "500", alpha: float = 0.05,
                resamples: int = 500, progress_factory: Any = None) -> tuple[Path, dict[str, Any]]:
    """``recog monitor``: read ``model``'s predictions from the log, test each window, write the report.

    Returns:
        ``(report.html, summary)``.

    Raises:
        NotFoundError: no log, or no prediction of ``model``.
        ConfigError: a bad ``window`` or ``alpha``.
    """
    from recog.errors import ConfigError
    from recog.monitor.drift import drift_windows, read_logged, split_windows
    from recog.monitor.feedback import open_log_db

    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1, got {alpha}.")
    conn = open_log_db(db)
    try:
        logged = read_logged(conn, model)
    finally:
        conn.close()
    n = len(split_windows(logged, window))
    if progress_factory is None:
        records = drift_windows(logged, window, alpha=alpha, resamples=resamples)
    else:
        with progress_factory(f"testing {n} window(s) of {model}", n) as advance:
            records = drift_windows(logged, window, alpha=alpha, resamples=resamples, progress=advance)
    return write_drift_report(out, logged, records, window=window, alpha=alpha, source=str(db)), summarize(records)
