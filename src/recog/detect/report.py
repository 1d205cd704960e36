"""The detection ``report.html``: figures, per-class AP, PR curves, confusion matrix, worst images.

One self-contained file (:mod:`recog.metrics.html`: inline CSS, images as
data URIs, no script).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recog.metrics.html import data_uri, escape, jpeg_uri, kv_table, number, page


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def pr_curves_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], per_class: dict[str, dict[str, Any]]) -> bytes:
    """Precision against recall at IoU 0.5, one line per class (COCO's 101 interpolated points)."""
    fig = _figure(6.4, 4.6)
    ax = fig.add_subplot()
    for name, (recall, precision) in curves.items():
        valid = precision > -1
        ap = per_class.get(name, {}).get("ap50")
        ax.plot(recall[valid], precision[valid], label=f"{name} (AP@0.5 {ap:.3f})" if ap is not None else name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall per class (IoU 0.5)")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc="lower left", fontsize=8)
    return _png(fig)


def confusion_png(cm: np.ndarray, names: Sequence[str], min_score: float) -> bytes:
    """Counts of boxes, rows true and columns predicted, the last row/column the background."""
    c = len(names)
    side = float(np.clip(0.5 * c + 3.0, 4.0, 14.0))
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(1, int(cm.max())))
    fig.colorbar(im, ax=ax, shrink=0.8, label="boxes")
    ax.set_xticks(range(c), names, rotation=90, fontsize=8)
    ax.set_yticks(range(c), names, fontsize=8)
    ax.set_xlabel("predicted (background = missed)")
    ax.set_ylabel("true (background = false alarm)")
    ax.set_title(f"Confusion matrix at IoU 0.5, score >= {min_score}")
    if c <= 20:
        for i in range(c):
            for j in range(c):
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > 0.6 * cm.max() else "black")
    return _png(fig)


def write_detection_report(out: Path, m: dict[str, Any], curves: dict[str, Any], cm: np.ndarray,
                           labels: Sequence[str], worst: Sequence[tuple[Any, Any, int]], *, title: str,
                           model_info: dict[str, Any], explanations: Sequence[dict[str, Any]] | None = None) -> Path:
    """Write ``out/report.html`` (and the two plots as PNGs beside it); returns the report's path.

    ``explanations``: box heatmap cards (:func:`recog.explain.panel.box_cards`) for an "Explanations"
    section, or None for none.
    """
    from recog.detect.draw import draw_comparison
    from recog.io import load_image

    out.mkdir(parents=True, exist_ok=True)
    pr, conf = pr_curves_png(curves, m["per_class"]), confusion_png(cm, list(labels) + ["background"],
                                                                     m["confusion_matrix"]["min_score"])
    (out / "pr_curves.png").write_bytes(pr)
    (out / "confusion_matrix.png").write_bytes(conf)
    rows = "".join(f"<tr><td>{escape(lab)}</td><td class=n>{number(v['instances'])}</td>"
                   f"<td class=n>{number(v['ap50'])}</td><td class=n>{number(v['ap'])}</td></tr>"
                   for lab, v in m["per_class"].items())
    cards = []
    for sample, result, errors in worst:
        try:
            img = draw_comparison(load_image(sample.path), sample.boxes, sample.names,
                                  result.boxes[result.scores >= m["confusion_matrix"]["min_score"]],
                                  [n for n, s in zip(result.labels, result.scores)
                                   if s >= m["confusion_matrix"]["min_score"]],
                                  result.scores[result.scores >= m["confusion_matrix"]["min_score"]])
            body = f'<img src="{jpeg_uri(img, side=480)}" alt="">'
        except OSError as exc:
            body = f'<div class="missing">{escape(exc)}</div>'
        cards.append(f'<div class="card">{body}{escape(Path(sample.path).name)}: {errors} error(s), '
                     f'{len(sample.boxes)} true boxes</div>')
    summary = kv_table([("mAP@0.5", number(m["map50"])), ("mAP@0.5:0.95", number(m["map"])),
                        ("mAP@0.75", number(m["map75"])), ("images", number(m["images"])),
                        ("true boxes", number(m["instances"])), ("detections scored", number(m["detections"])),
                        ("split", escape(m["split"])), ("format", escape(m["format"]))])
    info = kv_table([(k, escape(v)) for k, v in model_info.items() if k in ("bundle", "backend", "data", "split",
                                                                           "source_model", "task")])
    body = [
        "<h2>Summary</h2>", summary,
        "<h2>Per class</h2>",
        f"<table><tr><th>class</th><th class=n>boxes</th><th class=n>AP@0.5</th><th class=n>AP@0.5:0.95</th></tr>"
        f"{rows}</table>",
        '<h2>Curves</h2><div class="plots">',
        f'<figure><img src="{data_uri(pr, "image/png")}" alt="PR curves"><figcaption>pycocotools precision at '
        "101 recall points, IoU 0.5, all areas, 100 detections per image</figcaption></figure>",
        f'<figure><img src="{data_uri(conf, "image/png")}" alt="confusion matrix"><figcaption>each true box '
        "matched to the best unmatched detection with IoU >= 0.5 (any class)</figcaption></figure></div>",
        "<h2>Worst images</h2><p class=muted>most errors at the score floor: true boxes "
        '<span class="true">green</span>, predictions <span class="pred">red</span></p>',
        f'<div class="grid wide">{"".join(cards) or "<p>no errors</p>"}</div>',
    ]
    if explanations is not None:
        from recog.metrics.report import explanations_section

        method = escape(explanations[0]["method"]) if explanations else ""
        body.append(explanations_section(explanations, intro=(
            f"<p>Why the detector reported a box ({method} of the box's class score, the box outlined in cyan; "
            "bright = evidence for the box): the most confident false positives at the score floor first (a box "
            "that matched no true box, <em>true: background</em>, or one of another class), then the most "
            "confident right boxes of each class. <em>#k</em> is the box's index as <code>recog predict</code> "
            "lists the image's boxes.</p>")))
    body += ["<h2>Model</h2>", info]
    path = out / "report.html"
    path.write_text(page(title, body))
    return path
