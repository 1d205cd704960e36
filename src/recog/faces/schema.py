"""The face store's file: its tables, how it opens, and the checks on names and embeddings.

One SQLite file (see :class:`recog.index.db.Database`: WAL, ``synchronous=FULL``,
foreign keys, ``secure_delete``) is the source of truth. Each collection carries
a ``generation`` number, bumped by triggers in the same transaction as every
change to its faces (also changes made with plain SQL by another program); the
search index compares it before each lookup.

Schema version 1::

    collections(id, name UNIQUE, threshold, store_images, embedder, generation, created_at)
    people(id, collection_id -> collections ON DELETE CASCADE, name, created_at, UNIQUE(collection_id, name))
    faces(id, person_id -> people ON DELETE CASCADE, collection_id, embedding BLOB float32[128],
          source, image_sha256, box JSON, image BLOB NULL, created_at, UNIQUE(person_id, image_sha256))
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from recog.errors import InvalidInputError, NotFoundError, did_you_mean
from recog.faces.dlib_models import EMBEDDING_DIM
from recog.index.db import Database, generation_triggers
from recog.index.snapshot import check_vectors
from recog.index.store import check_collection_name

SCHEMA_VERSION = 1

#: Environment variable naming the default store file.
DB_ENV = "RECOG_FACES_DB"

SCHEMA = """
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
""" + generation_triggers("faces", "collections", "embedding, person_id, collection_id") + """\
CREATE TRIGGER IF NOT EXISTS people_rename_bumps AFTER UPDATE OF name ON people BEGIN
    UPDATE collections SET generation = generation + 1 WHERE id = NEW.collection_id; END;
"""

_NAME_MAX = 200


def default_db_path() -> Path:
    """``$RECOG_FACES_DB`` or ``~/.recog/faces.db``."""
    env = os.environ.get(DB_ENV)
    return Path(env).expanduser() if env else Path.home() / ".recog" / "faces.db"


def open_database(path: str | os.PathLike | None, *, timeout_s: float = 30.0) -> Database:
    """The face store file at ``path`` (default :func:`default_db_path`), its tables created if new.

    Raises:
        ConfigError: not an SQLite file, or written by a newer recog.
    """
    db = Database(Path(path).expanduser() if path is not None else default_db_path(), what="face store",
                  hint="pass --db with a new file, or restore the store from an export", timeout_s=timeout_s)
    db.install(SCHEMA, version=SCHEMA_VERSION)
    return db


class CollectionRow(NamedTuple):
    """One row of ``collections``."""

    id: int
    name: str
    threshold: float
    store_images: bool
    embedder: str
    generation: int
    created_at: str


def find_collection(cur: sqlite3.Cursor, name: str, path: Any) -> CollectionRow:
    """The collection named ``name``.

    Raises:
        NotFoundError: no such collection; the message names close ones, or all.
    """
    row = cur.execute("SELECT id, name, threshold, store_images, embedder, generation, created_at "
                      "FROM collections WHERE name=?", (name,)).fetchone()
    if row is None:
        names = [r[0] for r in cur.execute("SELECT name FROM collections ORDER BY name")]
        raise NotFoundError(f"no face collection named {name!r} in {path}; "
                            + (did_you_mean(name, names) or f"it has {', '.join(names) if names else 'none'}."),
                            hint="create it with `recog faces enroll ... --collection NAME`")
    cid, cname, threshold, store_images, embedder, generation, created = row
    return CollectionRow(int(cid), cname, float(threshold), bool(store_images), embedder, int(generation), created)


def check_name(kind: str, name: str) -> str:
    """Validate a name.

    Collections: letters, digits, ``.``, ``_``, ``-`` (they appear in URLs as
    ``/v1/collections/NAME:identify``). People: 1-200 printable characters
    without ``/`` or surrounding spaces (``Ada Lovelace`` is fine).
    """
    if kind == "collection":
        return check_collection_name(name)
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"{kind} name must be a non-empty string, got {name!r}.")
    if (name != name.strip() or len(name) > _NAME_MAX or "/" in name
            or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise InvalidInputError(f"{kind} name {name!r} is not usable: expected 1-{_NAME_MAX} printable characters "
                                "without '/' or leading or trailing spaces.")
    return name


def check_embeddings(vectors: Any) -> np.ndarray:
    """Embeddings as a C-contiguous ``(n, 128)`` float32 array of finite values."""
    return check_vectors(vectors, EMBEDDING_DIM, what="embeddings")
