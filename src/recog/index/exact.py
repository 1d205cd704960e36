"""Exact, vectorized nearest-owner search over every vector of a collection, and the index cache.

:func:`search` is a pure function over an :class:`ExactIndex`: one
matrix-vector product gives the squared distances to every stored vector
(``|x|^2 - 2 x.q + |q|^2``, row norms precomputed), ``np.minimum.reduceat``
takes each owner's nearest vector (rows are sorted by owner), and
``argpartition`` picks the top-k owners; the reported distances are then
recomputed exactly for the chosen vectors. Exact search, no approximation: at
100k 128-d vectors one lookup reads 51 MB, well within the latency budget on a CPU.

:class:`IndexCache` keeps one immutable index per collection and checks the
collection's version in SQLite before every lookup; when it differs (a write
in this or another process) it builds a new index from a consistent snapshot
and swaps it in whole, so a lookup never sees a half-built index, and a
deleted vector is never served. An approximate index (faiss, usearch) plugs
in as another ``build`` callable returning a :class:`VectorIndex`.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Protocol

import numpy as np

from recog.index.snapshot import Snapshot, VectorSource, Version


class Hit(NamedTuple):
    """One owner close to a query: their nearest vector's id and its euclidean distance."""

    owner: str
    distance: float
    id: int


#: Per query: hits (best first, one per owner) and the distance to the nearest vector (None if empty).
Results = list[tuple[list[Hit], float | None]]


class VectorIndex(Protocol):
    """What a search index offers; :class:`ExactIndex` is one, an ANN library can serve another."""

    @property
    def version(self) -> Version: ...

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, *, k: int = 1, max_distance: float | None = None) -> Results: ...


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
class ExactIndex:
    """A snapshot plus the precomputed squared row norms; never mutated after :meth:`build`."""

    snapshot: Snapshot
    sq_norms: np.ndarray
    owner_ends: np.ndarray

    @classmethod
    def build(cls, snapshot: Snapshot) -> "ExactIndex":
        v = snapshot.vectors
        ends = np.r_[snapshot.owner_starts[1:], len(v)].astype(np.int64)
        return cls(snapshot, np.einsum("ij,ij->i", v, v).astype(np.float32), ends)

    @property
    def version(self) -> Version:
        return self.snapshot.version

    def __len__(self) -> int:
        return len(self.snapshot.vectors)

    def search(self, queries: np.ndarray, *, k: int = 1, max_distance: float | None = None) -> Results:
        return search(self, queries, k=k, max_distance=max_distance)


def search(index: ExactIndex, queries: np.ndarray, *, k: int = 1, max_distance: float | None = None) -> Results:
    """Top-k owners for each query.

    Args:
        index: the collection's index.
        queries: ``(m, dim)`` or ``(dim,)`` vectors.
        k: owners per query.
        max_distance: keep only owners at most this far (None: keep all k).

    Returns:
        Per query: hits (best first, one per owner, the owner's nearest
        vector) and the distance to the nearest stored vector (None if empty).

    Example:
        >>> search(index, probe, k=3, max_distance=0.6)          # doctest: +SKIP
        [([Hit(owner='Ada', distance=0.31, id=7)], 0.31)]
    """
    snap = index.snapshot
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if len(snap.vectors) == 0:
        return [([], None) for _ in range(len(q))]
    k = max(1, min(int(k), len(snap.owner_starts)))
    out: Results = []
    for row in q:
        with _one_blas_thread():
            dots = snap.vectors @ row
        d2 = index.sq_norms - 2.0 * dots + float(row @ row)
        per_owner = np.minimum.reduceat(d2, snap.owner_starts)
        top = np.argpartition(per_owner, k - 1)[:k] if k < len(per_owner) else np.arange(len(per_owner))
        top = top[np.argsort(per_owner[top], kind="stable")]
        hits = []
        nearest = None
        for rank, p in enumerate(top):
            lo, hi = int(snap.owner_starts[p]), int(index.owner_ends[p])
            j = lo + int(np.argmin(d2[lo:hi]))
            dist = float(np.linalg.norm(snap.vectors[j].astype(np.float64) - row.astype(np.float64)))
            if rank == 0:
                nearest = dist
            if max_distance is None or dist <= max_distance:
                hits.append(Hit(snap.owners[p], dist, int(snap.ids[j])))
        hits.sort(key=lambda h: h.distance)
        out.append((hits, nearest))
    return out


class IndexCache:
    """The current index of each collection of one source, rebuilt when the source changed.

    Args:
        source: where versions and snapshots come from (a :class:`~recog.index.VectorStore`,
            a face store, ...).
        build: snapshot -> index (default :meth:`ExactIndex.build`).
    """

    def __init__(self, source: VectorSource, *, build: Callable[[Snapshot], VectorIndex] = ExactIndex.build
                 ) -> None:
        self.source = source
        self.build = build
        self._indexes: dict[str, VectorIndex] = {}
        self._lock = threading.Lock()
        self.builds = 0  # how many times an index was (re)built; for tests and metrics

    def current(self, collection: str) -> tuple[Any, Any]:
        """The index of ``collection`` that matches the source now, and the version the source reported.

        Raises:
            NotFoundError: no such collection (from the source).
        """
        version = self.source.version(collection)
        current = self._indexes.get(collection)
        if current is not None and current.version == (version.collection_id, version.generation):
            return current, version
        with self._lock:  # one build at a time; others wait and then reuse it
            current = self._indexes.get(collection)
            version = self.source.version(collection)
            if current is None or current.version != (version.collection_id, version.generation):
                current = self.build(self.source.snapshot(collection))
                self._indexes[collection] = current  # swapped in whole, never mutated
                self.builds += 1
        return current, version

    def drop(self, collection: str | None = None) -> None:
        """Forget the index of one collection (or all)."""
        with self._lock:
            if collection is None:
                self._indexes.clear()
            else:
                self._indexes.pop(collection, None)
