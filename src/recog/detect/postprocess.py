"""Raw detector output → :class:`~recog.detect.result.Detections` in original-image pixels.

The network (and its ONNX graph) ends at ``(N, A, 4 + C)``: a decoded box
and ``C`` class scores per location. Here, per image: keep (location,
class) pairs scoring at least ``min_score``, the best
:data:`PRE_NMS_TOP` of them, suppress overlaps within each class (IoU above
``iou``), keep the best ``max_detections``, and scale the boxes from the
model input to the original image (the inverse of the ``stretch`` resize).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from recog.detect.boxes import batched_nms, scale_boxes
from recog.detect.result import Detections

PRE_NMS_TOP = 1000
#: ``recog predict`` / the service: the score floor users see (``--min-score`` / ``min_score``).
DEFAULT_MIN_SCORE = 0.3
#: evaluation keeps low-scoring detections too: AP integrates over every threshold.
EVAL_MIN_SCORE = 0.01
DEFAULT_IOU = 0.6
DEFAULT_MAX_DETECTIONS = 100


def decode_one(raw: np.ndarray, input_size: tuple[int, int], *, min_score: float = DEFAULT_MIN_SCORE,
               iou: float = DEFAULT_IOU, max_detections: int = DEFAULT_MAX_DETECTIONS
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's ``(A, 4 + C)`` → ``(boxes (K, 4), scores (K,), classes (K,))`` in input pixels."""
    raw = np.asarray(raw, dtype=np.float32)
    scores = raw[:, 4:]
    loc, cls = np.nonzero(scores >= min_score)
    s = scores[loc, cls]
    if len(s) > PRE_NMS_TOP:
        top = np.argpartition(-s, PRE_NMS_TOP)[:PRE_NMS_TOP]
        loc, cls, s = loc[top], cls[top], s[top]
    boxes = scale_boxes(raw[loc, :4], input_size, input_size)
    keep = batched_nms(boxes, s, cls, iou)[:max_detections]
    return boxes[keep], s[keep], cls[keep]


def decode_detections(raw: np.ndarray, labels: Sequence[str], input_size: tuple[int, int],
                      image_sizes: Sequence[tuple[int, int] | None], sources: Sequence[str | None], *,
                      min_score: float = DEFAULT_MIN_SCORE, iou: float = DEFAULT_IOU,
                      max_detections: int = DEFAULT_MAX_DETECTIONS) -> list[Detections]:
    """``(N, A, 4 + C)`` → one :class:`Detections` per image.

    Args:
        input_size: ``(width, height)`` of the model input.
        image_sizes: ``(width, height)`` of each original image; None keeps model-input pixels.
    """
    if not 0 <= min_score <= 1:
        raise ValueError(f"min_score must be in [0, 1], got {min_score}")
    if not 0 < iou <= 1:
        raise ValueError(f"iou must be in (0, 1], got {iou}")
    out = []
    for row, size, source in zip(raw, image_sizes, sources):
        boxes, scores, cls = decode_one(row, input_size, min_score=min_score, iou=iou, max_detections=max_detections)
        frame = size or input_size
        boxes = scale_boxes(boxes, input_size, frame)
        out.append(Detections(boxes, np.clip(scores, 0, 1), cls, tuple(labels[c] for c in cls), tuple(frame), source,
                              tuple(labels)))
    return out
