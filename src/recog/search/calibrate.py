"""Thresholds chosen on the data: synthetic copies against each image's nearest neighbour, fitted by EM.

See :func:`choose_threshold`. The copies (:func:`synthetic_copies`): resize
with a new aspect ratio, JPEG quality 30, greyscale, +30 % brightness, 85 %
centre crop; for embeddings also a horizontal flip and a 10° rotation
(perceptual hashes are not meant to survive those).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from recog.errors import InvalidInputError
from recog.search.pairs import decode_reduced, hash_image, nearest_neighbours, sample_indices

if TYPE_CHECKING:
    from PIL import Image

    from recog.runtime.predictor import Predictor

HASH_TRANSFORMS = ("resize", "jpeg30", "grey", "brighter", "crop85")
EMBED_TRANSFORMS = HASH_TRANSFORMS + ("hflip", "rotate10")


@dataclass(frozen=True)
class Threshold:
    """The decision threshold of one method and where it came from."""

    method: str
    value: float
    chosen: str  # "calibrated" | "given"
    rule: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def higher_is_closer(self) -> bool:
        return self.method == "embedding"

    def to_dict(self) -> dict[str, Any]:
        unit = "cosine similarity >=" if self.higher_is_closer else "Hamming distance (bits of 64) <="
        return {"method": self.method, "value": round(float(self.value), 4), "unit": unit, "chosen": self.chosen,
                "rule": self.rule, **self.detail}


def choose_threshold(method: str, positives: Sequence[float], nearest: Sequence[float]) -> Threshold:
    """The score above which a nearest neighbour is more likely a copy than a distinct image.

    The nearest-neighbour scores of the data are a mixture of copies and
    distinct images. The copy component is fixed to the scores of known
    synthetic copies (``positives``, a kernel density); the distinct component
    is a Gaussian; the mixing share and the Gaussian are fitted by EM. The
    threshold is where the posterior of "copy" reaches 0.5, scanning up from
    the distinct images' mean; where it never does (similar distinct images,
    no copies), the closest possible score. Scores are similarities for ``embedding``
    (higher is closer) and Hamming distances for hashes (lower is closer).

    Args:
        positives: scores between originals and their synthetic copies.
        nearest: each image's score to its nearest other (distinct-content) image.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> t = choose_threshold("embedding", rng.normal(0.93, 0.03, 100), rng.normal(0.4, 0.08, 200))
        >>> 0.5 < t.value < 0.85
        True
    """
    from scipy.stats import gaussian_kde

    higher = method == "embedding"
    sign = 1.0 if higher else -1.0
    pos = sign * np.asarray(positives, dtype=np.float64)
    s = sign * np.asarray(nearest, dtype=np.float64)
    if len(pos) < 2:
        raise InvalidInputError(f"cannot choose a {method} threshold: too few images could be copied and scored.",
                                hint="give --threshold")
    spread = max(float(pos.std()), 0.02 if higher else 1.0)
    density = gaussian_kde(pos + np.random.default_rng(0).normal(0, 1e-3 * spread, len(pos)))
    edge = float(np.quantile(pos, 0.05))
    rule = ("posterior 0.5 between synthetic copies (kernel density) and distinct images (Gaussian), "
            "fitted by EM on the nearest-neighbour scores")
    if len(s) < 3:
        value = edge
        share, mu, sd = None, None, None
    else:
        f_pos = density(s) + 1e-12
        low = s[s < edge]
        base = low if len(low) >= 3 else s
        best = None
        # EM from several starts (the distinct images' mean at low quantiles of the scores below the
        # weakest copies); the fit with the highest likelihood wins
        for q in (0.1, 0.25, 0.5):
            fit = _em(s, f_pos, float(np.quantile(base, q)), max(float(base.std()) / 2, 1e-3))
            if best is None or fit[3] > best[3] + 1e-9:
                best = fit
        share, mu, sd, _ = best
        top = 1.0 if higher else 0.0  # the closest possible score: similarity 1, distance 0
        grid = np.linspace(min(mu, top), top, 4000)
        f_neg = np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        post = share * density(grid) / (share * density(grid) + (1 - share) * f_neg + 1e-300)
        above = np.flatnonzero(post >= 0.5)
        # never more likely a copy: only the closest possible score counts (identical bytes are grouped anyway)
        value = float(grid[above[0]]) if len(above) else top
    value = sign * value
    if not higher:
        value = float(np.floor(value))
    detail = {"positives": _summary(sign * pos), "nearest_neighbours": _summary(sign * s),
              "copy_share": None if share is None else round(share, 4),
              "distinct_mean": None if mu is None else round(sign * mu, 4),
              "distinct_sd": None if sd is None else round(sd, 4)}
    return Threshold(method, value, "calibrated", rule, detail)


def _em(s: np.ndarray, f_pos: np.ndarray, mu: float, sd: float, share: float = 0.1
        ) -> tuple[float, float, float, float]:
    """EM for ``share * f_pos + (1 - share) * Normal(mu, sd)`` with ``f_pos`` fixed: ``(share, mu, sd, loglik)``."""
    n = len(s)
    for _ in range(500):
        f_neg = np.exp(-0.5 * ((s - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)) + 1e-300
        r = share * f_pos / (share * f_pos + (1 - share) * f_neg)
        share = float(np.clip(r.mean(), 1.0 / n, 1 - 1.0 / n))
        w = 1 - r
        mu_new = float((w * s).sum() / w.sum())
        sd = max(float(np.sqrt((w * (s - mu_new) ** 2).sum() / w.sum())), 1e-3)
        done = abs(mu_new - mu) < 1e-8
        mu = mu_new
        if done:
            break
    f_neg = np.exp(-0.5 * ((s - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    return share, mu, sd, float(np.log(share * f_pos + (1 - share) * f_neg + 1e-300).sum())


def _summary(x: np.ndarray) -> dict[str, Any]:
    if not len(x):
        return {"n": 0}
    q = np.quantile(x, [0.0, 0.05, 0.5, 0.95, 1.0])
    return {"n": int(len(x)), "min": round(float(q[0]), 4), "p05": round(float(q[1]), 4),
            "median": round(float(q[2]), 4), "p95": round(float(q[3]), 4), "max": round(float(q[4]), 4)}


# --------------------------------------------------------------------------- image work


def synthetic_copies(img: "Image.Image", names: Sequence[str] = EMBED_TRANSFORMS) -> dict[str, "Image.Image"]:
    """Known near-duplicate copies of an RGB image (the calibration positives)."""
    from PIL import Image, ImageEnhance, ImageOps

    w, h = img.size
    out: dict[str, Image.Image] = {}
    for name in names:
        if name == "resize":
            out[name] = img.resize((max(16, w // 2), max(16, int(h * 0.6))), Image.BILINEAR)
        elif name == "jpeg30":
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=30)
            out[name] = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        elif name == "grey":
            out[name] = img.convert("L").convert("RGB")
        elif name == "brighter":
            out[name] = ImageEnhance.Brightness(img).enhance(1.3)
        elif name == "crop85":
            out[name] = img.crop((int(w * 0.075), int(h * 0.075), int(w * 0.925), int(h * 0.925)))
        elif name == "hflip":
            out[name] = ImageOps.mirror(img)
        elif name == "rotate10":
            out[name] = img.rotate(10, resample=Image.BILINEAR)
        else:
            raise ValueError(f"unknown transform {name!r}")
    return out


def calibrate_embedding(model: "Predictor | None", paths: Sequence[Path], vecs: np.ndarray, sample: int) -> Threshold:
    """The embedding threshold for ``vecs`` (of ``paths``): copies of a sample embedded by ``model``."""
    if model is None:
        raise InvalidInputError("choosing an embedding threshold needs the model (to embed synthetic copies).",
                                hint="pass model=, or give threshold=")
    pick = sample_indices(len(paths), sample)
    done = decode_reduced([paths[i] for i in pick], 512, None)
    positives: list[float] = []
    for j, img in zip(done.kept, done.items):
        copies = synthetic_copies(img, EMBED_TRANSFORMS)
        e = model.embed([np.asarray(c) for c in copies.values()])
        positives += (e @ vecs[pick[j]]).tolist()
    nearest: list[float] = []
    if len(vecs) > 1:
        scores, _ = nearest_neighbours(vecs, 1)
        nearest = scores[:, 0].tolist()
    t = choose_threshold("embedding", positives, nearest)
    return Threshold(t.method, t.value, t.chosen, t.rule,
                     {**t.detail, "sampled_images": int(len(done.items)), "transforms": list(EMBED_TRANSFORMS)})


def calibrate_hash(method: str, images: Sequence["Image.Image"], bits: np.ndarray, sample: int) -> Threshold:
    """The Hamming threshold for ``bits`` (of ``images``): copies of a sample hashed the same way."""
    pick = sample_indices(len(images), sample)
    positives: list[float] = []
    for j in pick:
        for copy in synthetic_copies(images[j], HASH_TRANSFORMS).values():
            positives.append(float(bin(hash_image(copy, method) ^ int(bits[j])).count("1")))
    nearest: list[float] = []
    if len(bits) > 1:
        for start in range(0, len(bits), 2048):
            d = np.bitwise_count(bits[start:start + 2048, None] ^ bits[None, :]).astype(np.float64)
            d[np.arange(len(d)), np.arange(start, start + len(d))] = np.inf
            nearest += d.min(axis=1).tolist()
    t = choose_threshold(method, positives, nearest)
    return Threshold(t.method, t.value, t.chosen, t.rule,
                     {**t.detail, "sampled_images": int(len(pick)), "transforms": list(HASH_TRANSFORMS)})
