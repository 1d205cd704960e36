"""Input statistics of one image: size, brightness, contrast, sharpness (the drift report's inputs).

Computed the same way for the training reference (files) and for logged requests (bytes), on a
reduced greyscale copy (JPEG ``draft`` decoding, longest side at most 128 px) so one call costs
about a millisecond.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

#: names of the figures :func:`image_stats` returns, in order.
STAT_NAMES = ("width", "height", "brightness", "contrast", "blur")
_SIDE = 128


def image_stats(source: bytes | str | Path) -> dict[str, float] | None:
    """``{width, height, brightness, contrast, blur}`` of an image, None when it does not decode.

    ``brightness`` and ``contrast`` are the mean and standard deviation of grey levels (0-255);
    ``blur`` is the variance of the Laplacian of the reduced copy (lower = blurrier).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            width, height = im.size
            im.draft("L", (_SIDE, _SIDE))
            grey = im.convert("L")
            grey.thumbnail((_SIDE, _SIDE))
            a = np.asarray(grey, dtype=np.float32)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    lap = (a[1:-1, 1:-1] * 4 - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]) if min(a.shape) > 2 else a
    return {"width": float(width), "height": float(height), "brightness": float(a.mean()),
            "contrast": float(a.std()), "blur": float(lap.var())}


def image_size_only(source: bytes) -> dict[str, float] | None:
    """``{width, height}`` from the image header alone (no pixel decoding), None when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source)) as im:
            width, height = im.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    return {"width": float(width), "height": float(height)}


def stats_table(sources: Sequence[bytes | str | Path]) -> np.ndarray:
    """``(N, 5)`` float array of :data:`STAT_NAMES` per readable source (unreadable ones dropped)."""
    rows = [image_stats(s) for s in sources]
    return np.array([[r[k] for k in STAT_NAMES] for r in rows if r is not None], dtype=np.float64).reshape(-1, 5)
