"""Export a face collection to a JSON document, and import one.

The document (format ``recog.faces.collection``, version 1)::

    {"format": "recog.faces.collection", "version": 1,
     "collection": {"name", "threshold", "store_images", "embedder", "created_at"},
     "people": [{"name", "created_at", "faces": [{"embedding": base64 float32 little-endian,
                 "source", "image_sha256", "box", "created_at", "image_jpeg"?}]}]}

:func:`save_export` and :func:`load_export` write and read the document as a file.
An import is one transaction: a malformed document leaves nothing behind, and
vectors of another embedder are refused (they cannot be compared).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from recog.clock import utc_now
from recog.errors import ConflictError, InvalidInputError, RecogError
from recog.faces.dlib_models import DEFAULT_THRESHOLD, EMBEDDER_ID, check_threshold
from recog.faces.schema import check_embeddings, check_name, find_collection
from recog.faces.store import FaceStore
from recog.faces.types import CollectionInfo

FORMAT = "recog.faces.collection"
VERSION = 1


def export_collection(store: FaceStore, collection: str) -> dict[str, Any]:
    """A JSON-ready document of one collection (embeddings base64 float32 little-endian)."""
    info = store.collection(collection)
    with store.db.transaction(write=False) as cur:
        cid = find_collection(cur, collection, store.path).id
        people = cur.execute("SELECT id, name, created_at FROM people WHERE collection_id=? ORDER BY name",
                             (cid,)).fetchall()
        out_people = []
        for pid, pname, pcreated in people:
            faces = []
            for emb, source, sha, box, image, created in cur.execute(
                    "SELECT embedding, source, image_sha256, box, image, created_at FROM faces "
                    "WHERE person_id=? ORDER BY id", (pid,)):
                item = {"embedding": base64.b64encode(np.frombuffer(emb, np.float32).astype("<f4").tobytes())
                        .decode(), "source": source, "image_sha256": sha,
                        "box": json.loads(box) if box else None, "created_at": created}
                if image is not None:
                    item["image_jpeg"] = base64.b64encode(image).decode()
                faces.append(item)
            out_people.append({"name": pname, "created_at": pcreated, "faces": faces})
    return {"format": FORMAT, "version": VERSION,
            "collection": {"name": info.name, "threshold": info.threshold, "store_images": info.store_images,
                           "embedder": info.embedder, "created_at": info.created_at},
            "people": out_people}


def import_collection(store: FaceStore, doc: dict[str, Any], *, name: str | None = None) -> CollectionInfo:
    """Create a collection from :func:`export_collection`'s document (under ``name`` if given).

    Raises:
        InvalidInputError: not an export, another version or embedder, or malformed (nothing is imported).
        ConflictError: the collection exists.
    """
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidInputError(f"expected a recog face collection export (format {FORMAT!r}).",
                                hint="create one with `recog faces export --collection NAME FILE`")
    if doc.get("version") != VERSION:
        raise InvalidInputError(f"unsupported export version {doc.get('version')!r}; this recog reads {VERSION}.")
    meta = doc.get("collection") or {}
    if meta.get("embedder") != EMBEDDER_ID:
        raise InvalidInputError(f"the export holds {meta.get('embedder')!r} embeddings; this store uses "
                                f"{EMBEDDER_ID!r}, and vectors of different embedders cannot be compared.")
    target = check_name("collection", name or meta.get("name", ""))
    threshold = check_threshold(float(meta.get("threshold", DEFAULT_THRESHOLD)))
    store_images = bool(meta.get("store_images", False))
    try:
        with store.db.transaction() as cur:
            if cur.execute("SELECT 1 FROM collections WHERE name=?", (target,)).fetchone():
                raise ConflictError(f"collection {target!r} already exists.",
                                    hint="import under another name (--as NAME) or delete it first")
            cur.execute("INSERT INTO collections(name, threshold, store_images, embedder, created_at) "
                        "VALUES (?, ?, ?, ?, ?)", (target, threshold, int(store_images), EMBEDDER_ID,
                                                   meta.get("created_at") or utc_now()))
            cid = cur.lastrowid
            for person in doc.get("people", []):
                pname = check_name("person", person.get("name", ""))
                cur.execute("INSERT INTO people(collection_id, name, created_at) VALUES (?, ?, ?)",
                            (cid, pname, person.get("created_at") or utc_now()))
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
                                 json.dumps(box) if box else None, image, face.get("created_at") or utc_now()))
    except RecogError:
        raise
    except (KeyError, TypeError, ValueError, sqlite3.IntegrityError) as exc:
        raise InvalidInputError(f"the export is malformed ({type(exc).__name__}: {exc}); nothing was imported.")
    return store.collection(target)


def save_export(doc: dict[str, Any], path: str | os.PathLike) -> None:
    """Write an export document to ``path`` atomically (a crash leaves the old file or the new one)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def load_export(path: str | os.PathLike) -> Any:
    """Read an export document written by :func:`save_export`.

    Raises:
        InvalidInputError: no such file, or not JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such export file.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: not a JSON export ({exc}).") from exc
