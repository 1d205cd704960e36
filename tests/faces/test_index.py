"""The vector index without models: exact top-k people against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from recog.faces import FaceStore, Index, IndexCache, search


@pytest.fixture
def gallery_store(tmp_path, random_gallery):
    names, vectors = random_gallery
    with FaceStore(tmp_path / "idx.db") as store:
        store.create_collection("g")
        store.add_bulk("g", names, vectors)
        yield store


def _brute(names, vectors, q, k):
    d = np.linalg.norm(vectors.astype(np.float64) - q.astype(np.float64), axis=1)
    best: dict[str, float] = {}
    for n, dist in zip(names, d):
        best[n] = min(best.get(n, np.inf), dist)
    return sorted(best.items(), key=lambda t: t[1])[:k]


def test_search_matches_brute_force(gallery_store, random_gallery):
    names, vectors = random_gallery
    index = Index.build(gallery_store.snapshot("g"))
    assert len(index) == 200 and len(index.snapshot.person_names) == 50
    rng = np.random.default_rng(1)
    queries = vectors[rng.choice(200, 10)] + rng.normal(scale=0.05, size=(10, 128)).astype(np.float32)
    for q, (matches, nearest) in zip(queries, search(index, queries, k=5)):
        ref = _brute(names, vectors, q, 5)
        assert [m.person for m in matches] == [n for n, _ in ref]
        assert [m.distance for m in matches] == pytest.approx([d for _, d in ref], abs=1e-5)
        assert nearest == pytest.approx(ref[0][1], abs=1e-5)
        face_vec = vectors[int(matches[0].face_id) - 1]  # face ids follow insertion order here
        assert np.linalg.norm(face_vec - q) == pytest.approx(matches[0].distance, abs=1e-5)


def test_max_distance_and_empty(gallery_store, random_gallery, tmp_path):
    _, vectors = random_gallery
    index = Index.build(gallery_store.snapshot("g"))
    matches, nearest = search(index, vectors[7], k=3, max_distance=0.1)[0]
    assert [m.person for m in matches] == ["person-01"] and nearest == pytest.approx(0.0, abs=1e-3)
    far, nearest = search(index, -vectors[7] * 10, k=3, max_distance=0.6)[0]
    assert far == [] and nearest > 0.6
    gallery_store.create_collection("empty")
    assert search(Index.build(gallery_store.snapshot("empty")), vectors[0], k=3) == [([], None)]


def test_cache_rebuilds_only_when_the_store_changed(gallery_store, random_gallery):
    names, vectors = random_gallery
    cache = IndexCache(gallery_store)
    first, _ = cache.get("g")
    again, _ = cache.get("g")
    assert first is again and cache.builds == 1
    gallery_store.delete_person("g", "person-01")
    fresh, _ = cache.get("g")
    assert fresh is not first and cache.builds == 2 and len(fresh) == 196
    assert "person-01" not in fresh.snapshot.person_names
    assert len(first) == 200  # the old index was never mutated (a reader holding it saw a whole index)


def test_cache_sees_plain_sql_writes_by_another_program(gallery_store):
    import sqlite3

    cache = IndexCache(gallery_store)
    before, _ = cache.get("g")
    with sqlite3.connect(gallery_store.path) as conn:  # not through FaceStore: the triggers still count it
        conn.execute("DELETE FROM faces WHERE person_id=(SELECT id FROM people WHERE name='person-02')")
    after, _ = cache.get("g")
    assert after is not before and len(after) == 196 and "person-02" not in after.snapshot.person_names


def test_search_leaves_the_blas_thread_count_as_it_was(gallery_store, random_gallery):
    from threadpoolctl import threadpool_info

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    search(Index.build(gallery_store.snapshot("g")), random_gallery[1][:3], k=2)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before
