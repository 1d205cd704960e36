"""Detection figures: BCCD training with the defaults, test mAP per backend, latency at batch 1.

Usage (from the repository root; the machine's load is printed with every figure)::

    python benchmarks/detect.py train  [--data ../shared/data/bccd/BCCD] [--out runs/bccd-detect]
    python benchmarks/detect.py eval   --bundle runs/bccd-detect/best [--data ...]
    python benchmarks/detect.py export --bundle runs/bccd-detect/best [--data ...]   # fp32 + int8 (calibrated on train)
    python benchmarks/detect.py latency --bundle runs/bccd-detect/best [--threads 2]
    python benchmarks/detect.py hog    [--data ...]     # the HOG + linear SVM baseline on the same split

* ``train`` runs ``recog train DATA --task detect --out RUN`` (every option at its
  default) and reports wall time, CPU time of the process and the load.
* ``eval`` runs ``recog evaluate`` on the test split with each backend the
  bundle has (torch, onnx, onnx-int8): mAP@0.5, mAP@0.5:0.95, per-class AP@0.5.
* ``export`` runs ``recog export --quantize int8 --calibration DATA`` (train
  split calibrates; the val split judges the mAP@0.5 drop).
* ``latency``: :func:`recog.runtime.bench.run_bench` at batch 1 (preprocessing
  excluded): p50/p95 per backend and the share of the float32 matmul ceiling.
* ``hog``: :mod:`recog.detect.classical` trained on the train split at full
  resolution, test mAP by the same pycocotools code.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BCCD = ROOT.parent / "shared" / "data" / "bccd" / "BCCD"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").is_file() else "n/a"


def cmd_train(args: argparse.Namespace) -> dict:
    start_load, t0 = load(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "recog.cli.main", "train", str(args.data), "--task", "detect",
                           "--out", str(args.out)], cwd=ROOT)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    log = (Path(args.out) / "train.log").read_text().splitlines() if (Path(args.out) / "train.log").is_file() else []
    return {"command": f"recog train {args.data} --task detect --out {args.out}", "exit": proc.returncode,
            "wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "load_start": start_load, "load_end": load(), "last_epoch": log[-1] if log else None}


def cmd_eval(args: argparse.Namespace) -> dict:
    from recog.engine.evaluate import evaluate
    from recog.models.bundle import read_manifest

    manifest = read_manifest(args.bundle)
    backends = ["torch"] + [name for name in ("onnx", "onnx-int8") if manifest.exports.get(name, {}).get("verified")]
    out = {"load_start": load()}
    for backend in backends:
        res = evaluate(args.bundle, args.data, split="test", backend=backend,
                       out=Path(args.bundle).parent / f"report-{backend}", batch_size=16)
        m = res.metrics
        out[backend] = {"map50": m["map50"], "map": m["map"], "images": m["images"],
                        "per_class_ap50": {k: v["ap50"] for k, v in m["per_class"].items()}}
    out["load_end"] = load()
    return out


def cmd_export(args: argparse.Namespace) -> dict:
    from recog.runtime.export import export_bundle

    t0 = time.perf_counter()
    result = export_bundle(args.bundle, quantize="int8", calibration=args.data, max_drop=args.max_drop,
                           threads=args.threads, log=print)
    return {"seconds": round(time.perf_counter() - t0, 1), "load": load(),
            **{k: {"verified": v.get("verified"), "parity": v.get("parity")} for k, v in result.exports.items()}}


def cmd_latency(args: argparse.Namespace) -> dict:
    from recog.runtime.bench import run_bench

    start = load()
    report = run_bench(args.bundle, batches=(1,), threads=args.threads, log=print)
    rows = [{"backend": r.backend, "p50_ms": r.p50_ms, "p95_ms": r.p95_ms, "images_per_s": r.images_per_s,
             "ceiling_share": r.ceiling_share, "speedup_vs_torch": r.speedup_vs_torch} for r in report.rows]
    return {"machine": report.machine, "model": report.model, "rows": rows, "skipped": report.skipped,
            "load_start": start, "load_end": load()}


def cmd_hog(args: argparse.Namespace) -> dict:
    import numpy as np

    from recog.detect.classical import detect_hog_svm, fit_hog_svm
    from recog.detect.formats import load_boxes
    from recog.detect.metrics import ImageBoxes, coco_map
    from recog.io import load_image

    ds = load_boxes(args.data)
    train, test = ds.split("train"), ds.split("test")
    start, t0, c0 = load(), time.perf_counter(), time.process_time()
    model = fit_hog_svm([np.asarray(load_image(s.path)) for s in train], [s.boxes for s in train],
                        [s.classes(ds.labels) for s in train], ds.labels, threads=args.threads)
    fit_s = time.perf_counter() - t0
    truth, dets = [], []
    for s in test:
        image = np.asarray(load_image(s.path))
        boxes, scores, classes = detect_hog_svm(model, image)
        truth.append(ImageBoxes(s.boxes, s.classes(ds.labels), size=(image.shape[1], image.shape[0])))
        dets.append(ImageBoxes(boxes, classes, scores))
    m = coco_map(truth, dets, ds.labels)
    return {"map50": m["map50"], "map": m["map"], "per_class_ap50": {k: v["ap50"] for k, v in m["per_class"].items()},
            "detectors": len(model.detectors), "boxes_left_out": model.dropped, "refused": model.skipped,
            "fit_s": round(fit_s, 1),
            "cpu_s": round(time.process_time() - c0, 1), "load_start": start, "load_end": load()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("train", "eval", "export", "latency", "hog"))
    p.add_argument("--data", type=Path, default=BCCD)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bccd-detect")
    p.add_argument("--bundle", type=Path, default=ROOT / "runs" / "bccd-detect" / "best")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    p.add_argument("--max-drop", type=float, default=1.0, help="export: largest accepted mAP@0.5 drop, points")
    args = p.parse_args()
    if not args.data.exists():
        sys.exit(f"no data at {args.data} (see ../shared/data/README.md)")
    result = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "latency": cmd_latency,
              "hog": cmd_hog}[args.what](args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
