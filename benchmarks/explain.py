"""Explanation latency per image (gradcam, ig, occlusion) and the pointing-game hit rate.

Latency: resnet-18 (random init: latency does not depend on the weights) and
efficientnet-lite0 (ImageNet weights when installed, else random) at 224 px, one
real photograph, default method options (IG 32 steps, occlusion 32 px window,
stride 16), median of ``--repeats`` runs after one warm-up, torch on the CPU.

Pointing game: the synthetic set of ``tests/explain/conftest.py`` (a bright
red or green square on real-photo crops decides the class); a resnet-micro is
trained on it at 96 px until 97 % train accuracy, and the figure is the share of 40 test images
whose Grad-CAM peak falls inside the square (± 2 px).

    python benchmarks/explain.py [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def latency(preset: str, repeats: int, photo) -> dict[str, float]:
    from recog.explain import Explainer
    from recog.models import create_model, save_bundle

    try:
        created = create_model(preset, ["a", "b", "c"], weights="none" if preset.startswith("resnet") else None)
    except Exception:  # weights not installed: random init has the same latency
        created = create_model(preset, ["a", "b", "c"], weights="none")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(Path(tmp) / preset, created.model, labels=["a", "b", "c"],
                             preprocessing=created.preprocessing, source_model=preset)
        ex = Explainer(bundle)
        out = {}
        for method in ("gradcam", "ig", "occlusion"):
            ex.explain(photo, method=method)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                ex.explain(photo, method=method)
                times.append(time.perf_counter() - t)
            out[method] = statistics.median(times)
    return out


def pointing_game() -> tuple[int, int, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "explain"))
    from conftest import LABELS, make_set, train_pointing_model  # the test's own recipe

    from recog.explain import Explainer
    from recog.models import save_bundle

    model, prep, acc = train_pointing_model()
    test = make_set(40, seed=123)
    with tempfile.TemporaryDirectory() as tmp:
        ex = Explainer(save_bundle(Path(tmp) / "p", model, labels=LABELS, preprocessing=prep,
                                   source_model="resnet-micro"))
        hits = 0
        for img, label, (x1, y1, x2, y2) in zip(test.images, test.labels, test.boxes):
            x, y = ex.explain(img, method="gradcam", target=LABELS[label]).peak
            hits += x1 - 2 <= x <= x2 + 2 and y1 - 2 <= y <= y2 + 2
    return hits, len(test.images), acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    import torch
    from PIL import Image
    from skimage import data

    if args.threads:
        torch.set_num_threads(args.threads)
    photo = Image.fromarray(data.chelsea())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, photo {photo.size[0]}x{photo.size[1]}")
    print(f"{'model':<20}{'gradcam':>10}{'ig':>10}{'occlusion':>12}   (seconds per image, median)")
    for preset in ("resnet-18", "efficientnet-lite0"):
        t = latency(preset, args.repeats, photo)
        print(f"{preset:<20}{t['gradcam']:>10.3f}{t['ig']:>10.3f}{t['occlusion']:>12.3f}")
    hits, n, acc = pointing_game()
    print(f"pointing game (Grad-CAM, resnet-micro, train accuracy {acc:.2f}): {hits}/{n} = {hits / n:.2f}")


if __name__ == "__main__":
    main()
