"""Transfer learning on real photos: from scratch vs linear probe vs full fine-tune vs staged, one run.

Data: ``../shared/data/clothing`` (10 garment classes, 40/15/15 per class,
train/validation/test; CC0). Every variant trains through ``recog.train``
with the same seed (the default preset, EfficientNet-Lite1 at 240 px, unless
it names another), then is evaluated on the test split with
``recog.evaluate``. Prints one table row per variant (test accuracy, training
wall time) and writes ``--json``.

The peer figure, measured by the issue on this data: logistic regression on
EfficientNet-Lite0's pooled features reaches 80.6% on the test split.

``--pairs``: the check the defaults face on photo sets we do not have (two classes, where a plain
linear probe on these weights is the bar): the default run on two-class subsets of the same data, beside
scikit-learn's logistic regression on Lite0's pooled features (``feature_probe.py``'s, C = 1).

Run: .venv/bin/python benchmarks/transfer.py [--only default,linear] [--pairs] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clothing"

VARIANTS: dict[str, dict] = {
    "default": {},  # whatever `recog train DATA` does with no options
    "scratch": {"weights": "none", "epochs": 10, "strategy": "full", "lr": 1e-3},
    "linear": {"strategy": "linear"},  # fitted once on cached features (recog.engine.probe)
    "full": {"strategy": "full", "lr": 1e-3, "epochs": 10},
    "full-low-lr": {"strategy": "full", "lr": 3e-4, "epochs": 10},
    "staged": {"strategy": "staged", "freeze_epochs": 3, "backbone_lr_mult": 0.1, "lr": 3e-3, "epochs": 10},
    "linear-lite0": {"model": "efficientnet-lite0"},  # the other presets, with their default (the probe)
    "linear-lite2": {"model": "efficientnet-lite2"},
}


def run(name: str, options: dict, out: Path, data: Path) -> dict:
    import recog

    t0 = time.perf_counter()
    result = recog.train(str(data), out=str(out / name), **options)
    seconds = time.perf_counter() - t0
    metrics = recog.evaluate(result.best, str(data), split="test", out=out / name / "report").metrics
    return {"variant": name, "options": options, "test_accuracy": round(metrics["accuracy"], 4),
            "train_seconds": round(seconds, 1), "epochs_run": result.epochs_run}


PAIRS = (("shirt", "t-shirt"), ("longsleeve", "outwear"), ("pants", "shorts"), ("dress", "skirt"))


def pairs(out: Path, data: Path) -> list[dict]:
    """The default run on each two-class subset vs scikit-learn's probe on Lite0 features."""
    import shutil

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from feature_probe import features

    f = features("efficientnet-lite0", "shorter_crop", out / "features")
    rows = []
    for pair in PAIRS:
        tree = out / "-".join(pair)
        for split in ("train", "validation", "test"):
            for label in pair:
                shutil.copytree(data / split / label, tree / split / label)
        row = run(tree.name, {}, out / "runs", tree)
        keep = {s: np.isin(f[f"{s}_y"], pair) for s in ("train", "test")}
        x = np.concatenate([f["train_v"][keep["train"]], f["train_vf"][keep["train"]]])
        probe = LogisticRegression(C=1.0, max_iter=5000).fit(x, np.tile(f["train_y"][keep["train"]], 2))
        peer = float((probe.predict(f["test_v"][keep["test"]]) == f["test_y"][keep["test"]]).mean())
        rows.append({**row, "variant": " vs ".join(pair), "peer_test_accuracy": round(peer, 4)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants")
    ap.add_argument("--pairs", action="store_true", help="two-class subsets vs a plain linear probe")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.pairs:
            rows = pairs(Path(tmp), args.data)
            for row in rows:
                print(f"{row['variant']:22s} default {100 * row['test_accuracy']:.1f}%  "
                      f"plain probe on Lite0 {100 * row['peer_test_accuracy']:.1f}%  training {row['train_seconds']:.0f} s")
            args.only = ""
        for name in filter(None, args.only.split(",")):
            row = run(name, VARIANTS[name], Path(tmp), args.data)
            rows.append(row)
            print(f"{name:12s} test accuracy {100 * row['test_accuracy']:.1f}%  training {row['train_seconds']:.0f} s"
                  f"  ({row['epochs_run']} epochs) {row['options']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
