"""What search reads: a collection's version and an immutable snapshot of its vectors.

A :class:`Snapshot` holds every vector of one collection at one generation,
rows grouped by owner, so that :mod:`recog.index.exact` can take each owner's
nearest vector with one ``reduceat``. Any store that can say its current
:class:`Version` cheaply and read a consistent snapshot is a
:class:`VectorSource` (:class:`~recog.index.store.VectorStore`, the face store).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Protocol, Sequence, TypeVar

import numpy as np

from recog.errors import InvalidInputError


def check_vectors(vectors: Any, dim: int, *, what: str = "vectors") -> np.ndarray:
    """``vectors`` as a C-contiguous ``(n, dim)`` float32 array of finite values (a ``(dim,)`` vector is one row)."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InvalidInputError(f"expected {what} of shape (n, {dim}), got {arr.shape}.")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{what} contain NaN or infinite values.")
    return np.ascontiguousarray(arr)


class Version(NamedTuple):
    """Which state of a collection an index was built from."""

    collection_id: int
    generation: int


@dataclass(frozen=True)
class Snapshot:
    """Every vector of one collection at one generation, rows sorted by owner.

    Attributes:
        collection_id, generation: what this snapshot is of.
        vectors: ``(n, dim)`` float32.
        ids: ``(n,)`` int64 row ids.
        owner_starts: ``(p,)`` index of each owner's first row in ``vectors``.
        owners: ``p`` owner names, same order.
    """

    collection_id: int
    generation: int
    vectors: np.ndarray
    ids: np.ndarray
    owner_starts: np.ndarray
    owners: tuple[str, ...]

    @property
    def version(self) -> Version:
        return Version(self.collection_id, self.generation)


S = TypeVar("S", bound=Snapshot)


def build_snapshot(cls: type[S], collection_id: int, generation: int, rows: Sequence[tuple[int, Any, bytes]],
                   dim: int, *, owner_names: Mapping[Any, str] | None = None) -> S:
    """A ``cls`` (:class:`Snapshot` or a subclass) from ``(id, owner, float32 blob)`` rows sorted by owner, then id.

    ``owner_names`` maps the rows' owner keys (e.g. person ids) to names; without it the key is the name.
    """
    n = len(rows)
    if not n:
        return cls(int(collection_id), int(generation), np.zeros((0, dim), np.float32), np.zeros(0, np.int64),
                   np.zeros(0, np.int64), ())
    ids, owner_keys, blobs = zip(*rows)
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(n, dim).copy()
    keys = np.asarray(owner_keys)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]).astype(np.int64)
    owners = tuple(str(owner_keys[s] if owner_names is None else owner_names[owner_keys[s]]) for s in starts)
    return cls(int(collection_id), int(generation), vectors, np.asarray(ids, dtype=np.int64), starts, owners)


class VectorSource(Protocol):
    """What an index cache reads: a cheap version check and a consistent snapshot per collection."""

    def version(self, collection: str) -> Version: ...

    def snapshot(self, collection: str) -> Snapshot: ...
