"""Greedy k-center coreset: a small memory bank that still covers every good patch.

PatchCore's subsampling: start from one point, repeatedly add the point
farthest from everything chosen so far. The chosen set covers the whole
feature cloud (rare patches included, unlike a random sample), so the nearest
bank entry of a good patch stays close.

For speed the distances are computed on a random Gaussian projection of the
features to ``proj_dim`` dimensions (Johnson-Lindenstrauss: distances kept up
to a small factor), and large sets are reduced in two rounds: first each
image's patches to ``ratio * per_image_boost`` of themselves, then the union
to the target size. Both rounds are the same greedy rule, so rare patches
(the ones that matter: they are far from the rest) survive the first round.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

#: random projection size used only to choose the coreset (the bank keeps full features).
PROJ_DIM = 64


def greedy_k_center(x: "np.ndarray", k: int, *, proj_dim: int = PROJ_DIM, seed: int = 0,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Indices of ``k`` rows of ``x`` ``(P, D)`` chosen by greedy k-center (farthest-point) selection.

    Args:
        x: features, one row per patch.
        k: rows to keep (all when ``k >= P``).
        proj_dim: distances are measured on a random projection to this many
            dimensions (none when ``D <= proj_dim``).
        seed: seeds the projection and the first point.
        progress: called with 1 per chosen row.

    Returns:
        ``(k,)`` int64 indices, in the order chosen.

    Example:
        >>> pts = np.array([[0.0], [0.1], [10.0], [5.0]])
        >>> sorted(greedy_k_center(pts, 2, seed=0).tolist()) in ([0, 2], [1, 2], [2, 3], [0, 3])
        True
    """
    import torch

    n = len(x)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    gen = torch.Generator().manual_seed(seed)
    t = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    if t.shape[1] > proj_dim:
        proj = torch.randn(t.shape[1], proj_dim, generator=gen) / proj_dim ** 0.5
        t = t @ proj
    sq = (t * t).sum(1)
    chosen = np.empty(k, dtype=np.int64)
    current = int(torch.randint(n, (1,), generator=gen))
    min_d = torch.full((n,), float("inf"))
    with torch.inference_mode():
        for i in range(k):
            chosen[i] = current
            c = t[current]
            d = sq - 2.0 * (t @ c) + sq[current]
            torch.minimum(min_d, d, out=min_d)
            current = int(torch.argmax(min_d))
            if progress:
                progress(1)
    return chosen


def plan(images: int, patches_per_image: int, ratio: float, max_size: int | None = None) -> tuple[int, int]:
    """``(target, keep)``: the bank size, and the patches each image keeps in the first round (4x its share).

    Example:
        >>> plan(100, 4096, 0.02, max_size=4096)
        (4096, 164)
    """
    target = max(1, int(np.ceil(ratio * images * patches_per_image)))
    if max_size is not None:
        target = min(target, max_size)
    return target, min(patches_per_image, max(1, int(np.ceil(4 * target / max(1, images)))))


def coreset(per_image: Sequence[np.ndarray], ratio: float, *, max_size: int | None = None, seed: int = 0,
            proj_dim: int = PROJ_DIM, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """A memory bank from per-image patch features: about ``ratio`` of all patches, chosen in two rounds.

    Args:
        per_image: one ``(P, D)`` array per good image (the same ``P`` for all).
        ratio: fraction of all patches to keep (0.01 to 0.1 is typical).
        max_size: cap on the bank's rows (latency grows linearly with it).
        progress: called with 1 per image of the first round.

    Returns:
        ``(M, D)`` float32 bank, ``M = min(max_size, ceil(ratio * sum P))`` (at least 1).
    """
    target, keep = plan(len(per_image), len(per_image[0]), ratio, max_size)
    firsts = []
    for i, feats in enumerate(per_image):
        firsts.append(feats[greedy_k_center(feats, keep, proj_dim=proj_dim, seed=seed + i)])
        if progress:
            progress(1)
    return select(firsts, target, seed=seed, proj_dim=proj_dim)


def select(firsts: Sequence[np.ndarray], target: int, *, seed: int = 0, proj_dim: int = PROJ_DIM) -> np.ndarray:
    """The second round: ``target`` rows of the union of the first-round picks, by greedy k-center."""
    pool = np.concatenate(firsts).astype(np.float32, copy=False)
    return pool[greedy_k_center(pool, target, proj_dim=proj_dim, seed=seed)]
