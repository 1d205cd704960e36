"""Detection metrics by pycocotools (the reference COCO implementation), never hand-rolled.

:func:`coco_map` runs ``COCOeval`` (bbox, 101-point interpolated precision,
maximum 100 detections per image) on in-memory ground truth and
detections and returns mAP@0.5, mAP@0.5:0.95, mAP@0.75, per-class AP and
the precision/recall curves at IoU 0.5 for the report.
:class:`DetectionMetric` is the streaming form the trainer uses on the
validation split (update per batch, compute at the end).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from recog.detect.postprocess import DEFAULT_IOU, EVAL_MIN_SCORE, decode_one


@dataclass
class ImageBoxes:
    """One image's ground truth or detections (``scores`` None for ground truth)."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray | None = None
    size: tuple[int, int] = (1, 1)


def coco_map(truth: Sequence[ImageBoxes], detections: Sequence[ImageBoxes], labels: Sequence[str]
             ) -> dict[str, Any]:
    """mAP figures of ``detections`` against ``truth`` (same image order).

    Returns:
        ``map`` (0.5:0.95), ``map50``, ``map75``, ``map_small/medium/large``, ``per_class``
        ``{label: {"ap50", "ap", "instances"}}`` and ``pr_curves`` ``{label: (recall (101,), precision (101,))}``
        at IoU 0.5 (precision -1 where the recall is never reached). A class without ground truth has AP None.

    Example:
        >>> t = [ImageBoxes(np.array([[0, 0, 10, 10.]]), np.array([0]), size=(20, 20))]
        >>> d = [ImageBoxes(np.array([[0, 0, 10, 10.]]), np.array([0]), np.array([0.9]))]
        >>> coco_map(t, d, ["cell"])["map50"]
        1.0
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for i, (t, d) in enumerate(zip(truth, detections)):
        images.append({"id": i, "width": int(t.size[0]), "height": int(t.size[1])})
        for box, c in zip(np.asarray(t.boxes, float).reshape(-1, 4), t.classes):
            w, h = box[2] - box[0], box[3] - box[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1, "iscrowd": 0,
                         "bbox": [float(box[0]), float(box[1]), float(w), float(h)], "area": float(w * h)})
        for box, c, s in zip(np.asarray(d.boxes, float).reshape(-1, 4), d.classes, d.scores):
            dets.append({"image_id": i, "category_id": int(c) + 1, "score": float(s),
                         "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]})
    instances = {lab: int(sum(int((np.asarray(t.classes) == k).sum()) for t in truth)) for k, lab in enumerate(labels)}
    empty = {"map": 0.0, "map50": 0.0, "map75": 0.0, "map_small": None, "map_medium": None, "map_large": None,
             "per_class": {lab: {"ap50": 0.0 if instances[lab] else None, "ap": 0.0 if instances[lab] else None,
                                 "instances": instances[lab]} for lab in labels},
             "pr_curves": {}, "images": len(images), "detections": len(dets), "instances": sum(instances.values())}
    if not anns or not dets:
        return empty
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": k + 1, "name": lab} for k, lab in enumerate(labels)]}
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # (iou 10, recall 101, classes, area 4, maxdets 3)
    recall_points = np.linspace(0, 1, 101)

    def ap(p: np.ndarray) -> float | None:
        p = p[p > -1]
        return float(p.mean()) if p.size else None

    def stat(v: float) -> float | None:
        return None if v < 0 else round(float(v), 6)

    per_class, curves = {}, {}
    for k, lab in enumerate(labels):
        ap50, ap_all = ap(precision[0, :, k, 0, -1]), ap(precision[:, :, k, 0, -1])
        per_class[lab] = {"ap50": None if ap50 is None else round(ap50, 6),
                          "ap": None if ap_all is None else round(ap_all, 6), "instances": instances[lab]}
        if instances[lab]:
            curves[lab] = (recall_points, precision[0, :, k, 0, -1].copy())
    s = ev.stats
    return {"map": stat(s[0]) or 0.0, "map50": stat(s[1]) or 0.0, "map75": stat(s[2]) or 0.0,
            "map_small": stat(s[3]), "map_medium": stat(s[4]), "map_large": stat(s[5]),
            "per_class": per_class, "pr_curves": curves, "images": len(images), "detections": len(dets),
            "instances": sum(instances.values())}


def truth_from_targets(targets: np.ndarray, size: tuple[int, int]) -> list[ImageBoxes]:
    """Padded ``(N, M, 5)`` targets → one :class:`ImageBoxes` per image."""
    out = []
    for t in np.asarray(targets):
        valid = t[:, 4] >= 0
        out.append(ImageBoxes(t[valid, :4], t[valid, 4].astype(np.int64), size=size))
    return out


class DetectionMetric:
    """Streaming mAP over raw outputs ``(N, A, 4 + C)`` and padded targets ``(N, M, 5)`` in input pixels.

    Without ``keep_outputs`` (the trainer's per-step training metric) it only counts images: mAP per
    step would cost more than the step. With it (validation), :meth:`compute` runs :func:`coco_map`.
    """

    def __init__(self, labels: Sequence[str], input_size: tuple[int, int], *, keep_outputs: bool = False) -> None:
        self.labels, self.input_size, self.keep_outputs = list(labels), input_size, keep_outputs
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.truth: list[ImageBoxes] = []
        self.detections: list[ImageBoxes] = []

    def update(self, output: np.ndarray, target: np.ndarray) -> None:
        self.count += len(output)
        if not self.keep_outputs:
            return
        self.truth += truth_from_targets(target, self.input_size)
        for row in np.asarray(output):
            boxes, scores, classes = decode_one(row, self.input_size, min_score=EVAL_MIN_SCORE, iou=DEFAULT_IOU)
            self.detections.append(ImageBoxes(boxes, classes, scores))

    def compute(self) -> dict[str, float]:
        if not self.keep_outputs:
            return {}
        if not self.truth:
            return {"map50": float("nan"), "map": float("nan")}
        m = coco_map(self.truth, self.detections, self.labels)
        return {"map50": float(m["map50"]), "map": float(m["map"])}
