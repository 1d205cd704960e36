"""Closed-loop load on a real `recog serve` process on 127.0.0.1, batching on and off.

    .venv/bin/python benchmarks/serve_load.py                   # resnet-18-sized model, c = 1 4 16 64
    .venv/bin/python benchmarks/serve_load.py --levels 1 16 --duration 4

What it measures (and prints as a markdown table, plus JSON with --json FILE):

- per mode (batching on: max_batch_size 8 / max_delay 5 ms; off: max_batch_size 1) and
  concurrency level: p50 and p99 latency, images/s, error count (non-200), 5xx count;
- serving overhead at concurrency 1: end-to-end p50 minus the model-only p50 for the same
  image (``Predictor.predict(bytes)`` in process: decode + preprocess + infer + postprocess),
  for a raw-body upload and for a multipart upload;
- overload: a server with a small queue (32 images) driven at concurrency 64: every answer
  must be 200 or a fast 429/503 (p99 of the rejections is printed), never another 5xx.

The bundle is a randomly initialised resnet-18 (11.7M params, 224x224; no weights can be
downloaded here, and speed does not depend on the weight values). The load generator is a
minimal keep-alive HTTP/1.1 client on asyncio streams, one connection per closed-loop worker,
so the client adds as little as possible to the measured latency. Bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_bundle(out: Path) -> Path:
    import torch

    from recog.models import create_model, save_bundle

    torch.manual_seed(0)
    labels = [f"class_{i}" for i in range(10)]
    created = create_model("resnet-18", labels, weights="none")
    return save_bundle(out, created.model, labels=labels, preprocessing=created.preprocessing,
                       source_model="resnet-18")


def test_image() -> bytes:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:  # a real 512x600 JPEG photograph
        return fh.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_only_p50(bundle: Path, data: bytes, n: int, threads: int) -> float:
    import torch

    import recog

    torch.set_num_threads(threads)
    model = recog.load(bundle)
    for _ in range(5):
        model.predict(data)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        model.predict(data)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class Server:
    def __init__(self, bundle: Path, *args: str) -> None:
        self.port = free_port()
        env = {**os.environ, "RECOG_SERVE_LOG_LEVEL": "warning"}
        self.proc = subprocess.Popen([sys.executable, "-m", "recog.serve", str(bundle), "--name", "bench",
                                      "--port", str(self.port), *args], env=env)
        deadline = time.monotonic() + 120
        import httpx

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit("server did not become ready in 120 s")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def raw_request(data: bytes) -> bytes:
    return (b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)


def multipart_request(data: bytes) -> bytes:
    boundary = b"recogbenchboundary"
    body = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n")
    return (b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _exchange(reader, writer, request: bytes) -> int:
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def closed_loop(port: int, request: bytes, concurrency: int, duration: float, warmup: float = 1.0,
                      max_requests: int = 20_000) -> dict:
    lat: list[float] = []
    statuses: dict[int, int] = {}
    rejected_lat: list[float] = []
    start = time.perf_counter()
    t_measure = start + warmup
    t_end = t_measure + duration
    count = [0]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                now = time.perf_counter()
                if now >= t_end or count[0] >= max_requests:
                    return
                try:
                    status = await _exchange(reader, writer, request)
                except (ConnectionError, asyncio.IncompleteReadError):
                    status = 599  # connection dropped: counted as an error
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                done = time.perf_counter()
                if now >= t_measure:
                    count[0] += 1
                    statuses[status] = statuses.get(status, 0) + 1
                    (lat if status == 200 else rejected_lat).append(done - now)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = min(time.perf_counter(), t_end) - t_measure
    ok = statuses.get(200, 0)
    return {"concurrency": concurrency, "requests": sum(statuses.values()), "ok": ok,
            "errors": sum(v for k, v in statuses.items() if k != 200),
            "5xx": sum(v for k, v in statuses.items() if k >= 500 and k not in (503,)),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "p50_ms": 1000 * float(np.percentile(lat, 50)) if lat else None,
            "p99_ms": 1000 * float(np.percentile(lat, 99)) if lat else None,
            "images_per_s": ok / elapsed if elapsed > 0 else 0.0,
            "rejection_p99_ms": 1000 * float(np.percentile(rejected_lat, 99)) if rejected_lat else None}


def fmt(x, nd=1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="bundle to serve (default: build a random resnet-18)")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--duration", type=float, default=6.0, help="measured seconds per level")
    ap.add_argument("--threads", type=int, default=1,
                    help="inference threads per server and for the model-only run (1 avoids OpenMP stragglers "
                         "on a small shared machine)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    data = test_image()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or build_bundle(Path(tmp) / "resnet18")
        results: dict = {"cpus": os.cpu_count(), "threads": args.threads, "modes": {}}
        modes = {"batching on": ["--max-batch-size", "8", "--max-delay-ms", "5"],
                 "batching off": ["--max-batch-size", "1"]}
        threads = ["--threads", str(args.threads)]
        servers = {mode: Server(bundle, *flags, *threads, "--max-queue", "512") for mode, flags in modes.items()}
        try:
            # model-only time measured with both servers idle, same thread count as the servers
            model_p50 = model_only_p50(bundle, data, 40, args.threads)
            results["model_only_p50_ms"] = 1000 * model_p50
            print(f"model-only p50 (decode+preprocess+infer+postprocess, in process): {1000 * model_p50:.2f} ms",
                  flush=True)
            # levels interleave the two modes, so drifting machine load hits both alike
            for c in args.levels:
                for mode, server in servers.items():
                    row = asyncio.run(closed_loop(server.port, raw_request(data), c, args.duration))
                    results["modes"].setdefault(mode, []).append(row)
                    print(f"{mode:13s} c={c:<3d} p50 {fmt(row['p50_ms'])} ms  p99 {fmt(row['p99_ms'])} ms  "
                          f"{row['images_per_s']:.1f} img/s  errors {row['errors']}", flush=True)
            if 1 in args.levels:
                for mode, server in servers.items():
                    mp = asyncio.run(closed_loop(server.port, multipart_request(data), 1, args.duration))
                    raw_p50 = results["modes"][mode][args.levels.index(1)]["p50_ms"]
                    results.setdefault("overhead_ms", {})[mode] = {"raw body": raw_p50 - 1000 * model_p50,
                                                                   "multipart": mp["p50_ms"] - 1000 * model_p50}
        finally:
            for server in servers.values():
                server.stop()

        # Above saturation: a small queue must answer fast 429s, never 5xx.
        server = Server(bundle, "--max-batch-size", "8", "--max-queue", "32", *threads)
        try:
            over = asyncio.run(closed_loop(server.port, raw_request(data), 64, args.duration))
        finally:
            server.stop()
        results["overload"] = over

    print("\n| mode | concurrency | p50 ms | p99 ms | images/s | errors |\n|---|---|---|---|---|---|")
    for mode, rows in results["modes"].items():
        for r in rows:
            print(f"| {mode} | {r['concurrency']} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | "
                  f"{r['images_per_s']:.1f} | {r['errors']} |")
    on = {r["concurrency"]: r for r in results["modes"]["batching on"]}
    off = {r["concurrency"]: r for r in results["modes"]["batching off"]}
    for c in args.levels:
        if off[c]["images_per_s"]:
            print(f"throughput ratio batching on/off at c={c}: {on[c]['images_per_s'] / off[c]['images_per_s']:.2f}x")
    for mode, o in results.get("overhead_ms", {}).items():
        print(f"serving overhead at c=1, {mode}: raw body {o['raw body']:.2f} ms, multipart {o['multipart']:.2f} ms")
    print(f"overload (queue 32, c=64): statuses {over['statuses']}, 5xx {over['5xx']}, "
          f"rejection p99 {fmt(over['rejection_p99_ms'])} ms, served p50 {fmt(over['p50_ms'])} ms")
    print(f"5xx below saturation: {sum(r['5xx'] for rows in results['modes'].values() for r in rows)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
