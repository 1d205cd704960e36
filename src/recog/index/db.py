"""One SQLite file as the source of truth: connection, transactions, schema version, hard deletes.

Every store in recog that must survive a crash (face collections, vector
collections) opens its file through :class:`Database`:

* WAL journal and ``synchronous=FULL``: a committed transaction survives a
  power cut, and readers never block the writer;
* foreign keys on; ``secure_delete`` on, so deleted rows' bytes are
  overwritten in the database pages, and :meth:`Database.purge_wal` copies the
  WAL into the main file and truncates it after a delete, so no old copy of a
  deleted vector stays in either file;
* one connection shared by the threads of a process behind one lock; every
  operation is a short transaction. Several processes may open the same file.

Example:
    >>> db = Database("vectors.db", what="vector store")                   # doctest: +SKIP
    >>> db.install(SCHEMA, version=1, key="vectors_schema_version")         # doctest: +SKIP
    >>> with db.transaction() as cur:                                       # doctest: +SKIP
    ...     cur.execute("INSERT ...")
"""

from __future__ import annotations

import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Self

from recog.errors import ConfigError, ConflictError


def statements(script: str) -> list[str]:
    """Split a schema script into statements (``sqlite3.complete_statement`` keeps triggers whole)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s]


def generation_triggers(table: str, parent: str, columns: str) -> str:
    """Triggers that bump ``parent.generation`` whenever rows of ``table`` (which have a
    ``collection_id``) are inserted, deleted, or changed in ``columns``: an in-memory index
    compares generations to know it is stale, whoever wrote the rows (even plain SQL)."""
    bump = f"UPDATE {parent} SET generation = generation + 1 WHERE id"
    return (f"CREATE TRIGGER IF NOT EXISTS {table}_insert_bumps AFTER INSERT ON {table} BEGIN\n"
            f"    {bump} = NEW.collection_id; END;\n"
            f"CREATE TRIGGER IF NOT EXISTS {table}_delete_bumps AFTER DELETE ON {table} BEGIN\n"
            f"    {bump} = OLD.collection_id; END;\n"
            f"CREATE TRIGGER IF NOT EXISTS {table}_update_bumps AFTER UPDATE OF {columns} ON {table} BEGIN\n"
            f"    {bump} IN (OLD.collection_id, NEW.collection_id); END;\n")


def insert_each(cur: sqlite3.Cursor, sql: str, rows: Iterable[tuple], *, skip_existing: bool,
                conflict: Callable[[int], str]) -> list[int | None]:
    """Insert each row with ``sql``; returns the new ids in order.

    A row that breaks a UNIQUE constraint (already stored) is skipped as None with
    ``skip_existing`` (so an interrupted load can be rerun), else raises
    ``ConflictError(conflict(i))`` for row ``i`` and the caller's transaction rolls back.
    """
    ids: list[int | None] = []
    for i, row in enumerate(rows):
        try:
            cur.execute(sql, row)
        except sqlite3.IntegrityError as exc:
            if not skip_existing:
                raise ConflictError(conflict(i)) from exc
            ids.append(None)
            continue
        ids.append(int(cur.lastrowid))
    return ids


class Closing(ABC):
    """Base: ``with obj:`` calls ``obj.close()`` on the way out."""

    @abstractmethod
    def close(self) -> None:
        """Release what the object holds (files, threads)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Database:
    """One SQLite file opened for durable, crash-safe use (see the module docstring).

    Args:
        path: the file (its folder is created), or ``":memory:"``.
        what: what the file holds, for error messages ("face store").
        hint: how to recover when the file cannot be opened.
        timeout_s: how long a write waits for another process's lock.

    Raises:
        ConfigError: the file exists but is not an SQLite database.
    """

    def __init__(self, path: str | os.PathLike, *, what: str = "store", hint: str | None = None,
                 timeout_s: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self.what = what
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA secure_delete=ON")
            self.conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: cannot open as a {what} ({exc}).", hint=hint) from exc
        self.lock = threading.RLock()

    def install(self, script: str, *, version: int, key: str = "schema_version") -> None:
        """Create the tables of ``script`` if missing and record ``version`` under ``key`` in ``meta``.

        Raises:
            ConfigError: the file was written by a newer recog (its version is above ``version``).
        """
        with self.transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for stmt in statements(script):
                cur.execute(stmt)
            row = cur.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            if row is None:
                cur.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (key, str(version)))
            elif int(row[0]) > version:
                raise ConfigError(f"{self.path}: {self.what} schema {row[0]} is newer than this recog "
                                  f"(understands {version}).", hint="upgrade recog")

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Cursor]:
        """One transaction (``BEGIN IMMEDIATE`` for writes); rolled back if the block raises."""
        with self.lock:
            cur = self.conn.cursor()
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

    def query_one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple | None:
        """One row of a single read statement (no explicit transaction: the cheap path for hot reads)."""
        with self.lock:
            return self.conn.execute(sql, params).fetchone()

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        with self.lock:
            return "\n".join(r[0] for r in self.conn.execute("PRAGMA integrity_check").fetchall())

    def purge_wal(self) -> None:
        """After a delete: copy the WAL into the main file and truncate it, so no old page survives."""
        with self.lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()


class Store(Closing):
    """Base of the stores of named collections in one :class:`Database`: ``path``, ``close``,
    ``with``, ``integrity_check``, and :meth:`collections` through the subclass's ``collection(name)``."""

    #: the table with one row per collection, each with a unique ``name``.
    collections_table = "collections"

    def __init__(self, db: Database) -> None:
        self.db = db
        self.path = db.path

    def close(self) -> None:
        self.db.close()

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        return self.db.integrity_check()

    @abstractmethod
    def collection(self, name: str) -> Any:
        """One collection's info (the subclass's own type)."""

    def collections(self) -> list[Any]:
        """Every collection's :meth:`collection` info, by name."""
        with self.db.transaction(write=False) as cur:
            names = [r[0] for r in cur.execute(f"SELECT name FROM {self.collections_table} ORDER BY name")]
        return [self.collection(n) for n in names]
