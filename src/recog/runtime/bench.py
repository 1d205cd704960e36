"""``recog bench``: latency, throughput, agreement, accuracy and share of the machine's ceiling.

For each backend and batch size: p50 and p95 latency of ``infer`` on a fixed
batch (preprocessing excluded), images per second at p50, top-1 agreement
with the original PyTorch model and accuracy on a labelled set, and the share
of the machine's ceiling: model FLOPs (counted on the PyTorch graph, a
multiply-add = 2 FLOPs) x images/s, over the float32 matmul rate measured in
the same run with the same thread count.

Decision: the ceiling is the *float32* matmul rate, also for int8, so an int8
backend can show a share above 100%: that is the measure of how much int8
(VNNI/AMX) buys over the best that float32 can do on this machine.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recog.clock import utc_now
from recog.data.evalset import LabelledSet, batched, load_labelled, synthetic
from recog.errors import ConfigError, RecogError
from recog.models.bundle import read_manifest
from recog.runtime.timing import time_backend

Log = Callable[[str], None]


@dataclass
class BenchRow:
    """One (backend, batch size) measurement."""

    backend: str
    batch: int
    p50_ms: float
    p95_ms: float
    images_per_s: float
    runs: int
    speedup_vs_torch: float | None = None
    top1_agreement: float | None = None
    accuracy: float | None = None
    max_abs_logit_diff: float | None = None
    ceiling_share: float | None = None


@dataclass
class BenchReport:
    bundle: str
    machine: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any]
    settings: dict[str, Any]
    rows: list[BenchRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "machine": self.machine, "model": self.model, "data": self.data,
                "settings": self.settings, "rows": [asdict(r) for r in self.rows], "skipped": self.skipped,
                "created": utc_now()}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_ceiling(threads: int, *, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul rate in FLOP/s for ``n x n`` matrices with ``threads`` threads (PyTorch)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


def model_flops(model, size: tuple[int, int], task=None) -> int:
    """FLOPs of one forward pass of ``task`` (default classify) on one image
    (``torch.utils.flop_counter``; multiply-add = 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from recog.tasks import get_task

    task = task or get_task("classify")
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        task.forward(model, torch.zeros(1, 3, *size))
    return int(counter.get_total_flops())



def _batch_of(x: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps, axis=0)[:n])


def run_bench(path: str | Path, *, backends: Sequence[str] = ("torch", "onnx", "onnx-int8"),
              batches: Sequence[int] = (1, 8), data: str | Path | None = None, quick: bool = False,
              threads: int | None = None, budget_s: float | None = None, max_images: int | None = None,
              log: Log | None = None) -> BenchReport:
    """Benchmark a bundle's backends.

    Args:
        path: bundle folder.
        backends: backend names; a backend the bundle has no export for is
            skipped and listed in ``skipped`` with the reason.
        batches: batch sizes.
        data: labelled folder for agreement and accuracy (None: synthetic
            images, agreement only).
        quick: few runs and few images (for tests and smoke checks).
        threads: threads for every backend and the matmul; None = all CPUs.
        budget_s: seconds of timed runs per (backend, batch).
        max_images: cap on the labelled images used for accuracy.

    Returns:
        :class:`BenchReport`.
    """
    import torch

    from recog.runtime.backends import BACKENDS, create_backend
    from recog.runtime.onnx import default_threads
    from recog.tasks import get_task

    say = log or (lambda _msg: None)
    if not backends:
        raise ConfigError("give at least one backend (--backends torch,onnx,onnx-int8).")
    if not batches or min(batches) < 1:
        raise ConfigError(f"batch sizes must be positive integers, got {list(batches)}.")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ConfigError(f"unknown backend(s) {unknown}; expected some of {', '.join(sorted(BACKENDS))}.")
    threads = threads or default_threads()
    budget_s = budget_s if budget_s is not None else (0.2 if quick else 3.0)
    timing = dict(warmup=1 if quick else 3, min_runs=3 if quick else 10, max_runs=20 if quick else 1000,
                  budget_s=budget_s)
    manifest = read_manifest(path)
    task = get_task(manifest.task)
    prep = manifest.preprocessing
    limit = max_images or (32 if quick else 1000)
    evalset: LabelledSet = (load_labelled(data, manifest.labels, prep, split="test", limit=limit)
                            if data is not None else synthetic(prep, 8 if quick else 64))
    say(f"images for agreement/accuracy: {len(evalset)} from {evalset.source}")

    say("measuring the float32 matmul ceiling ...")
    ceiling = matmul_ceiling(threads, n=512 if quick else 2048, repeats=3 if quick else 10)
    torch.set_num_threads(threads)
    reference_model = task.load(manifest)
    flops = model_flops(reference_model, prep.size, task)
    with torch.inference_mode():
        reference = batched(evalset.x, lambda b: task.forward(reference_model, torch.from_numpy(b)).numpy())
    del reference_model

    report = BenchReport(
        bundle=str(path),
        machine={"cpu": cpu_name(), "threads": threads, "matmul_fp32_gflops": round(ceiling / 1e9, 2),
                 "python": platform.python_version()},
        model={"source_model": manifest.source_model, "input_size": list(prep.size),
               "gflops_per_image": round(flops / 1e9, 4), "labels": len(manifest.labels)},
        data=evalset.describe(),
        settings={"quick": quick, "budget_s": budget_s, "batches": list(batches), "backends": list(backends),
                  "timed": "backend.infer on a fixed preprocessed batch (decode/preprocess excluded)"})
    torch_p50: dict[int, float] = {}
    for name in backends:
        try:
            backend = create_backend(name, manifest, threads=threads)
        except (RecogError, ImportError) as exc:
            report.skipped[name] = str(exc)
            say(f"skipping {name}: {exc}")
            continue
        logits = batched(evalset.x, backend.infer)
        parity = task.parity(reference, logits, evalset.y)
        for b in batches:
            say(f"timing {name} at batch {b} ...")
            times = time_backend(backend, _batch_of(evalset.x, b), **timing)
            p50, p95 = float(np.percentile(times, 50)), float(np.percentile(times, 95))
            ips = 1000.0 * b / p50
            if name == "torch":
                torch_p50[b] = p50
            report.rows.append(BenchRow(
                backend=name, batch=b, p50_ms=round(p50, 4), p95_ms=round(p95, 4), images_per_s=round(ips, 2),
                runs=len(times), top1_agreement=parity.get("top1_agreement"), accuracy=parity.get("accuracy"),
                max_abs_logit_diff=(round(parity["max_abs_logit_diff"], 6) if "max_abs_logit_diff" in parity
                                    else None),
                ceiling_share=round(flops * ips / ceiling, 4)))
        del backend
    for row in report.rows:
        if row.batch in torch_p50:
            row.speedup_vs_torch = round(torch_p50[row.batch] / row.p50_ms, 3)
    return report


def format_table(report: BenchReport):
    """A rich Table of the rows."""
    from rich.table import Table

    m = report.machine
    table = Table(title=f"{report.bundle} — {report.model['gflops_per_image']:.3g} GFLOP/image; "
                        f"{m['cpu']}, {m['threads']} threads, fp32 matmul {m['matmul_fp32_gflops']:.0f} GFLOP/s")
    for col in ("backend", "batch", "p50 ms", "p95 ms", "images/s", "vs torch", "top-1 agree", "accuracy",
                "% of ceiling"):
        table.add_column(col, justify="left" if col == "backend" else "right")

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    for r in report.rows:
        table.add_row(r.backend, str(r.batch), f"{r.p50_ms:.3f}", f"{r.p95_ms:.3f}", f"{r.images_per_s:,.1f}",
                      "-" if r.speedup_vs_torch is None else f"{r.speedup_vs_torch:.2f}x",
                      pct(r.top1_agreement), pct(r.accuracy), pct(r.ceiling_share))
    return table


__all__ = ["BenchReport", "BenchRow", "format_table", "matmul_ceiling", "model_flops", "run_bench"]
