"""Pictures of boxes: detections (and ground truth) drawn on the image, for ``--draw``, previews and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: one colour per class (cycled), chosen to read on photos and on pale microscope slides.
PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (128, 0, 0), (0, 128, 128))
TRUTH = (40, 200, 40)
PREDICTED = (230, 30, 30)


def draw_boxes(image: Any, boxes: np.ndarray, names: Sequence[str], *, scores: Sequence[float] | None = None,
               colors: Sequence[tuple[int, int, int]] | None = None, labels: Sequence[str] = (),
               width: int | None = None) -> Any:
    """A copy of ``image`` (PIL or ``(H, W, 3)`` uint8) with ``boxes`` outlined and captioned.

    Colours: ``colors`` per box, else one per class (its index in ``labels``, else in order of appearance).
    """
    from PIL import Image, ImageDraw

    img = (image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))).convert("RGB").copy()
    draw = ImageDraw.Draw(img)
    width = width or max(1, round(max(img.size) / 320))
    order = list(labels) or list(dict.fromkeys(names))
    for k, (box, name) in enumerate(zip(np.asarray(boxes, float).reshape(-1, 4), names)):
        color = colors[k] if colors is not None else PALETTE[order.index(name) % len(PALETTE)]
        x1, y1, x2, y2 = box.tolist()
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        caption = name if scores is None else f"{name} {scores[k]:.2f}"
        tw = draw.textlength(caption)
        ty = y1 - 11 if y1 >= 11 else y1
        draw.rectangle([x1, ty, x1 + tw + 4, ty + 11], fill=color)
        draw.text((x1 + 2, ty), caption, fill=(255, 255, 255))
    return img


def draw_detections(source: str | Path, result: Any, out: str | Path) -> Path:
    """Write ``source`` with ``result``'s boxes (a :class:`~recog.detect.result.Detections`) to ``out``."""
    from recog.io import load_image

    img = draw_boxes(load_image(source), result.boxes, result.labels, scores=result.scores,
                     labels=result.all_labels)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out


def draw_comparison(image: Any, truth: np.ndarray, truth_names: Sequence[str], pred: np.ndarray,
                    pred_names: Sequence[str], pred_scores: Sequence[float]) -> Any:
    """True boxes in green and predicted ones in red on one image (the report's worst-images grid)."""
    img = draw_boxes(image, truth, truth_names, colors=[TRUTH] * len(truth))
    return draw_boxes(img, pred, pred_names, scores=pred_scores, colors=[PREDICTED] * len(pred))
