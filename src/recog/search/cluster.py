"""Clusters of images by embedding: k-means, agglomerative or HDBSCAN (scikit-learn), k chosen by silhouette.

``k="auto"`` tries every k in ``k_range`` and keeps the one with the highest
mean silhouette coefficient (cosine distance, on at most 3000 sampled images,
seeded): the criterion and every k's score are written in the output. HDBSCAN
finds the number of clusters itself and leaves outliers unassigned (cluster -1).

Example:
    >>> result = cluster_vectors(vectors, k="auto")                          # doctest: +SKIP
    >>> result.k, result.criterion                                           # doctest: +SKIP
    (7, 'silhouette (cosine)')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recog.errors import InvalidInputError

ALGORITHMS = ("kmeans", "agglomerative", "hdbscan")
SILHOUETTE_SAMPLE = 3000


@dataclass
class ClusterResult:
    """Cluster labels of ``paths`` (``-1``: noise, HDBSCAN only) and how k was chosen."""

    algorithm: str
    k: int
    criterion: str
    labels: np.ndarray
    similarity: np.ndarray  # cosine similarity of each image to its cluster's mean direction
    scores: dict[int, float] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def sizes(self) -> dict[int, int]:
        ids, counts = np.unique(self.labels, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}

    def to_dict(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "k": self.k, "criterion": self.criterion,
                "scores": {str(k): round(v, 4) for k, v in self.scores.items()},
                "sizes": {str(k): v for k, v in self.sizes().items()}, "images": len(self.labels),
                "failed": [{"path": p, "reason": r} for p, r in self.failures]}


def _silhouette(x: np.ndarray, labels: np.ndarray, seed: int) -> float:
    from sklearn.metrics import silhouette_score

    mask = labels >= 0
    if len(np.unique(labels[mask])) < 2 or mask.sum() < 3:
        return -1.0
    n = int(mask.sum())
    return float(silhouette_score(x[mask], labels[mask], metric="cosine",
                                  sample_size=min(n, SILHOUETTE_SAMPLE), random_state=seed))


def _fit(x: np.ndarray, algorithm: str, k: int, seed: int) -> np.ndarray:
    if algorithm == "kmeans":
        from sklearn.cluster import KMeans, MiniBatchKMeans

        est = (KMeans(n_clusters=k, n_init=4, random_state=seed) if len(x) <= 20000 else
               MiniBatchKMeans(n_clusters=k, n_init=3, random_state=seed, batch_size=4096))
        return est.fit_predict(x)
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(x)


def default_k_range(n: int) -> tuple[int, int]:
    """``(2, min(30, 2 sqrt(n)))``, and never more than ``n - 1`` clusters."""
    return 2, max(2, min(30, n - 1, int(2 * np.sqrt(n))))


def cluster_vectors(vectors: np.ndarray, *, k: int | str = "auto", algorithm: str = "kmeans",
                    k_range: tuple[int, int] | None = None, min_cluster_size: int | None = None,
                    seed: int = 0) -> ClusterResult:
    """Cluster L2-normalised ``(n, dim)`` vectors.

    Args:
        k: number of clusters, or ``"auto"`` (silhouette over ``k_range``; ignored by HDBSCAN).
        algorithm: ``kmeans``, ``agglomerative`` (average linkage, cosine) or ``hdbscan``.
        k_range: inclusive ``(lo, hi)`` tried by ``auto`` (default :func:`default_k_range`).
        min_cluster_size: HDBSCAN's smallest cluster (default ``max(5, n // 100)``).

    Raises:
        InvalidInputError: unknown algorithm, bad k, or fewer than 3 images.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    if algorithm not in ALGORITHMS:
        raise InvalidInputError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}.")
    if n < 3:
        raise InvalidInputError(f"clustering needs at least 3 images, got {n}.")
    scores: dict[int, float] = {}
    if algorithm == "hdbscan":
        from sklearn.cluster import HDBSCAN

        size = int(min_cluster_size or max(5, n // 100))
        labels = HDBSCAN(min_cluster_size=min(size, n), metric="euclidean", copy=True).fit_predict(x)
        chosen = int(len(set(labels.tolist()) - {-1}))
        criterion = f"HDBSCAN density clusters (min_cluster_size {size}); -1 = outlier"
        if chosen >= 2:
            scores[chosen] = _silhouette(x, labels, seed)
    elif k == "auto":
        lo, hi = k_range or default_k_range(n)
        lo, hi = max(2, int(lo)), min(int(hi), n - 1)
        if hi < lo:
            raise InvalidInputError(f"cannot try k from {lo} to {hi} with {n} images.")
        best = None
        for kk in range(lo, hi + 1):
            lab = _fit(x, algorithm, kk, seed)
            scores[kk] = _silhouette(x, lab, seed)
            if best is None or scores[kk] > scores[best[0]] + 1e-9:
                best = (kk, lab)
        chosen, labels = best  # type: ignore[misc]
        criterion = f"highest mean silhouette (cosine) over k = {lo}..{hi}"
    else:
        try:
            chosen = int(k)
        except ValueError:
            raise InvalidInputError(f"k must be a whole number or 'auto', got {k!r}.") from None
        if not 1 <= chosen <= n:
            raise InvalidInputError(f"k must be between 1 and the number of images ({n}), got {chosen}.")
        labels = _fit(x, algorithm, chosen, seed) if chosen > 1 else np.zeros(n, np.int64)
        scores[chosen] = _silhouette(x, labels, seed)
        criterion = "given"
    sim = np.zeros(n, np.float32)
    for c in set(labels.tolist()) - {-1}:
        members = labels == c
        centre = x[members].mean(axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        sim[members] = x[members] @ centre
    return ClusterResult(algorithm, chosen, criterion, np.asarray(labels, np.int64), sim, scores)


def write_outputs(result: ClusterResult, out: str | Path, *, root: str | Path | None = None,
                  per_sheet: int = 40) -> list[Path]:
    """``clusters.csv`` (path, cluster, similarity), ``clusters.json`` and ``sheets/cluster_NN.png``
    (the images closest to the cluster's centre first)."""
    import csv
    import json

    from recog.search.files import contact_sheet

    out = Path(out)
    (out / "sheets").mkdir(parents=True, exist_ok=True)
    with open(out / "clusters.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "cluster", "similarity_to_centre"])
        for p, c, s in zip(result.paths, result.labels.tolist(), result.similarity.tolist()):
            w.writerow([p, c, round(s, 4)])
    (out / "clusters.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    written = [out / "clusters.csv", out / "clusters.json"]
    base = Path(root) if root is not None else None
    for c in sorted(set(result.labels.tolist())):
        idx = np.flatnonzero(result.labels == c)
        idx = idx[np.argsort(-result.similarity[idx])] if c >= 0 else idx
        items = [((base / result.paths[i]) if base else Path(result.paths[i]), f"{result.similarity[i]:.2f}")
                 for i in idx[:per_sheet]]
        name = "outliers" if c < 0 else f"cluster {c}"
        sheet = contact_sheet([(f"{name}: {len(idx)} images (closest to the centre first)", items)])
        path = out / "sheets" / ("outliers.png" if c < 0 else f"cluster_{c:02d}.png")
        sheet.save(path)
        written.append(path)
    return written


def cluster_paths(paths: Sequence[str | Path], *, model: Any = None, model_name: str | None = None,
                  root: str | Path | None = None, progress: Any = None, **options: Any) -> ClusterResult:
    """Embed images (default model efficientnet-lite0) and :func:`cluster_vectors` them."""
    from recog.search.dedup import relative_to

    paths = [Path(p) for p in paths]
    if model is None:
        from recog.search.images import embedder

        model = embedder(model_name or "efficientnet-lite0")
    raw, kept, failures = model.outputs_many(paths, progress=progress)
    result = cluster_vectors(raw, **options)
    result.paths = [relative_to(paths[i], root) for i in kept]
    result.failures = [(relative_to(paths[i], root), str(exc)) for i, exc in failures]
    return result
