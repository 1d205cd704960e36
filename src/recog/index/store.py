"""Vectors in SQLite: collections of float32 vectors of any dimension, each owned by someone.

A row is one vector with its ``owner`` (the person, product or document it
belongs to; search returns owners), an optional ``key`` unique per owner (an
image's sha256, a file name), and free JSON ``metadata``. SQLite is the source
of truth (see :mod:`recog.index.db`); search runs on an immutable in-memory
:class:`Snapshot` of one collection (see :mod:`recog.index.exact`).

Each collection carries a ``generation`` number, bumped by triggers in the
same transaction as every change to its vectors (also changes made with plain
SQL by another program), so a cached index can tell cheaply whether it is
still current.

Schema (``vectors_schema_version`` 1)::

    vector_collections(id, name UNIQUE, dim, metadata JSON, generation, created_at)
    vectors(id, collection_id -> vector_collections, owner, key, vector BLOB float32[dim],
            metadata JSON, created_at, UNIQUE(collection_id, owner, key))

Example:
    >>> with VectorStore("products.db") as store:                          # doctest: +SKIP
    ...     store.create_collection("catalog", dim=512)
    ...     store.add("catalog", ["sku-1", "sku-2"], vectors, keys=["a.jpg", "b.jpg"])
    ...     snap = store.snapshot("catalog")
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from recog.clock import utc_now
from recog.errors import ConflictError, InvalidInputError, NotFoundError, did_you_mean
from recog.index.db import Database, Store, generation_triggers, insert_each
from recog.index.snapshot import Snapshot, Version, build_snapshot, check_vectors

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vector_collections(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    dim INTEGER NOT NULL CHECK (dim > 0),
    metadata TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES vector_collections(id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    key TEXT,
    vector BLOB NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    UNIQUE(collection_id, owner, key));
CREATE INDEX IF NOT EXISTS vectors_by_owner ON vectors(collection_id, owner, id);
""" + generation_triggers("vectors", "vector_collections", "vector, owner, collection_id")

_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_collection_name(name: str) -> str:
    """A collection name usable in URLs: letters, digits, ``.``, ``_``, ``-``; at most 64, starting alphanumeric."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"collection name must be a non-empty string, got {name!r}.")
    if not _COLLECTION_RE.match(name):
        raise InvalidInputError(f"collection name {name!r} is not usable: expected letters, digits, '.', '_' "
                                "or '-' (at most 64, starting with a letter or digit).", hint="e.g. office-2")
    return name


@dataclass(frozen=True)
class VectorCollection:
    """A collection's settings and size."""

    name: str
    dim: int
    vectors: int
    owners: int
    metadata: dict[str, Any]
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "vectors": self.vectors, "owners": self.owners,
                "metadata": self.metadata, "created_at": self.created_at}


@dataclass(frozen=True)
class VectorRecord:
    """One stored vector."""

    id: int
    owner: str
    key: str | None
    vector: np.ndarray
    metadata: dict[str, Any]
    created_at: str


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class VectorStore(Store):
    """Collections of vectors in one SQLite file (a :class:`VectorSource` for :class:`~recog.index.IndexCache`).

    Args:
        path: the SQLite file (created with its folder).
        timeout_s: how long a write waits for another process's lock.
    """

    collections_table = "vector_collections"

    def __init__(self, path: str | os.PathLike, *, timeout_s: float = 30.0) -> None:
        super().__init__(Database(path, what="vector store", timeout_s=timeout_s))
        self.db.install(_SCHEMA, version=SCHEMA_VERSION, key="vectors_schema_version")

    # -- collections ---------------------------------------------------------------------------

    def _row(self, cur: sqlite3.Cursor, name: str) -> tuple[int, int, int]:
        """``(id, dim, generation)`` of a collection, or NotFoundError naming the close ones."""
        row = cur.execute("SELECT id, dim, generation FROM vector_collections WHERE name=?", (name,)).fetchone()
        if row is None:
            names = [r[0] for r in cur.execute("SELECT name FROM vector_collections ORDER BY name")]
            raise NotFoundError(f"no vector collection named {name!r} in {self.path}; "
                                + (did_you_mean(name, names) or f"it has {', '.join(names) or 'none'}."))
        return int(row[0]), int(row[1]), int(row[2])

    def create_collection(self, name: str, *, dim: int, metadata: dict[str, Any] | None = None,
                          exist_ok: bool = False) -> VectorCollection:
        """Create a collection of ``dim``-long vectors (``exist_ok``: return the same-named one if it has ``dim``)."""
        check_collection_name(name)
        if int(dim) < 1:
            raise InvalidInputError(f"dim must be a positive number of floats, got {dim}.")
        with self.db.transaction() as cur:
            row = cur.execute("SELECT dim FROM vector_collections WHERE name=?", (name,)).fetchone()
            if row is not None and not (exist_ok and int(row[0]) == int(dim)):
                raise ConflictError(f"vector collection {name!r} already exists (dim {row[0]}).",
                                    hint="pick another name, or delete it first")
            if row is None:
                cur.execute("INSERT INTO vector_collections(name, dim, metadata, created_at) VALUES (?, ?, ?, ?)",
                            (name, int(dim), _json(metadata or {}), utc_now()))
        return self.collection(name)

    def collection(self, name: str) -> VectorCollection:
        with self.db.transaction(write=False) as cur:
            cid, dim, _ = self._row(cur, name)
            meta, created = cur.execute("SELECT metadata, created_at FROM vector_collections WHERE id=?",
                                        (cid,)).fetchone()
            n, owners = cur.execute("SELECT count(*), count(DISTINCT owner) FROM vectors WHERE collection_id=?",
                                    (cid,)).fetchone()
        return VectorCollection(name, dim, int(n), int(owners), json.loads(meta or "{}"), created)

    def delete_collection(self, name: str) -> int:
        """Hard-delete a collection and its vectors; returns how many vectors went."""
        with self.db.transaction() as cur:
            cid = self._row(cur, name)[0]
            n = cur.execute("DELETE FROM vectors WHERE collection_id=?", (cid,)).rowcount
            cur.execute("DELETE FROM vector_collections WHERE id=?", (cid,))
        self.db.purge_wal()
        return int(n)

    # -- vectors -------------------------------------------------------------------------------

    def add(self, collection: str, owners: str | Sequence[str], vectors: Any, *,
            keys: Sequence[str | None] | None = None, metadata: Sequence[dict[str, Any] | None] | None = None,
            skip_existing: bool = True) -> list[int | None]:
        """Store vectors in one transaction.

        Args:
            owners: one owner for every vector, or one per vector.
            vectors: ``(n, dim)`` floats.
            keys, metadata: per vector, optional.
            skip_existing: a vector whose ``(owner, key)`` is already stored is skipped (id None)
                instead of a ConflictError, so an interrupted load can be rerun.

        Returns:
            The new ids, None for skipped ones.
        """
        with self.db.transaction() as cur:
            cid, dim, _ = self._row(cur, collection)
            vecs = check_vectors(vectors, dim)
            n = len(vecs)
            owner_list = [owners] * n if isinstance(owners, str) else list(owners)
            key_list = list(keys) if keys is not None else [None] * n
            meta_list = list(metadata) if metadata is not None else [None] * n
            if not (len(owner_list) == len(key_list) == len(meta_list) == n):
                raise InvalidInputError(f"expected one owner, key and metadata per vector ({n}), got "
                                        f"{len(owner_list)}, {len(key_list)} and {len(meta_list)}.")
            if any(not isinstance(o, str) or not o for o in owner_list):
                raise InvalidInputError("every vector needs an owner: a non-empty string.")
            now = utc_now()
            ids = insert_each(
                cur, "INSERT INTO vectors(collection_id, owner, key, vector, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                ((cid, owner_list[i], key_list[i], vecs[i].tobytes(), _json(meta_list[i]), now) for i in range(n)),
                skip_existing=skip_existing,
                conflict=lambda i: f"{owner_list[i]!r} already has a vector with key {key_list[i]!r}.")
        return ids

    def get(self, collection: str, vector_id: int) -> VectorRecord:
        with self.db.transaction(write=False) as cur:
            cid, dim, _ = self._row(cur, collection)
            row = cur.execute("SELECT id, owner, key, vector, metadata, created_at FROM vectors "
                              "WHERE id=? AND collection_id=?", (int(vector_id), cid)).fetchone()
        if row is None:
            raise NotFoundError(f"no vector {vector_id} in collection {collection!r}.")
        vid, owner, key, blob, meta, created = row
        return VectorRecord(int(vid), owner, key, np.frombuffer(blob, np.float32).reshape(dim).copy(),
                            json.loads(meta) if meta else {}, created)

    def delete(self, collection: str, ids: Sequence[int]) -> int:
        """Hard-delete vectors by id; returns how many were there."""
        with self.db.transaction() as cur:
            cid = self._row(cur, collection)[0]
            n = sum(cur.execute("DELETE FROM vectors WHERE id=? AND collection_id=?", (int(i), cid)).rowcount
                    for i in ids)
        self.db.purge_wal()
        return int(n)

    def delete_owner(self, collection: str, owner: str) -> int:
        """Hard-delete every vector of ``owner``; returns how many went (NotFoundError if none)."""
        with self.db.transaction() as cur:
            cid = self._row(cur, collection)[0]
            n = cur.execute("DELETE FROM vectors WHERE collection_id=? AND owner=?", (cid, owner)).rowcount
            if not n:
                raise NotFoundError(f"no vectors of {owner!r} in collection {collection!r}.")
        self.db.purge_wal()
        return int(n)

    # -- what the index reads ------------------------------------------------------------------

    def version(self, collection: str) -> Version:
        """The collection's id and generation: one indexed read, checked before every search."""
        row = self.db.query_one("SELECT id, generation FROM vector_collections WHERE name=?", (collection,))
        if row is None:
            with self.db.transaction(write=False) as cur:
                self._row(cur, collection)  # raises NotFoundError with suggestions
        return Version(int(row[0]), int(row[1]))

    def snapshot(self, collection: str) -> Snapshot:
        """Every vector of the collection, read in one transaction (a consistent view)."""
        with self.db.transaction(write=False) as cur:
            cid, dim, gen = self._row(cur, collection)
            rows = cur.execute("SELECT id, owner, vector FROM vectors WHERE collection_id=? ORDER BY owner, id",
                               (cid,)).fetchall()
        return build_snapshot(Snapshot, cid, gen, rows, dim)
