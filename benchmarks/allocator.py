"""glibc's default allocator vs :func:`recog.runtime.allocator.keep_freed_memory`, same run.

Each mode runs in its own child process (the allocator is process-wide), one after
the other, for each case: EfficientNet-Lite0 at 224 px, inference at batch 1, 8
and 32 and one training step (forward, backward, AdamW) at batch 32, timed for
``--seconds`` after a warm-up. Reports images/s, user and system CPU seconds and
minor page faults per case, and the ratio tuned / default.

Run: .venv/bin/python benchmarks/allocator.py [--seconds 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
from recog.runtime.allocator import keep_freed_memory
from recog.models.efficientnet_lite import build_efficientnet_lite

tuned = keep_freed_memory()
torch.set_num_threads(int(sys.argv[2]))
seconds = float(sys.argv[1])
model = build_efficientnet_lite("lite0", num_classes=10)
opt = torch.optim.AdamW(model.parameters(), 1e-4)
rows = []
for case, batch in (("infer", 1), ("infer", 8), ("infer", 32), ("train", 32)):
    x, y = torch.rand(batch, 3, 224, 224), torch.randint(0, 10, (batch,))

    def step():
        if case == "infer":
            model.eval()
            with torch.no_grad():
                model(x)
        else:
            model.train()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    step()
    r0, t0, n = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        step()
        n += batch
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    rows.append({"case": case, "batch": batch, "images_per_s": round(n / wall, 2),
                 "user_s": round(r1.ru_utime - r0.ru_utime, 2), "sys_s": round(r1.ru_stime - r0.ru_stime, 2),
                 "minor_faults": r1.ru_minflt - r0.ru_minflt})
print(json.dumps({"tuned": tuned, "rows": rows}))
"""


def run(mode: str, seconds: float, threads: int) -> dict:
    env = {**os.environ, "RECOG_MALLOC": mode, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(seconds), str(threads)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else "n/a"
    default, tuned = run("default", args.seconds, args.threads), run("keep", args.seconds, args.threads)
    print(f"load {' '.join(load)}; tuned allocator applied: {tuned['tuned']}")
    print(f"{'case':6} {'batch':>5} | {'default img/s':>13} {'sys s':>6} {'faults':>9} | {'tuned img/s':>11} "
          f"{'sys s':>6} {'faults':>9} | ratio")
    for d, t in zip(default["rows"], tuned["rows"]):
        print(f"{d['case']:6} {d['batch']:>5} | {d['images_per_s']:>13} {d['sys_s']:>6} {d['minor_faults']:>9} | "
              f"{t['images_per_s']:>11} {t['sys_s']:>6} {t['minor_faults']:>9} | "
              f"{t['images_per_s'] / d['images_per_s']:.2f}x")


if __name__ == "__main__":
    main()
