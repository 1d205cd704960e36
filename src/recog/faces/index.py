"""Exact, vectorized nearest-person search over every embedding of a collection.

:func:`search` is a pure function over a :class:`~recog.faces.store.Snapshot`:
one matrix-vector product gives the squared distances to every stored face
(``|x|^2 - 2 x.q + |q|^2``, row norms precomputed), ``np.minimum.reduceat``
takes each person's nearest face (rows are sorted by person), and
``argpartition`` picks the top-k people; the reported distances are then
recomputed exactly for the chosen faces. Exact search, no approximation: at
100k faces one lookup reads 51 MB, well within the latency budget on a CPU.

:class:`IndexCache` keeps one immutable :class:`Index` per collection and
checks the collection's generation in SQLite before every lookup; when they
differ (a write in this or another process) it builds a new index from a
consistent snapshot and swaps it in whole, so a lookup never sees a
half-built index, and a deleted face is never served.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from recog.faces.store import FaceStore, Snapshot
from recog.faces.types import Match


class _OneBlasThread:
    """Run the search's matrix-vector product on one BLAS thread.

    The product is memory-bound: one core nearly saturates memory bandwidth,
    and a second BLAS thread mostly adds hand-off latency, which grows badly
    when the cores are busy (measured at 100k faces on 2 busy cores: 1.8 ms on
    one thread, 8-12 ms on two). BLAS thread counts are process-wide, so
    overlapping searches share one limit, counted, and the original count is
    restored when the last one leaves. Without threadpoolctl this is a no-op.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._limiter: Any = None
        self._blas: Any = False  # False: not looked up yet; None: unavailable

    def _controller(self) -> Any:
        if self._blas is False:
            try:
                from threadpoolctl import ThreadpoolController

                self._blas = ThreadpoolController().select(user_api="blas")
            except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
                self._blas = None
        return self._blas

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            blas = self._controller()
            if blas is not None and self._users == 0:
                self._limiter = blas.limit(limits=1)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._limiter is not None:
                    self._limiter.restore_original_limits()
                    self._limiter = None


_one_blas_thread = _OneBlasThread()


@dataclass(frozen=True)
class Index:
    """A snapshot plus the precomputed squared row norms."""

    snapshot: Snapshot
    sq_norms: np.ndarray
    person_ends: np.ndarray

    @classmethod
    def build(cls, snapshot: Snapshot) -> "Index":
        v = snapshot.vectors
        ends = np.r_[snapshot.person_starts[1:], len(v)].astype(np.int64)
        return cls(snapshot, np.einsum("ij,ij->i", v, v).astype(np.float32), ends)

    def __len__(self) -> int:
        return len(self.snapshot.vectors)


def search(index: Index, queries: np.ndarray, *, k: int = 1,
           max_distance: float | None = None) -> list[tuple[list[Match], float | None]]:
    """Top-k people for each query.

    Args:
        index: the collection's index.
        queries: ``(m, 128)`` or ``(128,)`` embeddings.
        k: people per query.
        max_distance: keep only people at most this far (None: keep all k).

    Returns:
        Per query: matches (best first, one per person, the person's nearest
        face) and the distance to the nearest stored face (None if empty).

    Example:
        >>> search(index, probe, k=3, max_distance=0.6)          # doctest: +SKIP
        [([Match(person='Ada', distance=0.31, face_id=7)], 0.31)]
    """
    snap = index.snapshot
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if len(snap.vectors) == 0:
        return [([], None) for _ in range(len(q))]
    k = max(1, min(int(k), len(snap.person_starts)))
    out = []
    for row in q:
        with _one_blas_thread():
            dots = snap.vectors @ row
        d2 = index.sq_norms - 2.0 * dots + float(row @ row)
        per_person = np.minimum.reduceat(d2, snap.person_starts)
        top = np.argpartition(per_person, k - 1)[:k] if k < len(per_person) else np.arange(len(per_person))
        top = top[np.argsort(per_person[top], kind="stable")]
        ends = index.person_ends
        matches = []
        nearest = None
        for rank, p in enumerate(top):
            lo, hi = int(snap.person_starts[p]), int(ends[p])
            j = lo + int(np.argmin(d2[lo:hi]))
            dist = float(np.linalg.norm(snap.vectors[j].astype(np.float64) - row.astype(np.float64)))
            if rank == 0:
                nearest = dist
            if max_distance is None or dist <= max_distance:
                matches.append(Match(snap.person_names[p], dist, int(snap.face_ids[j])))
        matches.sort(key=lambda m: m.distance)
        out.append((matches, nearest))
    return out


class IndexCache:
    """The current :class:`Index` of each collection of one store, rebuilt when the store changed."""

    def __init__(self, store: FaceStore) -> None:
        self.store = store
        self._indexes: dict[str, Index] = {}
        self._lock = threading.Lock()
        self.builds = 0  # how many times an index was (re)built; for tests and metrics

    def get(self, collection: str) -> tuple[Index, float]:
        """The index of ``collection`` that matches the store now, and the collection's threshold."""
        cid, gen, threshold = self.store.generation(collection)
        current = self._indexes.get(collection)
        if current is not None and (current.snapshot.collection_id, current.snapshot.generation) == (cid, gen):
            return current, threshold
        with self._lock:  # one build at a time; others wait and then reuse it
            current = self._indexes.get(collection)
            cid, gen, threshold = self.store.generation(collection)
            if current is None or (current.snapshot.collection_id, current.snapshot.generation) != (cid, gen):
                current = Index.build(self.store.snapshot(collection))
                self._indexes[collection] = current  # swapped in whole, never mutated
                self.builds += 1
        return current, threshold

    def drop(self, collection: str | None = None) -> None:
        """Forget the index of one collection (or all)."""
        with self._lock:
            if collection is None:
                self._indexes.clear()
            else:
                self._indexes.pop(collection, None)
