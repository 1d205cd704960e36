"""Faces: detection and embedding time, pipeline overhead over raw dlib, identify latency.

Measures, on this machine:

1. Detection time per image at 640x480 and 1920x1080 (HOG upsample 0 and 1;
   CNN upsample 0), on a real photograph (matplotlib's Grace Hopper portrait
   over scikit-image's coffee photo as background).
2. Embedding time per face (5-point alignment + ResNet 128-d).
3. Our pipeline (``FaceAnalyzer.analyze``: safe decode, EXIF, detect,
   landmarks, embed, typed results) against the same dlib models called
   directly (``dlib.load_rgb_image``, detector, shape predictor,
   ``compute_face_descriptor``). Bar: at most 10% slower per image.
4. Identify latency over 10k, 100k and 1M stored embeddings: the embeddings
   are written to a real SQLite store, the index is built from it, then one
   probe embedding is searched (top-5 people). Bar: under 20 ms at 100k on 2 cores.

Run: .venv/bin/python benchmarks/faces.py [--sizes 10000,100000,1000000] [--repeats 15] [--json out.json]
Thread count: OMP/OpenBLAS threads are set to --threads (default 2) before numpy loads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _median_ms(fn, repeats: int, warmup: int = 1) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def make_scene(out: Path, width: int, height: int) -> Path:
    """A JPEG of ``width x height``: the coffee photo as background, the portrait pasted at 80% height."""
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        face = Image.open(fh).convert("RGB")
    scene = Image.fromarray(data.coffee()).resize((width, height))
    h = int(height * 0.8)
    face = face.resize((int(face.width * h / face.height), h))
    scene.paste(face, ((width - face.width) // 2, (height - h) // 2))
    path = out / f"scene_{width}x{height}.jpg"
    scene.save(path, quality=90)
    return path


def bench_detection(scenes: dict[str, Path], repeats: int) -> dict:
    from recog.faces import FaceAnalyzer

    fa = FaceAnalyzer()
    out: dict = {}
    for label, path in scenes.items():
        for detector, upsample in (("hog", 0), ("hog", 1), ("cnn", 0)):
            n = max(2, repeats // 5) if detector == "cnn" and label == "640x480" else 1 if detector == "cnn" else repeats
            faces = len(fa.detect(path, detector=detector, upsample=upsample))
            med, p95 = _median_ms(lambda: fa.detect(path, detector=detector, upsample=upsample), n,
                                  warmup=0 if n == 1 else 1)
            out[f"{label} {detector} upsample={upsample}"] = {"median_ms": round(med, 1), "p95_ms": round(p95, 1),
                                                              "faces": faces}
            print(f"  detect {label:9s} {detector} upsample={upsample}: {med:8.1f} ms median "
                  f"({p95:.1f} p95, {faces} face)", flush=True)
    return out


def bench_embedding(path: Path, repeats: int) -> dict:
    import numpy as np

    from recog.faces import FaceAnalyzer

    fa = FaceAnalyzer()
    found = fa.find(path, max_faces=1)  # decoded and detected once; only the embedding is timed
    med, p95 = _median_ms(lambda: fa.embed_found(found), repeats)
    assert fa.embed_found(found).shape == (1, 128) and np.isfinite(found.pixels).all()
    print(f"  embed one face (align + ResNet): {med:.1f} ms median ({p95:.1f} p95)", flush=True)
    return {"median_ms": round(med, 1), "p95_ms": round(p95, 1)}


def bench_overhead(scenes: dict[str, Path], repeats: int) -> dict:
    """Interleaved runs of our pipeline and raw dlib on the same files."""
    import dlib
    import numpy as np

    from recog.faces import FaceAnalyzer
    from recog.faces.dlib_models import model_path

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(model_path("landmarks5")))
    net = dlib.face_recognition_model_v1(str(model_path("resnet")))
    fa = FaceAnalyzer()

    def direct(path: Path):
        img = dlib.load_rgb_image(str(path))
        return [np.asarray(net.compute_face_descriptor(img, sp(img, r))) for r in det(img, 1)]

    out = {}
    for label, path in scenes.items():
        # Same pixels in, same vectors out (the two JPEG decoders differ slightly, so compare on dlib's pixels).
        ours_vecs = fa.analyze(dlib.load_rgb_image(str(path)))[1]
        theirs = direct(path)
        assert len(ours_vecs) == len(theirs) and all(np.linalg.norm(a - b) < 1e-4 for a, b in zip(ours_vecs, theirs))
        ours_t, direct_t = [], []
        for _ in range(2):  # warm both
            fa.analyze(path)
            direct(path)
        for _ in range(repeats):
            t = time.perf_counter()
            direct(path)
            direct_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            fa.analyze(path)
            ours_t.append(time.perf_counter() - t)
        o, d = statistics.median(ours_t) * 1000, statistics.median(direct_t) * 1000
        overhead = (o - d) / d * 100
        out[label] = {"ours_ms": round(o, 1), "direct_dlib_ms": round(d, 1), "overhead_pct": round(overhead, 2)}
        print(f"  per image {label:9s}: ours {o:8.1f} ms, direct dlib {d:8.1f} ms, overhead {overhead:+.1f}% "
              f"(bar <= 10%)", flush=True)
    return out


def bench_identify(sizes: list[int], repeats: int, workdir: Path) -> dict:
    import numpy as np

    from recog.faces import FaceStore, IndexCache, search

    rng = np.random.default_rng(0)
    out = {}
    for n in sizes:
        db = workdir / f"identify_{n}.db"
        vectors = rng.normal(size=(n, 128)).astype(np.float32)
        vectors *= 1.4 / np.linalg.norm(vectors, axis=1, keepdims=True)  # dlib's embeddings have norm ~1.3-1.5
        names = [f"person-{i // 5:07d}" for i in range(n)]  # 5 faces per person
        with FaceStore(db) as store:
            store.create_collection("bench")
            t = time.perf_counter()
            store.add_bulk("bench", names, vectors)
            write_s = time.perf_counter() - t
            cache = IndexCache(store)
            t = time.perf_counter()
            cache.get("bench")
            build_s = time.perf_counter() - t
            probe = vectors[n // 2] + rng.normal(scale=0.02, size=128).astype(np.float32)

            def lookup():  # what identify does per face: generation check + search
                index, threshold = cache.get("bench")
                return search(index, probe, k=5, max_distance=threshold)

            matches, _ = lookup()[0]
            assert matches and matches[0].person == names[n // 2]
            med, p95 = _median_ms(lookup, repeats, warmup=3)
            index, _ = cache.get("bench")
            search_med, _ = _median_ms(lambda: search(index, probe, k=5), repeats, warmup=1)
        size_mb = sum(p.stat().st_size for p in workdir.glob(f"identify_{n}.db*")) / 1e6
        for p in workdir.glob(f"identify_{n}.db*"):
            p.unlink()
        out[str(n)] = {"identify_median_ms": round(med, 2), "identify_p95_ms": round(p95, 2),
                       "search_only_median_ms": round(search_med, 2), "index_build_s": round(build_s, 2),
                       "sqlite_write_s": round(write_s, 1), "db_mb": round(size_mb, 1)}
        print(f"  identify over {n:>9,} embeddings: {med:7.2f} ms median ({p95:.2f} p95; search alone "
              f"{search_med:.2f} ms); index build from SQLite {build_s:.2f} s; write {write_s:.1f} s; "
              f"db {size_mb:.0f} MB", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", default="detection,embedding,overhead,identify")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    if "numpy" in sys.modules:
        raise SystemExit("set threads before numpy loads")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import platform

    results: dict = {"machine": {"cpus": os.cpu_count(), "threads": args.threads, "python": platform.python_version(),
                                 "processor": platform.processor() or platform.machine()}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scenes = {"640x480": make_scene(work, 640, 480), "1920x1080": make_scene(work, 1920, 1080)}
        parts = set(args.parts.split(","))
        if "detection" in parts:
            print("detection (per image):", flush=True)
            results["detection"] = bench_detection(scenes, args.repeats)
        if "embedding" in parts:
            print("embedding:", flush=True)
            results["embedding_per_face"] = bench_embedding(scenes["640x480"], args.repeats * 3)
        if "overhead" in parts:
            print("pipeline vs direct dlib (decode + HOG upsample 1 + landmarks + embedding):", flush=True)
            results["overhead"] = bench_overhead(scenes, args.repeats)
        if "identify" in parts:
            print("identify (top-5 people, one probe face):", flush=True)
            results["identify"] = bench_identify([int(s) for s in args.sizes.split(",") if s],
                                                 max(50, args.repeats * 10), work)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
