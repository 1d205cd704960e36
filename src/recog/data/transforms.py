"""Deterministic preprocessing: resize by the model's policy, then normalize.

Pure functions over PIL images and numpy arrays; the model's
:class:`~recog.types.Preprocessing` record decides sizes and constants.
Training augmentation lives in :mod:`recog.data.augment`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from recog.types import Preprocessing


def resize_to_input(img: Image.Image, prep: Preprocessing) -> np.ndarray:
    """Resize an RGB image to the model input by ``prep.resize``.

    Returns:
        ``(H, W, 3)`` uint8 array with ``(H, W) == prep.size``.

    Example:
        >>> resize_to_input(Image.new("RGB", (640, 480)), Preprocessing(size=(224, 224))).shape
        (224, 224, 3)
    """
    h, w = prep.size
    if prep.resize == "stretch":
        out = img.resize((w, h), Image.BILINEAR, reducing_gap=3.0)
    elif prep.resize == "shorter_crop":
        scale = max(h, w) / prep.crop_pct / min(img.size)
        rw, rh = max(w, round(img.width * scale)), max(h, round(img.height * scale))
        left, top = (rw - w) // 2, (rh - h) // 2
        # resize only the region that survives the crop
        box = (left / scale, top / scale, (left + w) / scale, (top + h) / scale)
        out = img.resize((w, h), Image.BILINEAR, box=box, reducing_gap=3.0)
    else:  # letterbox
        scale = min(w / img.width, h / img.height)
        rw, rh = max(1, round(img.width * scale)), max(1, round(img.height * scale))
        fill = tuple(int(round(m * 255)) for m in prep.mean)
        out = Image.new("RGB", (w, h), fill)
        out.paste(img.resize((rw, rh), Image.BILINEAR, reducing_gap=3.0), ((w - rw) // 2, (h - rh) // 2))
    return np.asarray(out, dtype=np.uint8)


def normalize(arr: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """uint8 ``(..., H, W, 3)`` → float32 ``(..., 3, H, W)`` with ``(x/255 - mean) / std``."""
    scale = (1.0 / (255.0 * np.asarray(prep.std, dtype=np.float32)))
    shift = np.asarray(prep.mean, dtype=np.float32) / np.asarray(prep.std, dtype=np.float32)
    out = arr.astype(np.float32) * scale - shift
    return np.ascontiguousarray(np.moveaxis(out, -1, -3))


def preprocess(img: Image.Image, prep: Preprocessing) -> np.ndarray:
    """RGB image → normalized float32 ``(3, H, W)`` model input."""
    return normalize(resize_to_input(img, prep), prep)
