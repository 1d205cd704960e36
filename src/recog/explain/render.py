"""From a map over the model input to pixels of the original image: geometry, overlay, peak.

Pure functions over numpy arrays and PIL images. The model sees the image
after the bundle's resize policy (``stretch``, ``shorter_crop``, ``letterbox``);
:func:`input_box` says which rectangle of the original image (after EXIF
orientation) the input's edges correspond to, and everything else follows
from that one rectangle.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from recog.types import Preprocessing

#: matplotlib colour map of overlays (perceptually uniform, readable in grey print).
COLORMAP = "inferno"
#: outline of an explained detector box: cyan, absent from the colour map.
BOX_COLOUR = (0, 230, 255)


def input_box(width: int, height: int, prep: Preprocessing) -> tuple[float, float, float, float]:
    """``[x1, y1, x2, y2]`` in original pixels that the model input's edges correspond to.

    ``stretch``: the whole image. ``shorter_crop``: the centre window the crop
    keeps (same arithmetic as :func:`recog.data.transforms.resize_to_input`).
    ``letterbox``: the input frame, which extends past the image where it is padded.

    Example:
        >>> input_box(640, 480, Preprocessing(size=(224, 224), resize="stretch"))
        (0.0, 0.0, 640.0, 480.0)
    """
    h, w = prep.size
    if prep.resize == "stretch":
        return 0.0, 0.0, float(width), float(height)
    if prep.resize == "shorter_crop":
        scale = max(max(h, w) / prep.crop_pct / min(width, height), w / width, h / height)
        cw, ch = w / scale, h / scale
        left, top = max(0.0, (width - cw) / 2), max(0.0, (height - ch) / 2)
        return left, top, left + cw, top + ch
    scale = min(w / width, h / height)
    rw, rh = max(1, round(width * scale)), max(1, round(height * scale))
    sx, sy = rw / width, rh / height
    ox, oy = (w - rw) // 2, (h - rh) // 2
    return -ox / sx, -oy / sy, (w - ox) / sx, (h - oy) / sy


def to_original(amap: np.ndarray, box: tuple[float, float, float, float], width: int, height: int) -> np.ndarray:
    """``(h, w)`` map over the model input → ``(height, width)`` float32 map over the original image.

    Bilinear; original pixels outside ``box`` (cut off by a centre crop) are 0.
    """
    import cv2

    h, w = amap.shape
    x1, y1, x2, y2 = box
    sx, sy = (x2 - x1) / w, (y2 - y1) / h
    m = np.array([[sx, 0.0, x1 + 0.5 * sx - 0.5], [0.0, sy, y1 + 0.5 * sy - 0.5]], dtype=np.float64)
    return cv2.warpAffine(np.ascontiguousarray(amap, np.float32), m, (int(width), int(height)),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def peak(amap: np.ndarray, box: tuple[float, float, float, float], width: int, height: int) -> list[int]:
    """``[x, y]`` original pixel at the centre of the map's highest cell (clipped to the image)."""
    h, w = amap.shape
    v, u = np.unravel_index(int(np.argmax(amap)), amap.shape)
    x1, y1, x2, y2 = box
    x = x1 + (u + 0.5) * (x2 - x1) / w
    y = y1 + (v + 0.5) * (y2 - y1) / h
    return [int(min(max(x, 0), width - 1)), int(min(max(y, 0), height - 1))]


def inside(point: list[int] | tuple[float, float], box: list[float] | tuple[float, ...]) -> bool:
    """Whether ``[x, y]`` lies in ``[x1, y1, x2, y2]`` (edges included).

    Example:
        >>> inside([5, 5], [0, 0, 10, 10]), inside([11, 5], [0, 0, 10, 10])
        (True, False)
    """
    x, y = point
    return bool(box[0] <= x <= box[2] and box[1] <= y <= box[3])


def display_map(amap: np.ndarray) -> np.ndarray:
    """A signed attribution map → ``[0, 1]`` for display: the positive evidence, scaled to its maximum.

    Integrated gradients are noisy pixel by pixel; callers blur them first (:func:`smooth`).
    """
    pos = np.maximum(np.nan_to_num(np.asarray(amap, np.float32)), 0.0)
    top = float(pos.max())
    return pos / top if top > 0 else pos


def smooth(amap: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a 2-D map (sigma in map pixels)."""
    import cv2

    return cv2.GaussianBlur(np.ascontiguousarray(amap, np.float32), (0, 0), sigmaX=max(sigma, 0.1))


def overlay(image: Image.Image, heat: np.ndarray, *, alpha: float = 0.6) -> Image.Image:
    """The image with ``heat`` (``(H, W)`` in ``[0, 1]``, same size) blended on top in :data:`COLORMAP`.

    Opacity follows the heat: where the map is 0 the photo shows unchanged.
    """
    from matplotlib import colormaps

    rgb = np.asarray(image.convert("RGB"), np.float32)
    heat = np.clip(np.nan_to_num(heat), 0.0, 1.0)
    colour = colormaps[COLORMAP](heat)[..., :3].astype(np.float32) * 255.0
    a = (alpha * heat)[..., None]
    return Image.fromarray(np.clip(rgb * (1 - a) + colour * a, 0, 255).astype(np.uint8), "RGB")


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=3)
    return buf.getvalue()
