"""Named search indexes: vectors, ids and metadata in SQLite (the truth), a faiss index serving queries.

An index is a collection of the shared :class:`~recog.index.VectorStore`
(default file ``~/.recog/search.db``, or ``$RECOG_SEARCH_DB``), marked as a
search index and recording which model made its vectors (:class:`ModelRef`).
Each stored row is one image: ``owner`` is the item id (a SKU), ``key`` the
image's sha256 (so a rerun skips what is already in), metadata
``{"source": path, "fields": {...}}``. Queries and adds name the model; a
model other than the index's is refused, naming both.

Serving (:mod:`recog.search.ann`): the faiss index is built from SQLite when
first needed and then updated in place: an add or delete in this process
touches only the vectors concerned. Before every query the collection's
generation (one indexed read) tells whether another process changed it; then
the index catches up from SQLite: rows with an id above the highest it holds
are added, and if the counts still differ the id sets are compared to drop
what was deleted. Nothing acknowledged is lost in a crash: a write returns
only after its SQLite transaction committed (WAL, ``synchronous=FULL``), and
the faiss index is always rebuilt or caught up from SQLite.

An approximate (IVF) index is also cached next to the database
(``search.ann/<collection id>.faiss``) so that reopening a large index reads
it instead of re-training; the cache is only a head start, caught up from
SQLite on open. Delete is hard: the rows go from SQLite (``secure_delete``,
WAL truncated), the vectors from the in-memory index, and a cache file that
holds them is removed at once (rewritten without them at the next save).

Example:
    >>> from recog.search import Indexes
    >>> with Indexes("shop.db") as indexes:                                   # doctest: +SKIP
    ...     shop = indexes.create("shop", model=ref)
    ...     shop.add(["sku-1"], vectors, model=ref, fields=[{"category": "shoes"}])
    ...     shop.query(query_vectors, model=ref, k=10, where="category = 'shoes'")[0].ids
    ['sku-1']
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from recog.errors import ConflictError, InvalidInputError, NotFoundError
from recog.index import VectorStore, check_collection_name, check_vectors
from recog.index.db import Closing
from recog.search.ann import AnnIndex, choose_kind, choose_nlist, EXACT_MAX_FLOATS
from recog.search.types import IndexInfo, ModelRef, SearchHit, SearchHits
from recog.search.where import Filter, parse

KIND = "recog.search"
_CHUNK = 20_000
_TRAIN_PER_LIST = 40
MAX_K = 1000


def default_db() -> Path:
    """``$RECOG_SEARCH_DB``, else ``~/.recog/search.db``."""
    return Path(os.environ.get("RECOG_SEARCH_DB") or Path.home() / ".recog" / "search.db").expanduser()


def model_mismatch(index: str, ours: ModelRef, theirs: ModelRef) -> ConflictError:
    return ConflictError(f"index {index!r} holds vectors of {ours.describe()}, but these come from "
                         f"{theirs.describe()}; vectors of different models are not comparable.",
                         hint=f"use --model {ours.name}, or build another index with {theirs.name}")


class Indexes(Closing):
    """The search indexes of one SQLite file.

    Args:
        path: the database (default :func:`default_db`); ``":memory:"`` for a throwaway one.
        cache: keep a faiss cache of approximate indexes next to the file.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, cache: bool = True) -> None:
        self.store = VectorStore(path if path is not None else default_db())
        self.path = self.store.path
        memory = str(self.path) == ":memory:"
        self.cache_dir = None if memory or not cache else self.path.with_name(self.path.stem + ".ann")
        self._open: dict[str, SearchIndex] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Save the approximate indexes that changed and close the file."""
        with self._lock:
            for index in self._open.values():
                index.save()
            self._open.clear()
            self.store.close()

    def names(self) -> list[str]:
        return [c.name for c in self.store.collections() if c.metadata.get("kind") == KIND]

    def infos(self) -> list[IndexInfo]:
        return [self.get(name).info() for name in self.names()]

    def _missing(self, name: str) -> NotFoundError:
        names = self.names()
        from recog.errors import did_you_mean

        close = did_you_mean(name, names)
        return NotFoundError(f"no search index named {name!r}; "
                             + (f"{close} " if close else "")
                             + (f"the indexes are: {', '.join(names)}." if names else "there are no indexes yet."),
                             hint="create one with: recog search index build FOLDER --name NAME")

    def create(self, name: str, *, model: ModelRef, exist_ok: bool = False) -> "SearchIndex":
        """A new empty index for ``model``'s vectors (``exist_ok``: the existing one, if made by the same model).

        Raises:
            ConflictError: the name is taken (by another model's index, even with ``exist_ok``).
        """
        check_collection_name(name)
        if name in self.store_names():
            if not exist_ok:
                raise ConflictError(f"search index {name!r} already exists.",
                                    hint="add to it with recog search add, or delete it first")
            index = self.get(name)
            if not index.model.same_model(model):
                raise model_mismatch(name, index.model, model)
            return index
        self.store.create_collection(name, dim=model.dim, metadata={"kind": KIND, "model": model.to_dict()})
        return self.get(name)

    def store_names(self) -> list[str]:
        return [c.name for c in self.store.collections()]

    def get(self, name: str) -> "SearchIndex":
        """The index ``name`` (one object per name and process).

        Raises:
            NotFoundError: no such index; the message names the ones that exist (never the file's path).
        """
        with self._lock:
            if name in self._open:
                return self._open[name]
            row = self.store.db.query_one("SELECT id, metadata FROM vector_collections WHERE name=?", (str(name),))
            if row is None:
                raise self._missing(str(name))
            meta = json.loads(row[1] or "{}")
            if meta.get("kind") != KIND:
                raise ConflictError(f"collection {name!r} in this file is not a search index.",
                                    hint="use another --db for search indexes")
            index = SearchIndex(self, name, int(row[0]), ModelRef.from_dict(meta["model"]))
            self._open[name] = index
            return index

    def drop(self, name: str) -> int:
        """Hard-delete an index, its vectors and its cache; returns how many vectors went."""
        index = self.get(name)
        with self._lock:
            self._open.pop(name, None)
        index.forget_cache()
        return self.store.delete_collection(name)


class SearchIndex:
    """One named index (get it from :meth:`Indexes.get` / :meth:`Indexes.create`)."""

    def __init__(self, owner: Indexes, name: str, collection_id: int, model: ModelRef) -> None:
        self.indexes = owner
        self.store = owner.store
        self.name = name
        self.collection_id = collection_id
        self.model = model
        self.dim = model.dim
        self._ann: AnnIndex | None = None
        self._generation = -1
        self._max_id = 0
        self._dirty = False
        self._lock = threading.RLock()
        self._filters: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self.builds = 0  # full builds of the live index from SQLite (for tests and metrics)

    # -- facts ------------------------------------------------------------------------------------

    def info(self) -> IndexInfo:
        c = self.store.collection(self.name)
        kind = self._ann.kind if self._ann is not None else choose_kind(c.vectors, c.dim)
        return IndexInfo(self.name, self.model, c.owners, c.vectors, "exact" if kind == "flat" else "ivf",
                         c.created_at)

    def _check_model(self, model: ModelRef | None) -> None:
        if model is None:
            raise InvalidInputError(f"say which model made the vectors for index {self.name!r} (model=ModelRef).")
        if not self.model.same_model(model):
            raise model_mismatch(self.name, self.model, model)

    def existing_keys(self) -> set[tuple[str, str]]:
        """``(item id, image sha256)`` of every stored image (what a rerun skips)."""
        with self.store.db.lock:
            rows = self.store.db.conn.execute("SELECT owner, key FROM vectors WHERE collection_id=?",
                                              (self.collection_id,)).fetchall()
        return {(o, k) for o, k in rows}

    # -- writes -----------------------------------------------------------------------------------

    def add(self, ids: Sequence[str], vectors: Any, *, model: ModelRef, sources: Sequence[str | None] | None = None,
            fields: Sequence[dict[str, Any] | None] | None = None, keys: Sequence[str | None] | None = None,
            files: Sequence[str | None] | None = None) -> list[int | None]:
        """Store vectors (one SQLite transaction), then put them in the live index.

        Args:
            ids: item id per vector (several vectors may share one).
            vectors: ``(n, dim)`` L2-normalised.
            model: the model that made them (must be the index's).
            sources, fields: per vector: the image path, and metadata fields.
            keys: per vector: a unique key within the item (default: the vector's sha256).
            files: per vector: the image file's absolute path on this machine, for thumbnails
                (:meth:`item_file`); never part of a search result.

        Returns:
            The vector ids; None where the same ``(id, key)`` was already stored.
        """
        self._check_model(model)
        vecs = check_vectors(vectors, self.dim)
        n = len(vecs)
        sources = list(sources) if sources is not None else [None] * n
        fields = list(fields) if fields is not None else [None] * n
        if keys is None:
            import hashlib

            keys = [hashlib.sha256(v.tobytes()).hexdigest() for v in vecs]
        for f in fields:
            if f is not None and not isinstance(f, dict):
                raise InvalidInputError(f"metadata fields must be a JSON object per item, got {type(f).__name__}.")
        files = list(files) if files is not None else [None] * n
        meta = [{"source": s, "fields": f or {}, **({"file": p} if p else {})} for s, f, p in zip(sources, fields, files)]
        vids = self.store.add(self.name, [str(i) for i in ids], vecs, keys=list(keys), metadata=meta)
        with self._lock:
            if self._ann is not None:
                fresh = [(v, row) for row, v in enumerate(vids) if v is not None]
                if fresh:
                    self._ann.add(np.array([v for v, _ in fresh], np.int64), vecs[[r for _, r in fresh]])
                    self._max_id = max(self._max_id, max(v for v, _ in fresh))
                    self._dirty = True
                    self._grow_if_needed()
        return vids

    def item_file(self, item_id: str) -> Path | None:
        """The image file of an item's first vector, when it was indexed from a file (None when uploaded).

        Raises:
            NotFoundError: the index has no item ``item_id``.
        """
        row = self.store.db.query_one("SELECT metadata FROM vectors WHERE collection_id=? AND owner=? ORDER BY id LIMIT 1",
                                      (self.collection_id, str(item_id)))
        if row is None:
            raise NotFoundError(f"index {self.name!r} has no item {item_id!r}.",
                                hint="ids are listed by the query results (field id)")
        file = json.loads(row[0] or "{}").get("file")
        return Path(file) if file else None

    def delete(self, item_id: str) -> int:
        """Hard-delete every vector of one item; returns how many.

        Raises:
            NotFoundError: the index has no item ``item_id``.
        """
        with self.store.db.lock:
            vids = [int(r[0]) for r in self.store.db.conn.execute(
                "SELECT id FROM vectors WHERE collection_id=? AND owner=?", (self.collection_id, str(item_id)))]
        if not vids:
            raise NotFoundError(f"index {self.name!r} has no item {item_id!r}.",
                                hint="ids are listed by the query results (field id)")
        return self.delete_vectors(vids)

    def delete_vectors(self, vids: Sequence[int]) -> int:
        n = self.store.delete(self.name, [int(v) for v in vids])
        self.forget_cache()
        with self._lock:
            if self._ann is not None:
                self._ann.remove(np.asarray(vids, np.int64))
                self._dirty = True
        return n

    # -- the live index ---------------------------------------------------------------------------

    def _cache_path(self) -> Path | None:
        d = self.indexes.cache_dir
        return None if d is None else d / f"{self.collection_id}.faiss"

    def forget_cache(self) -> None:
        """Remove the cache file (it may hold deleted vectors); the next save writes a new one."""
        path = self._cache_path()
        if path is not None:
            path.unlink(missing_ok=True)
        with self._lock:
            self._dirty = True

    def save(self) -> None:
        """Write the cache of an approximate index that changed since it was read or written."""
        path = self._cache_path()
        with self._lock:
            if path is None or self._ann is None or self._ann.kind != "ivf" or not self._dirty:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self._ann.save(path)
            self._dirty = False

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple]:
        with self.store.db.lock:
            return self.store.db.conn.execute(sql, params).fetchall()

    def _vectors_of(self, ids: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids, vectors)`` chunks read from SQLite for the given ids."""
        for start in range(0, len(ids), 900):
            part = [int(i) for i in ids[start:start + 900]]
            rows = self._rows(f"SELECT id, vector FROM vectors WHERE +collection_id=? AND id IN "
                              f"({','.join('?' * len(part))})", (self.collection_id, *part))
            if rows:
                yield (np.array([r[0] for r in rows], np.int64),
                       np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), self.dim))

    def _all_ids(self) -> np.ndarray:
        rows = self._rows("SELECT id FROM vectors WHERE collection_id=?", (self.collection_id,))
        return np.sort(np.fromiter((r[0] for r in rows), np.int64, count=len(rows)))

    def _build(self, kind: str | None = None) -> AnnIndex:
        """A fresh faiss index of every stored vector (IVF: k-means on a sample, then lists filled in chunks)."""
        self.builds += 1
        ids = self._all_ids()
        kind = kind or choose_kind(len(ids), self.dim)
        ann = AnnIndex(self.dim, kind)
        if kind == "ivf":
            nlist = choose_nlist(len(ids))
            rng = np.random.default_rng(0)
            sample = np.sort(rng.choice(ids, min(len(ids), nlist * _TRAIN_PER_LIST), replace=False))
            ann.train(np.concatenate([v for _, v in self._vectors_of(sample)]), nlist=nlist)
        for start in range(0, len(ids), _CHUNK):
            for vid, vec in self._vectors_of(ids[start:start + _CHUNK]):
                ann.add(vid, vec)
        return ann

    def _grow_if_needed(self) -> None:
        """An exact index that grew to 4x the exact-search budget is rebuilt once as IVF."""
        if self._ann is not None and self._ann.kind == "flat" and len(self._ann) * self.dim > 4 * EXACT_MAX_FLOATS:
            self._ann = self._build("ivf")
            self._max_id = int(self._ann.ids().max(initial=0))

    def _load(self) -> AnnIndex:
        path = self._cache_path()
        if path is not None and path.is_file():
            try:
                ann = AnnIndex.load(path, self.dim)
                self._dirty = False
                return ann
            except (RuntimeError, ValueError):  # unreadable or foreign cache: rebuild from SQLite
                path.unlink(missing_ok=True)
        self._dirty = True
        return self._build()

    def sync(self) -> None:
        """Bring the live index up to date with SQLite (build it if this is the first use)."""
        generation = self.store.version(self.name).generation
        if self._ann is not None and generation == self._generation:
            return
        with self._lock:
            generation = self.store.version(self.name).generation
            if self._ann is not None and generation == self._generation:
                return
            if self._ann is None:
                self._ann = self._load()
                self._max_id = int(self._ann.ids().max(initial=0))
            ann = self._ann
            # rows added since (ids only grow: AUTOINCREMENT)
            while True:
                # "+collection_id": walk the rowid range, not the (collection, owner) index
                rows = self._rows("SELECT id, vector FROM vectors WHERE id>? AND +collection_id=? ORDER BY id "
                                  f"LIMIT {_CHUNK}", (self._max_id, self.collection_id))
                if not rows:
                    break
                vid = np.array([r[0] for r in rows], np.int64)
                ann.add(vid, np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), self.dim))
                self._max_id = int(vid[-1])
                self._dirty = True
            count = self._rows("SELECT count(*) FROM vectors WHERE collection_id=?", (self.collection_id,))[0][0]
            if count != len(ann):  # deletes, or adds that committed out of id order: compare the id sets
                stored = self._all_ids()
                held = ann.ids()
                gone = np.setdiff1d(held, stored, assume_unique=True)
                missing = np.setdiff1d(stored, held, assume_unique=True)
                if len(gone):
                    ann.remove(gone)
                for vid, vec in self._vectors_of(missing):
                    ann.add(vid, vec)
                self._dirty = True
            self._grow_if_needed()
            self._generation = generation

    def __len__(self) -> int:
        self.sync()
        return len(self._ann) if self._ann is not None else 0

    # -- queries ----------------------------------------------------------------------------------

    def allowed_ids(self, where: str | Filter) -> np.ndarray:
        """Ids of the vectors whose item matches a ``--where`` filter (evaluated in SQLite, cached per generation)."""
        flt = parse(where) if isinstance(where, str) else where
        gen = self.store.version(self.name).generation
        key = (flt.text, gen)
        with self._lock:
            if key in self._filters:
                self._filters.move_to_end(key)
                return self._filters[key]
        cond, params = flt.sql(metadata_column="metadata", id_column="owner", prefix="$.fields")
        rows = self._rows(f"SELECT id FROM vectors WHERE collection_id=? AND {cond}", (self.collection_id, *params))
        ids = np.fromiter((r[0] for r in rows), np.int64, count=len(rows))
        with self._lock:
            self._filters[key] = ids
            while len(self._filters) > 16:
                self._filters.popitem(last=False)
        return ids

    def query(self, vectors: Any, *, model: ModelRef, k: int = 10, where: str | Filter | None = None,
              exact: bool = False, sources: Sequence[str | None] | None = None) -> list[SearchHits]:
        """The ``k`` best items for each query vector.

        Args:
            vectors: ``(m, dim)`` (or ``(dim,)``) L2-normalised query embeddings.
            model: the model that made them (must be the index's).
            k: items per query (1..1000); an item is scored by its closest image.
            where: a metadata filter (:mod:`recog.search.where`).
            exact: score every vector even on an approximate index.
            sources: per query, a name to echo in the results.

        Raises:
            ConflictError: another model's vectors (the message names both models).
            InvalidInputError: a bad filter (the message points at the error) or a bad ``k``.
        """
        self._check_model(model)
        if not (1 <= int(k) <= MAX_K):
            raise InvalidInputError(f"k must be between 1 and {MAX_K}, got {k}.")
        k = int(k)
        q = check_vectors(vectors, self.dim, what="query vectors")
        flt = parse(where) if isinstance(where, str) else where
        allowed = self.allowed_ids(flt) if flt is not None else None
        self.sync()
        ann = self._ann
        assert ann is not None
        n = len(ann) if allowed is None else len(allowed)
        sources = list(sources) if sources is not None else [None] * len(q)
        out: list[SearchHits] = []
        for row, src in zip(q, sources):
            fetch = min(max(2 * k, k + 8), max(n, 1))
            while True:
                scores, found, was_exact = ann.search(row[None], fetch, allowed=allowed, exact=exact)
                hits = self._resolve(scores[0], found[0])
                if len(hits) >= k or fetch >= n or (found[0] < 0).any():
                    break
                fetch = min(fetch * 4, n)
            out.append(SearchHits(self.name, tuple(hits[:k]), src, bool(was_exact)))
        return out

    def _resolve(self, scores: np.ndarray, ids: np.ndarray) -> list[SearchHit]:
        """Vector hits -> item hits (best vector per item), with metadata read from SQLite."""
        valid = [(float(s), int(i)) for s, i in zip(scores, ids) if i >= 0]
        if not valid:
            return []
        rows = {}
        for start in range(0, len(valid), 900):
            part = [i for _, i in valid[start:start + 900]]
            # "+collection_id": look the ids up by rowid, not by scanning the (collection, owner) index
            for vid, owner, meta in self._rows(f"SELECT id, owner, metadata FROM vectors WHERE +collection_id=? "
                                               f"AND id IN ({','.join('?' * len(part))})", (self.collection_id, *part)):
                rows[int(vid)] = (owner, json.loads(meta or "{}"))
        hits: list[SearchHit] = []
        seen: set[str] = set()
        for score, vid in valid:
            if vid not in rows:  # deleted by another process since the last sync: never served
                continue
            owner, meta = rows[vid]
            if owner in seen:
                continue
            seen.add(owner)
            hits.append(SearchHit(owner, max(-1.0, min(1.0, score)), meta.get("fields") or {}, meta.get("source")))
        hits.sort(key=lambda h: -h.score)
        return hits
