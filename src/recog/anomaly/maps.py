"""From patch scores to what a person looks at: a smooth heatmap, an image score, defect boxes.

Pure functions over numpy arrays (no model): the task's postprocessing, the
evaluation and the benchmark share them.

* :func:`grid_shape`: the ``(h, w)`` patch grid behind a flattened ``(h * w,)`` score row.
* :func:`heatmap`: patch scores upsampled (bilinear) to the model input and
  Gaussian-smoothed (``sigma = 4`` input pixels, PatchCore's choice).
* :func:`regions`: connected components of ``heatmap > threshold``
  (scipy.ndimage, 8-connected) as ``[x1, y1, x2, y2]`` boxes scaled to the
  original image, each with its peak score.

The image score is the largest patch distance (PatchCore's; smoothing first
costs 0.025 image AUROC on pcb, where defects span one or two patches), and
the smoothed heatmap is rescaled so that its peak equals it
(:func:`peak_preserving`): an image fails exactly when its heatmap has a
region above the threshold, so the verdict and the boxes never disagree.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Gaussian smoothing of the upsampled map, in model-input pixels.
SIGMA = 4.0


def grid_shape(n: int, size: tuple[int, int]) -> tuple[int, int]:
    """The ``(h, w)`` patch grid with ``h * w == n`` for a model input of ``size = (H, W)``.

    The grid is the input divided by a power-of-two stride, rounded up (SAME
    padding) or down (ViT patches); a square input gives a square grid.

    Example:
        >>> grid_shape(64 * 48, (512, 384))
        (64, 48)
    """
    H, W = size
    for s in (1, 2, 4, 8, 16, 32, 64):
        for h, w in ((-(-H // s), -(-W // s)), (H // s, W // s)):
            if h * w == n:
                return h, w
    side = int(round(n ** 0.5))
    if side * side == n:
        return side, side
    raise ValueError(f"{n} patch scores do not form a grid for a {H}x{W} input.")


def heatmap(patch: np.ndarray, size: tuple[int, int], *, sigma: float = SIGMA) -> np.ndarray:
    """``(h, w)`` patch scores → ``(H, W)`` float32 map at the model input size, smoothed.

    Example:
        >>> heatmap(np.ones((4, 4), np.float32), (32, 32)).shape
        (32, 32)
    """
    from PIL import Image
    from scipy import ndimage

    H, W = size
    img = Image.fromarray(np.ascontiguousarray(patch, dtype=np.float32), mode="F")
    up = np.asarray(img.resize((W, H), Image.BILINEAR), dtype=np.float32)
    return ndimage.gaussian_filter(up, sigma, mode="nearest") if sigma > 0 else up


def peak_preserving(smoothed: np.ndarray, peak: float) -> np.ndarray:
    """``smoothed`` scaled so that its maximum is ``peak`` (unchanged when its maximum is not positive).

    Example:
        >>> peak_preserving(np.array([[1.0, 2.0]]), 3.0).tolist()
        [[1.5, 3.0]]
    """
    top = float(smoothed.max())
    return smoothed * np.float32(peak / top) if top > 0 else smoothed


def regions(norm_map: np.ndarray, image_size: tuple[int, int], *, level: float = 1.0,
            min_area: int = 1) -> tuple[list[list[float]], list[float]]:
    """Boxes around the connected regions where ``norm_map > level``, scaled to ``image_size``.

    Args:
        norm_map: ``(H, W)`` heatmap divided by the threshold (1.0 = threshold).
        image_size: ``(width, height)`` of the frame the boxes are given in
            (the original image); ``norm_map`` covers it whole (stretch resize).
        level: the normalized score a pixel must reach.
        min_area: smallest region kept, in map pixels.

    Returns:
        ``(boxes, scores)``: ``[x1, y1, x2, y2]`` pixel edges in the original
        image, and each region's peak normalized score; highest first.

    Example:
        >>> m = np.zeros((10, 10)); m[2:4, 5:8] = 2.0
        >>> regions(m, (100, 100))
        ([[50.0, 20.0, 80.0, 40.0]], [2.0])
    """
    from scipy import ndimage

    mask = norm_map > level
    if not mask.any():
        return [], []
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    H, W = norm_map.shape
    sx, sy = image_size[0] / W, image_size[1] / H
    peaks = ndimage.maximum(norm_map, labels, index=np.arange(1, count + 1))
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    out = []
    for sl, peak, area in zip(ndimage.find_objects(labels), np.atleast_1d(peaks), np.atleast_1d(areas)):
        if area < min_area:
            continue
        ys, xs = sl
        box = [round(xs.start * sx, 1), round(ys.start * sy, 1), round(xs.stop * sx, 1), round(ys.stop * sy, 1)]
        out.append((float(peak), box))
    out.sort(key=lambda t: -t[0])
    return [b for _, b in out], [round(p, 6) for p, _ in out]


def peaks(norm_map: np.ndarray, *, level: float = 1.0, window: int = 15) -> np.ndarray:
    """``(K, 2)`` ``(x, y)`` map pixels of local maxima at or above ``level`` (a ``window``-pixel neighbourhood)."""
    from scipy import ndimage

    local = ndimage.maximum_filter(norm_map, size=window, mode="nearest")
    ys, xs = np.nonzero((norm_map == local) & (norm_map >= level))
    return np.stack([xs, ys], axis=1) if len(xs) else np.zeros((0, 2), np.int64)


def box_hits(peak_xy: np.ndarray, boxes: Sequence[Sequence[float]], *, margin: float = 0.0) -> np.ndarray:
    """Per box, whether any peak ``(x, y)`` (same pixel frame) lies inside it, grown by ``margin`` pixels."""
    out = np.zeros(len(boxes), bool)
    if len(peak_xy) == 0:
        return out
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        inside = ((peak_xy[:, 0] >= x1 - margin) & (peak_xy[:, 0] <= x2 + margin)
                  & (peak_xy[:, 1] >= y1 - margin) & (peak_xy[:, 1] <= y2 + margin))
        out[i] = bool(inside.any())
    return out
