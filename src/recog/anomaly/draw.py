"""Heatmap overlays: the image, its anomaly map in colour where it is high, the defect boxes.

Used by ``recog predict --draw`` and by the evaluation report. The map is
normalized (1.0 = threshold); colour (matplotlib's ``turbo``, blue to red)
fades in from 0.6 of the threshold and is fully drawn from 1.4 times it, so
a passing part stays readable and a defect stands out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: normalized scores drawn from transparent (LOW) to opaque (HIGH).
LOW, HIGH = 0.6, 1.4


def overlay(image: np.ndarray, norm_map: np.ndarray, boxes: Sequence[Sequence[float]] = (), *,
            mask: np.ndarray | None = None, caption: str | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 image + normalized map (any size; resized to the image) → ``(H, W, 3)`` uint8 overlay.

    Args:
        boxes: ``[x1, y1, x2, y2]`` in the image's pixels, drawn in red.
        mask: optional ground-truth ``(H, W)`` bool mask, outlined in green.
        caption: text written in the top-left corner.
    """
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    m = np.asarray(Image.fromarray(np.asarray(norm_map, np.float32), mode="F").resize((w, h), Image.BILINEAR))
    alpha = np.clip((m - LOW) / (HIGH - LOW), 0.0, 1.0)[..., None] * 0.7
    colour = colormaps["turbo"](np.clip((m - LOW) / (HIGH - LOW), 0.0, 1.0))[..., :3] * 255.0
    out = (image.astype(np.float32) * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)
    if mask is not None:
        from scipy import ndimage

        mk = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 0
        edge = mk & ~ndimage.binary_erosion(mk, iterations=max(1, round(min(h, w) / 256)))
        out[edge] = (40, 220, 60)
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    width = max(2, round(min(h, w) / 128))
    for x1, y1, x2, y2 in boxes:
        draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=(255, 40, 40), width=width)
    if caption:
        draw.rectangle([0, 0, 8 + 6 * len(caption), 14], fill=(0, 0, 0))
        draw.text((4, 2), caption, fill=(255, 255, 255))
    return np.asarray(pil)


def overlay_png(source: Any, result: Any, *, max_side: int | None = None, max_pixels: int | None = None) -> bytes:
    """PNG bytes of the overlay of an :class:`~recog.types.AnomalyResult` over ``source`` (read by the safe
    loader), with the verdict and normalized score as caption.

    Boxes are drawn in the image's own pixels (the result's ``image_size`` frame is scaled to it).
    ``max_side`` shrinks the image first so its longest side is at most that many pixels (the service's
    ``?overlay=true`` keeps responses small this way).
    """
    import io

    from PIL import Image

    from recog.io import load_image

    caps = {} if max_pixels is None else {"max_pixels": max_pixels}
    pil = load_image(source, reduce_to=None if max_side is None else (max_side, max_side), **caps)
    if max_side is not None and max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side), Image.BILINEAR)
    img = np.asarray(pil)
    h, w = img.shape[:2]
    fw, fh = result.image_size or (w, h)
    sx, sy = w / fw, h / fh
    boxes = [(x1 * sx, y1 * sy, x2 * sx, y2 * sy) for x1, y1, x2, y2 in result.boxes]
    norm = result.normalized_score
    caption = f"{result.verdict} {norm:.2f}" if norm is not None else f"score {result.score:.3g}"
    buf = io.BytesIO()
    Image.fromarray(overlay(img, result.heatmap, boxes, caption=caption)).save(buf, format="PNG")
    return buf.getvalue()


def draw_result(source: Any, result: Any, out: str | Path) -> Path:
    """Write the overlay PNG (:func:`overlay_png`, at the image's size) of ``result`` for ``source``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(overlay_png(source, result))
    return out


def overlay_base64(datas: Sequence[bytes], results: Sequence[Any], *, max_side: int = 768,
                   max_pixels: int | None = None) -> list[str]:
    """Base64 PNG overlays (longest side at most ``max_side``) of uploaded images and their results."""
    import base64

    return [base64.b64encode(overlay_png(d, r, max_side=max_side, max_pixels=max_pixels)).decode("ascii")
            for d, r in zip(datas, results)]


def overlay_paths(sources: Sequence[Any], out: str | Path) -> list[Path]:
    """Where ``recog predict --draw OUT`` writes each source's overlay.

    One source: ``OUT`` itself, unless it is an existing folder or ends with ``/``. Several
    sources: ``OUT`` is a folder and each overlay is ``<stem>.png`` (``<stem>-2.png``... when
    two sources share a stem).

    Example:
        >>> [str(p) for p in overlay_paths(["a/x.jpg", "b/x.jpg"], "heat")]
        ['heat/x.png', 'heat/x-2.png']
    """
    out = Path(out)
    if len(sources) == 1 and not out.is_dir() and not str(out).endswith(("/", "\\")):
        return [out if out.suffix else out.with_suffix(".png")]
    seen: dict[str, int] = {}
    paths = []
    for src in sources:
        stem = Path(str(src)).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        paths.append(out / (f"{stem}.png" if seen[stem] == 1 else f"{stem}-{seen[stem]}.png"))
    return paths
