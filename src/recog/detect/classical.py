"""The classical baseline: HOG features + a linear SVM, slid over the image (dlib's trainer).

One dlib ``fhog_object_detector`` per class and aspect-ratio cluster (a
single window shape cannot cover tall and wide objects): the log aspect
ratios of a class's boxes are split at their median when they spread
(standard deviation above :data:`ASPECT_SPREAD`), else one detector. The
window area follows the class's median box size (clipped to 36²..80²
pixels; dlib upsamples images for smaller boxes up to ``upsample_limit``).
dlib refuses a set in which two boxes overlap so much that its own NMS
could never output both; such boxes (IoU above :data:`MAX_OVERLAP` with a
larger box of the same detector) are left out of that detector's training
and counted. Detection runs every detector (``run_multiple``), keeps SVM
margins above ``adjust_threshold`` as scores (mapped to (0, 1) by a
logistic) and applies per-class NMS. This is a baseline for
``benchmarks/detect.py hog``, not a bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from recog.detect.boxes import batched_nms, iou_matrix

ASPECT_SPREAD = 0.25
MAX_OVERLAP = 0.45
#: dlib's window must reach IoU 0.5 with every box: boxes more than this factor off the cluster's
#: median aspect ratio, or under MIN_AREA pixels, are left out of training (counted in ``dropped``).
MAX_ASPECT_FACTOR = 1.6
MIN_AREA = 110.0  # dlib wants ~400 px after its upsampling (upsample_limit 1: x2 per side)


@dataclass
class HogSvm:
    """Fitted detectors: ``detectors[i]`` finds ``classes[i]``; ``dropped`` boxes per class (dlib's overlap rule)."""

    detectors: list[Any]
    classes: list[int]
    labels: tuple[str, ...]
    dropped: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _separable(boxes: np.ndarray) -> np.ndarray:
    """Mask of boxes dlib can learn together: none overlaps a larger kept box by more than MAX_OVERLAP."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-area)
    keep = np.zeros(len(boxes), bool)
    for i in order:
        if area[i] < MIN_AREA:
            continue
        if not keep.any() or iou_matrix(boxes[i:i + 1], boxes[keep]).max() <= MAX_OVERLAP:
            keep[i] = True
    return keep


def fit_hog_svm(images: Sequence[np.ndarray], boxes: Sequence[np.ndarray], classes: Sequence[np.ndarray],
                labels: Sequence[str], *, C: float = 1.0, threads: int = 1, max_seconds: float | None = None
                ) -> HogSvm:
    """Train on ``images`` (``(H, W, 3)`` uint8) with their ``(K, 4)`` boxes and ``(K,)`` class indices."""
    import dlib

    model = HogSvm([], [], tuple(labels))
    for c, name in enumerate(labels):
        wh = np.concatenate([b[k == c][:, 2:] - b[k == c][:, :2] for b, k in zip(boxes, classes)])
        if len(wh) < 2:
            continue
        aspect = np.log(np.maximum(wh[:, 0], 1) / np.maximum(wh[:, 1], 1))
        cuts = [-np.inf, np.inf] if aspect.std() <= ASPECT_SPREAD else [-np.inf, float(np.median(aspect)), np.inf]
        side = float(np.clip(np.median(np.sqrt(wh[:, 0] * wh[:, 1])), 36, 80))
        for lo, hi in zip(cuts, cuts[1:]):
            inside = aspect[(aspect > lo) & (aspect <= hi)]
            centre = float(np.median(inside)) if len(inside) else 0.0
            tight = (max(lo, centre - np.log(MAX_ASPECT_FACTOR)), min(hi, centre + np.log(MAX_ASPECT_FACTOR)))
            imgs, rects = [], []
            for img, b, k in zip(images, boxes, classes):
                mine = b[k == c]
                a = np.log(np.maximum(mine[:, 2] - mine[:, 0], 1) / np.maximum(mine[:, 3] - mine[:, 1], 1))
                member = (a > lo) & (a <= hi)
                fits = member & (a > tight[0]) & (a <= tight[1])
                model.dropped[name] = model.dropped.get(name, 0) + int((member & ~fits).sum())
                mine = mine[fits]
                if len(mine):
                    keep = _separable(mine)
                    model.dropped[name] = model.dropped.get(name, 0) + int((~keep).sum())
                    mine = mine[keep]
                imgs.append(img)
                rects.append([dlib.rectangle(int(x1), int(y1), int(x2), int(y2)) for x1, y1, x2, y2 in mine])
            if sum(len(r) for r in rects) < 2:
                continue
            options = dlib.simple_object_detector_training_options()
            options.add_left_right_image_flips = True
            options.C = C
            options.num_threads = threads
            options.detection_window_size = int(side * side)
            options.upsample_limit = 1
            if max_seconds:
                options.max_runtime_seconds = max_seconds
            try:
                model.detectors.append(dlib.train_simple_object_detector(imgs, rects, options))
            except RuntimeError as exc:  # dlib still found the set impossible: this class gets no detector
                model.skipped[name] = " ".join(str(exc).split())[:200]
                continue
            model.classes.append(c)
    return model


def detect_hog_svm(model: HogSvm, image: np.ndarray, *, adjust_threshold: float = -0.5, iou: float = 0.5
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes (K, 4), scores (K,) in (0, 1), class indices (K,))`` for one ``(H, W, 3)`` uint8 image."""
    import dlib

    if not model.detectors:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    rects, margins, which = dlib.fhog_object_detector.run_multiple(model.detectors, image, upsample_num_times=1,
                                                                  adjust_threshold=adjust_threshold)
    h, w = image.shape[:2]
    boxes = np.array([[max(r.left(), 0), max(r.top(), 0), min(r.right(), w), min(r.bottom(), h)] for r in rects],
                     np.float32).reshape(-1, 4)
    scores = 1.0 / (1.0 + np.exp(-np.asarray(margins, np.float64)))
    classes = np.array([model.classes[i] for i in which], np.int64)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, classes = boxes[valid], scores[valid], classes[valid]
    keep = batched_nms(boxes, scores, classes, iou)
    return boxes[keep], scores[keep].astype(np.float32), classes[keep]
