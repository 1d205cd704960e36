"""The generic vector store and exact index on a real SQLite file, with 12-d product vectors (not faces)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from recog.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError
from recog.index import Database, ExactIndex, Hit, IndexCache, VectorStore, search

DIM = 12


@pytest.fixture
def catalog():
    """30 products x 3 photos each: unit vectors, owners 'sku-00'..'sku-29', keys 'photo-0'..'photo-2'."""
    rng = np.random.default_rng(7)
    v = rng.normal(size=(90, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    owners = [f"sku-{i // 3:02d}" for i in range(90)]
    keys = [f"photo-{i % 3}" for i in range(90)]
    return owners, keys, v


@pytest.fixture
def store(tmp_path, catalog):
    owners, keys, vectors = catalog
    with VectorStore(tmp_path / "products.db") as s:
        s.create_collection("catalog", dim=DIM, metadata={"model": "clip-tiny"})
        ids = s.add("catalog", owners, vectors, keys=keys, metadata=[{"shelf": i % 4} for i in range(90)])
        assert ids == list(range(1, 91))
        yield s


def _brute(owners, vectors, q, k):
    d = np.linalg.norm(vectors.astype(np.float64) - q.astype(np.float64), axis=1)
    best: dict[str, float] = {}
    for o, dist in zip(owners, d):
        best[o] = min(best.get(o, np.inf), dist)
    return sorted(best.items(), key=lambda t: t[1])[:k]


def test_file_is_durable_and_rows_round_trip(store, catalog, tmp_path):
    conn = store.db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    info = store.collection("catalog")
    assert (info.dim, info.vectors, info.owners, info.metadata) == (DIM, 90, 30, {"model": "clip-tiny"})
    rec = store.get("catalog", 5)
    assert (rec.owner, rec.key, rec.metadata) == ("sku-01", "photo-1", {"shelf": 0})
    np.testing.assert_array_equal(rec.vector, catalog[2][4])
    store.close()
    with VectorStore(tmp_path / "products.db") as again:  # reopened: everything is still there
        assert again.collection("catalog").vectors == 90 and again.integrity_check() == "ok"


def test_exact_search_matches_brute_force(store, catalog):
    owners, _, vectors = catalog
    index = ExactIndex.build(store.snapshot("catalog"))
    assert len(index) == 90 and len(index.snapshot.owners) == 30 and index.version == store.version("catalog")
    rng = np.random.default_rng(1)
    queries = vectors[rng.choice(90, 8)] + rng.normal(scale=0.05, size=(8, DIM)).astype(np.float32)
    for q, (hits, nearest) in zip(queries, index.search(queries, k=4)):
        ref = _brute(owners, vectors, q, 4)
        assert [h.owner for h in hits] == [o for o, _ in ref]
        assert [h.distance for h in hits] == pytest.approx([d for _, d in ref], abs=1e-5)
        assert nearest == pytest.approx(ref[0][1], abs=1e-5)
        assert np.linalg.norm(vectors[hits[0].id - 1] - q) == pytest.approx(hits[0].distance, abs=1e-5)
    (hits, _), = search(index, vectors[10], k=3, max_distance=1e-3)
    assert hits == [Hit("sku-03", pytest.approx(0.0, abs=1e-3), 11)]
    store.create_collection("empty", dim=DIM)
    assert ExactIndex.build(store.snapshot("empty")).search(vectors[0], k=2) == [([], None)]


def test_cache_follows_writes_also_from_plain_sql(store, catalog):
    cache = IndexCache(store)
    first, version = cache.current("catalog")
    assert cache.current("catalog")[0] is first and cache.builds == 1
    assert store.delete_owner("catalog", "sku-02") == 3
    second, newer = cache.current("catalog")
    assert second is not first and newer.generation > version.generation and len(second) == 87
    assert len(first) == 90  # the old index was never mutated
    with sqlite3.connect(store.path) as conn:  # another program: the triggers still bump the generation
        conn.execute("DELETE FROM vectors WHERE owner='sku-03'")
    third, _ = cache.current("catalog")
    assert cache.builds == 3 and "sku-03" not in third.snapshot.owners and len(third) == 84


def test_deletes_are_hard(store, catalog):
    _, _, vectors = catalog
    assert store.delete("catalog", [1, 2, 999]) == 2
    store.delete_collection("catalog")
    raw = b"".join(p.read_bytes() for p in store.path.parent.glob("products.db*"))
    assert all(v.tobytes() not in raw for v in vectors[:6])
    with pytest.raises(NotFoundError, match="catalog"):
        store.snapshot("catalog")


def test_bad_input_is_refused_with_reasons(store, catalog):
    with pytest.raises(InvalidInputError, match=r"\(n, 12\)"):
        store.add("catalog", "sku-x", np.zeros((1, 8)))
    with pytest.raises(InvalidInputError, match="NaN"):
        store.add("catalog", "sku-x", np.full(DIM, np.nan))
    with pytest.raises(NotFoundError, match="did you mean catalog"):
        store.version("catalgo")
    with pytest.raises(ConflictError):
        store.create_collection("catalog", dim=64)
    assert store.create_collection("catalog", dim=DIM, exist_ok=True).vectors == 90
    assert store.add("catalog", "sku-00", catalog[2][:1], keys=["photo-0"]) == [None]  # already there: skipped
    with pytest.raises(ConflictError):
        store.add("catalog", "sku-00", catalog[2][:1], keys=["photo-0"], skip_existing=False)
    with pytest.raises(InvalidInputError):
        store.create_collection("has space", dim=DIM)


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "v.db"
    VectorStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='vectors_schema_version'")
    with pytest.raises(ConfigError, match="newer"):
        VectorStore(path)
    (tmp_path / "junk.db").write_bytes(b"not a database, just bytes" * 100)
    with pytest.raises(ConfigError, match="cannot open"):
        Database(tmp_path / "junk.db", what="vector store").install("", version=1)
