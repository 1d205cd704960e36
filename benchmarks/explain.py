"""Explanation figures: latency per method, pointing games for labels and for detector boxes.

All in one run, so that the methods compare on the same load (printed with every section):

* **Latency** per image of each method (``gradcam``, Grad-CAM++, ``ig``, ``occlusion``)
  on resnet-18 (random init: latency does not depend on the weights) and efficientnet-lite0
  (ImageNet weights when installed) at 224 px, one real photograph, default method
  options (IG 32 steps, occlusion 32 px window, stride 16), median of ``--repeats`` runs
  after one warm-up, torch on the CPU.
* **Pointing game** (labels): the synthetic set of ``tests/explain/conftest.py`` (a bright
  red or green square on real-photo crops decides the class); a resnet-micro is trained on
  it at 96 px until 97 % train accuracy; the figure is the share of 40 test images whose
  peak falls inside the square (± 2 px), for Grad-CAM with each weighting: averaged (shipped
  for labels), per-location, and Grad-CAM++ ("plus-plus", measured, not a method).
* **Several objects of one class** (Grad-CAM++'s claim): the same model on 40 images with
  two squares of the target colour; an image counts when the map reaches half its maximum
  inside *both* squares, and the mean ratio of the weaker square's maximum to the stronger's
  says how evenly the two are lit.
* **Pointing game for boxes** (``--bccd-bundle``, a detector trained on BCCD, e.g. by
  ``recog train ../shared/data/bccd/BCCD --task detect --epochs 3 --out runs/bccd-explain``):
  on the first ``--bccd-images`` test images, every box the detector reports at the default
  score floor (at most ``--max-boxes`` per image, best first) is explained; a hit is a peak
  inside that box. Grad-CAM as shipped (per-location weights), with the original
  map-averaged weights, and Grad-CAM++; seconds per box for each.

    python benchmarks/explain.py [--repeats 3] [--threads N] [--bccd-bundle runs/bccd-explain/best]
        [--bccd-images 24] [--max-boxes 8] [--skip-latency]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BCCD = ROOT.parent / "shared" / "data" / "bccd" / "BCCD"
#: Grad-CAM weightings compared (recog.explain.attribution.CAM_WEIGHTS; "auto" is what ships)
LABEL_CAMS = ("averaged", "per-location", "plus-plus")
BOX_CAMS = ("per-location", "averaged", "plus-plus")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").is_file() else "n/a"


def latency(preset: str, repeats: int, photo) -> dict[str, float]:
    from recog.explain import Explainer, MethodOptions
    from recog.models import create_model, save_bundle

    try:
        created = create_model(preset, ["a", "b", "c"], weights="none" if preset.startswith("resnet") else None)
    except Exception:  # weights not installed: random init has the same latency
        created = create_model(preset, ["a", "b", "c"], weights="none")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(Path(tmp) / preset, created.model, labels=["a", "b", "c"],
                             preprocessing=created.preprocessing, source_model=preset)
        plain, plus = Explainer(bundle), Explainer(bundle, options=MethodOptions(cam_weights="plus-plus"))
        out = {}
        for name, ex, method in (("gradcam", plain, "gradcam"), ("gradcam++", plus, "gradcam"),
                                 ("ig", plain, "ig"), ("occlusion", plain, "occlusion")):
            ex.explain(photo, method=method)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                ex.explain(photo, method=method)
                times.append(time.perf_counter() - t)
            out[name] = statistics.median(times)
    return out


def two_of_a_kind(n: int, seed: int):
    """Like the pointing set, with two squares of the image's class colour (apart from each other)."""
    from PIL import Image
    from skimage import data

    from conftest import COLOURS, LABELS, ORIGINAL, SQUARE

    rng = np.random.default_rng(seed)
    photos = [getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")]
    w, h = ORIGINAL
    out = []
    for _ in range(n):
        photo = photos[rng.integers(len(photos))]
        y0, x0 = rng.integers(0, photo.shape[0] - h * 2), rng.integers(0, photo.shape[1] - w * 2)
        arr = np.asarray(Image.fromarray(np.ascontiguousarray(photo[y0:y0 + 2 * h, x0:x0 + 2 * w, :3]))
                         .resize((w, h))).copy()
        label = int(rng.integers(2))
        while True:
            boxes = [[int(v) for v in (x, y, x + SQUARE, y + SQUARE)]
                     for x, y in zip(rng.integers(0, w - SQUARE, 2), rng.integers(0, h - SQUARE, 2))]
            a, b = boxes
            if a[2] + 4 <= b[0] or b[2] + 4 <= a[0] or a[3] + 4 <= b[1] or b[3] + 4 <= a[1]:
                break
        for x1, y1, x2, y2 in boxes:
            arr[y1:y2, x1:x2] = COLOURS[LABELS[label]]
        out.append((Image.fromarray(arr), label, boxes))
    return out


def label_games() -> dict:
    sys.path.insert(0, str(ROOT / "tests" / "explain"))
    from conftest import LABELS, make_set, train_pointing_model  # the test's own recipe

    from recog.explain import Explainer, MethodOptions
    from recog.models import save_bundle

    model, prep, acc = train_pointing_model()
    test = make_set(40, seed=123)
    pairs = two_of_a_kind(40, seed=7)
    hits, both, evenness = defaultdict(int), defaultdict(int), defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(Path(tmp) / "p", model, labels=LABELS, preprocessing=prep, source_model="resnet-micro")
        for method in LABEL_CAMS:
            ex = Explainer(bundle, options=MethodOptions(cam_weights=method))
            for img, label, (x1, y1, x2, y2) in zip(test.images, test.labels, test.boxes):
                x, y = ex.explain(img, target=LABELS[label]).peak
                hits[method] += x1 - 2 <= x <= x2 + 2 and y1 - 2 <= y <= y2 + 2
            for img, label, boxes in pairs:
                heat = ex.explain(img, target=LABELS[label]).heat()
                tops = [float(heat[y1:y2, x1:x2].max()) for x1, y1, x2, y2 in boxes]
                both[method] += min(tops) >= 0.5
                evenness[method].append(min(tops) / max(max(tops), 1e-9))
    return {"acc": acc, "n": len(test.images), "hits": dict(hits), "pairs": len(pairs), "both": dict(both),
            "evenness": {m: float(np.mean(v)) for m, v in evenness.items()}}


def box_game(bundle: Path, images: int, max_boxes: int) -> dict:
    from recog.explain import Explainer, MethodOptions

    stems = (BCCD / "ImageSets" / "Main" / "test.txt").read_text().split()[:images]
    variants = {w: Explainer(bundle, options=MethodOptions(cam_weights=w)) for w in BOX_CAMS}
    hits, seconds = defaultdict(int), defaultdict(float)
    per_class: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    counts: dict[str, int] = defaultdict(int)
    n = 0
    for stem in stems:
        path = BCCD / "JPEGImages" / f"{stem}.jpg"
        first = variants[BOX_CAMS[0]].explain(path)  # also: how many boxes
        for k in range(min(first.boxes, max_boxes)):
            label = None
            for name, ex in variants.items():
                t = time.perf_counter()
                e = ex.explain(path, box=k)
                seconds[name] += time.perf_counter() - t
                hits[name] += e.peak_in_box
                per_class[name][e.target] += e.peak_in_box
                label = e.target
            counts[label] += 1
            n += 1
    return {"boxes": n, "images": len(stems), "hits": dict(hits), "seconds": dict(seconds),
            "per_class": {k: dict(v) for k, v in per_class.items()}, "counts": dict(counts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--skip-latency", action="store_true", help="leave out the 224 px latency table")
    ap.add_argument("--bccd-bundle", type=Path, default=None, help="a detect bundle trained on BCCD")
    ap.add_argument("--bccd-images", type=int, default=24)
    ap.add_argument("--max-boxes", type=int, default=8)
    args = ap.parse_args()
    import torch
    from PIL import Image
    from skimage import data

    if args.threads:
        torch.set_num_threads(args.threads)
    photo = Image.fromarray(data.chelsea())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, photo {photo.size[0]}x{photo.size[1]}")
    if not args.skip_latency:
        print(f"load {load()}")
        names = ("gradcam", "gradcam++", "ig", "occlusion")
        print(f"{'model':<20}" + "".join(f"{m:>11}" for m in names) + "   (seconds per image, median)")
        for preset in ("resnet-18", "efficientnet-lite0"):
            t = latency(preset, args.repeats, photo)
            print(f"{preset:<20}" + "".join(f"{t[m]:>11.3f}" for m in names))
    print(f"load {load()}")
    g = label_games()
    for m in LABEL_CAMS:
        print(f"pointing game (gradcam, {m} weights{' (shipped)' if m == 'averaged' else ''}, resnet-micro, train accuracy {g['acc']:.2f}): {g['hits'].get(m, 0)}/{g['n']} = "
              f"{g['hits'].get(m, 0) / g['n']:.2f}; two squares of the class both reach half the maximum: "
              f"{g['both'].get(m, 0)}/{g['pairs']} = {g['both'].get(m, 0) / g['pairs']:.2f}, weaker/stronger "
              f"square's maximum {g['evenness'][m]:.2f} on average")
    if args.bccd_bundle is not None:
        print(f"load {load()}")
        b = box_game(args.bccd_bundle, args.bccd_images, args.max_boxes)
        print(f"pointing game for boxes on BCCD ({b['boxes']} boxes of {b['images']} test images; "
              f"{', '.join(f'{v} {k}' for k, v in b['counts'].items())}): peak inside the explained box")
        for name in b["hits"]:
            per = ", ".join(f"{c} {b['per_class'][name].get(c, 0)}/{v}" for c, v in b["counts"].items())
            shown = f"gradcam, {name}{' (shipped)' if name == 'per-location' else ''}"
            print(f"  {shown:<32}{b['hits'][name]:>4}/{b['boxes']} = {b['hits'][name] / b['boxes']:.2f}  ({per});"
                  f"  {b['seconds'][name] / b['boxes']:.3f} s per box")
        print(f"load {load()}")


if __name__ == "__main__":
    main()
