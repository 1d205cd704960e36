"""Timing backends: latencies of ``infer`` and the ``speed_rank`` that ``recog.load`` uses."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from recog.data.evalset import synthetic
from recog.models.bundle import read_manifest, update_bundle


def time_backend(backend, example: np.ndarray, *, budget_s: float = 2.0, min_runs: int = 5,
                 max_runs: int = 100, warmup: int = 2) -> list[float]:
    """Latencies in milliseconds of ``backend.infer(example)``, after ``warmup`` calls: at least
    ``min_runs``, then more until ``budget_s`` seconds or ``max_runs``."""
    for _ in range(warmup):
        backend.infer(example)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        backend.infer(example)
        times.append(1000.0 * (time.perf_counter() - t))
    return times


def rank_backends(path: str | Path, *, threads: int | None = None, example: np.ndarray | None = None,
                  budget_s: float = 1.5) -> dict[str, float]:
    """Time torch and every verified export at batch 1; write ``speed_rank`` (1 = fastest).

    Returns:
        ``{backend: median latency in ms}``.
    """
    from recog.runtime.backends import BACKENDS, create_backend
    from recog.runtime.onnx import default_threads

    manifest = read_manifest(path)
    exports = manifest.exports
    exports.setdefault("torch", {"file": "model.safetensors", "format": "safetensors", "precision": "fp32"})
    exports["torch"]["verified"] = True
    if example is None:
        example = synthetic(manifest.preprocessing, 1).x
    medians: dict[str, float] = {}
    for name, entry in exports.items():
        if not entry.get("verified") or entry.get("file") not in manifest.files or name not in BACKENDS:
            continue
        backend = create_backend(name, manifest, threads=threads)
        medians[name] = float(np.median(time_backend(backend, example, budget_s=budget_s)))
        del backend
    for rank, name in enumerate(sorted(medians, key=medians.get), start=1):
        exports[name].update(speed_rank=rank, latency_ms_batch1=round(medians[name], 3),
                             timed_threads=threads or default_threads())
    for name, entry in exports.items():
        if name not in medians:
            entry.pop("speed_rank", None)
    update_bundle(path, updates={"exports": exports})
    return medians
