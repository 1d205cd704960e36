"""Search indexes on a real SQLite file: round trip, filters, model refusal, incremental ANN, crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from recog.errors import ConflictError, InvalidInputError, NotFoundError
from recog.search import Indexes, ModelRef
from recog.search import ann as ann_module

REF = ModelRef("test-model", "a" * 64, 16, (32, 32))
OTHER = ModelRef("other-model", "b" * 64, 16, (32, 32))


def unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fields(i: int) -> dict:
    return {"category": ["shoes", "hats", "bags"][i % 3], "price": i, "brand": f"b{i % 5}"}


@pytest.fixture()
def db(tmp_path):
    return tmp_path / "search.db"


def test_round_trip_build_query_add_delete(db):
    v = unit(60)
    with Indexes(db) as indexes:
        shop = indexes.create("shop", model=REF)
        shop.add([f"sku{i}" for i in range(50)], v[:50], model=REF, sources=[f"{i}.jpg" for i in range(50)],
                 fields=[fields(i) for i in range(50)])
        hits = shop.query(v[7], model=REF, k=3)[0]
        assert hits.ids[0] == "sku7" and hits.hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits.hits[0].metadata == fields(7) and hits.hits[0].source == "7.jpg"
        assert hits.to_dict()["hits"][0]["id"] == "sku7"
    # reopen: everything came back from the file
    with Indexes(db) as indexes:
        shop = indexes.get("shop")
        assert shop.info().items == 50
        shop.add(["new"], v[55], model=REF)
        assert shop.query(v[55], model=REF, k=1)[0].ids == ["new"]
        assert shop.delete("sku7") == 1
        assert "sku7" not in shop.query(v[7], model=REF, k=5)[0].ids
        with pytest.raises(NotFoundError):
            shop.delete("sku7")
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT count(*) FROM vectors WHERE owner='sku7'").fetchone()[0] == 0  # hard delete
    raw.close()


def test_items_with_several_images_are_returned_once(db):
    v = unit(6)
    with Indexes(db) as indexes:
        shop = indexes.create("shop", model=REF)
        shop.add(["a", "a", "a", "b", "c", "d"], v, model=REF)
        hits = shop.query(v[1], model=REF, k=3)[0]
        assert hits.ids[0] == "a" and len(set(hits.ids)) == 3


def test_filters(db):
    v = unit(90)
    with Indexes(db) as indexes:
        shop = indexes.create("shop", model=REF)
        shop.add([f"sku{i}" for i in range(90)], v, model=REF, fields=[fields(i) for i in range(90)])

        def found(where, k=90):
            return set(shop.query(v[0], model=REF, k=k, where=where)[0].ids)

        assert found("category = 'hats'") == {f"sku{i}" for i in range(90) if i % 3 == 1}
        assert found("category = 'hats' AND price < 10") == {"sku1", "sku4", "sku7"}
        assert found("price >= 85 OR brand IN ('b0') AND price < 6") == {"sku0", "sku5"} | {
            f"sku{i}" for i in range(85, 90)}
        assert found("NOT (category != 'bags') AND price <= 5") == {"sku2", "sku5"}
        assert found("id IN ('sku3', 'sku4')") == {"sku3", "sku4"}
        assert found("brand NOT IN ('b0', 'b1', 'b2', 'b3') AND price < 20") == {"sku4", "sku9", "sku14", "sku19"}
        assert found("colour = null AND price = 3") == {"sku3"}
        assert found("price > 1000") == set()
        # injection attempts are just values or syntax errors
        assert found("category = 'x'' OR 1=1 --'") == set()
        with pytest.raises(InvalidInputError):
            found("category = 'x'; DROP TABLE vectors")


@pytest.mark.parametrize("text, where_at, says", [
    ("category = ", 12, "expected a value"),
    ("category == 'x'", 11, "expected a value"),
    ("category 'x'", 10, "expected an operator"),
    ("(price < 3", 11, "expected ')'"),
    ("price < 3 AND", 14, "expected a field name"),
    ("price IN 1, 2", 10, "expected '('"),
    ("a = 1 b = 2", 7, "expected AND, OR"),
    ("a = 'unterminated", 5, "unexpected character"),
    ("a < null", 5, "cannot compare with null"),
    ("price = 3 @", 11, "unexpected character '@'"),
])
def test_filter_syntax_errors_say_where(text, where_at, says):
    from recog.search import parse

    with pytest.raises(InvalidInputError) as info:
        parse(text)
    msg = str(info.value)
    assert f"position {where_at}" in msg and says in msg
    assert text in msg and "^" in msg


def test_filter_limits():
    from recog.search import parse

    with pytest.raises(InvalidInputError, match="deeper"):
        parse("(" * 40 + "a = 1" + ")" * 40)
    with pytest.raises(InvalidInputError, match="empty"):
        parse("  ")


def test_other_models_vectors_are_refused_naming_both(db):
    with Indexes(db) as indexes:
        shop = indexes.create("shop", model=REF)
        shop.add(["a"], unit(1), model=REF)
        for call in (lambda: shop.query(unit(1), model=OTHER), lambda: shop.add(["b"], unit(1), model=OTHER),
                     lambda: indexes.create("shop", model=OTHER, exist_ok=True)):
            with pytest.raises(ConflictError) as info:
                call()
            assert "test-model" in str(info.value) and "other-model" in str(info.value)
        assert indexes.create("shop", model=REF, exist_ok=True) is shop


def test_unknown_index_names_the_existing_ones_without_the_path(db):
    with Indexes(db) as indexes:
        indexes.create("shop", model=REF)
        indexes.create("archive", model=REF)
        with pytest.raises(NotFoundError) as info:
            indexes.get("shpo")
    msg = str(info.value)
    assert "shop" in msg and "archive" in msg and str(db.parent) not in msg


@pytest.fixture()
def small_exact_budget(monkeypatch):
    """Serve indexes above 16 * 400 floats with IVF, so IVF is exercised on a few hundred vectors."""
    monkeypatch.setattr(ann_module, "EXACT_MAX_FLOATS", 16 * 400)
    import recog.search.index as index_module

    monkeypatch.setattr(index_module, "EXACT_MAX_FLOATS", 16 * 400)


def test_ann_updates_incrementally_and_catches_up_from_sqlite(db, small_exact_budget):
    v = unit(900, seed=1)
    ids = [f"i{i}" for i in range(900)]
    with Indexes(db) as indexes:
        idx = indexes.create("big", model=REF)
        idx.add(ids[:800], v[:800], model=REF)
        assert idx.query(v[3], model=REF, k=1)[0].ids == ["i3"]
        assert idx.info().kind == "ivf" and idx.builds == 1
        idx.add(["i800"], v[800], model=REF)  # one add: no rebuild
        idx.delete("i3")                       # one delete: no rebuild
        assert idx.query(v[800], model=REF, k=1)[0].ids == ["i800"]
        assert "i3" not in idx.query(v[3], model=REF, k=10, exact=True)[0].ids
        assert idx.builds == 1
    cache = db.with_name("search.ann")
    assert len(list(cache.glob("*.faiss"))) == 1  # saved at close
    # another process adds while nobody serves the index: the cache is behind
    with Indexes(db) as writer:
        writer.get("big").add(ids[801:900], v[801:900], model=REF)
    with Indexes(db) as indexes:
        idx = indexes.get("big")
        assert idx.query(v[850], model=REF, k=1)[0].ids == ["i850"]
        assert idx.builds == 0  # read from the cache and caught up, not rebuilt
        assert len(idx) == 899
        # a delete removes the cache file at once (it holds the deleted vector)
        idx.delete("i850")
        assert not list(cache.glob("*.faiss"))
        # a change by another connection is seen by the next query
        other = Indexes(db)
        other.get("big").delete("i851")
        other.close()
        assert "i851" not in idx.query(v[851], model=REF, k=5)[0].ids


def test_filtered_ivf_query_finds_the_matching_items(db, small_exact_budget, monkeypatch):
    monkeypatch.setattr(ann_module, "FILTER_EXACT_MAX_FLOATS", 16 * 50)  # take the IDSelector path
    v = unit(900, seed=2)
    with Indexes(db) as indexes:
        idx = indexes.create("big", model=REF)
        idx.add([f"i{i}" for i in range(900)], v, model=REF, fields=[fields(i) for i in range(900)])
        hits = idx.query(v[4], model=REF, k=10, where="category = 'hats'")[0]
        assert hits.ids[0] == "i4" and len(hits) == 10
        assert all(h.metadata["category"] == "hats" for h in hits)


def test_uncommitted_add_is_not_kept_and_committed_ones_are(db):
    with Indexes(db) as indexes:
        indexes.create("shop", model=REF).add(["kept"], unit(1), model=REF)
    # a writer that dies mid-transaction (closes without commit)
    raw = sqlite3.connect(db, isolation_level=None)
    raw.execute("BEGIN IMMEDIATE")
    raw.execute("INSERT INTO vectors(collection_id, owner, key, vector, metadata, created_at) "
                "SELECT id, 'lost', 'k', ?, '{}', 'now' FROM vector_collections", (unit(1).tobytes(),))
    raw.close()
    with Indexes(db) as indexes:
        shop = indexes.get("shop")
        assert shop.info().items == 1
        assert shop.query(unit(1), model=REF, k=5)[0].ids == ["kept"]


def test_killed_writer_loses_nothing_acknowledged(db, tmp_path):
    """A process adding items one at a time is killed (SIGKILL); every id it printed is in the index."""
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(f"""
        import sys, numpy as np
        from recog.search import Indexes, ModelRef
        ref = ModelRef("test-model", "{'a' * 64}", 16, (32, 32))
        indexes = Indexes(sys.argv[1])
        idx = indexes.create("shop", model=ref, exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(100000):
            v = rng.standard_normal(16).astype(np.float32)
            idx.add([f"item{{i}}"], v / np.linalg.norm(v), model=ref)
            print(f"item{{i}}", flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE, text=True)
    acked = []
    for line in proc.stdout:
        acked.append(line.strip())
        if len(acked) >= 25:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    acked += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    with Indexes(db) as indexes:
        idx = indexes.get("shop")
        assert idx.store.integrity_check() == "ok"
        stored = {o for o, _ in idx.existing_keys()}
    assert set(acked) <= stored
