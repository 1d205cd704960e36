"""The persistent face store: collections, people and face embeddings in SQLite.

The file, its tables and the name checks are :mod:`recog.faces.schema`; what
the search index reads is :mod:`recog.faces.snapshot`; JSON export and import
are :mod:`recog.faces.transfer`. This module is the reading and writing of
collections, people and faces.

Every write is one transaction, so a process killed at any point leaves a
store that opens and passes ``PRAGMA integrity_check``; an enrollment that was
interrupted keeps the images it finished. Deletes are hard deletes: the rows
go, ``secure_delete`` overwrites their bytes in the database pages, and the WAL
is checkpointed and truncated so no old copy of a deleted embedding stays in
either file.

Raw images and face crops are stored only for collections created with
``store_images=True`` (the aligned 150x150 chip, JPEG).
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from recog.clock import utc_now
from recog.errors import ConflictError, InvalidInputError, NotFoundError
from recog.faces.dlib_models import DEFAULT_THRESHOLD, EMBEDDER_ID, check_threshold
from recog.faces.schema import check_embeddings, check_name, find_collection, open_database
from recog.faces.snapshot import CollectionVersion, FaceSnapshot, read_snapshot, read_version
from recog.faces.types import CollectionInfo, PersonInfo
from recog.index.db import Store, insert_each


def _no_person(collection: str, person: str) -> NotFoundError:
    return NotFoundError(f"no person {person!r} in collection {collection!r}.",
                         hint=f"list them with `recog faces list --collection {collection}`")


class FaceStore(Store):
    """Collections of people and face embeddings in one SQLite file.

    Safe to share between threads (one connection, one lock; every method is
    a short transaction). Several processes may open the same file.

    Args:
        path: the store file (default ``$RECOG_FACES_DB`` or ``~/.recog/faces.db``).
        timeout_s: how long a write waits for another process's lock.

    Example:
        >>> store = FaceStore("faces.db")                          # doctest: +SKIP
        >>> store.create_collection("office", threshold=0.55)      # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike | None = None, *, timeout_s: float = 30.0) -> None:
        super().__init__(open_database(path, timeout_s=timeout_s))

    # -- collections ---------------------------------------------------------------------------

    def create_collection(self, name: str, *, threshold: float = DEFAULT_THRESHOLD, store_images: bool = False,
                          exist_ok: bool = False) -> CollectionInfo:
        """Create a collection (``exist_ok``: return the existing one instead of a ConflictError)."""
        check_name("collection", name)
        check_threshold(threshold)
        with self.db.transaction() as cur:
            exists = cur.execute("SELECT 1 FROM collections WHERE name=?", (name,)).fetchone()
            if exists and not exist_ok:
                raise ConflictError(f"collection {name!r} already exists.",
                                    hint="pick another name, or delete it first")
            if not exists:
                cur.execute("INSERT INTO collections(name, threshold, store_images, embedder, created_at) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (name, float(threshold), int(store_images), EMBEDDER_ID, utc_now()))
        return self.collection(name)

    def update_collection(self, name: str, *, threshold: float | None = None) -> CollectionInfo:
        """Change a collection's verification threshold."""
        with self.db.transaction() as cur:
            cid = find_collection(cur, name, self.path).id
            if threshold is not None:
                cur.execute("UPDATE collections SET threshold=? WHERE id=?", (check_threshold(threshold), cid))
        return self.collection(name)

    def collection(self, name: str) -> CollectionInfo:
        with self.db.transaction(write=False) as cur:
            row = find_collection(cur, name, self.path)
            people = cur.execute("SELECT count(*) FROM people WHERE collection_id=?", (row.id,)).fetchone()[0]
            faces = cur.execute("SELECT count(*) FROM faces WHERE collection_id=?", (row.id,)).fetchone()[0]
        return CollectionInfo(row.name, row.threshold, row.store_images, row.embedder, int(people), int(faces),
                              row.created_at)

    def delete_collection(self, name: str) -> int:
        """Hard-delete a collection with its people and faces; returns the number of faces deleted."""
        with self.db.transaction() as cur:
            cid = find_collection(cur, name, self.path).id
            n = cur.execute("SELECT count(*) FROM faces WHERE collection_id=?", (cid,)).fetchone()[0]
            cur.execute("DELETE FROM faces WHERE collection_id=?", (cid,))
            cur.execute("DELETE FROM people WHERE collection_id=?", (cid,))
            cur.execute("DELETE FROM collections WHERE id=?", (cid,))
        self.db.purge_wal()
        return int(n)

    # -- people and faces ----------------------------------------------------------------------

    def people(self, collection: str) -> list[PersonInfo]:
        with self.db.transaction(write=False) as cur:
            cid = find_collection(cur, collection, self.path).id
            rows = cur.execute("SELECT p.name, p.created_at, group_concat(f.id) FROM people p "
                               "LEFT JOIN faces f ON f.person_id=p.id WHERE p.collection_id=? "
                               "GROUP BY p.id ORDER BY p.name", (cid,)).fetchall()
        return [PersonInfo(n, tuple(sorted(int(i) for i in ids.split(","))) if ids else (), c) for n, c, ids in rows]

    def person(self, collection: str, name: str) -> PersonInfo:
        for p in self.people(collection):
            if p.name == name:
                return p
        raise _no_person(collection, name)

    def add_faces(self, collection: str, person: str, embeddings: Any, *,
                  sources: Sequence[str | None] | None = None, image_sha256: Sequence[str | None] | None = None,
                  boxes: Sequence[Sequence[int] | None] | None = None, images: Sequence[bytes | None] | None = None,
                  skip_existing: bool = True) -> list[int | None]:
        """Store faces of one person (created if new) in one transaction.

        Args:
            embeddings: ``(n, 128)`` float vectors.
            sources, image_sha256, boxes, images: per face, optional. ``images``
                (encoded crops) are kept only if the collection stores images.
            skip_existing: a face whose ``(person, image_sha256)`` is already
                stored is skipped (its id is None in the result) instead of a
                ConflictError, so an interrupted enrollment can be rerun.

        Returns:
            The new face ids, None for skipped ones.
        """
        check_name("person", person)
        vecs = check_embeddings(embeddings)
        n = len(vecs)

        def col(values: Sequence | None) -> list:
            if values is None:
                return [None] * n
            if len(values) != n:
                raise InvalidInputError(f"expected {n} values per face, got {len(values)}.")
            return list(values)

        sources_, shas, boxes_, images_ = col(sources), col(image_sha256), col(boxes), col(images)
        with self.db.transaction() as cur:
            coll = find_collection(cur, collection, self.path)
            now = utc_now()
            cur.execute("INSERT OR IGNORE INTO people(collection_id, name, created_at) VALUES (?, ?, ?)",
                        (coll.id, person, now))
            pid = cur.execute("SELECT id FROM people WHERE collection_id=? AND name=?",
                              (coll.id, person)).fetchone()[0]
            ids = insert_each(
                cur, "INSERT INTO faces(person_id, collection_id, embedding, source, image_sha256, box, image, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((pid, coll.id, vecs[i].tobytes(), sources_[i], shas[i],
                  None if boxes_[i] is None else json.dumps([int(v) for v in boxes_[i]]),
                  images_[i] if coll.store_images else None, now) for i in range(n)),
                skip_existing=skip_existing,
                conflict=lambda i: f"{sources_[i] or 'this image'} is already enrolled for {person!r}.")
        return ids

    def has_image(self, collection: str, person: str, image_sha256: str) -> bool:
        """Whether a face from these image bytes is already stored for the person."""
        row = self.db.query_one(
            "SELECT 1 FROM faces f JOIN people p ON p.id=f.person_id JOIN collections c ON c.id=p.collection_id "
            "WHERE c.name=? AND p.name=? AND f.image_sha256=?", (collection, person, image_sha256))
        return row is not None

    def add_bulk(self, collection: str, names: Sequence[str], embeddings: Any, *, chunk: int = 50_000) -> int:
        """Store many faces fast: ``names[i]`` is the person of ``embeddings[i]`` (benchmarks, imports).

        Each chunk is one transaction. Returns the number stored.
        """
        vecs = check_embeddings(embeddings)
        if len(names) != len(vecs):
            raise InvalidInputError(f"expected one name per embedding, got {len(names)} names for {len(vecs)}.")
        now = utc_now()
        for start in range(0, len(vecs), chunk):
            with self.db.transaction() as cur:
                cid = find_collection(cur, collection, self.path).id
                part = names[start:start + chunk]
                for name in sorted(set(part)):
                    check_name("person", name)
                cur.executemany("INSERT OR IGNORE INTO people(collection_id, name, created_at) VALUES (?, ?, ?)",
                                [(cid, name, now) for name in sorted(set(part))])
                pids = dict(cur.execute("SELECT name, id FROM people WHERE collection_id=?", (cid,)).fetchall())
                cur.executemany("INSERT INTO faces(person_id, collection_id, embedding, created_at) VALUES (?, ?, ?, ?)",
                                ((pids[name], cid, vecs[start + j].tobytes(), now) for j, name in enumerate(part)))
        return len(vecs)

    def delete_person(self, collection: str, person: str) -> int:
        """Hard-delete a person and all their faces; returns the number of faces deleted."""
        with self.db.transaction() as cur:
            cid = find_collection(cur, collection, self.path).id
            row = cur.execute("SELECT id FROM people WHERE collection_id=? AND name=?", (cid, person)).fetchone()
            if row is None:
                raise _no_person(collection, person)
            n = cur.execute("SELECT count(*) FROM faces WHERE person_id=?", (row[0],)).fetchone()[0]
            cur.execute("DELETE FROM faces WHERE person_id=?", (row[0],))
            cur.execute("DELETE FROM people WHERE id=?", (row[0],))
        self.db.purge_wal()
        return int(n)

    def delete_face(self, collection: str, face_id: int) -> str:
        """Hard-delete one face; returns its person's name. A person left with no face is deleted too."""
        with self.db.transaction() as cur:
            cid = find_collection(cur, collection, self.path).id
            row = cur.execute("SELECT f.person_id, p.name FROM faces f JOIN people p ON p.id=f.person_id "
                              "WHERE f.id=? AND f.collection_id=?", (int(face_id), cid)).fetchone()
            if row is None:
                raise NotFoundError(f"no face {face_id} in collection {collection!r}.",
                                    hint=f"list face ids with `recog faces list --collection {collection}`")
            cur.execute("DELETE FROM faces WHERE id=?", (int(face_id),))
            left = cur.execute("SELECT count(*) FROM faces WHERE person_id=?", (row[0],)).fetchone()[0]
            if not left:
                cur.execute("DELETE FROM people WHERE id=?", (row[0],))
        self.db.purge_wal()
        return str(row[1])

    def face_image(self, collection: str, face_id: int) -> bytes | None:
        """The stored crop of a face (JPEG), or None when the collection stores no images."""
        with self.db.transaction(write=False) as cur:
            cid = find_collection(cur, collection, self.path).id
            row = cur.execute("SELECT image FROM faces WHERE id=? AND collection_id=?", (int(face_id), cid)).fetchone()
        if row is None:
            raise NotFoundError(f"no face {face_id} in collection {collection!r}.")
        return row[0]

    # -- what the search index reads (a recog.index.VectorSource) ------------------------------

    def version(self, collection: str) -> CollectionVersion:
        """``(collection id, generation, threshold)``: cheap, checked before every search."""
        return read_version(self.db, collection)

    def snapshot(self, collection: str) -> FaceSnapshot:
        """Every embedding of a collection, read in one transaction (a consistent view)."""
        return read_snapshot(self.db, collection)
