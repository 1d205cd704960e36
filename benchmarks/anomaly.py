"""Anomaly detection on DeepPCB (../shared/data/pcb): fit on defect-free templates, score tested boards.

Protocol (seeded): in each of the three board groups, 20% of the
template/tested pairs are held out. The model is fitted on the templates of
the other pairs (the fit itself holds 10% of those out to set the threshold
at 1% false rejects). Scored: every tested image (defects) and the held-out
templates (good). Figures:

* **all tested images**: held-out templates vs all 233 tested images (the
  spots of most tested images were seen, defect-free, during the fit: like
  inspecting a known part);
* **unseen spots**: held-out templates vs the tested images of the same
  held-out pairs (neither seen in the fit: like a new region of the board);
* **box hit share**: of the annotated defect boxes, the share that contains
  a heatmap peak (a local maximum, 15-pixel window at the model input, above
  the threshold); and the share whose heatmap maximum is above the threshold;
* **pixel AUROC** and **PRO** (area up to 30% pixel FPR) with the boxes filled in as masks;
* **latency** p50 at batch 1 (decode + network + search + heatmap) with the
  torch backend and, after ``recog export`` (fp32 ONNX, checked on the
  held-out pairs), with ONNX Runtime, interleaved image by image; training
  time; **bank** size.

Usage::

    python benchmarks/anomaly.py                         # the defaults: 512 px, bank <= 2048
    python benchmarks/anomaly.py --banks 256,512,1024    # + AUROC and latency with smaller banks
    python benchmarks/anomaly.py --image-size 384 --max-bank 2048 --threads 2
    python benchmarks/anomaly.py --report runs/pcb-report   # also the recog evaluate report (unseen spots)
    python benchmarks/anomaly.py --no-onnx               # skip the ONNX export and its latency
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pcb"


def read_pairs(root: Path) -> list[dict]:
    """Every template/tested pair of the subset, with its group and defect boxes (x1 y1 x2 y2 in pixels)."""
    pairs = []
    for listing in ("trainval.txt", "test.txt"):
        for line in (root / "PCBData" / listing).read_text().splitlines():
            if not line.strip():
                continue
            image, boxes = line.split()
            stem = root / "PCBData" / image[:-4]
            rows = [r.replace(",", " ").split() for r in (root / "PCBData" / boxes).read_text().splitlines() if r.strip()]
            pairs.append({"group": image.split("/")[0], "name": stem.name,
                          "template": Path(f"{stem}_temp.jpg"), "tested": Path(f"{stem}_test.jpg"),
                          "boxes": [[float(v) for v in r[:4]] for r in rows]})
    return pairs


def split_pairs(pairs: list[dict], held: float, seed: int) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    fit, out = [], []
    for group in sorted({p["group"] for p in pairs}):
        members = sorted((p for p in pairs if p["group"] == group), key=lambda p: p["name"])
        order = rng.permutation(len(members))
        k = max(2, round(held * len(members)))
        out += [members[i] for i in order[:k]]
        fit += [members[i] for i in order[k:]]
    return fit, out


def box_mask(boxes: list[list[float]], size: tuple[int, int], frame: tuple[int, int]) -> np.ndarray:
    """Boxes (pixels of a ``frame = (w, h)`` image) filled in as a ``size = (h, w)`` bool mask."""
    h, w = size
    mask = np.zeros(size, bool)
    for x1, y1, x2, y2 in boxes:
        mask[int(y1 * h / frame[1]):int(np.ceil(y2 * h / frame[1])) + 1,
             int(x1 * w / frame[0]):int(np.ceil(x2 * w / frame[0])) + 1] = True
    return mask


def box_hits(result, boxes: list[list[float]], level: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per box: a heatmap peak above ``level`` (normalized) inside it; the heatmap's maximum inside it above ``level``."""
    from recog.anomaly.maps import box_hits as hits
    from recog.anomaly.maps import peaks

    hm = result.heatmap
    h, w = hm.shape
    fw, fh = result.image_size
    scaled = [[x1 * w / fw, y1 * h / fh, x2 * w / fw, y2 * h / fh] for x1, y1, x2, y2 in boxes]
    peak = hits(peaks(hm, level=level, window=15), scaled)
    above = np.array([hm[int(y1):int(np.ceil(y2)) + 1, int(x1):int(np.ceil(x2)) + 1].max() > level
                      for x1, y1, x2, y2 in scaled])
    return peak, above


def unseen_layout(root: Path, held: list[dict]) -> Path:
    """The held-out pairs as a ``recog evaluate`` layout under ``root``: good/ (templates), defect/ (tested),
    ground_truth/defect/ (the boxes filled in as masks)."""
    from PIL import Image

    for sub in ("good", "defect", "ground_truth/defect"):
        (root / sub).mkdir(parents=True)
    for p in held:
        (root / "good" / p["template"].name).symlink_to(p["template"].resolve())
        (root / "defect" / p["tested"].name).symlink_to(p["tested"].resolve())
        mask = box_mask(p["boxes"], (640, 640), (640, 640))  # DeepPCB images are 640 x 640
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "ground_truth" / "defect" / f"{p['tested'].stem}_mask.png")
    return root


def latency_ms(models: dict, paths: list[str], warmup: int = 2) -> dict[str, float]:
    """p50 of ``model.predict(path)`` (batch 1) per model in ms, the models taking turns image by image."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for path in paths:
        for name, model in models.items():
            t = time.perf_counter()
            model.predict(path)
            times[name].append(time.perf_counter() - t)
    return {name: round(1000 * statistics.median(t[warmup:] or t), 1) for name, t in times.items()}


def figures(goods: list, defects: list, defect_pairs: list[dict], threshold: float) -> dict:
    from recog.anomaly.evaluate import pixel_size, resize_map
    from recog.metrics.anomaly import image_metrics, pixel_metrics

    scores = np.array([r.score for r in goods + defects])
    y = np.r_[np.zeros(len(goods), bool), np.ones(len(defects), bool)]
    m = image_metrics(scores, y, threshold)
    f1_level = m["f1_optimal"]["threshold"] / threshold if m["f1_optimal"] else 1.0
    peak_hits, above_hits, f1_hits = [], [], []
    for r, p in zip(defects, defect_pairs):
        a, b = box_hits(r, p["boxes"])
        peak_hits += list(a)
        above_hits += list(b)
        f1_hits += list(box_hits(r, p["boxes"], f1_level)[0])
    size = pixel_size(goods[0].heatmap.shape)
    maps = [resize_map(r.heatmap, size) for r in goods + defects]
    masks = [np.zeros(size, bool)] * len(goods) + [box_mask(p["boxes"], size, r.image_size)
                                                    for r, p in zip(defects, defect_pairs)]
    px = pixel_metrics(maps, masks)
    at = m["at_threshold"]
    return {"good": len(goods), "defect": len(defects), "image_auroc": round(m["image_auroc"], 4),
            "image_ap": round(m["image_ap"], 4), "f1_at_threshold": round(at["f1"] or 0.0, 4),
            "false_reject_rate": round(at["false_reject_rate"], 4), "escape_rate": round(at["escape_rate"], 4),
            "f1_optimal": round(m["f1_optimal"]["f1"], 4) if m["f1_optimal"] else None,
            "boxes": len(peak_hits), "box_peak_share": round(float(np.mean(peak_hits)), 4),
            "box_above_share": round(float(np.mean(above_hits)), 4),
            "box_peak_share_at_f1_threshold": round(float(np.mean(f1_hits)), 4),
            "pixel_auroc": round(px["pixel_auroc"], 4) if px else None,
            "pro_auc_30": round(px["pro_auc_30"], 4) if px else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--image-size", type=int, default=None, help="default: the task's (512 for EfficientNet-Lite)")
    ap.add_argument("--max-bank", type=int, default=None, help="default: FitOptions.max_bank")
    ap.add_argument("--coreset-ratio", type=float, default=None, help="default: FitOptions.coreset_ratio")
    ap.add_argument("--held", type=float, default=0.2, help="share of pairs held out per group")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--latency-images", type=int, default=20)
    ap.add_argument("--banks", default="", help="also score with the first K rows of the bank, e.g. 512,1024 "
                    "(greedy k-center picks in order, so they are the K-row coreset); AUROC and latency per K")
    ap.add_argument("--report", type=Path, default=None, help="also write the recog evaluate report (unseen spots) here")
    ap.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    ap.add_argument("--no-onnx", action="store_true", help="skip the ONNX export and its latency")
    args = ap.parse_args()

    import torch

    import recog
    from recog.anomaly.fit import FitOptions, fit_anomaly
    from recog.tasks.anomaly import save_fit

    torch.set_num_threads(args.threads)
    pairs = read_pairs(args.data)
    fit_pairs, held = split_pairs(pairs, args.held, args.seed)
    defaults = FitOptions()
    options = FitOptions(coreset_ratio=args.coreset_ratio or defaults.coreset_ratio,
                         max_bank=args.max_bank or defaults.max_bank)
    print(f"{len(pairs)} pairs: fitting on {len(fit_pairs)} templates, {len(held)} pairs held out", flush=True)
    t0 = time.perf_counter()
    fitted = fit_anomaly([p["template"] for p in fit_pairs], image_size=args.image_size, options=options,
                         threads=args.threads, seed=args.seed, device="cpu")
    train_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_fit(fitted, Path(tmp) / "pcb")
        model = recog.load(bundle, backend="torch")
        print(f"fitted in {train_s:.0f} s: bank {fitted.record['bank_size']} x {fitted.record['feature_dim']} "
              f"(coreset of {fitted.record['patches_seen']:,} patches in {fitted.record['coreset_seconds']} s), "
              f"input {fitted.preprocessing.size[0]} px, threshold {fitted.threshold:.4g}", flush=True)
        t1 = time.perf_counter()
        goods = model.predict_many([str(p["template"]) for p in held], batch_size=8)
        defects = model.predict_many([str(p["tested"]) for p in pairs], batch_size=8)
        score_s = time.perf_counter() - t1
        held_names = {p["name"] for p in held}
        unseen = [i for i, p in enumerate(pairs) if p["name"] in held_names]
        seen = [i for i, p in enumerate(pairs) if p["name"] not in held_names]
        results = {
            "all tested images": figures(goods, defects, pairs, fitted.threshold),
            "unseen spots": figures(goods, [defects[i] for i in unseen], [pairs[i] for i in unseen], fitted.threshold),
            "seen spots": figures(goods, [defects[i] for i in seen], [pairs[i] for i in seen], fitted.threshold),
        }
        layout = unseen_layout(Path(tmp) / "unseen", held)
        timed = [str(p["tested"]) for p in held[:args.latency_images + 2]]
        onnx_check: dict = {}
        if not args.no_onnx:
            from recog.runtime.export import export_bundle

            t2 = time.perf_counter()
            entry = export_bundle(bundle, validation=layout, validation_size=32, threads=args.threads,
                                  rank=False).exports["onnx"]
            onnx_check = {"export_s": round(time.perf_counter() - t2, 1), **entry["parity"]}
            print(f"ONNX export verified in {onnx_check['export_s']} s: {entry['parity']}", flush=True)
        latency = {}
        for threads in sorted({1, args.threads}):
            torch.set_num_threads(threads)
            models = {"torch": model}
            if not args.no_onnx:
                models["onnx"] = recog.load(bundle, backend="onnx", threads=threads)
            latency[threads] = latency_ms(models, timed)
        torch.set_num_threads(args.threads)
        sweep = {}
        full = model.backend.model.memory_bank.clone()
        for k in [int(v) for v in args.banks.split(",") if v.strip()]:
            if k >= len(full):
                continue
            model.backend.model.set_bank(full[:k])  # the first K greedy picks; threshold kept: AUROC is threshold-free
            g = model.predict_many([str(p["template"]) for p in held], batch_size=8)
            d = model.predict_many([str(p["tested"]) for p in pairs], batch_size=8)
            t = latency_ms({"torch": model}, timed)["torch"]
            sweep[k] = {"image_auroc_all": figures(g, d, pairs, fitted.threshold)["image_auroc"],
                        "image_auroc_unseen": figures(g, [d[i] for i in unseen], [pairs[i] for i in unseen],
                                                      fitted.threshold)["image_auroc"],
                        "latency_p50_ms_batch1": t}
        model.backend.model.set_bank(full)
        if args.report is not None:
            from recog.engine.evaluate import evaluate

            res = evaluate(bundle, layout, out=args.report, backend="torch")
            print("\n".join(res.summary) + f"\nreport: {res.report}")
    summary = {"input_px": fitted.preprocessing.size[0], "bank": fitted.record["bank_size"],
               "feature_dim": fitted.record["feature_dim"], "train_s": round(train_s, 1),
               "scoring_s_per_image": round(score_s / (len(goods) + len(defects)), 3),
               "latency_p50_ms_batch1": latency, "threads": args.threads, "results": results,
               "bank_sweep": sweep, "onnx_check": onnx_check}
    print(f"\n{'protocol':<18} {'good':>4} {'defect':>6} {'AUROC':>6} {'AP':>6} {'F1@thr':>6} {'FRR':>6} "
          f"{'escape':>6} {'F1opt':>6} {'boxes':>5} {'peak':>6} {'above':>6} {'peakF1':>6} {'pxAUROC':>7} {'PRO30':>6}")
    for name, r in results.items():
        print(f"{name:<18} {r['good']:>4} {r['defect']:>6} {r['image_auroc']:>6.4f} {r['image_ap']:>6.4f} "
              f"{r['f1_at_threshold']:>6.4f} {r['false_reject_rate']:>6.3f} {r['escape_rate']:>6.3f} "
              f"{r['f1_optimal']:>6.4f} {r['boxes']:>5} {r['box_peak_share']:>6.3f} {r['box_above_share']:>6.3f} "
              f"{r['box_peak_share_at_f1_threshold']:>6.3f} {r['pixel_auroc']:>7.4f} {r['pro_auc_30']:>6.4f}")
    lat = "; ".join(f"{t} thread{'s' if t > 1 else ''}: " + ", ".join(f"{b} {ms} ms" for b, ms in v.items())
                    for t, v in latency.items())
    print(f"\nbank {summary['bank']} x {summary['feature_dim']}, input {summary['input_px']} px, training "
          f"{summary['train_s']} s, latency p50 at batch 1: {lat}")
    for k, v in sweep.items():
        print(f"bank {k}: AUROC all {v['image_auroc_all']:.4f}, unseen spots {v['image_auroc_unseen']:.4f}, "
              f"latency p50 {v['latency_p50_ms_batch1']} ms")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
