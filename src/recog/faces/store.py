"""The persistent face store: collections, people and face embeddings in SQLite.

One SQLite file (WAL journal, ``synchronous=FULL``, foreign keys on) is the
source of truth. Every write is one transaction, so a process killed at any
point leaves a store that opens and passes ``PRAGMA integrity_check``; an
enrollment that was interrupted keeps the images it finished.

Deletes are hard deletes: the rows go, ``secure_delete`` overwrites their
bytes in the database pages, and the WAL is checkpointed and truncated so no
old copy of a deleted embedding stays in either file.

Each collection carries a ``generation`` number, bumped by triggers in the
same transaction as every change to its faces (also changes made with plain
SQL by another program); the in-memory search index
(:mod:`recog.faces.index`) compares it on each lookup and rebuilds from a
consistent snapshot when it differs, also when another process wrote.

Raw images and face crops are stored only for collections created with
``store_images=True`` (the aligned 150x150 chip, JPEG).

Schema version 1::

    collections(id, name UNIQUE, threshold, store_images, embedder, generation, created_at)
    people(id, collection_id -> collections ON DELETE CASCADE, name, created_at, UNIQUE(collection_id, name))
    faces(id, person_id -> people ON DELETE CASCADE, collection_id, embedding BLOB float32[128],
          source, image_sha256, box JSON, image BLOB NULL, created_at, UNIQUE(person_id, image_sha256))
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from recog.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError, RecogError
from recog.faces.analyzer import check_threshold
from recog.faces.models import DEFAULT_THRESHOLD, EMBEDDER_ID, EMBEDDING_DIM
from recog.faces.types import CollectionInfo, PersonInfo

SCHEMA_VERSION = 1

#: Environment variable naming the default store file.
DB_ENV = "RECOG_FACES_DB"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    threshold REAL NOT NULL,
    store_images INTEGER NOT NULL DEFAULT 0,
    embedder TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE(collection_id, name));
CREATE TABLE IF NOT EXISTS faces(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    source TEXT,
    image_sha256 TEXT,
    box TEXT,
    image BLOB,
    created_at TEXT NOT NULL,
    UNIQUE(person_id, image_sha256));
CREATE INDEX IF NOT EXISTS faces_by_collection ON faces(collection_id, person_id, id);
CREATE TRIGGER IF NOT EXISTS faces_insert_bumps AFTER INSERT ON faces BEGIN
    UPDATE collections SET generation = generation + 1 WHERE id = NEW.collection_id; END;
CREATE TRIGGER IF NOT EXISTS faces_delete_bumps AFTER DELETE ON faces BEGIN
    UPDATE collections SET generation = generation + 1 WHERE id = OLD.collection_id; END;
CREATE TRIGGER IF NOT EXISTS faces_update_bumps AFTER UPDATE OF embedding, person_id, collection_id ON faces BEGIN
    UPDATE collections SET generation = generation + 1 WHERE id IN (OLD.collection_id, NEW.collection_id); END;
CREATE TRIGGER IF NOT EXISTS people_rename_bumps AFTER UPDATE OF name ON people BEGIN
    UPDATE collections SET generation = generation + 1 WHERE id = NEW.collection_id; END;
"""

_NAME_MAX = 200
_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (``sqlite3.complete_statement`` keeps triggers whole)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s]


def default_db_path() -> Path:
    """``$RECOG_FACES_DB`` or ``~/.recog/faces.db``."""
    env = os.environ.get(DB_ENV)
    return Path(env).expanduser() if env else Path.home() / ".recog" / "faces.db"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_name(kind: str, name: str) -> str:
    """Validate a name.

    Collections: letters, digits, ``.``, ``_``, ``-`` (they appear in URLs as
    ``/v1/collections/NAME:identify``). People: 1-200 printable characters
    without ``/`` or surrounding spaces (``Ada Lovelace`` is fine).
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"{kind} name must be a non-empty string, got {name!r}.")
    if kind == "collection":
        if not _COLLECTION_RE.match(name):
            raise InvalidInputError(f"collection name {name!r} is not usable: expected letters, digits, '.', '_' "
                                    "or '-' (at most 64, starting with a letter or digit).", hint="e.g. office-2")
        return name
    if (name != name.strip() or len(name) > _NAME_MAX or "/" in name
            or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise InvalidInputError(f"{kind} name {name!r} is not usable: expected 1-{_NAME_MAX} printable characters "
                                "without '/' or leading or trailing spaces.")
    return name


def check_embeddings(vectors: Any) -> np.ndarray:
    """Embeddings as a C-contiguous ``(n, 128)`` float32 array of finite values."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != EMBEDDING_DIM:
        raise InvalidInputError(f"expected embeddings of shape (n, {EMBEDDING_DIM}), got {arr.shape}.")
    if not np.isfinite(arr).all():
        raise InvalidInputError("embeddings contain NaN or infinite values.")
    return np.ascontiguousarray(arr)


@dataclass(frozen=True)
class Snapshot:
    """Every embedding of one collection at one generation, rows sorted by person.

    Attributes:
        collection_id, generation: what this snapshot is of.
        vectors: ``(n, 128)`` float32.
        face_ids: ``(n,)`` int64.
        person_starts: ``(p,)`` index of each person's first row in ``vectors``.
        person_names: ``p`` names, same order.
    """

    collection_id: int
    generation: int
    vectors: np.ndarray
    face_ids: np.ndarray
    person_starts: np.ndarray
    person_names: tuple[str, ...]


class FaceStore:
    """Collections of people and face embeddings in one SQLite file.

    Safe to share between threads (one connection, one lock; every method is
    a short transaction). Several processes may open the same file.

    Example:
        >>> store = FaceStore("faces.db")                          # doctest: +SKIP
        >>> store.create_collection("office", threshold=0.55)      # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike | None = None, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: cannot open as a face store ({exc}).",
                              hint="pass --db with a new file, or restore the store from an export") from exc
        self._lock = threading.RLock()
        with self.transaction() as cur:
            for stmt in _statements(_SCHEMA):
                cur.execute(stmt)
            row = cur.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                cur.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise ConfigError(f"{self.path}: face store schema {row[0]} is newer than this recog "
                                  f"(understands {SCHEMA_VERSION}).", hint="upgrade recog")

    # -- plumbing ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "FaceStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Cursor]:
        """One transaction (``BEGIN IMMEDIATE`` for writes); rolled back if the block raises."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        with self._lock:
            return "\n".join(r[0] for r in self._conn.execute("PRAGMA integrity_check").fetchall())

    def _purge_wal(self) -> None:
        """After a delete: copy the WAL into the main file and truncate it, so no old page survives."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    # -- collections ---------------------------------------------------------------------------

    def _collection_row(self, cur: sqlite3.Cursor, name: str) -> tuple:
        row = cur.execute("SELECT id, name, threshold, store_images, embedder, generation, created_at "
                          "FROM collections WHERE name=?", (name,)).fetchone()
        if row is None:
            names = [r[0] for r in cur.execute("SELECT name FROM collections ORDER BY name")]
            import difflib

            close = difflib.get_close_matches(name, names, n=3)
            raise NotFoundError(f"no face collection named {name!r} in {self.path}"
                                + (f"; did you mean {', '.join(close)}?" if close else
                                   f"; it has {', '.join(names) if names else 'none'}."),
                                hint="create it with `recog faces enroll ... --collection NAME`")
        return row

    def create_collection(self, name: str, *, threshold: float = DEFAULT_THRESHOLD, store_images: bool = False,
                          exist_ok: bool = False) -> CollectionInfo:
        """Create a collection (``exist_ok``: return the existing one instead of a ConflictError)."""
        check_name("collection", name)
        check_threshold(threshold)
        with self.transaction() as cur:
            exists = cur.execute("SELECT 1 FROM collections WHERE name=?", (name,)).fetchone()
            if exists and not exist_ok:
                raise ConflictError(f"collection {name!r} already exists.",
                                    hint="pick another name, or delete it first")
            if not exists:
                cur.execute("INSERT INTO collections(name, threshold, store_images, embedder, created_at) "
                            "VALUES (?, ?, ?, ?, ?)", (name, float(threshold), int(store_images), EMBEDDER_ID, _now()))
        return self.collection(name)

    def update_collection(self, name: str, *, threshold: float | None = None) -> CollectionInfo:
        """Change a collection's verification threshold."""
        with self.transaction() as cur:
            cid = self._collection_row(cur, name)[0]
            if threshold is not None:
                cur.execute("UPDATE collections SET threshold=? WHERE id=?", (check_threshold(threshold), cid))
        return self.collection(name)

    def collection(self, name: str) -> CollectionInfo:
        with self.transaction(write=False) as cur:
            cid, name, thr, store_images, embedder, _gen, created = self._collection_row(cur, name)
            people = cur.execute("SELECT count(*) FROM people WHERE collection_id=?", (cid,)).fetchone()[0]
            faces = cur.execute("SELECT count(*) FROM faces WHERE collection_id=?", (cid,)).fetchone()[0]
        return CollectionInfo(name, float(thr), bool(store_images), embedder, int(people), int(faces), created)

    def collections(self) -> list[CollectionInfo]:
        with self.transaction(write=False) as cur:
            rows = cur.execute(
                "SELECT c.name, c.threshold, c.store_images, c.embedder, c.created_at, "
                "(SELECT count(*) FROM people p WHERE p.collection_id=c.id), "
                "(SELECT count(*) FROM faces f WHERE f.collection_id=c.id) FROM collections c ORDER BY c.name"
            ).fetchall()
        return [CollectionInfo(n, float(t), bool(s), e, int(p), int(f), c) for n, t, s, e, c, p, f in rows]

    def delete_collection(self, name: str) -> int:
        """Hard-delete a collection with its people and faces; returns the number of faces deleted."""
        with self.transaction() as cur:
            cid = self._collection_row(cur, name)[0]
            n = cur.execute("SELECT count(*) FROM faces WHERE collection_id=?", (cid,)).fetchone()[0]
            cur.execute("DELETE FROM faces WHERE collection_id=?", (cid,))
            cur.execute("DELETE FROM people WHERE collection_id=?", (cid,))
            cur.execute("DELETE FROM collections WHERE id=?", (cid,))
        self._purge_wal()
        return int(n)

    # -- people and faces ----------------------------------------------------------------------

    def people(self, collection: str) -> list[PersonInfo]:
        with self.transaction(write=False) as cur:
            cid = self._collection_row(cur, collection)[0]
            rows = cur.execute("SELECT p.name, p.created_at, group_concat(f.id) FROM people p "
                               "LEFT JOIN faces f ON f.person_id=p.id WHERE p.collection_id=? "
                               "GROUP BY p.id ORDER BY p.name", (cid,)).fetchall()
        return [PersonInfo(n, tuple(sorted(int(i) for i in ids.split(","))) if ids else (), c) for n, c, ids in rows]

    def person(self, collection: str, name: str) -> PersonInfo:
        for p in self.people(collection):
            if p.name == name:
                return p
        raise NotFoundError(f"no person {name!r} in collection {collection!r}.",
                            hint=f"list them with `recog faces list --collection {collection}`")

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
        ids: list[int | None] = []
        with self.transaction() as cur:
            cid, _, _, store_images, _, _, _ = self._collection_row(cur, collection)
            cur.execute("INSERT OR IGNORE INTO people(collection_id, name, created_at) VALUES (?, ?, ?)",
                        (cid, person, _now()))
            pid = cur.execute("SELECT id FROM people WHERE collection_id=? AND name=?", (cid, person)).fetchone()[0]
            now = _now()
            for i in range(n):
                box = None if boxes_[i] is None else json.dumps([int(v) for v in boxes_[i]])
                image = images_[i] if store_images else None
                try:
                    cur.execute("INSERT INTO faces(person_id, collection_id, embedding, source, image_sha256, box, "
                                "image, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                (pid, cid, vecs[i].tobytes(), sources_[i], shas[i], box, image, now))
                except sqlite3.IntegrityError as exc:
                    if not skip_existing:
                        raise ConflictError(f"{sources_[i] or 'this image'} is already enrolled for {person!r}.") \
                            from exc
                    ids.append(None)
                    continue
                ids.append(int(cur.lastrowid))
        return ids

    def has_image(self, collection: str, person: str, image_sha256: str) -> bool:
        """Whether a face from these image bytes is already stored for the person."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM faces f JOIN people p ON p.id=f.person_id JOIN collections c ON c.id=p.collection_id "
                "WHERE c.name=? AND p.name=? AND f.image_sha256=?", (collection, person, image_sha256)).fetchone()
        return row is not None

    def add_bulk(self, collection: str, names: Sequence[str], embeddings: Any, *, chunk: int = 50_000) -> int:
        """Store many faces fast: ``names[i]`` is the person of ``embeddings[i]`` (benchmarks, imports).

        Each chunk is one transaction. Returns the number stored.
        """
        vecs = check_embeddings(embeddings)
        if len(names) != len(vecs):
            raise InvalidInputError(f"expected one name per embedding, got {len(names)} names for {len(vecs)}.")
        now = _now()
        for start in range(0, len(vecs), chunk):
            with self.transaction() as cur:
                cid = self._collection_row(cur, collection)[0]
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
        with self.transaction() as cur:
            cid = self._collection_row(cur, collection)[0]
            row = cur.execute("SELECT id FROM people WHERE collection_id=? AND name=?", (cid, person)).fetchone()
            if row is None:
                raise NotFoundError(f"no person {person!r} in collection {collection!r}.",
                                    hint=f"list them with `recog faces list --collection {collection}`")
            n = cur.execute("SELECT count(*) FROM faces WHERE person_id=?", (row[0],)).fetchone()[0]
            cur.execute("DELETE FROM faces WHERE person_id=?", (row[0],))
            cur.execute("DELETE FROM people WHERE id=?", (row[0],))
        self._purge_wal()
        return int(n)

    def delete_face(self, collection: str, face_id: int) -> str:
        """Hard-delete one face; returns its person's name. A person left with no face is deleted too."""
        with self.transaction() as cur:
            cid = self._collection_row(cur, collection)[0]
            row = cur.execute("SELECT f.person_id, p.name FROM faces f JOIN people p ON p.id=f.person_id "
                              "WHERE f.id=? AND f.collection_id=?", (int(face_id), cid)).fetchone()
            if row is None:
                raise NotFoundError(f"no face {face_id} in collection {collection!r}.",
                                    hint=f"list face ids with `recog faces list --collection {collection}`")
            cur.execute("DELETE FROM faces WHERE id=?", (int(face_id),))
            left = cur.execute("SELECT count(*) FROM faces WHERE person_id=?", (row[0],)).fetchone()[0]
            if not left:
                cur.execute("DELETE FROM people WHERE id=?", (row[0],))
        self._purge_wal()
        return str(row[1])

    def face_image(self, collection: str, face_id: int) -> bytes | None:
        """The stored crop of a face (JPEG), or None when the collection stores no images."""
        with self.transaction(write=False) as cur:
            cid = self._collection_row(cur, collection)[0]
            row = cur.execute("SELECT image FROM faces WHERE id=? AND collection_id=?", (int(face_id), cid)).fetchone()
        if row is None:
            raise NotFoundError(f"no face {face_id} in collection {collection!r}.")
        return row[0]

    # -- index support -------------------------------------------------------------------------

    def generation(self, collection: str) -> tuple[int, int, float]:
        """``(collection id, generation, threshold)``: cheap, checked before every search."""
        with self._lock:
            row = self._conn.execute("SELECT id, generation, threshold FROM collections WHERE name=?",
                                     (collection,)).fetchone()
        if row is None:
            with self.transaction(write=False) as cur:
                self._collection_row(cur, collection)  # raises NotFoundError with suggestions
        return int(row[0]), int(row[1]), float(row[2])

    def snapshot(self, collection: str) -> Snapshot:
        """Every embedding of a collection, read in one transaction (a consistent view)."""
        with self.transaction(write=False) as cur:
            cid, _, _, _, _, gen, _ = self._collection_row(cur, collection)
            rows = cur.execute("SELECT f.id, f.person_id, f.embedding FROM faces f WHERE f.collection_id=? "
                               "ORDER BY f.person_id, f.id", (cid,)).fetchall()
            names = dict(cur.execute("SELECT id, name FROM people WHERE collection_id=?", (cid,)).fetchall())
        n = len(rows)
        if n:
            ids, pids, blobs = zip(*rows)
            vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(n, EMBEDDING_DIM).copy()
            pid_arr = np.asarray(pids, dtype=np.int64)
            starts = np.flatnonzero(np.r_[True, pid_arr[1:] != pid_arr[:-1]])
            person_names = tuple(names[int(pid_arr[s])] for s in starts)
            face_ids = np.asarray(ids, dtype=np.int64)
        else:
            vectors = np.zeros((0, EMBEDDING_DIM), np.float32)
            face_ids = np.zeros(0, np.int64)
            starts = np.zeros(0, np.int64)
            person_names = ()
        return Snapshot(int(cid), int(gen), vectors, face_ids, starts.astype(np.int64), person_names)

    # -- export / import -----------------------------------------------------------------------

    def export_collection(self, collection: str) -> dict[str, Any]:
        """A JSON-ready document of one collection (embeddings base64 float32 little-endian)."""
        import base64

        info = self.collection(collection)
        with self.transaction(write=False) as cur:
            cid = self._collection_row(cur, collection)[0]
            people = cur.execute("SELECT id, name, created_at FROM people WHERE collection_id=? ORDER BY name",
                                 (cid,)).fetchall()
            out_people = []
            for pid, pname, pcreated in people:
                faces = []
                for fid, emb, source, sha, box, image, created in cur.execute(
                        "SELECT id, embedding, source, image_sha256, box, image, created_at FROM faces "
                        "WHERE person_id=? ORDER BY id", (pid,)):
                    item = {"embedding": base64.b64encode(np.frombuffer(emb, np.float32).astype("<f4").tobytes())
                            .decode(), "source": source, "image_sha256": sha,
                            "box": json.loads(box) if box else None, "created_at": created}
                    if image is not None:
                        item["image_jpeg"] = base64.b64encode(image).decode()
                    faces.append(item)
                out_people.append({"name": pname, "created_at": pcreated, "faces": faces})
        return {"format": "recog.faces.collection", "version": 1,
                "collection": {"name": info.name, "threshold": info.threshold, "store_images": info.store_images,
                               "embedder": info.embedder, "created_at": info.created_at},
                "people": out_people}

    def import_collection(self, doc: dict[str, Any], *, name: str | None = None) -> CollectionInfo:
        """Create a collection from :meth:`export_collection`'s document (under ``name`` if given)."""
        import base64

        if not isinstance(doc, dict) or doc.get("format") != "recog.faces.collection":
            raise InvalidInputError("expected a recog face collection export (format 'recog.faces.collection').",
                                    hint="create one with `recog faces export --collection NAME FILE`")
        if doc.get("version") != 1:
            raise InvalidInputError(f"unsupported export version {doc.get('version')!r}; this recog reads 1.")
        meta = doc.get("collection") or {}
        if meta.get("embedder") != EMBEDDER_ID:
            raise InvalidInputError(f"the export holds {meta.get('embedder')!r} embeddings; this store uses "
                                    f"{EMBEDDER_ID!r}, and vectors of different embedders cannot be compared.")
        target = check_name("collection", name or meta.get("name", ""))
        threshold = check_threshold(float(meta.get("threshold", DEFAULT_THRESHOLD)))
        store_images = bool(meta.get("store_images", False))
        try:
            with self.transaction() as cur:
                if cur.execute("SELECT 1 FROM collections WHERE name=?", (target,)).fetchone():
                    raise ConflictError(f"collection {target!r} already exists.",
                                        hint="import under another name (--as NAME) or delete it first")
                cur.execute("INSERT INTO collections(name, threshold, store_images, embedder, created_at) "
                            "VALUES (?, ?, ?, ?, ?)", (target, threshold, int(store_images), EMBEDDER_ID,
                                                       meta.get("created_at") or _now()))
                cid = cur.lastrowid
                for person in doc.get("people", []):
                    pname = check_name("person", person.get("name", ""))
                    cur.execute("INSERT INTO people(collection_id, name, created_at) VALUES (?, ?, ?)",
                                (cid, pname, person.get("created_at") or _now()))
                    pid = cur.lastrowid
                    for face in person.get("faces", []):
                        raw = base64.b64decode(face["embedding"], validate=True)
                        vec = check_embeddings(np.frombuffer(raw, dtype="<f4"))[0]
                        image = base64.b64decode(face["image_jpeg"]) if store_images and face.get("image_jpeg") \
                            else None
                        box = face.get("box")
                        cur.execute("INSERT INTO faces(person_id, collection_id, embedding, source, image_sha256, "
                                    "box, image, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                    (pid, cid, vec.tobytes(), face.get("source"), face.get("image_sha256"),
                                     json.dumps(box) if box else None, image, face.get("created_at") or _now()))
        except RecogError:
            raise
        except (KeyError, TypeError, ValueError, sqlite3.IntegrityError) as exc:
            raise InvalidInputError(f"the export is malformed ({type(exc).__name__}: {exc}); nothing was imported.")
        return self.collection(target)
