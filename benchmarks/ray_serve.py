"""Ray Serve vs the plain service on one machine, and scale-up time from 1 to N replicas under a load step.

    .venv/bin/python benchmarks/ray_serve.py                       # c = 1 4 16, 4 s per level, N = 2
    .venv/bin/python benchmarks/ray_serve.py --levels 1 8 --duration 6 --replicas 2

Both serve the same randomly initialised resnet-18 (224 px; speed does not depend on
the weights) with one inference thread per model copy, batching on (8 / 5 ms), and
are driven by the same closed-loop keep-alive load generator as
``benchmarks/serve_load.py`` (imported from it), on the same real JPEG. Levels
interleave the two services so that drifting machine load hits both alike.

1. **Latency and throughput**: the plain ``recog serve`` process vs Ray Serve with one
   fixed replica (1 CPU), at each concurrency: p50, p99, images/s, errors.
2. **Scale-up**: the Ray deployment redeployed with autoscaling 1..N replicas
   (``target_ongoing`` 2, ``upscale_delay_s`` 5 s: the recog defaults), then a load step
   from idle to concurrency 16; the time until N replicas run, and the throughput in the
   first and the last 5 s of the step.

Ray's start (``ray.init`` + Serve) is measured and printed but not part of any figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import Server, build_bundle, closed_loop, free_port, raw_request, test_image  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def fmt(x, nd=1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def running_replicas(name: str) -> int:
    from ray import serve

    app = serve.status().applications.get(name)
    if app is None or name not in app.deployments:
        return 0
    return sum(n for state, n in app.deployments[name].replica_states.items()
               if getattr(state, "value", state) == "RUNNING")


def start_ray_serve(bundle: Path, port: int, options: dict) -> None:
    from recog.scale.serve_options import load_serve_options
    from recog.scale.serve_run import start_serve
    from recog.serve.settings import load_settings

    settings = load_settings(models={"bench": str(bundle)}, port=port, threads=1, max_queue=512, env={},
                             log_level="warning")
    start_serve(settings, load_serve_options(overrides=options))


def scale_up(port: int, data: bytes, replicas: int, concurrency: int, limit_s: float) -> dict:
    """Load step from idle: time until ``replicas`` replicas run; throughput early vs late in the step."""
    seen: list[tuple[float, int]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def watch() -> None:
        while not stop.is_set():
            seen.append((time.monotonic() - t0, running_replicas("bench")))
            if seen[-1][1] >= replicas:
                return
            time.sleep(0.25)

    watcher = threading.Thread(target=watch)
    watcher.start()
    first = asyncio.run(closed_loop(port, raw_request(data), concurrency, 5.0, warmup=0.0))
    rest = None
    while watcher.is_alive() and time.monotonic() - t0 < limit_s:
        rest = asyncio.run(closed_loop(port, raw_request(data), concurrency, 5.0, warmup=0.0))
    stop.set()
    watcher.join()
    reached = next((t for t, n in seen if n >= replicas), None)
    last = asyncio.run(closed_loop(port, raw_request(data), concurrency, 5.0, warmup=0.0))
    return {"replicas": replicas, "concurrency": concurrency, "seconds_to_reach": reached,
            "first_5s_images_per_s": first["images_per_s"], "after_images_per_s": last["images_per_s"],
            "during": None if rest is None else rest["images_per_s"],
            "timeline": [(round(t, 2), n) for t, n in seen]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--duration", type=float, default=4.0, help="measured seconds per level")
    ap.add_argument("--replicas", type=int, default=2, help="N for the scale-up (1 CPU each)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    from ray import serve

    from recog.scale.ray_support import init_ray

    data = test_image()
    results: dict = {"cpus": os.cpu_count(), "load_before": os.getloadavg(), "levels": []}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(Path(tmp) / "resnet18")
        plain = Server(bundle, "--threads", "1", "--max-queue", "512")
        t = time.perf_counter()
        ray = init_ray("benchmarks/ray_serve.py", num_cpus=max(2, args.replicas))
        port = free_port()
        start_ray_serve(bundle, port, {"min_replicas": 1, "max_replicas": 1})
        results["ray_start_s"] = round(time.perf_counter() - t, 1)
        print(f"Ray + Serve + 1 replica ready in {results['ray_start_s']} s", flush=True)
        try:
            for c in args.levels:
                row = {"concurrency": c}
                for name, p in (("plain", plain.port), ("ray", port)):
                    row[name] = asyncio.run(closed_loop(p, raw_request(data), c, args.duration))
                    r = row[name]
                    print(f"{name:5s} c={c:<3d} p50 {fmt(r['p50_ms'])} ms  p99 {fmt(r['p99_ms'])} ms  "
                          f"{r['images_per_s']:.1f} img/s  errors {r['errors']}", flush=True)
                results["levels"].append(row)
            plain.stop()
            plain = None
            serve.delete("bench")
            start_ray_serve(bundle, port, {"min_replicas": 1, "max_replicas": args.replicas,
                                           "downscale_delay_s": 600})
            time.sleep(2.0)
            results["scale_up"] = scale_up(port, data, args.replicas, 16, limit_s=120)
            s = results["scale_up"]
            print(f"scale-up 1 -> {args.replicas} replicas under c=16: {fmt(s['seconds_to_reach'])} s; "
                  f"{s['first_5s_images_per_s']:.1f} img/s in the first 5 s, {s['after_images_per_s']:.1f} after",
                  flush=True)
        finally:
            if plain is not None:
                plain.stop()
            serve.shutdown()
            ray.shutdown()
    results["load_after"] = os.getloadavg()

    print("\n| concurrency | plain p50 ms | plain p99 ms | plain img/s | Ray p50 ms | Ray p99 ms | Ray img/s | "
          "Ray/plain throughput |\n|---|---|---|---|---|---|---|---|")
    for row in results["levels"]:
        p, r = row["plain"], row["ray"]
        ratio = r["images_per_s"] / p["images_per_s"] if p["images_per_s"] else float("nan")
        print(f"| {row['concurrency']} | {fmt(p['p50_ms'])} | {fmt(p['p99_ms'])} | {p['images_per_s']:.1f} | "
              f"{fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {r['images_per_s']:.1f} | {ratio:.2f} |")
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
