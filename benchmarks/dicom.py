"""DICOM decode throughput: recog's safe loader (decode + window + RGB) + resize vs pydicom's plain path.

Files: /work/shared/data/dicom (or --data) and pydicom's bundled test files
(those that decode). Per file and round, interleaved A/B: (a) ``recog.io.load_image``
then a 224x224 resize; (b) ``pydicom.dcmread(...).pixel_array`` (all frames, no
windowing) then a min-max scale to uint8 and the same resize. Prints the median
milliseconds per file over ``--rounds``.

    python benchmarks/dicom.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image


def plain(path: Path) -> Image.Image:
    import pydicom

    arr = pydicom.dcmread(path).pixel_array
    arr = arr[0] if arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] != 3) else arr
    a = arr.astype(np.float64)
    a = (255 * (a - a.min()) / max(float(a.max() - a.min()), 1e-9)).astype(np.uint8)
    return Image.fromarray(a).convert("RGB").resize((224, 224))


def ours(path: Path) -> Image.Image:
    from recog.io import load_image

    return load_image(path).resize((224, 224))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/dicom")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import pydicom.data

    # the files inside the wheel only (get_testdata_files would try to download the rest)
    bundled = Path(pydicom.data.__file__).parent / "test_files"
    files = sorted(Path(args.data).glob("*.dcm")) + sorted(bundled.glob("*.dcm"))
    warnings.simplefilter("ignore")
    usable = []
    for f in files:
        try:
            ours(f), plain(f)
            usable.append(f)
        except Exception:  # noqa: BLE001 - a benchmark keeps the files both paths decode
            pass
    times = {"recog": [], "pydicom": []}
    for _ in range(args.rounds):
        for name, fn in (("recog", ours), ("pydicom", plain)) if _ % 2 == 0 else (("pydicom", plain), ("recog", ours)):
            t = time.perf_counter()
            for f in usable:
                fn(f)
            times[name].append((time.perf_counter() - t) / len(usable) * 1000)
    print(f"{len(usable)} DICOM files (of {len(files)}) decoded by both paths, {args.rounds} interleaved rounds")
    for name, ts in times.items():
        print(f"  {name:8s} {statistics.median(ts):7.2f} ms/file (median), {1000 / statistics.median(ts):6.0f} files/s")


if __name__ == "__main__":
    main()
