"""Decode + resize of a 12-megapixel JPEG to a 224 px model input: recog vs plain Pillow.

The photograph: scikit-image's astronaut (a real photo) resized to
4032x3024 (a 12 MP phone camera frame) with sensor-like Gaussian noise
(sigma 6) so the JPEG has realistic high-frequency content and size
(about 3 MB at quality 92).

Compared, interleaved round by round on the same bytes, same process:

* ``plain Pillow``: ``Image.open(...).convert("RGB")`` full-size decode, then
  a bilinear resize of the centre crop to 224x224 (what most code does).
* ``recog``: ``recog.io.load_image(..., reduce_to=decode_size(prep))``
  (JPEG DCT-domain reduced decode via ``Image.draft``, all safety checks
  kept) then ``recog.data.transforms.resize_to_input``.
* ``OpenCV reduced``: ``cv2.imdecode(IMREAD_REDUCED_COLOR_8)`` + ``cv2.resize``
  (INTER_AREA), for reference: it is no faster than Pillow's draft, so recog
  keeps Pillow (one safe decoder).

Also: normalization alone, plain numpy arithmetic vs the fused one-pass
``recog.data.transforms.normalize``.

Run: .venv/bin/python benchmarks/preprocess.py [--rounds 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np


def make_12mp_jpeg() -> bytes:
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(0)
    img = Image.fromarray(data.astronaut()).resize((4032, 3024), Image.BICUBIC)
    noisy = np.asarray(img).astype(np.int16) + rng.normal(0, 6, (3024, 4032, 3)).astype(np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def main() -> None:
    import cv2
    from PIL import Image

    from recog.data.transforms import normalize, resize_to_input
    from recog.io import load_image
    from recog.data.decode import decode_size
    from recog.types import Preprocessing

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    jpeg = make_12mp_jpeg()
    prep = Preprocessing(size=(224, 224))  # shorter_crop, crop_pct 0.875: the ImageNet recipe

    def plain():
        img = Image.open(io.BytesIO(jpeg)).convert("RGB")
        w, h = img.size
        side = min(w, h) * prep.crop_pct
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
        return np.asarray(img.resize((224, 224), Image.BILINEAR, box=box))

    def ours():
        return resize_to_input(load_image(jpeg, reduce_to=decode_size(prep)), prep)

    def opencv():
        a = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_COLOR_8)
        h, w = a.shape[:2]
        side = int(min(w, h) * prep.crop_pct)
        y, x = (h - side) // 2, (w - side) // 2
        return cv2.resize(a[y:y + side, x:x + side], (224, 224), interpolation=cv2.INTER_AREA)

    def plain_normalize(arr):
        out = (arr.astype(np.float32) / 255.0 - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    variants = {"plain Pillow": plain, "recog": ours, "OpenCV reduced": opencv}
    for f in variants.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, f in variants.items():
            t = time.perf_counter()
            f()
            times[name].append(1000 * (time.perf_counter() - t))
    ratios = [p / o for p, o in zip(times["plain Pillow"], times["recog"])]

    u8 = ours()
    norm_times = {"numpy": [], "fused": []}
    for _ in range(200):
        for name, f in (("numpy", plain_normalize), ("fused", lambda a: normalize(a, prep))):
            t = time.perf_counter()
            f(u8)
            norm_times[name].append(1e6 * (time.perf_counter() - t))
    diff = float(np.abs(plain_normalize(u8) - normalize(u8, prep)).max())
    ref = plain().astype(np.float32)
    quality = float(np.abs(ref - u8.astype(np.float32)).mean())

    med = {k: float(np.median(v)) for k, v in times.items()}
    result = {
        "jpeg_bytes": len(jpeg), "size": "4032x3024", "target": "224x224 (shorter side 256, centre crop)",
        "rounds": args.rounds, "median_ms": {k: round(v, 2) for k, v in med.items()},
        "speedup_recog_vs_plain": round(float(np.median(ratios)), 2),
        "speedup_recog_vs_plain_min": round(float(np.min(ratios)), 2),
        "mean_abs_pixel_diff_vs_plain": round(quality, 2),
        "normalize_us": {k: round(float(np.median(v)), 1) for k, v in norm_times.items()},
        "normalize_max_abs_diff": diff,
    }
    print(f"12 MP JPEG ({len(jpeg) / 1e6:.1f} MB) → 224x224, median of {args.rounds} interleaved rounds:")
    for k, v in med.items():
        print(f"  {k:15s} {v:8.2f} ms")
    print(f"  recog vs plain Pillow: {result['speedup_recog_vs_plain']:.2f}x faster "
          f"(worst round {result['speedup_recog_vs_plain_min']:.2f}x); mean |pixel diff| {quality:.2f}/255")
    nu = result["normalize_us"]
    print(f"normalize 224x224: numpy {nu['numpy']:.0f} us, fused {nu['fused']:.0f} us "
          f"({nu['numpy'] / nu['fused']:.1f}x), max diff {diff:.1e}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
