"""Batch output: a folder of parquet shards that a rerun resumes from, with no duplicate or missing rows.

Layout of ``--out preds/``::

    preds/_job.json            what the job is: model version, inputs fingerprint, shard size, top-k
    preds/part-000000.parquet  rows for inputs 0 .. shard_size-1
    preds/part-000001.parquet  ...

Shard ``i`` holds exactly the inputs ``i*shard_size .. (i+1)*shard_size-1`` of
the job's ordered input list. A shard is written to a temporary name and renamed
into place, so a shard file that exists is complete; a job killed halfway leaves
complete shards and at most some temporary files, which the rerun deletes before
redoing the shards they belonged to. A rerun whose inputs, model or options differ
from ``_job.json`` is refused (its shards would not line up).

Columns (one row per input, failures included, :data:`SCHEMA`): ``index`` (position
in the input list), ``path``, ``label`` and ``score`` (the top class; null for a failure
or a task without labels), ``top_labels`` / ``top_scores`` (top-k, best first),
``result`` (the task's full result as JSON, the same object as ``recog predict -f jsonl``),
``error_code`` and ``error`` (null unless the file could not be read).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from recog.errors import ConfigError

JOB_FILE = "_job.json"
FORMAT = 1


def schema():
    """The pyarrow schema of every shard."""
    import pyarrow as pa

    return pa.schema([("index", pa.int64()), ("path", pa.string()), ("label", pa.string()),
                      ("score", pa.float32()), ("top_labels", pa.list_(pa.string())),
                      ("top_scores", pa.list_(pa.float32())), ("result", pa.string()),
                      ("error_code", pa.string()), ("error", pa.string())])


@dataclass(frozen=True)
class BatchJob:
    """What a job is; two runs with equal jobs write the same shards."""

    bundle: str
    model_version: str
    task: str
    inputs: int
    inputs_sha256: str
    shard_size: int
    top_k: int
    format: int = FORMAT

    @property
    def shards(self) -> int:
        return -(-self.inputs // self.shard_size)

    def shard_range(self, shard: int) -> tuple[int, int]:
        """``(start, stop)`` input indices of ``shard``."""
        start = shard * self.shard_size
        return start, min(start + self.shard_size, self.inputs)


def fingerprint(paths: Sequence[str]) -> str:
    """sha256 of the ordered input list."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()


def shard_path(out: Path, shard: int) -> Path:
    return out / f"part-{shard:06d}.parquet"


def open_job(out: Path, job: BatchJob) -> list[int]:
    """Create or resume the job in ``out``; returns the shards still to do (in order).

    Raises:
        ConfigError: ``out`` holds another job (other inputs, model, shard size or top-k),
            or is a file, or a folder with other files in it.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file; batch output is a folder of parquet shards.",
                          hint="give a folder name, e.g. --out preds/")
    out.mkdir(parents=True, exist_ok=True)
    job_file = out / JOB_FILE
    if job_file.is_file():
        old = json.loads(job_file.read_text())
        diff = [k for k, v in asdict(job).items() if k != "bundle" and old.get(k) != v]
        if diff:
            new = asdict(job)
            raise ConfigError(f"--out {out} holds another job: its {', '.join(diff)} differ(s) from this run's "
                              f"(the folder's {', '.join(f'{k}={old.get(k)!r}' for k in diff)}; "
                              f"this run's {', '.join(f'{k}={new[k]!r}' for k in diff)}).",
                              hint="rerun with the same inputs and options to resume, or write to a new --out folder")
    else:
        stray = [p.name for p in out.iterdir() if not p.name.startswith(".")]
        if stray:
            raise ConfigError(f"--out {out} is not empty ({', '.join(sorted(stray)[:3])}...) and holds no batch job.",
                              hint="write to a new or empty folder")
        tmp = job_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(job), indent=2))
        os.replace(tmp, job_file)
    for leftover in out.glob("part-*.parquet.tmp*"):  # a shard that was being written when the job died
        leftover.unlink()
    return [s for s in range(job.shards) if not _complete(out, job, s)]


def _complete(out: Path, job: BatchJob, shard: int) -> bool:
    import pyarrow.parquet as pq

    path = shard_path(out, shard)
    if not path.is_file():
        return False
    start, stop = job.shard_range(shard)
    try:
        return pq.read_metadata(path).num_rows == stop - start
    except (OSError, ValueError):  # damaged (disk full, copied halfway): redo it
        return False


def write_shard(out: Path, shard: int, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` as shard ``shard`` atomically (temporary file, then rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = shard_path(out, shard)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema()), tmp)
    os.replace(tmp, path)
    return path


def read_job(out: Path):
    """Every complete shard of ``out`` as one pyarrow table, ordered by ``index``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(out.glob("part-*.parquet"))
    if not parts:
        return schema().empty_table()
    return pa.concat_tables(pq.read_table(p, schema=schema()) for p in parts).sort_by("index")


__all__ = ["BatchJob", "JOB_FILE", "fingerprint", "open_job", "read_job", "schema", "shard_path", "write_shard"]
