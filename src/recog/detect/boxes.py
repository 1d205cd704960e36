"""Box math, written once: IoU, GIoU, non-maximum suppression, scaling between frames.

Boxes are ``[x1, y1, x2, y2]`` (corners, ``x2 >= x1``). NumPy functions serve
postprocessing and evaluation (every backend's output comes back as an
array); the torch ones serve the loss. NMS is here, not in the ONNX graph:
it runs on the few hundred candidates above the score floor, where NumPy
takes well under a millisecond, and keeps the exported graph to the
network and box decoding (see ``benchmarks/detect.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def area(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` → ``(N,)`` areas (0 for degenerate boxes)."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` boxes → ``(N, M)``.

    Example:
        >>> iou_matrix(np.array([[0, 0, 2, 2.]]), np.array([[1, 0, 3, 2.], [5, 5, 6, 6.]])).round(3)
        array([[0.333, 0.   ]])
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    Example:
        >>> nms(np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.]]), np.array([.9, .8, .7]), .5)
        array([0, 2])
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    areas = area(boxes)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        wh = np.clip(rb - lt, 0, None)
        inter = wh[:, 0] * wh[:, 1]
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS within each class (boxes of different classes never suppress each other)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    # shift each class into its own region of the plane: one NMS pass instead of one per class
    offset = classes.astype(np.float64)[:, None] * (float(np.abs(boxes).max()) + 1.0)
    return nms(boxes + offset, scores, iou_threshold)


def scale_boxes(boxes: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """Boxes in a ``src = (width, height)`` frame → the ``dst`` frame (the stretch resize's inverse), clipped."""
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    out = np.asarray(boxes, np.float64).reshape(-1, 4) * np.array([sx, sy, sx, sy])
    out[:, 0::2] = out[:, 0::2].clip(0, dst[0])
    out[:, 1::2] = out[:, 1::2].clip(0, dst[1])
    return out


def giou_loss(pred: "torch.Tensor", target: "torch.Tensor", eps: float = 1e-7) -> "torch.Tensor":
    """``1 - GIoU`` of matched ``(N, 4)`` boxes → ``(N,)`` (Rezatofighi et al. 2019)."""
    import torch

    lt = torch.maximum(pred[:, :2], target[:, :2])
    rb = torch.minimum(pred[:, 2:], target[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    ap = (pred[:, 2] - pred[:, 0]).clamp(min=0) * (pred[:, 3] - pred[:, 1]).clamp(min=0)
    at = (target[:, 2] - target[:, 0]).clamp(min=0) * (target[:, 3] - target[:, 1]).clamp(min=0)
    union = ap + at - inter
    iou = inter / (union + eps)
    enclose = (torch.maximum(pred[:, 2:], target[:, 2:]) - torch.minimum(pred[:, :2], target[:, :2])).clamp(min=0)
    enclose_area = enclose[:, 0] * enclose[:, 1]
    return 1.0 - (iou - (enclose_area - union) / (enclose_area + eps))
