"""``recog batch-predict``: a bundle over many files, into resumable parquet shards, locally or on Ray Data.

One code path: the inputs are cut into shards (:mod:`recog.scale.shards`); a
:class:`ShardWorker` loads the model once (``recog.load``: the safe decoder, the
task's postprocessing, the bundle's fastest verified backend) and turns one shard
of paths into its rows and its file. Who calls the workers is the only difference:

- **local**: one worker in this process, or ``workers`` processes (a process pool;
  each process holds one model and ``threads`` inference threads);
- **Ray Data** (``ray=True``): the shards still to do become a dataset whose
  ``map_batches`` runs on a pool of ``workers`` actors (each holds one model), on this
  machine or on the cluster in ``$RAY_ADDRESS``. Ray Data streams the shards through
  the actors and schedules them across nodes.

A bad image becomes a row with ``error_code``/``error`` (never an abort). Rows of a
shard come from one ``predict_many`` call over the shard's files in both paths, so the
local and Ray outputs are the same row for row.

Example:
    >>> summary = batch_predict("runs/pets/best", ["photos/"], "preds/")      # doctest: +SKIP
    >>> summary.rows, summary.failures
    (1200, 3)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from recog.scale.shards import BatchJob, fingerprint, open_job, write_shard
from recog.scale.sources import list_inputs

#: Inputs per shard: a shard is the unit of resume (at most this many predictions are redone after a kill).
DEFAULT_SHARD_SIZE = 1000


@dataclass
class BatchSummary:
    """What a run did: shards in the job, shards found complete, rows and failures written now."""

    out: str
    shards: int
    resumed_shards: int
    rows: int
    failures: int
    seconds: float
    runner: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def result_row(index: int, path: str, result: Any) -> dict[str, Any]:
    """One output row (:func:`recog.scale.shards.schema`) from a task result or a :class:`PredictionFailure`."""
    from recog.types import PredictionFailure

    if isinstance(result, PredictionFailure):
        return {"index": index, "path": path, "label": None, "score": None, "top_labels": [], "top_scores": [],
                "result": None, "error_code": result.code, "error": result.detail}
    d = result.to_dict()
    top = d.get("top") or []
    return {"index": index, "path": path, "label": d.get("label"), "score": d.get("score"),
            "top_labels": [t["label"] for t in top], "top_scores": [t["score"] for t in top],
            "result": json.dumps(d), "error_code": None, "error": None}


class ShardWorker:
    """Holds one loaded model; :meth:`run` predicts one shard and writes its file.

    Also the callable class of Ray Data's ``map_batches`` (one instance per actor).
    """

    def __init__(self, bundle: str, out: str, job: dict[str, Any], backend: str = "auto",
                 threads: int | None = None, cwd: str | None = None) -> None:
        import recog

        self.out = Path(out)
        self.cwd = cwd  # the command's folder: relative inputs are read from there (Ray workers run elsewhere)
        self.job = BatchJob(**job)
        self.model = recog.load(bundle, backend=backend, **({"threads": threads} if threads else {}))

    def run(self, shard: int, paths: Sequence[str]) -> dict[str, int]:
        start, stop = self.job.shard_range(shard)
        if len(paths) != stop - start:
            raise ValueError(f"shard {shard}: {len(paths)} paths for {stop - start} inputs")
        files = [p if self.cwd is None or os.path.isabs(p) else os.path.join(self.cwd, p) for p in paths]
        results = self.model.predict_many(files, top_k=self.job.top_k)
        rows = [result_row(start + i, p, r) for i, (p, r) in enumerate(zip(paths, results))]
        write_shard(self.out, shard, rows)
        return {"shard": shard, "rows": len(rows), "failures": sum(r["error_code"] is not None for r in rows)}

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        done = [self.run(int(s), [str(p) for p in paths]) for s, paths in zip(batch["shard"], batch["paths"])]
        return {k: np.array([d[k] for d in done], dtype=np.int64) for k in ("shard", "rows", "failures")}


def plan(bundle: str | Path, inputs: list[str], *, shard_size: int, top_k: int) -> tuple[BatchJob, list[str]]:
    """The job for ``inputs`` (listed: :func:`recog.scale.sources.list_inputs`) and its ordered paths."""
    from recog.errors import ConfigError
    from recog.models.bundle import read_manifest

    if shard_size < 1 or top_k < 1:
        raise ConfigError(f"shard size and top-k must be at least 1, got {shard_size} and {top_k}.")
    manifest = read_manifest(bundle)
    paths = list_inputs(inputs)
    job = BatchJob(bundle=str(Path(bundle).resolve()), model_version=manifest.version, task=manifest.task,
                   inputs=len(paths), inputs_sha256=fingerprint(paths), shard_size=shard_size, top_k=top_k)
    return job, paths


def batch_predict(bundle: str | Path, inputs: list[str], out: str | Path, *, ray: bool = False, workers: int = 1,
                  threads: int | None = None, backend: str = "auto", shard_size: int = DEFAULT_SHARD_SIZE,
                  top_k: int = 5, progress: Callable[[int], None] | None = None,
                  on_plan: Callable[[int, int], None] | None = None) -> BatchSummary:
    """Predict every input into parquet shards in ``out``, resuming a job that was stopped.

    Args:
        inputs: folders, globs, images, ``.parquet``/``.csv`` file lists.
        ray: run the shards on Ray Data (``pip install 'recog[ray]'``).
        workers: model copies working at once (processes locally, actors on Ray).
        threads: inference threads per worker (None: the machine's CPUs shared among the workers).
        progress: called with the number of inputs of each finished shard.
        on_plan: called once with ``(inputs still to do, inputs in the job)`` before work starts.

    Raises:
        ConfigError: ``out`` holds another job; Ray missing with ``ray=True``.
        DatasetError: inputs that match nothing.
    """
    from recog.errors import ConfigError

    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}.")
    if ray:  # before listing inputs: say it now, not after listing ten million files
        from recog.scale.ray_support import require_ray

        require_ray("recog batch-predict --ray")
    started = time.perf_counter()
    out = Path(out)
    job, paths = plan(bundle, inputs, shard_size=shard_size, top_k=top_k)
    todo = open_job(out, job)
    if on_plan:
        on_plan(sum(job.shard_range(s)[1] - job.shard_range(s)[0] for s in todo), job.inputs)
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    items = [(s, paths[slice(*job.shard_range(s))]) for s in todo]
    spec = {"bundle": job.bundle, "out": str(out.resolve()), "job": asdict(job), "backend": backend,
            "threads": threads, "cwd": os.getcwd()}
    run = _run_ray if ray else _run_local
    done = run(items, spec, workers, progress) if items else []
    return BatchSummary(out=str(out), shards=job.shards, resumed_shards=job.shards - len(todo),
                        rows=sum(d["rows"] for d in done), failures=sum(d["failures"] for d in done),
                        seconds=round(time.perf_counter() - started, 3), runner="ray" if ray else "local")


def _run_local(items, spec, workers, progress) -> list[dict[str, int]]:
    """Shards in this process (one worker) or on a pool of ``workers`` processes."""
    done = []
    if workers == 1:
        worker = ShardWorker(**spec)
        for shard, paths in items:
            done.append(worker.run(shard, paths))
            if progress:
                progress(done[-1]["rows"])
        return done
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_process, initargs=(spec,)) as pool:
        for future in as_completed([pool.submit(_run_in_process, s, p) for s, p in items]):
            done.append(future.result())
            if progress:
                progress(done[-1]["rows"])
    return done


_PROCESS_WORKER: ShardWorker | None = None


def _init_process(spec: dict[str, Any]) -> None:
    global _PROCESS_WORKER
    _PROCESS_WORKER = ShardWorker(**spec)


def _run_in_process(shard: int, paths: list[str]) -> dict[str, int]:
    if _PROCESS_WORKER is None:
        raise RuntimeError("the process pool's initializer did not load the model")
    return _PROCESS_WORKER.run(shard, paths)


def _run_ray(items, spec, workers, progress) -> list[dict[str, int]]:
    """Shards on Ray Data: ``map_batches`` over an actor pool of ``workers`` model copies."""
    from recog.scale.ray_support import init_ray

    init_ray("recog batch-predict --ray")
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items([{"shard": s, "paths": list(p)} for s, p in items], override_num_blocks=len(items))
    ds = ds.map_batches(ShardWorker, fn_constructor_kwargs=spec, batch_size=1, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))), num_cpus=spec["threads"])
    done = []
    for row in ds.iter_rows():
        done.append({k: int(row[k]) for k in ("shard", "rows", "failures")})
        if progress:
            progress(done[-1]["rows"])
    return done


__all__ = ["BatchSummary", "DEFAULT_SHARD_SIZE", "ShardWorker", "batch_predict", "plan", "result_row"]
