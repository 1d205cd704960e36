"""One function per feature kind: an RGB image → a fixed-length float32 vector (pure, no state).

Every image is first resized to ``size x size`` (stretch) so vectors of one
kind have one length across a data set:

=========  =====================================================  ===========================
kind       what                                                   length (size 128)
=========  =====================================================  ===========================
hog        scikit-image HOG: 9 bins, 8x8 cells, 2x2 blocks,       8100
           L2-Hys
lbp        uniform LBP (P=8, R=1) histogram, 10 bins, sum 1        10
color      HSV histograms, 16 bins per channel, each sums to 1     48
edges      Canny (thresholds from the median): edge density,       1 + 8 + 16 = 25
           8-bin edge orientation histogram, 4x4 grid densities
corners    Shi-Tomasi (``method="shi-tomasi"``) or Harris corners:  1 + 16 = 17
           count / max_corners, 4x4 grid shares
=========  =====================================================  ===========================
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PIL import Image

from recog.errors import ConfigError, did_you_mean

KINDS = ("hog", "lbp", "color", "edges", "corners")
DEFAULT_SIZE = 128
MAX_CORNERS = 200


def _prepare(image: Image.Image, size: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
    import cv2

    return rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def hog_vector(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 → HOG (9 orientations, 8x8-pixel cells, 2x2-cell blocks, L2-Hys)."""
    from skimage.feature import hog

    return hog(grey, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")


def lbp_codes(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` uniform LBP codes in ``0..9`` (P=8 neighbours at radius 1)."""
    from skimage.feature import local_binary_pattern

    return local_binary_pattern(grey, 8, 1, method="uniform")


def lbp_vector(grey: np.ndarray) -> np.ndarray:
    hist = np.bincount(lbp_codes(grey).astype(np.int64).ravel(), minlength=10)[:10].astype(np.float64)
    return hist / max(hist.sum(), 1)


def color_vector(rgb: np.ndarray, bins: int = 16) -> np.ndarray:
    """HSV histograms (OpenCV ranges: H 0-180, S and V 0-256), ``bins`` per channel, each normalised."""
    import cv2

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    parts = []
    for ch, top in ((0, 180), (1, 256), (2, 256)):
        h = cv2.calcHist([hsv], [ch], None, [bins], [0, top]).ravel()
        parts.append(h / max(h.sum(), 1))
    return np.concatenate(parts)


def canny(grey: np.ndarray) -> np.ndarray:
    """Canny edges ``(H, W)`` bool, thresholds 0.66x and 1.33x the median grey level."""
    import cv2

    med = float(np.median(grey))
    return cv2.Canny(grey, int(max(0, 0.66 * med)), int(min(255, max(1.33 * med, 1)))) > 0


def _grid(mask_or_points: np.ndarray, shape: tuple[int, int], g: int = 4) -> np.ndarray:
    h, w = shape
    ys, xs = mask_or_points
    cells = np.zeros((g, g))
    np.add.at(cells, (np.minimum(ys * g // h, g - 1).astype(int), np.minimum(xs * g // w, g - 1).astype(int)), 1)
    return cells.ravel()


def edges_vector(grey: np.ndarray) -> np.ndarray:
    import cv2

    e = canny(grey)
    ys, xs = np.nonzero(e)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)[e]
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)[e]
    ang = np.mod(np.arctan2(gy, gx), np.pi)
    orient = np.bincount(np.minimum((ang / np.pi * 8).astype(int), 7), minlength=8).astype(np.float64)
    n = max(len(ys), 1)
    grid = _grid((ys, xs), grey.shape) / (grey.size / 16)
    return np.concatenate([[len(ys) / grey.size], orient / n, grid])


def corner_points(grey: np.ndarray, method: str = "shi-tomasi", max_corners: int = MAX_CORNERS) -> np.ndarray:
    """``(K, 2)`` corner (x, y) pixels, strongest first: Shi-Tomasi or Harris (OpenCV goodFeaturesToTrack)."""
    import cv2

    if method not in ("shi-tomasi", "harris"):
        raise ConfigError(f"unknown corner method {method!r}.", hint="use shi-tomasi or harris")
    pts = cv2.goodFeaturesToTrack(grey, max_corners, 0.01, 3, useHarrisDetector=method == "harris", k=0.04)
    return np.zeros((0, 2), np.float32) if pts is None else pts.reshape(-1, 2)


def corners_vector(grey: np.ndarray, method: str = "shi-tomasi") -> np.ndarray:
    pts = corner_points(grey, method)
    grid = _grid((pts[:, 1], pts[:, 0]), grey.shape) / max(len(pts), 1)
    return np.concatenate([[len(pts) / MAX_CORNERS], grid])


_EXTRACT: dict[str, Callable[..., np.ndarray]] = {
    "hog": lambda rgb, grey, **kw: hog_vector(grey),
    "lbp": lambda rgb, grey, **kw: lbp_vector(grey),
    "color": lambda rgb, grey, **kw: color_vector(rgb),
    "edges": lambda rgb, grey, **kw: edges_vector(grey),
    "corners": lambda rgb, grey, method="shi-tomasi", **kw: corners_vector(grey, method),
}


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown feature kind {kind!r}.", hint=did_you_mean(kind, KINDS) or f"use one of {', '.join(KINDS)}")


def extract(image: Image.Image, kind: str, *, size: int = DEFAULT_SIZE, **options: Any) -> np.ndarray:
    """A ``(D,)`` float32 feature vector of ``kind`` for one RGB image (resized to ``size x size``).

    Example:
        >>> extract(Image.new("RGB", (50, 40)), "lbp").shape
        (10,)
    """
    check_kind(kind)
    rgb, grey = _prepare(image, size)
    return np.asarray(_EXTRACT[kind](rgb, grey, **options), dtype=np.float32)


def feature_names(kind: str, length: int) -> list[str]:
    """Column names for a vector of ``kind`` (``hog_0`` ... or the named parts)."""
    check_kind(kind)
    return [f"{kind}_{i}" for i in range(length)]


def draw(image: Image.Image, kind: str, *, size: int = DEFAULT_SIZE, **options: Any) -> Image.Image:
    """An RGB picture of what ``kind`` measured: HOG glyphs, LBP codes, edges in red, corners circled,
    or the colour histograms as bars under the image. At the original size (colour: plus the bars)."""
    import cv2

    check_kind(kind)
    rgb = np.asarray(image.convert("RGB"))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if kind == "hog":
        from skimage.feature import hog

        _, vis = hog(grey, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), visualize=True)
        vis = (255 * vis / max(float(vis.max()), 1e-12)).astype(np.uint8)
        return Image.fromarray(np.stack([vis] * 3, -1))
    if kind == "lbp":
        codes = (lbp_codes(grey) * (255 / 9)).astype(np.uint8)
        return Image.fromarray(cv2.applyColorMap(codes, cv2.COLORMAP_VIRIDIS)[..., ::-1].copy())
    if kind == "edges":
        out = (rgb * 0.5).astype(np.uint8)
        out[canny(grey)] = (255, 0, 0)
        return Image.fromarray(out)
    if kind == "corners":
        out = rgb.copy()
        r = max(2, min(out.shape[:2]) // 100)
        for x, y in corner_points(grey, options.get("method", "shi-tomasi")):
            cv2.circle(out, (int(x), int(y)), r, (255, 0, 0), 1)
        return Image.fromarray(out)
    hist = color_vector(rgb)
    h, w = rgb.shape[:2]
    bars = np.full((64, w, 3), 255, np.uint8)
    n = len(hist)
    colours = [(255, 0, 0)] * 16 + [(0, 160, 0)] * 16 + [(0, 0, 255)] * 16
    for i, (v, c) in enumerate(zip(hist, colours)):
        x0, x1 = i * w // n, max(i * w // n + 1, (i + 1) * w // n - 1)
        bars[64 - int(round(63 * v)):, x0:x1] = c
    return Image.fromarray(np.concatenate([rgb, bars], 0))
