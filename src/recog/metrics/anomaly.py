"""Anomaly detection metrics and report: image AUROC / AP / F1, pixel AUROC and PRO, score histogram, overlays.

Pure functions over arrays (scores, labels, maps, masks), using
scikit-learn's definitions; :func:`write_anomaly_report` writes
``metrics.json``, ``score_histogram.png`` and a self-contained
``report.html`` (images inlined as data URIs, inline CSS, no script, a
Content-Security-Policy that forbids loading anything; every string
HTML-escaped).

Conventions: a defect is the positive class; an image *fails* when its
score is above the threshold, so at the threshold

* ``false_reject_rate`` = good images that fail / good images,
* ``escape_rate`` = defect images that pass / defect images,
* ``precision``, ``recall``, ``f1`` of the "fail" verdict for defects.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recog.errors import InvalidInputError
from recog.metrics.html import data_uri, escape, jpeg_uri, kv_table, number, page

#: Longest side of the maps and masks pixel metrics are computed at.
PIXEL_SIZE = 256

def _check(scores: Any, defect: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(defect, dtype=bool).reshape(-1)
    if len(s) != len(y):
        raise InvalidInputError(f"{len(s)} scores but {len(y)} labels; pass one label per scored image.")
    if not len(s) or not np.isfinite(s).all():
        raise InvalidInputError("anomaly scores must be a non-empty array of finite numbers.")
    return s, y


def verdict_counts(scores: Any, defect: Any, threshold: float) -> dict[str, Any]:
    """Counts and rates of the ``score > threshold`` verdict (defect = positive).

    Example:
        >>> verdict_counts([0.5, 2.0, 0.8, 3.0], [0, 1, 1, 0], 1.0)["f1"]
        0.5
    """
    s, y = _check(scores, defect)
    fail = s > threshold
    tp, fp = int((fail & y).sum()), int((fail & ~y).sum())
    fn, tn = int((~fail & y).sum()), int((~fail & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"threshold": float(threshold), "tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision,
            "recall": recall, "f1": f1, "false_reject_rate": fp / (fp + tn) if fp + tn else None,
            "escape_rate": fn / (fn + tp) if fn + tp else None, "accuracy": (tp + tn) / len(s)}


def f1_optimal_threshold(scores: Any, defect: Any) -> float | None:
    """The threshold with the highest F1 of the ``score > threshold`` verdict (midway between two scores);
    None without both good and defect images.

    Example:
        >>> f1_optimal_threshold([0.1, 0.2, 0.9, 1.0], [0, 0, 1, 1])
        0.55
    """
    from sklearn.metrics import precision_recall_curve

    s, y = _check(scores, defect)
    if y.all() or not y.any():
        return None
    precision, recall, cuts = precision_recall_curve(y, s)  # positive when score >= cut
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)[:-1]
    cut = float(cuts[int(np.argmax(f1))])
    below = s[s < cut]
    return float((cut + below.max()) / 2) if len(below) else float(cut - 1e-6 * max(1.0, abs(cut)))


def image_metrics(scores: Any, defect: Any, threshold: float, *, types: Sequence[str] | None = None
                  ) -> dict[str, Any]:
    """Image-level figures: AUROC and AP (threshold-free), the verdict at ``threshold`` and at the
    F1-optimal threshold, and per defect type how many fail.

    Args:
        scores: ``(N,)`` image scores (any units; ``threshold`` in the same units).
        defect: ``(N,)`` True for defect images.
        types: ``N`` labels (``good`` or a defect type) for the per-type table.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    s, y = _check(scores, defect)
    both = bool(y.any() and (~y).any())
    out: dict[str, Any] = {"num_images": int(len(s)), "num_good": int((~y).sum()), "num_defect": int(y.sum()),
                           "image_auroc": float(roc_auc_score(y, s)) if both else None,
                           "image_ap": float(average_precision_score(y, s)) if both else None,
                           "at_threshold": verdict_counts(s, y, threshold)}
    best = f1_optimal_threshold(s, y)
    out["f1_optimal"] = verdict_counts(s, y, best) if best is not None else None
    if types is not None:
        per: dict[str, Any] = {}
        for t in sorted(set(types)):
            sel = np.asarray([x == t for x in types])
            per[t] = {"images": int(sel.sum()), "fail": int((s[sel] > threshold).sum()),
                      "fail_rate": float((s[sel] > threshold).mean()),
                      "median_normalized_score": float(np.median(s[sel]) / threshold)}
        out["per_type"] = per
    return out


def pixel_metrics(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray | None]) -> dict[str, Any] | None:
    """Pixel AUROC and AP, and the area under the PRO curve up to 30% FPR, over the images that have a mask
    (a good image's mask is all False).

    Args:
        maps: ``(H, W)`` anomaly maps; ``masks``: same-shape bool masks, None where unknown.

    Returns:
        ``{"pixel_auroc", "pixel_ap", "pro_auc_30", "regions", "images"}``, or None when no mask has a
        defect pixel.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    pairs = [(m, k) for m, k in zip(maps, masks) if k is not None]
    if not pairs or not any(k.any() for _, k in pairs):
        return None
    for m, k in pairs:
        if m.shape != k.shape:
            raise InvalidInputError(f"a map of shape {m.shape} was paired with a mask of shape {k.shape}.")
    s = np.concatenate([m.reshape(-1) for m, _ in pairs]).astype(np.float32)
    y = np.concatenate([k.reshape(-1) for _, k in pairs])
    if y.all():
        return None
    pro, regions = pro_auc([m for m, _ in pairs], [k for _, k in pairs])
    return {"pixel_auroc": float(roc_auc_score(y, s)), "pixel_ap": float(average_precision_score(y, s)),
            "pro_auc_30": pro, "regions": regions, "images": len(pairs)}


def pro_auc(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], max_fpr: float = 0.3,
            steps: int = 300) -> tuple[float, int]:
    """Area under the per-region-overlap curve for pixel FPR in ``[0, max_fpr]``, divided by ``max_fpr``
    (MVTec AD's PRO; 1.0 is perfect), and the number of defect regions it averages over.

    At a threshold ``t`` a region's overlap is the share of its pixels with ``map > t``; PRO is the mean
    over the connected regions (8-connected) of all masks, so a small defect counts as much as a large one.
    The thresholds are the normal pixels' ``1 - fpr`` quantiles for ``steps`` FPRs from 0 to ``max_fpr``.

    Example:
        >>> m = np.zeros((4, 4)); m[0, 0] = 1.0
        >>> pro_auc([m], [m > 0.5])[0]
        1.0
    """
    from scipy import ndimage

    neg = np.sort(np.concatenate([m[~k] for m, k in zip(maps, masks)]).astype(np.float64))
    regions: list[np.ndarray] = []
    for m, k in zip(maps, masks):
        labels, count = ndimage.label(k, structure=np.ones((3, 3), bool))
        regions += [np.sort(m[labels == i].astype(np.float64)) for i in range(1, count + 1)]
    if not regions or not len(neg):
        return float("nan"), len(regions)
    thresholds = np.quantile(neg, 1.0 - np.linspace(0.0, max_fpr, steps), method="higher")
    fpr = 1.0 - np.searchsorted(neg, thresholds, side="right") / len(neg)
    pro = np.mean([1.0 - np.searchsorted(r, thresholds, side="right") / len(r) for r in regions], axis=0)
    keep = fpr <= max_fpr
    if not keep.any():
        return 0.0, len(regions)
    x = np.r_[0.0, fpr[keep], max_fpr]  # the ends held flat: PRO only grows with the FPR, so this is a lower bound
    y = np.r_[pro[keep][0], pro[keep], pro[keep][-1]]
    return round(float(np.trapezoid(y, x) / max_fpr), 6), len(regions)


# --------------------------------------------------------------------------- report


def histogram_png(normalized: np.ndarray, defect: np.ndarray, *, f1_line: float | None = None) -> bytes:
    """Histogram of normalized image scores, good vs defect, with the threshold (1.0) marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    s, y = _check(normalized, defect)
    fig = Figure(figsize=(7.2, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    hi = max(float(np.quantile(s, 0.995)) if len(s) > 20 else float(s.max()), 1.2) * 1.05
    lo = min(float(s.min()), 0.8) * 0.95
    bins = np.linspace(lo, hi, 41)
    clipped = np.clip(s, lo, hi)
    ax.hist(clipped[~y], bins=bins, alpha=0.65, label=f"good ({int((~y).sum())})", color="#2f7ed8")
    ax.hist(clipped[y], bins=bins, alpha=0.65, label=f"defect ({int(y.sum())})", color="#d8452f")
    ax.axvline(1.0, color="k", lw=1.2, label="threshold (1.0)")
    if f1_line is not None:
        ax.axvline(f1_line, color="k", lw=1.0, ls="--", label=f"F1-optimal ({f1_line:.2f})")
    ax.set_xlabel("normalized anomaly score (score / threshold)")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def write_anomaly_report(out_dir: str | Path, metrics: dict[str, Any], normalized: Sequence[float],
                         defect: Sequence[bool], *, sections: Sequence[tuple[str, str, Sequence[dict[str, Any]]]] = (),
                         title: str = "recog anomaly evaluation", model_info: dict[str, Any] | None = None) -> Path:
    """Write ``metrics.json``, ``score_histogram.png`` and ``report.html`` into ``out_dir``.

    Args:
        metrics: the figures (written as given to metrics.json and shown in the page).
        normalized, defect: per image, the normalized score and whether it is a defect (histogram).
        sections: ``(heading, note, cards)``; a card is ``{"image": (H, W, 3) uint8 overlay,
            "caption": str, "bad": bool}``.
        model_info: key → value facts about the model.

    Returns:
        The path of ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n", encoding="utf-8")
    f1 = metrics.get("f1_optimal")
    thr = metrics["at_threshold"]["threshold"]
    hist = histogram_png(np.asarray(normalized), np.asarray(defect),
                         f1_line=f1["threshold"] / thr if f1 else None)
    (out / "score_histogram.png").write_bytes(hist)
    parts = [_summary(metrics)]
    if model_info:
        parts.append("<h2>Model</h2>" + kv_table([(k, escape(v if isinstance(v, str) else json.dumps(v, default=str)))
                                                 for k, v in model_info.items()]))
    parts.append("<h2>Score histogram</h2><figure><img alt='score histogram' src='" + data_uri(hist, "image/png")
                 + "'><figcaption>Image scores divided by the threshold: an image fails above 1.0.</figcaption></figure>")
    if metrics.get("per_type"):
        rows = "".join(f"<tr><td>{escape(t)}</td><td class='n'>{number(v['images'])}</td><td class='n'>{number(v['fail'])}</td>"
                       f"<td class='n'>{number(v['fail_rate'], 3)}</td><td class='n'>{number(v['median_normalized_score'], 3)}</td></tr>"
                       for t, v in metrics["per_type"].items())
        parts.append("<h2>Per type</h2><table><tr><th>type</th><th class='n'>images</th><th class='n'>fail</th>"
                     f"<th class='n'>fail rate</th><th class='n'>median normalized score</th></tr>{rows}</table>")
    for heading, note, cards in sections:
        parts.append(f"<h2>{escape(heading)}</h2><p class='muted'>{escape(note)}</p>")
        if not cards:
            parts.append("<p class='muted'>none</p>")
            continue
        parts.append("<div class='grid wide'>" + "".join(
            f"<div class='card'><img alt='overlay' src='{jpeg_uri(c['image'])}'>"
            f"<span class='{'bad' if c.get('bad') else 'ok'}'>{escape(c['caption'])}</span></div>" for c in cards) + "</div>")
    path = out / "report.html"
    path.write_text(page(title, parts), encoding="utf-8")
    return path


def _summary(m: dict[str, Any]) -> str:
    at, f1 = m["at_threshold"], m.get("f1_optimal")
    rows = [("images (good / defect)", f"{m['num_images']:,} ({m['num_good']:,} / {m['num_defect']:,})"),
            ("image AUROC", number(m.get("image_auroc"))), ("image AP", number(m.get("image_ap"))),
            ("threshold", f"{at['threshold']:.4g} ({escape(m.get('threshold_rule', 'bundle'))})"),
            ("F1 / precision / recall at threshold", f"{number(at['f1'])} / {number(at['precision'])} / {number(at['recall'])}"),
            ("false-reject rate / escape rate", f"{number(at['false_reject_rate'])} / {number(at['escape_rate'])}")]
    if f1:
        rows.append(("F1-optimal threshold (on this data)", f"{f1['threshold']:.4g}: F1 {number(f1['f1'])}, "
                     f"false rejects {number(f1['false_reject_rate'])}, escapes {number(f1['escape_rate'])}"))
    px = m.get("pixel")
    rows.append(("pixel AUROC / AP", f"{number(px['pixel_auroc'])} / {number(px['pixel_ap'])} on {px['images']} images"
                 if px else "<span class='muted'>no masks</span>"))
    if px and px.get("pro_auc_30") is not None:
        rows.append(("PRO (area up to 30% pixel FPR)", f"{number(px['pro_auc_30'])} over {px['regions']:,} defect regions"))
    return "<h2>Summary</h2>" + kv_table(rows)
