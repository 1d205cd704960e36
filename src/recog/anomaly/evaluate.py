"""``recog evaluate`` for anomaly bundles: score labelled test images, write metrics and the report.

Also records the F1-optimal threshold found on this data in the bundle's
``anomaly.threshold_candidates`` (not adopted: a threshold picked on the test data
makes that data's figures optimistic; adopt it with
:func:`recog.tasks.anomaly.set_threshold` or per request with ``threshold=``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recog.anomaly.evalset import EvalItem, load_eval_set
from recog.errors import BundleError, ConfigError, ImageError

#: overlays shown per report section.
CARDS = 8


def evaluate_anomaly(predictor: Any, data: Any, *, split: str | None, out: Path, batch_size: int,
                     progress_factory: Callable[[str, int], Any] | None
                     ) -> tuple[dict[str, Any], Path, str, list[tuple[str, str]], list[str]]:
    """Metrics (:mod:`recog.metrics.anomaly`), ``report.html`` and one-line summaries for ``predictor`` on ``data``.

    Returns:
        ``(metrics, report path, split name, skipped files, summary lines)``.
    """
    from recog.anomaly import bundle_threshold
    from recog.metrics.anomaly import image_metrics, pixel_metrics, write_anomaly_report

    threshold = bundle_threshold(predictor.manifest)
    if threshold is None:
        raise ConfigError(f"{predictor.path}: this anomaly network has no threshold (it was saved without fitting).",
                          hint="fit it on good images: recog train GOOD_DIR --task anomaly")
    items, split_name = load_eval_set(data, split)
    from recog.tasks.base import evaluation_outputs

    raw, kept, failures = evaluation_outputs(predictor, [it.path for it in items], data, batch_size=batch_size,
                                             progress_factory=progress_factory)
    kept_items = [items[i] for i in kept]
    results = predictor.postprocess(raw, sources=[str(it.path) for it in kept_items])
    scores = np.array([r.score for r in results])
    defect = np.array([it.defect for it in kept_items])
    m = image_metrics(scores, defect, threshold, types=[it.label for it in kept_items])
    m["threshold_rule"] = predictor.manifest.calibration.get("rule", "bundle")
    size = pixel_size(predictor.manifest.preprocessing.size)
    maps, masks = [], []
    if any(it.mask is not None for it in kept_items):
        for r, it in zip(results, kept_items):
            mask = _read_mask(it, size, failures)
            if mask is None and it.defect:
                continue  # a defect without a mask says nothing about pixels
            maps.append(resize_map(r.heatmap, size))
            masks.append(mask if mask is not None else np.zeros(size, bool))
    m["pixel"] = pixel_metrics(maps, masks) if maps else None
    m.update(split=split_name, data=str(data), skipped_files=len(failures))
    note = _record_f1(predictor, m, data)
    info = {**predictor.info.to_dict(), "backend": predictor.backend.name, "bundle": str(predictor.path),
            "data": str(data), "split": split_name, "skipped_files": len(failures)}
    report = write_anomaly_report(out, m, scores / threshold, defect, sections=_sections(results, kept_items),
                                  title=f"recog anomaly evaluation: {Path(predictor.path).name} on {data}",
                                  model_info=info)
    at = m["at_threshold"]
    summary = [f"{m['num_images']} images ({m['num_good']} good, {m['num_defect']} defect): image AUROC "
               f"{_f(m['image_auroc'])}, AP {_f(m['image_ap'])}; at threshold {threshold:.4g}: F1 {_f(at['f1'])}, "
               f"false rejects {_f(at['false_reject_rate'])}, escapes {_f(at['escape_rate'])}"]
    if m["f1_optimal"]:
        summary.append(f"F1-optimal threshold on this data: {m['f1_optimal']['threshold']:.4g} "
                       f"(F1 {_f(m['f1_optimal']['f1'])}){note}")
    if m["pixel"]:
        summary.append(f"pixel AUROC {m['pixel']['pixel_auroc']:.4f}, PRO (to 30% FPR) {_f(m['pixel']['pro_auc_30'])} "
                       f"on {m['pixel']['images']} images with masks")
    return m, report, split_name, failures, summary


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def pixel_size(size: tuple[int, int]) -> tuple[int, int]:
    """``(h, w)`` pixel metrics are computed at: ``size`` scaled so its longer side is at most PIXEL_SIZE."""
    from recog.metrics.anomaly import PIXEL_SIZE

    h, w = size
    scale = min(1.0, PIXEL_SIZE / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_map(a: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """A 2-D float array resized to ``size = (h, w)`` (bilinear, or nearest for masks)."""
    from PIL import Image

    if a.shape == size:
        return a
    img = Image.fromarray(a.astype(np.float32), mode="F")
    return np.asarray(img.resize((size[1], size[0]), Image.NEAREST if nearest else Image.BILINEAR))


def _read_mask(item: EvalItem, size: tuple[int, int], failures: list[tuple[str, str]]) -> np.ndarray | None:
    """The item's mask as ``size`` bools (stretched like the image), None when it has none or it fails to load."""
    if item.mask is None:
        return None
    from recog.io import load_image

    try:
        gray = np.asarray(load_image(item.mask).convert("L"), dtype=np.float32)
    except ImageError as exc:
        failures.append((str(item.mask), str(exc)))
        return None
    return resize_map(gray, size, nearest=True) > 127


def _record_f1(predictor: Any, m: dict[str, Any], data: Any) -> str:
    """Store the F1-optimal threshold in the bundle's ``anomaly.threshold_candidates``; a note for the summary."""
    from recog.models.bundle import update_bundle

    best = m.get("f1_optimal")
    if not best:
        return ""
    record = predictor.manifest.task_record
    candidates = dict(record.get("threshold_candidates") or {})
    candidates["f1"] = {"threshold": round(best["threshold"], 6), "f1": best["f1"], "data": str(data),
                        "images": m["num_images"]}
    try:
        update_bundle(predictor.path, updates={"anomaly": {**record, "threshold_candidates": candidates}})
    except (OSError, BundleError) as exc:
        return f" (not recorded in the bundle: {exc})"
    return " (recorded in the bundle; adopt it with recog.tasks.anomaly.set_threshold(BUNDLE, 'f1'))"


def _sections(results: Sequence[Any], items: Sequence[EvalItem]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Escapes, false rejects and detected defects, as overlay cards (the worst first)."""
    from recog.anomaly.draw import overlay
    from recog.io import load_image

    def card(i: int) -> dict[str, Any] | None:
        r, it = results[i], items[i]
        try:
            img = np.asarray(load_image(it.path))
        except ImageError:
            return None
        h, w = img.shape[:2]
        fw, fh = r.image_size or (w, h)
        boxes = [(x1 * w / fw, y1 * h / fh, x2 * w / fw, y2 * h / fh) for x1, y1, x2, y2 in r.boxes]
        mask = None
        if it.mask is not None:
            mask = _read_mask(it, (h, w), [])
        bad = (r.verdict == "fail") != it.defect
        return {"image": overlay(img, r.heatmap, boxes, mask=mask),
                "caption": f"{it.label} · {r.verdict} · {r.normalized_score:.2f} · {it.path.name}", "bad": bad}

    norm = np.array([r.normalized_score for r in results])
    defect = np.array([it.defect for it in items])
    escapes = [i for i in np.argsort(norm) if defect[i] and norm[i] <= 1.0][:CARDS]
    rejects = [i for i in np.argsort(-norm) if not defect[i] and norm[i] > 1.0][:CARDS]
    closest_good = [i for i in np.argsort(-norm) if not defect[i]][:CARDS] if not rejects else []
    detected = [i for i in np.argsort(-norm) if defect[i] and norm[i] > 1.0][:CARDS]
    out = [("Escapes (defects that pass)", "Lowest-scoring defect images; green outlines the mask where there is one.",
            [c for c in map(card, escapes) if c]),
           ("False rejects (good parts that fail)", "Highest-scoring good images.", [c for c in map(card, rejects) if c])]
    if closest_good:
        out.append(("Closest good parts", "No good image fails; these are the highest-scoring ones.",
                    [c for c in map(card, closest_good) if c]))
    out.append(("Detected defects", "Highest-scoring defect images, with their defect boxes (red).",
                [c for c in map(card, detected) if c]))
    return out
