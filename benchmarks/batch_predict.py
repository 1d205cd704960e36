"""Batch prediction images/s: the local pool vs Ray Data on one machine, and the share of the machine's ceiling.

    .venv/bin/python benchmarks/batch_predict.py                  # 240 photos, resnet-18, 2 CPUs
    .venv/bin/python benchmarks/batch_predict.py --images 480 --shard-size 40

The same job (``recog.scale.batch.batch_predict``: real JPEG photographs from
scikit-image at 512 px, a randomly initialised resnet-18 at 224 px, top-5) runs in these
configurations, each into a fresh output folder, in one run:

- local, 1 worker in process x ``cpus`` threads;
- local, ``cpus`` worker processes x 1 thread;
- Ray Data, ``cpus`` actors x 1 thread (Ray already started: its start-up is printed, not counted).

Each figure is the wall time of the whole call (listing, model load in every worker,
decode, inference, parquet writes) over the number of images; the time to the first
finished shard is printed beside it, to show how much of the run is start-up.
The ceiling is ``recog bench``'s: model FLOPs x images/s over the float32 matmul rate measured
here with all ``cpus`` threads (:func:`recog.runtime.bench.matmul_ceiling`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import build_bundle  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_photos(folder: Path, n: int) -> None:
    from PIL import Image
    from skimage import data

    scenes = [Image.fromarray(getattr(data, s)()).resize((512, 512)) for s in ("astronaut", "coffee", "chelsea", "rocket")]
    for i in range(n):
        scenes[i % 4].rotate(i % 360).save(folder / f"p{i:05d}.jpg", quality=90)


def run(bundle: Path, inputs: str, out: Path, **kw) -> dict:
    from recog.scale.batch import batch_predict

    first: list[float] = []
    t = time.perf_counter()
    summary = batch_predict(bundle, [inputs], out, progress=lambda n: first.append(time.perf_counter() - t)
                            if not first else None, **kw)
    assert summary.rows > 0 and summary.failures == 0, summary
    return {"seconds": summary.seconds, "images_per_s": summary.rows / summary.seconds,
            "first_shard_s": round(first[0], 2) if first else None, "rows": summary.rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=240)
    ap.add_argument("--shard-size", type=int, default=30)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import recog
    from recog.runtime.bench import matmul_ceiling, model_flops
    from recog.scale.ray_support import init_ray

    results: dict = {"cpus": args.cpus, "images": args.images, "load_before": os.getloadavg(), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundle = build_bundle(tmp / "resnet18")
        (tmp / "photos").mkdir()
        write_photos(tmp / "photos", args.images)
        inputs = str(tmp / "photos" / "*.jpg")
        model = recog.load(bundle, backend="torch")
        flops = model_flops(model.backend.model, model.manifest.preprocessing.size)
        ceiling = matmul_ceiling(args.cpus, repeats=5)
        results.update(model_gflops=flops / 1e9, matmul_gflops=ceiling / 1e9)
        print(f"resnet-18: {flops / 1e9:.2f} GFLOP/image; fp32 matmul ceiling {ceiling / 1e9:.1f} GFLOP/s "
              f"({args.cpus} threads) = {ceiling / flops:.1f} images/s", flush=True)
        del model
        t = time.perf_counter()
        init_ray("benchmarks/batch_predict.py", num_cpus=args.cpus)
        results["ray_start_s"] = round(time.perf_counter() - t, 1)
        configs = {
            f"local 1 worker x {args.cpus} threads": dict(workers=1, threads=args.cpus),
            f"local {args.cpus} processes x 1 thread": dict(workers=args.cpus, threads=1),
            f"Ray Data {args.cpus} actors x 1 thread": dict(workers=args.cpus, threads=1, ray=True),
        }
        for i, (name, kw) in enumerate(configs.items()):
            r = run(bundle, inputs, tmp / f"out{i}", shard_size=args.shard_size, top_k=5, **kw)
            r["ceiling_share"] = r["images_per_s"] * flops / ceiling
            results["runs"][name] = r
            print(f"{name:34s} {r['images_per_s']:6.1f} img/s  ({r['seconds']:.1f} s, first shard after "
                  f"{r['first_shard_s']} s)  {100 * r['ceiling_share']:.0f}% of the ceiling", flush=True)
        import ray

        ray.shutdown()
    results["load_after"] = os.getloadavg()
    print(f"\nRay start (not counted): {results['ray_start_s']} s; load average before {results['load_before']}, "
          f"after {results['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
