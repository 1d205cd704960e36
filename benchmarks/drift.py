"""How many predictions the drift tests need to flag a real shift, at a 5% false-alarm rate.

The digits model of ``benchmarks/ood.py`` (resnet-tiny on MNIST-5k; trained there and cached under
``--work``) predicts the 1,000 held-out MNIST test digits and three shifted copies of them: rotated
by 30 degrees, rotated by 90 degrees, and inverted (255 - x). For each window size n, windows of n
predictions are drawn at random (``--trials`` each) and tested exactly as ``recog monitor`` tests a
window (:func:`recog.monitor.drift.window_tests`, alpha 0.05 for the whole set of tests). Printed:
the share of undrifted windows flagged (false alarms; the target is at most 5%) and the share of
shifted windows flagged (detection power), for all tests together and for the embedding (MMD) test
alone; and the smallest n with at least 90% detection.

Usage::

    python benchmarks/ood.py --pairs digits      # trains and caches the model first (once)
    python benchmarks/drift.py --sizes 10,20,50,100,200 --trials 60
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np


def _predict(model, images: list[np.ndarray]):
    from PIL import Image

    from recog.monitor.stats import image_stats

    blobs = []
    for a in images:
        buf = io.BytesIO()
        Image.fromarray(a, "L").save(buf, format="PNG")
        blobs.append(buf.getvalue())
    raw, kept, _ = model.outputs_many(blobs, batch_size=128)
    results = model.postprocess(raw)
    stats = np.array([[s[k] for k in ("width", "height", "brightness", "contrast", "blur")]
                      for s in (image_stats(b) for b in blobs)])
    return {"logits": raw.astype(np.float64), "stats": stats,
            "predicted": np.array([r.top[0].index for r in results]), "confidence": np.array([r.score for r in results]),
            "unknown": np.array([int(r.ood.unknown) for r in results])}


def _window(pool: dict, idx: np.ndarray, model):
    from recog.monitor.drift import Logged
    from recog.monitor.reference import reference_of

    return Logged(model="digits", ts=np.arange(len(idx), dtype=float), stats=pool["stats"][idx],
                  predicted=pool["predicted"][idx], confidence=pool["confidence"][idx], unknown=pool["unknown"][idx],
                  logits=pool["logits"][idx], latency_ms=np.zeros(len(idx)), versions=["v"],
                  labels=model.labels, reference=reference_of(model.manifest), temperature=model.manifest.temperature)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/recog-bench-ood"))
    ap.add_argument("--sizes", default="10,20,50,100,200")
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import recog
    from PIL import Image

    from recog.monitor.drift import verdict, window_tests

    best = args.work / "run-digits" / "best"
    if not (best / "recog.json").is_file():
        raise SystemExit(f"{best}: no model; run `python benchmarks/ood.py --pairs digits` first")
    model = recog.load(best, backend="torch")
    tests = sorted((args.work / "mnist" / "test").rglob("*.png"))
    base = [np.asarray(Image.open(p).convert("L")) for p in tests]
    shifts = {"rotated 30°": [np.asarray(Image.fromarray(a).rotate(30)) for a in base],
              "rotated 90°": [np.rot90(a).copy() for a in base],
              "inverted": [255 - a for a in base]}
    start = time.perf_counter()
    pools = {"none (held-out digits)": _predict(model, base), **{k: _predict(model, v) for k, v in shifts.items()}}
    print(f"predicted {len(base)} x {len(pools)} images in {time.perf_counter() - start:.0f} s")
    rng = np.random.default_rng(0)
    out: dict = {}
    for shift, pool in pools.items():
        out[shift] = {}
        for n in [int(x) for x in args.sizes.split(",")]:
            flagged = mmd = 0
            t0 = time.perf_counter()
            for _ in range(args.trials):
                w = _window(pool, rng.choice(len(base), n, replace=False), model)
                res = window_tests(w, w.reference, resamples=args.resamples)
                flagged += verdict(res, 0.05)[0] == "drift"
                mmd += res["embedding"]["p"] is not None and res["embedding"]["p"] < 0.05
            out[shift][n] = {"flagged": flagged / args.trials, "mmd_alone": mmd / args.trials}
            print(f"shift {shift:24s} n={n:4d}: flagged {100 * flagged / args.trials:5.1f}% (all tests), "
                  f"{100 * mmd / args.trials:5.1f}% (MMD alone)  [{(time.perf_counter() - t0) / args.trials:.2f} s/window]",
                  flush=True)
        enough = [n for n, v in out[shift].items() if v["flagged"] >= 0.9]
        if shift.startswith("none"):
            print(f"  false alarms: at most {100 * max(v['flagged'] for v in out[shift].values()):.1f}% of undrifted windows")
        else:
            print(f"  smallest window with >= 90% detection: {min(enough) if enough else 'more than tested'}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
