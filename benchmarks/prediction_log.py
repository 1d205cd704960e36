"""Cost of the prediction log (``recog serve --log-predictions``) on the service's latency and throughput.

Interleaved A/B rounds on real ``recog serve`` processes on 127.0.0.1 (log off, log on, log on with
``--log-images``), each driven by the closed-loop client of ``benchmarks/serve_load.py`` with one
worker (p50 latency) and 8 workers (throughput). The model is the digits classifier of
``benchmarks/ood.py`` (a reference in its bundle, so every answer carries an OOD score); the image is
a real 512x600 JPEG photograph (hashing and input statistics cost more on it than on a digit).
Also printed: the request-path cost alone (queueing one prediction, timed in process), which is
what the log adds before the answer is sent; the writer's hashing, statistics and SQLite insert run
in its own thread.

``--before REV`` adds a mode "on (REV)": the same server with ``src/recog/monitor/`` as it was at git
revision REV (the rest of ``src/`` as it is now), so a change to the log is measured before and after
in one run, interleaved with the others. It also measures the log's own CPU, which a loaded machine
does not blur the way it blurs throughput: a child process queues predictions at ``--rate`` a second
for ``--cpu-seconds`` (the service's pace at concurrency 8; long enough for the drift checks, which
run every 500 predictions) and reports the process CPU seconds spent per 1,000 predictions (writer
thread, drift checks and queueing together), now and at REV, interleaved.

Usage::

    python benchmarks/prediction_log.py --rounds 3 --duration 5
    python benchmarks/prediction_log.py --rounds 3 --duration 5 --before b9c17be
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
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


def writer_cpu_child(bundle: Path, rate: float, seconds: float) -> None:
    """(child process) Queue predictions at ``rate``/s for ``seconds``; print CPU ms per 1,000 predictions."""
    import recog
    from recog.monitor.log import PredictionLog, logged
    from recog.serve.inputs import Upload

    import scipy.stats  # noqa: F401  (imported before timing: a server has it loaded after its first check)

    model = recog.load(bundle)
    data = test_image()
    raw, _, _ = model.outputs_many([data])
    results = model.postprocess(raw)
    uploads = [Upload(data, "photo.jpg")]
    with tempfile.TemporaryDirectory() as tmp:
        log = PredictionLog(Path(tmp) / "ops.db")
        n, start, cpu = 0, time.monotonic(), time.process_time()
        while time.monotonic() - start < seconds:
            logged(log, "bench", model.manifest, uploads, results, raw, time.perf_counter())
            n += 1
            time.sleep(max(0.0, start + n / rate - time.monotonic()))   # pacing: the service's request rate
        log.flush(120)
        used = time.process_time() - cpu
        log.close()
    print(f"{1000 * used / n * 1000:.1f} {n}")


def writer_cpu(bundle: Path, rate: float, seconds: float, pythonpath: Path | None) -> tuple[float, int]:
    """CPU ms per 1,000 logged predictions in a child process (``pythonpath``: the "before" sources)."""
    env = {**os.environ, **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}
    out = subprocess.run([sys.executable, __file__, "--bundle", str(bundle), "--cpu-child", str(rate), str(seconds)],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    return float(out[-2]), int(out[-1])


def monitor_at(rev: str, out: Path) -> Path:
    """A copy of ``src/`` whose ``recog/monitor/`` is git revision ``rev``'s; returns the folder for PYTHONPATH."""
    root = Path(__file__).resolve().parents[1]
    src = out / "src"
    shutil.copytree(root / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(src / "recog" / "monitor")
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "src/recog/monitor"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(out / "rev", filter="data")
    shutil.move(str(out / "rev" / "src" / "recog" / "monitor"), src / "recog" / "monitor")
    return src


def start_server(bundle: Path, flags: list[str], pythonpath: Path | None) -> Server:
    """A server process; with ``pythonpath`` it imports recog from there (the "before" mode)."""
    if pythonpath is None:
        return Server(bundle, *flags)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(pythonpath)
    try:
        return Server(bundle, *flags)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=Path("/tmp/recog-bench-ood/run-digits/best"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--before", default=None, help="git revision: also run the log with src/recog/monitor/ as it was there")
    ap.add_argument("--rate", type=float, default=150.0, help="predictions a second in the CPU measurement")
    ap.add_argument("--cpu-seconds", type=float, default=20.0, help="length of one CPU measurement")
    ap.add_argument("--cpu-only", action="store_true", help="only the log's CPU (with --before)")
    ap.add_argument("--cpu-child", nargs=2, type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cpu_child:
        writer_cpu_child(args.bundle, *args.cpu_child)
        return
    if not (args.bundle / "recog.json").is_file():
        raise SystemExit(f"{args.bundle}: no model; run `python benchmarks/ood.py --pairs digits` first")
    data = test_image()
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            before = monitor_at(args.before, Path(tmp) / "before")
            cpu: dict[str, list[float]] = {args.before: [], "now": []}
            for r in range(args.rounds):
                for name, path in ((args.before, before), ("now", None)):
                    ms, n = writer_cpu(args.bundle, args.rate, args.cpu_seconds, path)
                    cpu[name].append(ms)
                    print(f"round {r + 1} log CPU ({name}): {ms:.0f} ms per 1,000 predictions ({n} at {args.rate:g}/s)",
                          flush=True)
        b, a = statistics.median(cpu[args.before]), statistics.median(cpu["now"])
        print(f"log CPU per 1,000 predictions: {b:.0f} ms at {args.before} -> {a:.0f} ms now ({a / b:.2f}x); "
              f"at {args.rate:g} predictions/s that is {b * args.rate / 1e4:.1f}% -> {a * args.rate / 1e4:.1f}% of one core")
        if args.cpu_only:
            return
    print(f"request-path cost of logging one prediction: {request_path_us(args.bundle, data):.1f} us")
    request = raw_request(data)
    on = ["--log-predictions", "{db}"]
    modes = {"off": [], **({f"on ({args.before})": on} if args.before else {}), "on": on,
             "on + images": [*on, "--log-images"]}
    results: dict[str, dict[str, list[float]]] = {m: {"p50_c1": [], "ips_c1": [], "ips_c8": []} for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        before = monitor_at(args.before, Path(tmp) / "before") if args.before else None
        for r in range(args.rounds):
            for k, (mode, flags) in enumerate(modes.items()):
                db = str(Path(tmp) / f"ops-{r}-{k}.db")
                server = start_server(args.bundle, [f.format(db=db) for f in flags],
                                      before if mode.startswith("on (") else None)
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
    base_c8 = statistics.median(results["off"]["ips_c8"])
    for mode in modes:
        if mode != "off":
            print(f"log {mode}: p50 overhead {statistics.median(results[mode]['p50_c1']) - base:+.2f} ms, throughput at "
                  f"c=8 {100 * (statistics.median(results[mode]['ips_c8']) / base_c8 - 1):+.0f} %")


if __name__ == "__main__":
    main()
