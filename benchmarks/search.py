"""Visual search: retrieval quality on real photos, query latency and QPS, ANN recall, add/delete latency.

Measures, on this machine:

1. ``--compare``: the ANN library choice. faiss IVF-Flat, faiss HNSW and usearch HNSW on
   clustered synthetic unit vectors: build time, recall@10 against exact search, query p50,
   add / delete one vector, and a 1 %-selective filtered query (recall against exact filtered search).
2. Retrieval on ``../shared/data/clothing``: gallery = train (400 photos), queries = test (144);
   recall@1 / @10 = share of queries whose top 1 / 10 items include an item of the query's class
   (the recog search path: index_folder + query_images, efficientnet-lite0).
3. Query latency through :class:`recog.search.SearchIndex` (SQLite metadata included) at 10k and
   100k (``--sizes``) clustered synthetic vectors of ``--dim`` floats: exact vs ANN (IVF), p50 over
   single queries (k = 10), QPS = 1 / mean, ANN recall@10 against exact; add and delete of 1 item
   (SQLite commit with fsync + index update) and how many full index builds that took (0 expected).

Run: .venv/bin/python benchmarks/search.py [--compare] [--sizes 10000,100000] [--dim 1280] [--queries 200]
                                           [--no-clothing] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def clustered(n: int, dim: int, *, seed: int = 0, spread: float = 0.6) -> np.ndarray:
    """``n`` unit vectors around ``n / 50`` random centres (real embeddings are clustered, not uniform)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(8, n // 50), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def queries_near(x: np.ndarray, m: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = x[rng.choice(len(x), m, replace=False)] + 0.05 * rng.standard_normal((m, x.shape[1])).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a[:k].tolist()) & set(b.tolist())) / k for a, b in zip(found, truth)]))


def p50_ms(fn, items) -> tuple[float, float]:
    times = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, len(times) / sum(times)


# --------------------------------------------------------------------------- 1. library comparison


def compare_libraries(n: int, dim: int, m: int) -> list[dict]:
    import faiss
    import usearch.index as ui

    faiss.omp_set_num_threads(1)
    x = clustered(n, dim)
    q = queries_near(x, m)
    ids = np.arange(n, dtype=np.int64)
    truth = np.argsort(-(q @ x.T), axis=1)[:, :10]
    rng = np.random.default_rng(2)
    allowed = np.sort(rng.choice(n, n // 100, replace=False))
    truth_f = np.stack([allowed[np.argsort(-(x[allowed] @ r))[:10]] for r in q])
    rows = []

    def timed(fn):
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t

    # faiss IVF-Flat (what recog.search.ann uses)
    from recog.search.ann import AnnIndex, choose_nlist

    def build_ivf():
        a = AnnIndex(dim, "ivf")
        a.train(x[rng.choice(n, min(n, 40 * choose_nlist(n)), replace=False)], nlist=choose_nlist(n))
        a.add(ids, x)
        return a
    ivf, tb = timed(build_ivf)
    found = np.stack([ivf.search(r[None], 10)[1][0] for r in q])
    lat, _ = p50_ms(lambda r: ivf.search(r[None], 10), q)
    (_, ta) = timed(lambda: ivf.add(np.array([n + 1]), x[:1]))
    (_, td) = timed(lambda: ivf.remove(np.array([n + 1])))
    ff = np.stack([ivf.search(r[None], 10, allowed=allowed)[1][0] for r in q])
    rows.append({"library": f"faiss IVF-Flat (nlist {ivf.nlist}, nprobe {ivf.nprobe})", "build_s": round(tb, 1),
                 "recall@10": round(recall_at(found, truth), 3), "p50_ms": round(lat, 3),
                 "add1_ms": round(ta * 1e3, 3), "delete1_ms": round(td * 1e3, 3),
                 "filtered_1pct_recall@10": round(recall_at(ff, truth_f), 3), "delete": "removes the vector"})

    # faiss HNSW
    def build_hnsw():
        h = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = 80
        h.add(x)
        h.hnsw.efSearch = 64
        return h
    h, tb = timed(build_hnsw)
    _, found = h.search(q, 10)
    lat, _ = p50_ms(lambda r: h.search(r[None], 10), q)
    (_, ta) = timed(lambda: h.add(x[:1]))
    try:
        h.remove_ids(faiss.IDSelectorArray(np.array([0], dtype=np.int64)))
        delete = "ok"
    except RuntimeError:
        delete = "not supported"
    params = faiss.SearchParametersHNSW(sel=faiss.IDSelectorBatch(allowed), efSearch=64)
    _, ff = h.search(q, 10, params=params)
    rows.append({"library": "faiss HNSW (M 32, efSearch 64)", "build_s": round(tb, 1),
                 "recall@10": round(recall_at(found, truth), 3), "p50_ms": round(lat, 3),
                 "add1_ms": round(ta * 1e3, 3), "delete1_ms": None,
                 "filtered_1pct_recall@10": round(recall_at(ff, truth_f), 3), "delete": delete})

    # usearch HNSW
    def build_us():
        u = ui.Index(ndim=dim, metric="ip", connectivity=16, expansion_add=128, expansion_search=64)
        u.add(ids, x, threads=1)
        return u
    u, tb = timed(build_us)
    found = np.stack([u.search(r, 10, threads=1).keys for r in q])
    lat, _ = p50_ms(lambda r: u.search(r, 10, threads=1), q)
    (_, ta) = timed(lambda: u.add(n + 1, x[0]))
    (_, td) = timed(lambda: u.remove(n + 1))
    aset = set(allowed.tolist())
    t = time.perf_counter()
    ff = np.stack([np.array(([k for k in u.search(r, 2000, threads=1).keys if k in aset] + [-1] * 10)[:10])
                   for r in q])
    tf = (time.perf_counter() - t) / len(q)
    rows.append({"library": "usearch HNSW (M 16, ef 64)", "build_s": round(tb, 1),
                 "recall@10": round(recall_at(found, truth), 3), "p50_ms": round(lat, 3),
                 "add1_ms": round(ta * 1e3, 3), "delete1_ms": round(td * 1e3, 3),
                 "filtered_1pct_recall@10": round(recall_at(ff, truth_f), 3),
                 "delete": f"marks deleted; no filter predicate in Python (over-fetch 2000: {tf * 1e3:.1f} ms/query)"})
    return rows


# --------------------------------------------------------------------------- 2. clothing retrieval


def clothing_recall(db: Path) -> dict:
    from recog.search import Indexes, index_folder, load_embedder, query_images
    from recog.search.files import list_images

    root = SHARED / "clothing"
    with Indexes(db) as indexes:
        t = time.perf_counter()
        report = index_folder(indexes, "clothing", root / "train", model="efficientnet-lite0")
        build_s = time.perf_counter() - t
        index = indexes.get("clothing")
        queries = list_images(root / "test")
        embedder = load_embedder("efficientnet-lite0")
        t = time.perf_counter()
        results = query_images(index, [str(p) for p in queries], embedder=embedder, k=10)
        query_s = (time.perf_counter() - t) / len(queries)
    r1 = r10 = 0
    for p, hits in zip(queries, results):
        classes = [h.id.split("/")[0] for h in hits]
        r1 += classes[:1] == [p.parent.name]
        r10 += p.parent.name in classes
    return {"gallery": report.added, "queries": len(queries), "recall@1": round(r1 / len(queries), 3),
            "recall@10": round(r10 / len(queries), 3), "index_build_s": round(build_s, 1),
            "query_with_embedding_ms": round(query_s * 1e3, 1)}


# --------------------------------------------------------------------------- 3. index latency


def index_latency(n: int, dim: int, m: int, workdir: Path) -> list[dict]:
    import recog.search.ann as ann_module
    import recog.search.index as index_module
    from recog.search import Indexes, ModelRef

    ref = ModelRef("synthetic", "0" * 64, dim, (224, 224))
    x = clustered(n, dim, seed=n)
    q = queries_near(x, m, seed=n + 1)
    rows = []
    for kind in ("exact", "ivf"):
        budget = 10 ** 12 if kind == "exact" else 0  # force the kind
        ann_module.EXACT_MAX_FLOATS = index_module.EXACT_MAX_FLOATS = budget
        db = workdir / f"bench-{n}-{kind}.db"
        with Indexes(db) as indexes:
            idx = indexes.create("bench", model=ref)
            t = time.perf_counter()
            for start in range(0, n, 10000):
                idx.add([f"item{i}" for i in range(start, min(n, start + 10000))], x[start:start + 10000], model=ref,
                        fields=[{"group": i % 10} for i in range(start, min(n, start + 10000))])
            write_s = time.perf_counter() - t
            t = time.perf_counter()
            idx.sync()
            build_s = time.perf_counter() - t
            builds = idx.builds
            lat, qps = p50_ms(lambda r: idx.query(r, model=ref, k=10), q)
            found = [[int(h.id[4:]) for h in idx.query(r, model=ref, k=10)[0]] for r in q]
            flat, fqps = p50_ms(lambda r: idx.query(r, model=ref, k=10, where="group = 3"), q[:50])
            add_ms, del_ms = [], []
            for i in range(20):
                t = time.perf_counter()
                idx.add([f"new{i}"], q[i], model=ref)
                add_ms.append((time.perf_counter() - t) * 1e3)
                idx.query(q[i], model=ref, k=1)
                t = time.perf_counter()
                idx.delete(f"new{i}")
                del_ms.append((time.perf_counter() - t) * 1e3)
                idx.query(q[i], model=ref, k=1)
            rows.append({"n": n, "dim": dim, "kind": kind, "p50_ms": round(lat, 2), "qps": round(qps),
                         "filtered_10pct_p50_ms": round(flat, 2), "found": found,
                         "sqlite_write_s": round(write_s, 1), "index_build_s": round(build_s, 1),
                         "add1_ms": round(statistics.median(add_ms), 1), "delete1_ms": round(statistics.median(del_ms), 1),
                         "full_builds": idx.builds, "builds_before_updates": builds})
        db.unlink()
    exact = np.array(rows[0].pop("found"))
    ann = rows[1].pop("found")
    rows[1]["recall@10_vs_exact"] = round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ann, exact)])), 3)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", action="store_true", help="run the ANN library comparison")
    ap.add_argument("--compare-n", type=int, default=100_000)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--dim", type=int, default=1280, help="vector length (efficientnet-lite0: 1280)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--no-clothing", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.compare:
            out["compare"] = compare_libraries(args.compare_n, 128, args.queries)
            for r in out["compare"]:
                print(json.dumps(r), flush=True)
        if not args.no_clothing and (SHARED / "clothing").is_dir():
            out["clothing"] = clothing_recall(work / "clothing.db")
            print(json.dumps(out["clothing"]), flush=True)
        out["latency"] = []
        for n in [int(s) for s in args.sizes.split(",") if s]:
            rows = index_latency(n, args.dim, args.queries, work)
            out["latency"] += rows
            for r in rows:
                print(json.dumps(r), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
