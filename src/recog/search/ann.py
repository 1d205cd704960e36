"""The in-memory vector index that serves search queries: exact (flat) or approximate (IVF), on faiss.

Why faiss, and why IVF rather than HNSW (measured by ``benchmarks/search.py
--compare``, 100k clustered 128-d unit vectors, one thread, 2 busy cores;
the figures are in the README):

* incremental delete: ``IndexIVFFlat`` with a hash-table direct map removes
  one vector in ~0.1 ms and the vector is really gone from memory; faiss HNSW
  cannot remove at all, and usearch's HNSW only marks a node deleted;
* filters: faiss takes an ``IDSelector`` in the search itself, and an IVF
  scan of the probed lists honours it exactly; filtered HNSW search (faiss)
  lost most of its recall at 1 % selectivity, and usearch's Python API has no
  filter predicate (over-fetch only);
* build: IVF trains a k-means quantizer once and then assigns each vector to a
  list, 2-4x faster than building either HNSW graph here.

Small indexes are served exactly (``IndexFlatIP`` behind an id map): below
:data:`EXACT_MAX_FLOATS` stored floats a full scan costs a few milliseconds
and has no recall loss. Vectors are L2-normalised, so the inner product is the
cosine similarity.

A filter arrives as the set of allowed ids (evaluated in SQLite). Few allowed
ids (at most :data:`FILTER_EXACT_MAX_FLOATS` floats of them): their vectors are scored exactly.
More: the IVF search takes them as an ``IDSelectorBatch`` and probes
proportionally more lists, so a 10 % filter still finds ~k matches.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

#: Up to this many stored floats (n * dim), an index is served by exact search (16 MB scanned per
#: query: ~3 ms on one core; 3,125 vectors of 1280 floats, 31k of 128).
EXACT_MAX_FLOATS = 4_000_000
#: Up to this many floats of allowed vectors (len(allowed) * dim), a filtered query gathers and
#: scores them exactly; above it, the faiss search takes the allowed ids as a selector, which skips
#: the others before computing any distance (measured at 10k x 1280: gathering 1,000 allowed
#: vectors cost 9 ms a query, mostly the copy).
FILTER_EXACT_MAX_FLOATS = 256_000
#: Fewest IVF lists probed per query; larger indexes probe ``nlist / 32`` (see :func:`choose_nprobe`).
DEFAULT_NPROBE = 24


def _faiss() -> Any:
    import faiss

    return faiss


class _OneThread:
    """Run a few queries on one OpenMP thread.

    A single query has nothing to split across threads, but faiss's OpenMP
    team still has to be scheduled for every call: on busy cores that costs
    milliseconds (measured: 24 ms instead of 1.6 ms per exact query at 3k
    vectors on 2 loaded cores). The thread count is process-wide, so it is
    set and restored under one lock; training and large batches keep all threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        faiss = _faiss()
        with self._lock:
            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                return fn(*args, **kwargs)
            finally:
                faiss.omp_set_num_threads(before)


_one_thread = _OneThread()
#: Query batches up to this size run on one thread.
SMALL_BATCH = 8


def choose_kind(n: int, dim: int) -> str:
    """``"flat"`` (exact) for small indexes, ``"ivf"`` above :data:`EXACT_MAX_FLOATS` stored floats."""
    return "flat" if n * dim <= EXACT_MAX_FLOATS else "ivf"


def choose_nprobe(nlist: int) -> int:
    """Lists probed per query: ``max(24, nlist / 32)`` (about 3 % of the lists past 768 of them).

    Measured on clustered synthetic 128-d vectors (benchmarks/search.py): recall@10 1.00 at 10k and 100k
    (24 of 200 / 632 lists); at 1M (2,000 lists) 0.85 with 24 probes, 0.92 with 64 (3.6 ms).
    """
    return max(DEFAULT_NPROBE, -(-int(nlist) // 32))


def choose_nlist(n: int) -> int:
    """IVF lists for ``n`` vectors: ``2 sqrt(n)``, between 16 and 65536."""
    return int(min(65536, max(16, round(2 * math.sqrt(max(n, 1))))))


class AnnIndex:
    """A mutable faiss index keyed by int64 ids (the store's vector ids); thread-safe.

    Args:
        dim: vector length.
        kind: ``"flat"`` (exact) or ``"ivf"`` (call :meth:`train` before adding).
        nprobe: IVF lists probed per unfiltered query (default :func:`choose_nprobe` of the lists).
    """

    def __init__(self, dim: int, kind: str = "flat", *, nprobe: int | None = None) -> None:
        if kind not in ("flat", "ivf"):
            raise ValueError(f"kind must be 'flat' or 'ivf', got {kind!r}")
        self.dim = int(dim)
        self.kind = kind
        self._nprobe = nprobe
        self.nprobe = int(nprobe or DEFAULT_NPROBE)
        self._lock = threading.RLock()
        self._index: Any = None
        self._ids: set[int] = set()
        if kind == "flat":
            faiss = _faiss()
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    # -- building ---------------------------------------------------------------------------------

    @property
    def trained(self) -> bool:
        return self._index is not None and bool(self._index.is_trained)

    def train(self, sample: np.ndarray, *, nlist: int | None = None, seed: int = 0) -> None:
        """Train the IVF quantizer on ``(m, dim)`` vectors (k-means; m >= 39 * nlist is best)."""
        faiss = _faiss()
        x = np.ascontiguousarray(sample, dtype=np.float32)
        nlist = int(nlist or choose_nlist(len(x)))
        nlist = max(1, min(nlist, len(x)))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.min_points_per_centroid = 1  # quiet: a small training set is expected for small lists
        index.train(x)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        self.nprobe = int(self._nprobe or choose_nprobe(nlist))
        index.nprobe = min(self.nprobe, nlist)
        with self._lock:
            self._index = index
            self._ids = set()

    @property
    def nlist(self) -> int:
        return int(self._index.nlist) if self.kind == "ivf" and self._index is not None else 0

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, vid: int) -> bool:
        return int(vid) in self._ids

    def ids(self) -> np.ndarray:
        with self._lock:
            return np.fromiter(self._ids, dtype=np.int64, count=len(self._ids))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> int:
        """Add vectors under their ids; ids already present are skipped. Returns how many were added."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        x = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        with self._lock:
            if not self.trained:
                raise RuntimeError("train the IVF index before adding vectors")
            fresh = np.fromiter((i not in self._ids for i in ids.tolist()), dtype=bool, count=len(ids))
            if not fresh.all():
                ids, x = ids[fresh], x[fresh]
            # one id twice in the same call: keep the first
            ids, first = np.unique(ids, return_index=True)
            x = x[first]
            if len(ids):
                self._index.add_with_ids(x, ids)
                self._ids.update(ids.tolist())
            return int(len(ids))

    def remove(self, ids: np.ndarray) -> int:
        """Remove vectors by id (their data leaves the index); returns how many were there."""
        faiss = _faiss()
        ids = np.asarray([i for i in np.asarray(ids, dtype=np.int64).ravel().tolist() if i in self._ids],
                         dtype=np.int64)
        with self._lock:
            if not len(ids):
                return 0
            # the IVF hash-table direct map removes by array (each id looked up: O(len(ids)))
            selector = faiss.IDSelectorArray(ids) if self.kind == "ivf" else faiss.IDSelectorBatch(ids)
            n = int(self._index.remove_ids(selector))
            self._ids.difference_update(ids.tolist())
            return n

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (all present), ``(len(ids), dim)``."""
        ids = np.asarray(ids, dtype=np.int64)
        with self._lock:
            if not len(ids):
                return np.zeros((0, self.dim), np.float32)
            return self._index.reconstruct_batch(ids)

    # -- searching --------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               exact: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
        """Top-``k`` vectors by inner product for each query.

        Args:
            queries: ``(m, dim)`` float32.
            k: results per query.
            allowed: only these ids may be returned (None: all).
            exact: score every (allowed) vector even on an IVF index.

        Returns:
            ``(scores, ids, exact)``: ``(m, k)`` arrays, best first; missing results
            have id -1. ``exact`` says whether every candidate was scored.
        """
        faiss = _faiss()
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            n = len(self._ids)
            k = max(1, int(k))
            if n == 0:
                return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64), True
            if allowed is not None:
                allowed = np.asarray(allowed, dtype=np.int64).ravel()
                if len(allowed) * self.dim <= FILTER_EXACT_MAX_FLOATS:
                    # ids not (yet) held cannot be gathered: keep those present
                    allowed = allowed[np.fromiter((i in self._ids for i in allowed.tolist()), bool, len(allowed))]
                    if len(allowed) == 0:
                        return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64), True
                    return (*_exact_topk(q, self.vectors(allowed), allowed, k), True)
                selector = faiss.IDSelectorBatch(allowed)
                if self.kind == "flat":
                    scores, found = self._search(q, k, faiss.SearchParameters(sel=selector))
                    return scores, found, True
                # probe more lists the fewer ids pass, so about k of them are met
                share = len(allowed) / n
                nprobe = self.nlist if exact else min(self.nlist, max(self.nprobe, math.ceil(self.nprobe / share)))
                params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
                scores, found = self._search(q, k, params)
                return scores, found, nprobe >= self.nlist
            if self.kind == "ivf" and exact:
                scores, found = self._search(q, k, faiss.SearchParametersIVF(nprobe=self.nlist))
                return scores, found, True
            scores, found = self._search(q, k, None)
            return scores, found, self.kind == "flat" or self.nprobe >= self.nlist

    def _search(self, q: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        kwargs = {} if params is None else {"params": params}
        if len(q) <= SMALL_BATCH:
            return _one_thread(self._index.search, q, k, **kwargs)
        return self._index.search(q, k, **kwargs)

    # -- persistence ------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically (a temporary file renamed over it)."""
        faiss = _faiss()
        tmp = path.with_name(path.name + ".tmp")
        with self._lock:
            faiss.write_index(self._index, str(tmp))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, dim: int, *, nprobe: int | None = None) -> "AnnIndex":
        """Read an IVF index written by :meth:`save` (its ids are read back from the inverted lists)."""
        faiss = _faiss()
        index = faiss.read_index(str(path))
        if index.d != dim or not isinstance(index, faiss.IndexIVFFlat):
            raise ValueError(f"{path.name}: not a {dim}-d IVF index")
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        out = cls(dim, "ivf", nprobe=nprobe)
        out.nprobe = int(nprobe or choose_nprobe(index.nlist))
        index.nprobe = min(out.nprobe, index.nlist)
        inv = index.invlists
        ids: set[int] = set()
        for lst in range(index.nlist):
            size = inv.list_size(lst)
            if size:
                ids.update(faiss.rev_swig_ptr(inv.get_ids(lst), size).tolist())
        out._index, out._ids = index, ids
        return out


def _exact_topk(q: np.ndarray, x: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of ``q @ x.T`` over the rows ``x`` labelled ``ids`` (padded with -inf / -1)."""
    scores = q @ x.T
    kk = min(k, len(ids))
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < len(ids) else np.tile(np.arange(len(ids)),
                                                                                         (len(q), 1))
    rows = np.arange(len(q))[:, None]
    order = np.argsort(-scores[rows, top], axis=1, kind="stable")
    top = top[rows, order]
    out_s = np.full((len(q), k), -np.inf, np.float32)
    out_i = np.full((len(q), k), -1, np.int64)
    out_s[:, :kk] = scores[rows, top]
    out_i[:, :kk] = ids[top]
    return out_s, out_i
