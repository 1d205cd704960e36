"""Evaluation report: ``metrics.json``, PNG plots and one self-contained ``report.html``.

The HTML page needs nothing but itself: plots and thumbnails are inlined as
base64 data URIs, the CSS is inline, there is no script, and a
Content-Security-Policy meta tag forbids the page from loading anything
external. Every label, group name, path and model-info value is HTML-escaped.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recog.errors import InvalidInputError, RecogError
from recog.metrics._validate import check_inputs
from recog.metrics.classification import classification_metrics
from recog.metrics.html import data_uri, escape, kv_table, number, page

#: Longest side of a mistake thumbnail, in pixels.
THUMB_SIZE = 128

PLOT_FILES = ("confusion_matrix.png", "confusion_matrix_normalized.png", "roc.png", "pr.png", "reliability.png")

def _thumbnail(source: str | os.PathLike) -> tuple[str | None, str | None]:
    """``(data URI, None)`` for a loadable image, ``(None, reason)`` otherwise."""
    from recog.io import load_image

    try:
        img = load_image(source, reduce_to=(THUMB_SIZE, THUMB_SIZE))
    except (RecogError, OSError) as exc:
        return None, str(exc)
    img.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return data_uri(buf.getvalue(), "image/jpeg"), None


def write_report(out_dir: str | os.PathLike, y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str], *,
                 sources: Sequence[str | os.PathLike] | None = None, groups: Sequence[str] | None = None,
                 title: str = "recog evaluation", model_info: dict[str, Any] | None = None,
                 top_mistakes: int = 24, explanations: Sequence[dict[str, Any]] | None = None) -> Path:
    """Write ``metrics.json``, PNG plots and a self-contained ``report.html``.

    Files written into ``out_dir`` (created if needed): ``metrics.json`` (the
    dict of :func:`classification_metrics`), ``confusion_matrix.png``,
    ``confusion_matrix_normalized.png``, ``roc.png``, ``pr.png``,
    ``reliability.png``, ``groups.png`` (only with groups) and ``report.html``.

    Args:
        out_dir: the report folder.
        y_true: ``(N,)`` integer class indices into ``labels``.
        probs: ``(N, C)`` class probabilities.
        labels: the ``C`` class names in index order.
        sources: ``N`` image paths, in the order of ``y_true``; the most
            confident mistakes are shown as thumbnails read through the safe
            loader (a source that fails to load is noted on the page).
        groups: ``N`` group names for per-group metrics, or None.
        title: page title.
        model_info: key → value facts about the model shown in the page
            (values that are not strings are shown as JSON).
        top_mistakes: how many of the most confident mistakes to show.
        explanations: heatmap cards (:func:`recog.explain.panel.explanation_cards`) for an
            "Explanations" section, or None for no section.

    Returns:
        The path of ``report.html``.

    Raises:
        InvalidInputError: bad arrays (see :func:`classification_metrics`),
            ``sources`` of the wrong length, negative ``top_mistakes``.

    Example:
        >>> write_report("runs/pets/report", y, probs, labels, sources=paths)  # doctest: +SKIP
        PosixPath('runs/pets/report/report.html')
    """
    from recog.metrics import plots

    metrics = classification_metrics(y_true, probs, labels, groups)
    y, p, labels, _ = check_inputs(y_true, probs, labels, groups)
    if sources is not None and len(sources) != len(y):
        raise InvalidInputError(f"sources has {len(sources)} entries but y_true has {len(y)} samples.",
                                hint="pass one image path per sample, in the same order, or sources=None")
    if top_mistakes < 0:
        raise InvalidInputError(f"top_mistakes must be >= 0, got {top_mistakes}.")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(_metrics_json(metrics), encoding="utf-8")

    images: list[tuple[str, str, bytes]] = [
        ("confusion_matrix.png", "Confusion matrix, counts (rows: true class, columns: predicted).",
         plots.confusion_matrix_png(metrics["confusion_matrix"], labels, normalized=False)),
        ("confusion_matrix_normalized.png", "Confusion matrix, each row divided by the class's image count "
         "(the diagonal is per-class recall).",
         plots.confusion_matrix_png(metrics["confusion_matrix_normalized"], labels, normalized=True)),
        ("roc.png", "One-vs-rest ROC curves.", plots.roc_png(y, p, labels)),
        ("pr.png", "One-vs-rest precision-recall curves.", plots.pr_png(y, p, labels)),
        ("reliability.png", "Calibration: accuracy against confidence in 15 equal-width bins; bars below "
         "the diagonal mean over-confidence.", plots.reliability_png(metrics["reliability"]["bins"], metrics["ece"])),
    ]
    if "groups" in metrics:
        images.append(("groups.png", "Accuracy per group; best in green, worst in red.",
                       plots.groups_png(metrics["groups"], metrics["largest_gap"])))
    for name, _, data in images:
        (out / name).write_bytes(data)

    page = _render(title, metrics, images, _mistakes(y, p, labels, sources, top_mistakes), model_info)
    if explanations is not None:
        page = page.replace("</body></html>", explanations_section(explanations) + "\n</body></html>", 1)
    report = out / "report.html"
    tmp = out / ".report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(report)
    return report


_NUMBER_LIST = re.compile(r"\[\s+([-+0-9.eE,\s]+?)\s+\]")


def _metrics_json(metrics: dict[str, Any]) -> str:
    """Indented JSON with each list of numbers (a confusion-matrix row) on one line."""
    text = json.dumps(metrics, indent=2, allow_nan=False)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def _mistakes(y: np.ndarray, p: np.ndarray, labels: Sequence[str], sources: Sequence[Any] | None,
              limit: int) -> list[dict[str, Any]]:
    """The ``limit`` wrong predictions with the highest confidence, most confident first."""
    pred = p.argmax(axis=1)
    conf = p.max(axis=1)
    wrong = np.flatnonzero(pred != y)
    order = wrong[np.lexsort((wrong, -conf[wrong]))][:limit]
    rows = []
    for i in order:
        row = {"index": int(i), "true": labels[y[i]], "pred": labels[pred[i]], "confidence": float(conf[i]),
               "p_true": float(p[i, y[i]]), "source": None, "thumb": None, "error": None}
        if sources is not None:
            row["source"] = str(sources[i])
            row["thumb"], row["error"] = _thumbnail(sources[i])
        rows.append(row)
    return rows


def _render(title: str, m: dict[str, Any], images: Sequence[tuple[str, str, bytes]],
            mistakes: Sequence[dict[str, Any]], model_info: dict[str, Any] | None) -> str:
    parts = [
        f'<p class="muted">{m["num_samples"]:,} images, {m["num_classes"]} classes.</p>',
        "<h2>Summary</h2>", _summary(m),
    ]
    if model_info:
        parts += ["<h2>Model</h2>", kv_table([(str(k), escape(v if isinstance(v, str) else json.dumps(v, default=str)))
                                               for k, v in model_info.items()])]
    if m["notes"]:
        parts += ["<h2>Notes</h2><ul>", *(f"<li>{escape(n)}</li>" for n in m["notes"]), "</ul>"]
    parts += ["<h2>Plots</h2>", '<div class="plots">']
    for name, caption, data in images:
        parts.append(f'<figure><img src="{data_uri(data, "image/png")}" alt="{escape(name)}">'
                     f"<figcaption>{escape(caption)} <span class=\"muted\">({escape(name)})</span></figcaption></figure>")
    parts.append("</div>")
    parts += ["<h2>Per class</h2>", _per_class(m)]
    if "groups" in m:
        parts += ["<h2>Per group</h2>", _groups(m)]
    parts += ["<h2>Most confident mistakes</h2>", _mistake_grid(mistakes)]
    return page(title, parts)


def _summary(m: dict[str, Any]) -> str:
    rows = [
        ("accuracy", number(m["accuracy"])),
        (f"top-{m['top_k']} accuracy", number(m["top5_accuracy"])),
        ("macro precision / recall / F1",
         " / ".join(number(m["macro"][k]) for k in ("precision", "recall", "f1"))),
        ("weighted precision / recall / F1",
         " / ".join(number(m["weighted"][k]) for k in ("precision", "recall", "f1"))),
        ("ROC AUC (macro / micro, one-vs-rest)", f"{number(m['roc_auc']['macro'])} / {number(m['roc_auc']['micro'])}"),
        ("average precision (macro / micro)",
         f"{number(m['average_precision']['macro'])} / {number(m['average_precision']['micro'])}"),
        ("expected calibration error (15 bins)", number(m["ece"])),
    ]
    if "largest_gap" in m:
        g = m["largest_gap"]
        rows.append((f"largest group gap ({g['metric']})",
                     f"{number(g['gap'])} ({escape(g['best_group'])} vs {escape(g['worst_group'])})"))
    return kv_table(rows)


def _per_class(m: dict[str, Any]) -> str:
    head = ("<tr><th>class</th><th class=n>support</th><th class=n>precision</th><th class=n>recall</th>"
            "<th class=n>F1</th><th class=n>ROC AUC</th><th class=n>AP</th></tr>")
    rows = []
    for name, v in m["per_class"].items():
        rows.append(f"<tr><td>{escape(name)}</td><td class=n>{number(v['support'])}</td>"
                    f"<td class=n>{number(v['precision'])}</td><td class=n>{number(v['recall'])}</td>"
                    f"<td class=n>{number(v['f1'])}</td><td class=n>{number(m['roc_auc']['per_class'][name])}</td>"
                    f"<td class=n>{number(m['average_precision']['per_class'][name])}</td></tr>")
    return f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'


def _groups(m: dict[str, Any]) -> str:
    g = m["largest_gap"]
    head = "<tr><th>group</th><th class=n>images</th><th class=n>accuracy</th><th class=n>macro F1</th></tr>"
    rows = []
    for name, v in sorted(m["groups"].items(), key=lambda kv: (-kv[1]["accuracy"], kv[0])):
        cls = ' class="best"' if name == g["best_group"] else ' class="worst"' if name == g["worst_group"] else ""
        rows.append(f"<tr{cls}><td>{escape(name)}</td><td class=n>{number(v['num_samples'])}</td>"
                    f"<td class=n>{number(v['accuracy'])}</td><td class=n>{number(v['macro_f1'])}</td></tr>")
    gap = (f'<p>Largest gap in {escape(g["metric"])}: <strong>{number(g["gap"])}</strong> between '
           f'<span class="true">{escape(g["best_group"])}</span> (best) and '
           f'<span class="pred">{escape(g["worst_group"])}</span> (worst).</p>')
    return gap + f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'


def _mistake_grid(mistakes: Sequence[dict[str, Any]]) -> str:
    if not mistakes:
        return "<p>No mistakes: every image was classified correctly.</p>"
    cards = []
    failed = 0
    for r in mistakes:
        if r["thumb"] is not None:
            pic = f'<img src="{r["thumb"]}" alt="{escape(r["source"])}">'
        elif r["error"] is not None:
            failed += 1
            pic = f'<div class="missing" title="{escape(r["error"])}">image not loaded</div>'
        else:
            pic = ""
        if r["source"] is not None:
            where = f'<span title="{escape(r["source"])}">{escape(Path(r["source"]).name)}</span>'
        else:
            where = f"sample #{r['index']}"
        error = f'<div class="pred">could not load: {escape(r["error"])}</div>' if r["error"] else ""
        cards.append(f'<div class="card">{pic}<div>true: <span class="true">{escape(r["true"])}</span></div>'
                     f'<div>predicted: <span class="pred">{escape(r["pred"])}</span> ({r["confidence"]:.3f})</div>'
                     f'<div class="muted">p(true) {r["p_true"]:.3f}</div><div class="muted">{where}</div>'
                     f"{error}</div>")
    note = (f'<p class="pred">{failed} of these images could not be loaded for a thumbnail; '
            "the reason is on each card.</p>") if failed else ""
    intro = f"<p>The {len(mistakes)} wrong predictions made with the highest confidence, most confident first.</p>"
    return intro + note + f'<div class="grid">{"".join(cards)}</div>'


def explanations_section(cards: Sequence[dict[str, Any]], intro: str | None = None) -> str:
    """The "Explanations" section of a report: a heatmap card per explained image (or box).

    ``cards``: dicts with ``kind`` (``correct`` is shown in green, anything else in red), ``true``,
    ``pred``, ``confidence``, ``source``, ``method``, ``thumb`` (a data URI) or ``error``
    (:mod:`recog.explain.panel`). ``intro``: HTML paragraph above the grid (default: a classifier's).
    """
    if not cards:
        return "<h2>Explanations</h2><p>No images to explain.</p>"
    out = []
    for c in cards:
        pic = (f'<img src="{escape(c["thumb"])}" alt="{escape(c["source"])}">' if c.get("thumb") else
               f'<div class="missing" title="{escape(c.get("error"))}">image not loaded</div>')
        cls = "true" if c["kind"] == "correct" else "pred"
        out.append(f'<div class="card">{pic}<div class="{cls}">{escape(c["kind"])}</div>'
                   f'<div>true: <span class="true">{escape(c["true"])}</span></div>'
                   f'<div>predicted: <span class="pred">{escape(c["pred"])}</span> ({float(c["confidence"]):.3f})</div>'
                   f'<div class="muted" title="{escape(c["source"])}">{escape(Path(str(c["source"])).name)}</div></div>')
    if intro is None:
        method = escape(cards[0].get("method", ""))
        intro = (f"<p>Why the model said what it said ({method}; bright = evidence for the <em>predicted</em> "
                 "label): the most confident mistakes first, then the most confident correct predictions of "
                 "each class.</p>")
    return f'<h2>Explanations</h2>{intro}<div class="grid">{"".join(out)}</div>'
