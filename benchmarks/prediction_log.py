"""Cost of the prediction log (``recog serve --log-predictions``) on the service's latency and throughput.

Interleaved A/B rounds on real ``recog serve`` processes on 127.0.0.1 (log off, log on, log on with
``--log-images``), each driven by the closed-loop client of ``benchmarks/serve_load.py`` with one
worker (p50 latency) and 8 workers (throughput). The model is the digits classifier of
``benchmarks/ood.py`` (a reference in its bundle, so every answer carries an OOD score); the image is
a real 512x600 JPEG photograph (hashing and input statistics cost more on it than on a digit).
Also printed: the request-path cost alone (queueing one prediction, timed in process), which is
what the log adds before the answer is sent; the writer's hashing, statistics and SQLite insert run
in its own thread.

Usage::

    python benchmarks/prediction_log.py --rounds 3 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load import Server, closed_loop, raw_request, test_image  # noqa: E402


def request_path_us(bundle: Path, data: bytes, n: int = 2000) -> float:
    """Microseconds one :func:`recog.monitor.log.logged` call takes on the request's path."""
    import recog
    from recog.monitor.log import PredictionLog, logged
    from recog.serve.inputs import Upload

    model = recog.load(bundle)
    raw, _, _ = model.outputs_many([data])
    results = model.postprocess(raw)
    with tempfile.TemporaryDirectory() as tmp:
        log = PredictionLog(Path(tmp) / "ops.db", queue_size=n + 10)
        uploads = [Upload(data, "photo.jpg")]
        t = timeit.timeit(lambda: logged(log, "bench", model.manifest, uploads, results, raw, time.perf_counter()),
                          number=n)
        log.close()
    return 1e6 * t / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("/tmp/recog-bench-ood/run-digits/best"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args()
    if not (args.bundle / "recog.json").is_file():
        raise SystemExit(f"{args.bundle}: no model; run `python benchmarks/ood.py --pairs digits` first")
    data = test_image()
    print(f"request-path cost of logging one prediction: {request_path_us(args.bundle, data):.1f} us")
    request = raw_request(data)
    modes = {"off": [], "on": ["--log-predictions", "{db}"], "on + images": ["--log-predictions", "{db}", "--log-images"]}
    results: dict[str, dict[str, list[float]]] = {m: {"p50_c1": [], "ips_c1": [], "ips_c8": []} for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mode, flags in modes.items():
                db = str(Path(tmp) / f"ops-{r}-{mode.replace(' ', '')}.db")
                server = Server(args.bundle, *[f.format(db=db) for f in flags])
                try:
                    one = asyncio.run(closed_loop(server.port, request, 1, args.duration))
                    eight = asyncio.run(closed_loop(server.port, request, 8, args.duration))
                finally:
                    server.stop()
                results[mode]["p50_c1"].append(one["p50_ms"])
                results[mode]["ips_c1"].append(one["images_per_s"])
                results[mode]["ips_c8"].append(eight["images_per_s"])
                print(f"round {r + 1} log {mode:12s}: p50 {one['p50_ms']:.2f} ms (c=1), {one['images_per_s']:.0f} img/s "
                      f"(c=1), {eight['images_per_s']:.0f} img/s (c=8), errors {one['errors'] + eight['errors']}",
                      flush=True)
    print("\n| log | p50 at c=1 (ms, median of rounds) | images/s c=1 | images/s c=8 |\n|---|---|---|---|")
    for mode, v in results.items():
        print(f"| {mode} | {statistics.median(v['p50_c1']):.2f} | {statistics.median(v['ips_c1']):.0f} | "
              f"{statistics.median(v['ips_c8']):.0f} |")
    base = statistics.median(results["off"]["p50_c1"])
    for mode in ("on", "on + images"):
        print(f"p50 overhead, log {mode}: {statistics.median(results[mode]['p50_c1']) - base:+.2f} ms")


if __name__ == "__main__":
    main()
