"""Pairs of close images: union-find groups, Hamming pairs of perceptual hashes, embedding neighbours."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

Progress = Callable[[int], None]


class UnionFind:
    """Disjoint sets over ``0..n-1``."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        """Sets with more than one member, each sorted, ordered by their first member."""
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return sorted((g for g in out.values() if len(g) > 1), key=lambda g: g[0])


def hamming_pairs(bits: np.ndarray, max_distance: int, *, block: int = 2048) -> list[tuple[int, int, float]]:
    """``(i, j, distance)`` for ``i < j`` with Hamming distance ``<= max_distance`` between uint64 hashes ``(n,)``."""
    bits = np.asarray(bits, dtype=np.uint64)
    out: list[tuple[int, int, float]] = []
    for start in range(0, len(bits), block):
        a = bits[start:start + block]
        d = np.bitwise_count(a[:, None] ^ bits[None, :])
        ii, jj = np.nonzero(d <= max_distance)
        keep = jj > ii + start
        out += [(int(i + start), int(j), float(d[i, j])) for i, j in zip(ii[keep], jj[keep])]
    return out


def nearest_neighbours(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each unit vector, its ``k`` most similar *other* vectors: ``(scores, indices)`` of shape ``(n, k)``.

    Exact below the ANN budget (:mod:`recog.search.ann`), IVF above it.
    """
    from recog.search.ann import AnnIndex, choose_kind

    n, dim = vectors.shape
    k = max(1, min(k, n - 1))
    kind = choose_kind(n, dim)
    ann = AnnIndex(dim, kind)
    if kind == "ivf":
        ann.train(vectors[np.random.default_rng(0).choice(n, min(n, 40 * 2 * int(np.sqrt(n))), replace=False)])
    ann.add(np.arange(n), vectors)
    scores, idx, _ = ann.search(vectors, k + 1)
    # drop each row's own entry (or the last one when it was not returned: an exact copy may outrank it)
    own = idx == np.arange(n)[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
    mask = np.ones_like(idx, dtype=bool)
    mask[np.arange(n), drop] = False
    return scores[mask].reshape(n, k), idx[mask].reshape(n, k)


def embedding_pairs(vectors: np.ndarray, min_similarity: float, *, k: int = 16) -> list[tuple[int, int, float]]:
    """``(i, j, cosine)`` for ``i < j`` among each vector's ``k`` nearest with similarity ``>= min_similarity``."""
    if len(vectors) < 2:
        return []
    scores, idx = nearest_neighbours(vectors, k)
    pairs: dict[tuple[int, int], float] = {}
    for i in range(len(vectors)):
        for s, j in zip(scores[i], idx[i]):
            if j >= 0 and s >= min_similarity:
                a, b = (i, int(j)) if i < j else (int(j), i)
                pairs[(a, b)] = max(pairs.get((a, b), -1.0), float(s))
    return [(a, b, s) for (a, b), s in sorted(pairs.items())]


def hash_image(img: "Image.Image", method: str) -> int:
    """A 64-bit perceptual hash (``phash`` or ``dhash``) as an int."""
    import imagehash

    fn = {"phash": imagehash.phash, "dhash": imagehash.dhash}[method]
    bits = fn(img).hash.ravel()
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def decode_reduced(paths: Sequence[Path], size: int, progress: Progress | None):
    """Decode ``paths`` with the safe loader, JPEGs reduced to about ``size`` pixels (a :class:`Decoded`)."""
    from recog.data.decode import decode_many
    from recog.io import load_image

    return decode_many(list(paths), lambda p: load_image(p, reduce_to=(size, size)), progress=progress)


def sample_indices(n: int, limit: int, seed: int = 0) -> np.ndarray:
    """``min(n, limit)`` sorted indices of ``range(n)``, drawn without replacement (seeded)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, min(n, limit), replace=False))
