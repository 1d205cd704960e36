"""Fast inference figures: ONNX Runtime vs PyTorch, int8 vs fp32, share of the machine's ceiling.

Two models, measured in one run on one machine:

1. **resnet-50** (the registry preset, random weights; speed does not depend
   on the weights): PyTorch eager vs ONNX Runtime fp32 (and int8 calibrated
   on synthetic images, for speed only: accuracy needs trained weights).
2. **a model trained by ``recog train``**: ``runs/demo/best`` from ``make demo``
   (resnet-tiny on 4,000 MNIST digits) when present, else it is trained here
   with the demo's settings. It is exported with ``recog export --quantize
   int8`` calibrated on the train split, checked on the 1,000 test digits.

Ratios come from *interleaved* A/B rounds (a block of A, then a block of B,
repeated), so a noisy machine slows both sides alike; the median of the per-round ratios is
reported, with the worst round. The ``recog bench`` table (p50, p95,
images/s, agreement, accuracy, share of the float32 matmul ceiling) is
printed for each model too.

Run: .venv/bin/python benchmarks/inference.py [--rounds 15] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def interleaved(a, b, x: np.ndarray, *, rounds: int, per_round: int) -> dict:
    """Median per-round ratio time(a)/time(b) of ``infer(x)``.

    Each round times a block of ``per_round`` calls of ``a``, then a block of
    ``b``; the first call of each block is not timed, since the other
    runtime's worker threads may still be spin-waiting from the previous
    block (both PyTorch's OpenMP and ONNX Runtime's pools spin briefly after
    a run, and on 2 cores a spinning pool halves the other one's speed).
    """
    for _ in range(3):
        a.infer(x)
        b.infer(x)

    def block(backend) -> float:
        time.sleep(0.05)  # let the other runtime's spinning workers go idle
        backend.infer(x)
        times = []
        for _ in range(per_round):
            t = time.perf_counter()
            backend.infer(x)
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    ta, tb, ratios = [], [], []
    for _ in range(rounds):
        ta.append(block(a))
        tb.append(block(b))
        ratios.append(ta[-1] / tb[-1])
    return {"a_ms": round(1000 * float(np.median(ta)), 3), "b_ms": round(1000 * float(np.median(tb)), 3),
            "ratio": round(float(np.median(ratios)), 3), "ratio_worst_round": round(float(np.min(ratios)), 3),
            "rounds": rounds, "per_round": per_round}


def print_table(report) -> None:
    from rich.console import Console

    from recog.runtime.bench import format_table

    Console(width=150).print(format_table(report))


def resnet50_part(work: Path, args) -> dict:
    import torch

    from recog.models import create_model, save_bundle
    from recog.runtime import load
    from recog.runtime.bench import run_bench
    from recog.data.evalset import synthetic
    from recog.models.bundle import update_bundle
    from recog.runtime.export import export_bundle, quantize_int8, rank_backends

    torch.manual_seed(0)
    created = create_model("resnet-50", [f"class{i}" for i in range(1000)], weights="none")
    bundle = save_bundle(work / "resnet50", created.model, labels=[f"class{i}" for i in range(1000)],
                         preprocessing=created.preprocessing, source_model="resnet-50")
    del created
    print("resnet-50: exporting fp32 ONNX (parity on synthetic images) ...", flush=True)
    export_bundle(bundle, threads=args.threads, rank=False)
    # int8 for speed only: calibrated on synthetic images, recorded as unverified (no labelled data)
    quantize_int8(bundle / "model.onnx", bundle / "model.int8.onnx", synthetic(created_prep(bundle), 32))
    from recog.models.bundle import read_manifest

    raw = read_manifest(bundle).raw
    update_bundle(bundle, add_files=["model.int8.onnx"], updates={"exports": {
        **raw["exports"], "onnx-int8": {"file": "model.int8.onnx", "verified": True, "note":
                                        "benchmark only: random weights, synthetic calibration"}}})
    rank_backends(bundle, threads=args.threads)
    x1 = synthetic(created_prep(bundle), 1).x
    t, o, q = (load(bundle, backend=b, threads=args.threads) for b in ("torch", "onnx", "onnx-int8"))
    print("resnet-50: interleaved torch vs onnx at batch 1 ...", flush=True)
    torch_vs_onnx = interleaved(t.backend, o.backend, x1, rounds=args.rounds, per_round=8)
    print("resnet-50: interleaved onnx vs onnx-int8 at batch 1 ...", flush=True)
    onnx_vs_int8 = interleaved(o.backend, q.backend, x1, rounds=args.rounds, per_round=8)
    del t, o, q
    report = run_bench(bundle, backends=("torch", "onnx", "onnx-int8"), batches=(1, 8), threads=args.threads,
                       budget_s=args.seconds)
    print_table(report)
    return {"torch_vs_onnx_batch1": torch_vs_onnx, "onnx_vs_int8_batch1": onnx_vs_int8, "bench": report.to_dict()}


def created_prep(bundle: Path):
    from recog.models.bundle import read_manifest

    return read_manifest(bundle).preprocessing


def trained_bundle(work: Path, src: Path | None) -> tuple[Path, Path]:
    """(copy of a recog-trained bundle, MNIST tree). Trains with the demo's settings if needed."""
    from recog.demo import TRAIN_ARGS, write_mnist_tree

    data = write_mnist_tree(ROOT / "data" / "mnist")
    src = src or ROOT / "runs" / "demo" / "best"
    if not (src / "recog.json").is_file():
        print("no runs/demo/best: training resnet-tiny with the demo's settings ...", flush=True)
        run = work / "train"
        subprocess.run([sys.executable, "-m", "recog", "train", str(data), *TRAIN_ARGS, "--out", str(run)],
                       check=True)
        src = run / "best"
    dst = work / f"trained-{src.parent.name}"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report"))
    # start from the trained weights alone: drop exports made earlier
    from recog.models.bundle import read_manifest, update_bundle

    stale = [f for f in read_manifest(dst).files if f.endswith(".onnx")]
    update_bundle(dst, remove_files=stale, updates={"exports": {}})
    for f in stale:
        (dst / f).unlink()
    return dst, data


def trained_part(work: Path, args, src: Path | None) -> dict:
    from recog.runtime import load
    from recog.runtime.bench import run_bench
    from recog.data.evalset import load_labelled
    from recog.runtime.export import export_bundle

    bundle, data = trained_bundle(work, src)
    print(f"trained model: exporting {bundle} to ONNX + int8 (calibration: train split) ...", flush=True)
    result = export_bundle(bundle, quantize="int8", calibration=data, max_drop=1.0, threads=args.threads,
                           validation_size=1000,
                           log=lambda m: print("  " + m, flush=True))
    manifest_prep = created_prep(bundle)
    labels = load(bundle, backend="torch").labels
    test = load_labelled(data, labels, manifest_prep, split="test", limit=64)
    ratios = {}
    o, q = (load(bundle, backend=b, threads=args.threads) for b in ("onnx", "onnx-int8"))
    for b in (1, 8, 64):
        print(f"trained model: interleaved onnx vs onnx-int8 at batch {b} ...", flush=True)
        x = np.ascontiguousarray(np.concatenate([test.x] * 2)[:b])
        ratios[f"batch{b}"] = interleaved(o.backend, q.backend, x, rounds=args.rounds,
                                          per_round=20 if b < 64 else 8)
    del o, q
    report = run_bench(bundle, backends=("torch", "onnx", "onnx-int8"), batches=(1, 8, 64), data=data,
                       threads=args.threads, budget_s=args.seconds)
    print_table(report)
    return {"bundle": str(src or "runs/demo/best"), "source_model": report.model["source_model"],
            "input_size": report.model["input_size"], "exports": {k: {kk: v.get(kk) for kk in ("parity", "quantization", "speed_rank", "latency_ms_batch1")}
                        for k, v in result.exports.items()},
            "onnx_vs_int8": ratios, "bench": report.to_dict()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per backend and batch in the tables")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", choices=("resnet50", "trained"), default=None)
    ap.add_argument("--trained", type=Path, action="append", default=None,
                    help="bundle trained by `recog train` on data/mnist (repeatable) [default: runs/demo/best]")
    ap.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from recog.runtime.bench import cpu_name
    from recog.runtime.onnx import default_threads

    args.threads = args.threads or default_threads()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="recog-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out = {"cpu": cpu_name(), "threads": args.threads}
    try:
        if args.only in (None, "resnet50"):
            out["resnet50"] = resnet50_part(work, args)
        if args.only in (None, "trained"):
            out["trained"] = [trained_part(work, args, src) for src in (args.trained or [None])]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\n== summary ({out['cpu']}, {args.threads} threads; ratios = median of interleaved rounds) ==")
    if "resnet50" in out:
        r = out["resnet50"]
        tv = r["torch_vs_onnx_batch1"]
        print(f"resnet-50 batch 1: torch {tv['a_ms']:.1f} ms, onnx fp32 {tv['b_ms']:.1f} ms → onnx "
              f"{tv['ratio']:.2f}x faster (worst round {tv['ratio_worst_round']:.2f}x; bar 1.8x)")
        q = r["onnx_vs_int8_batch1"]
        print(f"resnet-50 batch 1: onnx-int8 {q['b_ms']:.1f} ms → {q['ratio']:.2f}x faster than fp32 (speed only)")
        for row in r["bench"]["rows"]:
            print(f"  {row['backend']:9s} batch {row['batch']:3d}: {100 * row['ceiling_share']:.0f}% of the fp32 "
                  f"matmul ceiling ({r['bench']['machine']['matmul_fp32_gflops']:.0f} GFLOP/s)")
    for t in out.get("trained", []):
        p = t["exports"]["onnx-int8"]["parity"]
        print(f"recog-trained {t['source_model']} @ {t['input_size'][0]} px ({t['bundle']}): int8 accuracy "
              f"{100 * p['accuracy_reference']:.2f}% → {100 * p['accuracy']:.2f}% ({p['accuracy_drop_points']:+.2f} "
              f"points drop; bar ≤ 1.0) on {p['images']} test digits")
        for b, q in t["onnx_vs_int8"].items():
            print(f"  {b}: onnx fp32 {q['a_ms']:.3f} ms, int8 {q['b_ms']:.3f} ms → int8 {q['ratio']:.2f}x faster "
                  f"(worst round {q['ratio_worst_round']:.2f}x; bar 2x)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
