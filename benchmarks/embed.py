"""Embedding throughput at 224 px: EfficientNet-Lite0 embedder, PyTorch vs ONNX Runtime, and the ceiling.

The embedder is the ``embed`` task on the ImageNet weights (pooled 1280-d
features, L2-normalised). Both backends run the same preprocessed batch
(decode excluded), interleaved rounds; the ONNX graph is the task's forward
exported by ``recog.runtime.onnx_export``. Ceiling = float32 matmul rate
measured in the same run / FLOPs per image (``torch.utils.flop_counter``).

Run: .venv/bin/python benchmarks/embed.py [--batches 1,32] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import torch

    from recog.models.zoo import preset_bundle
    from recog.models.bundle import read_manifest
    from recog.runtime.bench import matmul_ceiling, model_flops
    from recog.runtime.onnx import create_session, default_threads
    from recog.runtime.onnx_export import torch_to_onnx
    from recog.tasks import get_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task("embed")
    manifest = read_manifest(preset_bundle("efficientnet-lite0"))
    model = task.load(manifest)
    size = manifest.preprocessing.size
    flops = model_flops(model, size, task)
    ceiling = matmul_ceiling(args.threads, repeats=10)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "embed.onnx"
        torch_to_onnx(model, size, path, task=task)
        session = create_session(path, args.threads)
        rows = []
        for b in (int(v) for v in args.batches.split(",")):
            x = np.random.default_rng(0).standard_normal((b, 3, *size)).astype(np.float32)
            runs = {
                "torch": lambda: task.forward(model, torch.from_numpy(x)).numpy(),
                "onnx": lambda: session.run(None, {"pixel_values": x})[0],
            }
            with torch.inference_mode():
                ref, cand = runs["torch"](), runs["onnx"]()
                times: dict[str, list[float]] = {k: [] for k in runs}
                for _ in range(args.rounds):
                    for name, fn in runs.items():
                        fn()
                        t = time.perf_counter()
                        for _ in range(3):
                            fn()
                        times[name].append((time.perf_counter() - t) / 3)
            for name, ts in times.items():
                ips = b / float(np.median(ts))
                rows.append({"backend": name, "batch": b, "images_per_s": round(ips, 1),
                             "ms_per_batch": round(1000 * float(np.median(ts)), 2),
                             "ceiling_share": round(flops * ips / ceiling, 3)})
            rows.append({"parity_min_cosine": round(float((ref * cand).sum(1).min()), 6), "batch": b})
    print(json.dumps({"threads": args.threads, "gflops_per_image": round(flops / 1e9, 3),
                      "matmul_gflops": round(ceiling / 1e9, 1), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
