"""What the search index reads from a face store: the collection's version and a consistent snapshot.

A face collection is a :mod:`recog.index` collection whose owners are people:
rows are the ``faces`` table's embeddings, grouped by person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from recog.faces.dlib_models import EMBEDDING_DIM
from recog.faces.schema import find_collection
from recog.index.db import Database
from recog.index.snapshot import Snapshot, build_snapshot


class CollectionVersion(NamedTuple):
    """A collection's id and generation (what the index is checked against) and its threshold."""

    collection_id: int
    generation: int
    threshold: float


@dataclass(frozen=True)
class FaceSnapshot(Snapshot):
    """Every embedding of one collection at one generation, rows sorted by person.

    The generic fields under the faces' names: ``person_names`` (owners),
    ``person_starts`` (owner_starts) and ``face_ids`` (ids).
    """

    @property
    def person_names(self) -> tuple[str, ...]:
        return self.owners

    @property
    def person_starts(self) -> np.ndarray:
        return self.owner_starts

    @property
    def face_ids(self) -> np.ndarray:
        return self.ids


def read_version(db: Database, collection: str) -> CollectionVersion:
    """``(collection id, generation, threshold)``: one indexed read, checked before every search.

    Raises:
        NotFoundError: no such collection.
    """
    row = db.query_one("SELECT id, generation, threshold FROM collections WHERE name=?", (collection,))
    if row is None:
        with db.transaction(write=False) as cur:
            find_collection(cur, collection, db.path)  # raises NotFoundError with suggestions
    return CollectionVersion(int(row[0]), int(row[1]), float(row[2]))


def read_snapshot(db: Database, collection: str) -> FaceSnapshot:
    """Every embedding of a collection, read in one transaction (a consistent view)."""
    with db.transaction(write=False) as cur:
        info = find_collection(cur, collection, db.path)
        rows = cur.execute("SELECT id, person_id, embedding FROM faces WHERE collection_id=? "
                           "ORDER BY person_id, id", (info.id,)).fetchall()
        names = dict(cur.execute("SELECT id, name FROM people WHERE collection_id=?", (info.id,)).fetchall())
    return build_snapshot(FaceSnapshot, info.id, info.generation, rows, EMBEDDING_DIM, owner_names=names)
