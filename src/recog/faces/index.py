"""Face search on :mod:`recog.index`: people are the owners, results are :class:`~recog.faces.types.Match`.

The index is :class:`recog.index.ExactIndex` (exact, vectorized, immutable,
tagged with the collection's generation; see :mod:`recog.index.exact`), built
from a :class:`~recog.faces.snapshot.FaceSnapshot` of the face store.
"""

from __future__ import annotations

import numpy as np

from recog.faces.types import Match
from recog.index import exact
from recog.index.exact import ExactIndex

#: The in-memory index of one face collection.
Index = ExactIndex


def search(index: ExactIndex, queries: np.ndarray, *, k: int = 1,
           max_distance: float | None = None) -> list[tuple[list[Match], float | None]]:
    """Top-k people for each query: :func:`recog.index.exact.search` over ``(m, 128)`` or ``(128,)``
    face embeddings, each hit a :class:`Match` (person, distance, face id), one per person.

    Example:
        >>> search(index, probe, k=3, max_distance=0.6)          # doctest: +SKIP
        [([Match(person='Ada', distance=0.31, face_id=7)], 0.31)]
    """
    return [([Match(h.owner, h.distance, h.id) for h in hits], nearest)
            for hits, nearest in exact.search(index, queries, k=k, max_distance=max_distance)]


class IndexCache(exact.IndexCache):
    """The current :class:`Index` of each collection of one :class:`~recog.faces.store.FaceStore`.

    A lookup costs one indexed SQLite read (the collection's generation and
    threshold); the index is rebuilt only when the generation changed.
    """

    def get(self, collection: str) -> tuple[ExactIndex, float]:
        """The index of ``collection`` that matches the store now, and the collection's threshold."""
        index, version = self.current(collection)
        return index, version.threshold
