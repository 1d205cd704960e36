"""Vector index shared by faces and visual search: SQLite is the truth, an in-memory index serves queries.

- :mod:`recog.index.db`: one durable SQLite file (WAL, ``synchronous=FULL``, hard deletes).
- :mod:`recog.index.snapshot`: what search reads: a collection's version and an immutable
  snapshot of its vectors, grouped by owner.
- :mod:`recog.index.store`: collections of float32 vectors of any dimension in SQLite, each row
  with an owner, an optional key and JSON metadata; generation counters bumped by triggers.
- :mod:`recog.index.exact`: the immutable exact index, its vectorized search, and the cache
  that rebuilds an index when its collection changed (an ANN library can serve the same
  :class:`VectorIndex` interface later).

Example:
    >>> from recog.index import IndexCache, VectorStore
    >>> store = VectorStore("products.db")                                   # doctest: +SKIP
    >>> store.create_collection("catalog", dim=512)                           # doctest: +SKIP
    >>> store.add("catalog", "sku-1", vectors)                                # doctest: +SKIP
    >>> index, _ = IndexCache(store).current("catalog")                      # doctest: +SKIP
    >>> index.search(query, k=5)[0]                                           # doctest: +SKIP
    ([Hit(owner='sku-1', distance=0.12, id=1)], 0.12)
"""

from recog.index.db import Database
from recog.index.exact import ExactIndex, Hit, IndexCache, VectorIndex, search
from recog.index.snapshot import Snapshot, VectorSource, Version, build_snapshot, check_vectors
from recog.index.store import VectorCollection, VectorRecord, VectorStore, check_collection_name

__all__ = ["Database", "ExactIndex", "Hit", "IndexCache", "Snapshot", "VectorCollection", "VectorIndex",
           "VectorRecord", "VectorSource", "VectorStore", "Version", "build_snapshot", "check_collection_name",
           "check_vectors", "search"]
