"""``recog evaluate`` for detect bundles: mAP by pycocotools, a confusion matrix with background, report.html.

* **mAP** (:func:`recog.detect.metrics.coco_map`): detections above
  :data:`~recog.detect.postprocess.EVAL_MIN_SCORE` (AP integrates over every
  threshold), in original-image pixels, against the split's boxes.
* **Confusion matrix incl. background**, at IoU 0.5 and the predict score
  floor (what a user of ``recog predict`` sees): each true box is matched to
  the unmatched detection of highest IoU >= 0.5 whatever its class (a wrong
  class is a confusion, not a miss); true boxes left over are "missed"
  (row class, column background), detections left over are false alarms
  (row background).
* **Worst images**: the images with the most errors at that operating point
  (misses + false alarms + confusions), true boxes green, predictions red.
* **Explanations** (``explain`` > 0, :func:`recog.explain.panel.box_cards`): heatmaps of the
  most confident false positives at that operating point (a box matching no true box, or
  one of another class) and of the most confident right boxes of each class, each box
  outlined on its heatmap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recog.detect.boxes import iou_matrix
from recog.detect.metrics import ImageBoxes, coco_map
from recog.detect.postprocess import DEFAULT_MIN_SCORE, EVAL_MIN_SCORE
from recog.tasks.base import EvaluationResult

WORST = 8
MATCH_IOU = 0.5


def match_image(truth: ImageBoxes, dets: ImageBoxes, *, min_score: float = DEFAULT_MIN_SCORE,
                iou: float = MATCH_IOU) -> tuple[np.ndarray, np.ndarray]:
    """One image's matching: each true box to the unmatched detection of highest IoU >= ``iou`` (any class).

    Returns:
        ``(matched, missed)``: per detection (index into ``dets``) the class of the true box it matched,
        -1 for a false alarm, -2 below ``min_score`` (not judged); the indices of the true boxes left over.

    Example:
        >>> t = ImageBoxes(np.array([[0, 0, 10, 10.], [30, 30, 40, 40.]]), np.array([0, 1]))
        >>> d = ImageBoxes(np.array([[0, 0, 10, 10.], [50, 50, 60, 60.]]), np.array([1, 0]), np.array([.9, .8]))
        >>> matched, missed = match_image(t, d)
        >>> matched.tolist(), missed.tolist()
        ([0, -1], [1])
    """
    keep = np.flatnonzero(np.asarray(dets.scores) >= min_score)
    pb = np.asarray(dets.boxes).reshape(-1, 4)[keep]
    tb, tc = np.asarray(truth.boxes).reshape(-1, 4), np.asarray(truth.classes)
    matched = np.full(len(np.asarray(dets.classes)), -2, np.int64)
    matched[keep] = -1
    used = np.zeros(len(pb), bool)
    missed = []
    ious = iou_matrix(tb, pb) if len(tb) and len(pb) else np.zeros((len(tb), len(pb)))
    for g in np.argsort(-ious.max(1) if ious.size else np.zeros(len(tb)), kind="stable"):
        cand = np.where(~used & (ious[g] >= iou))[0] if ious.size else np.zeros(0, np.int64)
        if len(cand):
            j = cand[np.argmax(ious[g, cand])]
            used[j] = True
            matched[keep[j]] = tc[g]
        else:
            missed.append(int(g))
    return matched, np.array(missed, np.int64)


def match_confusion(truth: Sequence[ImageBoxes], dets: Sequence[ImageBoxes], num_classes: int, *,
                    min_score: float = DEFAULT_MIN_SCORE, iou: float = MATCH_IOU) -> tuple[np.ndarray, np.ndarray]:
    """``(C + 1, C + 1)`` counts (rows true, columns predicted; index ``C`` = background) and errors per image.

    Example:
        >>> t = [ImageBoxes(np.array([[0, 0, 10, 10.]]), np.array([0]))]
        >>> d = [ImageBoxes(np.array([[0, 0, 10, 10.], [50, 50, 60, 60.]]), np.array([1, 0]), np.array([.9, .8]))]
        >>> cm, errors = match_confusion(t, d, 2)
        >>> cm.tolist(), errors.tolist()
        ([[0, 1, 0], [0, 0, 0], [1, 0, 0]], [2])
    """
    bg = num_classes
    cm = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    errors = np.zeros(len(truth), np.int64)
    for i, (t, d) in enumerate(zip(truth, dets)):
        matched, missed = match_image(t, d, min_score=min_score, iou=iou)
        pc, tc = np.asarray(d.classes), np.asarray(t.classes)
        for j in np.flatnonzero(matched >= -1):
            cm[bg if matched[j] < 0 else matched[j], pc[j]] += 1
            errors[i] += int(matched[j] != pc[j])
        for g in missed:
            cm[tc[g], bg] += 1
        errors[i] += len(missed)
    return cm, errors


def judged_boxes(truth: Sequence[ImageBoxes], dets: Sequence[ImageBoxes], *, min_score: float = DEFAULT_MIN_SCORE,
                 iou: float = MATCH_IOU) -> list[tuple[int, int, int, int, float]]:
    """``(image, box, predicted class, matched true class or -1, score)`` per detection scoring at least
    ``min_score``; ``box`` counts only those, in the detections' order (the index ``recog predict`` and
    ``recog explain --box`` use at that ``min_score``)."""
    out = []
    for i, (t, d) in enumerate(zip(truth, dets)):
        matched, _ = match_image(t, d, min_score=min_score, iou=iou)
        judged = np.flatnonzero(matched >= -1)
        out += [(i, k, int(np.asarray(d.classes)[j]), int(matched[j]), float(np.asarray(d.scores)[j]))
                for k, j in enumerate(judged)]
    return out


def evaluate_detector(predictor: Any, data: Any, out: Path, *, split: str | None = None, batch_size: int = 16,
                      progress_factory: Callable[[str, int], Any] | None = None, explain: int = 0
                      ) -> EvaluationResult:
    """Metrics, ``metrics.json`` and ``report.html`` for a detect ``predictor`` on box data ``data``
    (``split``: default test, else val, else every image; ``explain``: heatmaps of that many of the
    most confident false positives, and of a few right boxes per class, in the report)."""
    from recog.detect.formats import load_boxes
    from recog.tasks.base import evaluation_outputs
    from recog.tasks.classify import choose_split

    from recog.errors import DatasetError

    labels = list(predictor.labels)
    try:
        ds = load_boxes(data).restrict(labels)
    except DatasetError as exc:
        if "no box annotations" not in str(exc):
            raise
        raise DatasetError(f"{predictor.path} is a 'detect' model and {data} has no box annotations (VOC, COCO, "
                           "YOLO, or a path,x1,y1,x2,y2,label CSV).",
                           hint="evaluate a classify model on class folders; a detect model on box data") from None
    samples, split_name = choose_split(ds, split)
    raw, kept, failures = evaluation_outputs(predictor, [s.path for s in samples], data, batch_size=batch_size,
                                             progress_factory=progress_factory)
    kept_samples = [samples[i] for i in kept]
    results = predictor.postprocess(raw, sources=[str(s.path) for s in kept_samples], min_score=EVAL_MIN_SCORE,
                                    image_sizes=[s.size for s in kept_samples])
    truth = [ImageBoxes(s.boxes, s.classes(labels), size=tuple(r.image_size)) for s, r in zip(kept_samples, results)]
    dets = [ImageBoxes(r.boxes, r.class_ids, r.scores) for r in results]
    m = coco_map(truth, dets, labels)
    curves = m.pop("pr_curves")
    cm, errors = match_confusion(truth, dets, len(labels))
    m.update(confusion_matrix={"labels": labels + ["background"], "counts": cm.tolist(),
                               "min_score": DEFAULT_MIN_SCORE, "iou": MATCH_IOU},
             split=split_name, data=str(data), format=ds.format, skipped_files=len(failures),
             annotation_issues=len([i for i in ds.issues if i.dropped]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
    worst = [int(i) for i in np.argsort(-errors, kind="stable")[:WORST] if errors[i] > 0]
    info = {**predictor.info.to_dict(), "backend": predictor.backend.name, "bundle": str(predictor.path),
            "data": str(data), "split": split_name}
    cards = None
    if explain > 0:
        from recog.explain.panel import box_cards

        cards = box_cards(predictor, [s.path for s in kept_samples], judged_boxes(truth, dets), explain,
                          min_score=DEFAULT_MIN_SCORE)
    from recog.detect.report import write_detection_report

    report = write_detection_report(out, m, curves, cm, labels,
                                    [(kept_samples[i], results[i], int(errors[i])) for i in worst],
                                    title=f"recog detection evaluation: {Path(predictor.path).name} on {data} "
                                          f"({split_name})", model_info=info, explanations=cards)
    per = ", ".join(f"{lab} {v['ap50']:.3f}" for lab, v in m["per_class"].items() if v["ap50"] is not None)
    summary = [f"{m['images']} images, {m['instances']} boxes ({split_name}): mAP@0.5 {m['map50']:.4f}, "
               f"mAP@0.5:0.95 {m['map']:.4f}; AP@0.5 per class: {per}"]
    missed, false_alarms = int(cm[:-1, -1].sum()), int(cm[-1, :-1].sum())
    summary.append(f"at score >= {DEFAULT_MIN_SCORE}: {missed} missed, {false_alarms} false alarms, "
                   f"{int(cm[:-1, :-1].sum() - np.trace(cm[:-1, :-1]))} wrong class")
    return EvaluationResult(m, report, out, split_name, failures, summary)
