"""Deterministic preprocessing: resize by the model's policy, then normalize.

Pure functions over PIL images and numpy arrays; the model's
:class:`~recog.types.Preprocessing` record decides sizes and constants.
Training augmentation lives in :mod:`recog.data.augment`.
"""

from __future__ import annotations

import functools

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
        # resize only the region that survives the crop: a window of (w, h) / scale source pixels,
        # centred exactly (sub-pixel), so a reduced JPEG decode crops the same scene as a full one
        scale = max(max(h, w) / prep.crop_pct / min(img.size), w / img.width, h / img.height)
        cw, ch = w / scale, h / scale
        left, top = max(0.0, (img.width - cw) / 2), max(0.0, (img.height - ch) / 2)  # rounding may go below 0
        out = img.resize((w, h), Image.BILINEAR, box=(left, top, left + cw, top + ch), reducing_gap=3.0)
    else:  # letterbox
        scale = min(w / img.width, h / img.height)
        rw, rh = max(1, round(img.width * scale)), max(1, round(img.height * scale))
        fill = tuple(int(round(m * 255)) for m in prep.mean)
        out = Image.new("RGB", (w, h), fill)
        out.paste(img.resize((rw, rh), Image.BILINEAR, reducing_gap=3.0), ((w - rw) // 2, (h - rh) // 2))
    return np.asarray(out, dtype=np.uint8)


def normalize(arr: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """uint8 ``(..., H, W, 3)`` → float32 ``(..., 3, H, W)`` with ``(x/255 - mean) / std``.

    Scale, shift and the HWC → CHW transpose happen in one pass: OpenCV's
    ``blobFromImagesWithParams`` when it is available, else one 256-entry
    lookup table per channel (uint8 input has only 256 values per channel).
    About 7x faster than the plain numpy arithmetic on a 224 px image
    (``benchmarks/preprocess.py``); results agree to float32 rounding.

    Example:
        >>> normalize(np.zeros((2, 2, 3), np.uint8), Preprocessing()).shape
        (3, 2, 2)
    """
    if arr.shape[-1] != 3 or arr.ndim < 3:
        raise ValueError(f"expected (..., H, W, 3) pixels, got shape {arr.shape}")
    std = np.asarray(prep.std, dtype=np.float64)
    mean = np.asarray(prep.mean, dtype=np.float64)
    if arr.dtype != np.uint8:
        out = arr.astype(np.float32) * (1.0 / (255.0 * std)).astype(np.float32) - (mean / std).astype(np.float32)
        return np.ascontiguousarray(np.moveaxis(out, -1, -3))
    fused = _normalize_cv2(arr, mean, std)
    if fused is not None:
        return fused
    out = np.empty(arr.shape[:-3] + (3,) + arr.shape[-3:-1], dtype=np.float32)
    for c, lut in enumerate(_luts(tuple(mean), tuple(std))):
        np.take(lut, arr[..., c], out=out[..., c, :, :])
    return out


@functools.lru_cache(maxsize=16)
def _luts(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    levels = np.arange(256, dtype=np.float64) / 255.0
    return tuple(((levels - m) / s).astype(np.float32) for m, s in zip(mean, std))


def _normalize_cv2(arr: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray | None:
    """One-pass normalize + transpose with OpenCV; None when OpenCV cannot take this input."""
    try:
        import cv2
    except ImportError:
        return None
    if not hasattr(cv2.dnn, "blobFromImagesWithParams") or arr.ndim not in (3, 4) or min(arr.shape[-3:-1]) < 1:
        return None
    params = cv2.dnn.Image2BlobParams()
    params.scalefactor = tuple(float(v) for v in 1.0 / (255.0 * std)) + (0.0,)
    params.mean = tuple(float(v) for v in 255.0 * mean) + (0.0,)
    params.size = (int(arr.shape[-2]), int(arr.shape[-3]))
    params.swapRB = False
    params.ddepth = cv2.CV_32F
    images = [np.ascontiguousarray(arr)] if arr.ndim == 3 else [np.ascontiguousarray(a) for a in arr]
    if not images:
        return np.zeros((0, 3) + arr.shape[-3:-1], np.float32)
    blob = cv2.dnn.blobFromImagesWithParams(images, params)
    return blob[0] if arr.ndim == 3 else blob


def preprocess(img: Image.Image, prep: Preprocessing) -> np.ndarray:
    """RGB image → normalized float32 ``(3, H, W)`` model input."""
    return normalize(resize_to_input(img, prep), prep)
