"""Frames with their results drawn on them: boxes with track ids, the top label, the anomaly heatmap."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from recog.video.tracker import Track


def annotate(image: np.ndarray, result: Any, tracks: Sequence[Track] | None = None, *,
             caption: str | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 frame + the task's result → a new ``(H, W, 3)`` uint8 frame.

    Detections are drawn as boxes captioned ``#id label score`` when ``tracks`` are given (only
    tracked objects are drawn then), else ``label score``; a classification as its top label and
    score in the corner; an anomaly result as the heatmap overlay with its verdict.
    ``caption`` (frame number, time) goes in the bottom-left corner.
    """
    from PIL import Image, ImageDraw

    from recog.detect.draw import PALETTE, draw_boxes

    if hasattr(result, "heatmap"):  # AnomalyResult
        from recog.anomaly.draw import overlay

        h, w = image.shape[:2]
        fw, fh = result.image_size or (w, h)
        boxes = [(x1 * w / fw, y1 * h / fh, x2 * w / fw, y2 * h / fh) for x1, y1, x2, y2 in result.boxes]
        norm = result.normalized_score
        pil = Image.fromarray(overlay(image, result.heatmap, boxes,
                                      caption=f"{result.verdict} {norm:.2f}" if norm is not None else None))
    elif hasattr(result, "boxes"):  # Detections
        if tracks is not None:
            pil = draw_boxes(image, np.array([t.box for t in tracks]).reshape(-1, 4),
                             [f"#{t.id} {t.label}" for t in tracks], scores=[t.score for t in tracks],
                             colors=[PALETTE[t.id % len(PALETTE)] for t in tracks])  # a colour per id
        else:
            pil = draw_boxes(image, result.boxes, result.labels, scores=result.scores, labels=result.all_labels)
    else:  # Classification
        pil = Image.fromarray(image)
        _corner_text(ImageDraw.Draw(pil), (0, 0), f"{result.label} {result.score:.2f}")
    if caption:
        draw = ImageDraw.Draw(pil)
        _corner_text(draw, (0, pil.size[1] - 14), caption)
    return np.asarray(pil)


def _corner_text(draw: Any, at: tuple[int, int], text: str) -> None:
    x, y = at
    draw.rectangle([x, y, x + 8 + draw.textlength(text), y + 14], fill=(0, 0, 0))
    draw.text((x + 4, y + 2), text, fill=(255, 255, 255))
