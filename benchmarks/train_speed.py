"""Training throughput of resnet-18 at 224 px on this CPU, next to its ceiling.

ceiling (images/s) = machine float32 matmul rate / (3 x forward FLOPs per image)
(forward + backward ≈ 3 forward passes). Measured in the same run:

* ``recog``: the real training loop (``recog.engine.train``), images already
  decoded, standard augmentation on, 2 epochs of 192 real photographs.
* ``bare loop``: forward + backward + AdamW step on random tensors, no data or
  augmentation, to show the tool's own overhead; run in both memory formats
  (contiguous NCHW, channels-last NHWC, interleaved) to justify the trainer's
  channels-last choice.

Run: .venv/bin/python benchmarks/train_speed.py [--model efficientnet-lite0]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path


def make_photo_tree(root: Path, per_class: int = 96) -> None:
    """Two classes of crops from scikit-image photographs (real images)."""
    from PIL import Image
    from skimage import data

    import numpy as np

    rng = np.random.default_rng(0)
    for label, names in (("animal", ("chelsea", "cat")), ("object", ("coffee", "rocket"))):
        d = root / label
        d.mkdir(parents=True)
        for i in range(per_class):
            arr = getattr(data, names[i % 2])()
            h, w = arr.shape[:2]
            y, x = rng.integers(0, h // 4), rng.integers(0, w // 4)
            Image.fromarray(arr[y:y + 3 * h // 4, x:x + 3 * w // 4]).save(d / f"{i}.jpg", quality=90)


def bare_loop(name: str, batch: int = 32, steps: int = 6, channels_last: bool = True) -> float:
    import torch

    from recog.models import create_model
    from recog.tasks import get_task

    forward = get_task("classify").forward
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(name, ["a", "b"], weights="none").model.train().to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x, y = torch.randn(batch, 3, 224, 224).contiguous(memory_format=fmt), torch.randint(0, 2, (batch,))
    for i in range(steps + 1):
        if i == 1:
            t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(forward(model, x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t)


def main() -> None:
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet-18")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the two memory formats")
    model = ap.parse_args().model
    rounds = ap.parse_args().rounds

    from recog.engine.config import load_config
    from recog.engine.train import train
    from recog.models import create_model

    from recog.runtime.bench import matmul_ceiling, model_flops

    threads = torch.get_num_threads()
    gflops = matmul_ceiling(threads, repeats=20) / 1e9
    flops = model_flops(create_model(model, ["a", "b"], weights="none").model, (224, 224))
    ceiling = gflops * 1e9 / (3 * flops)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        make_photo_tree(root)
        res = train(load_config({"data": str(root), "model": model, "weights": "none", "epochs": 2,
                                 "batch_size": 32, "augment": "standard", "val_split": 0.0,
                                 "out": str(Path(tmp) / "run")}))
        recog_ips = max(r["images_per_s"] for r in res.history)
    formats: dict[str, list[float]] = {"channels_last": [], "contiguous": []}
    for _ in range(rounds):
        for fmt in formats:
            formats[fmt].append(bare_loop(model, channels_last=fmt == "channels_last"))
    bare = max(formats["channels_last"])
    out = {"model": model, "threads": threads, "matmul_gflops": round(gflops, 1),
           "forward_gflops": round(flops / 1e9, 3),
           "bare_loop_images_per_s_by_format": {k: [round(v, 1) for v in vs] for k, vs in formats.items()},
           "ceiling_images_per_s": round(ceiling, 1), "recog_images_per_s": round(recog_ips, 1),
           "bare_loop_images_per_s": round(bare, 1), "recog_share_of_ceiling": round(recog_ips / ceiling, 3),
           "recog_vs_bare_loop": round(recog_ips / bare, 3)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
