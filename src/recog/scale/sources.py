"""The inputs of a batch job: a folder, a glob, one image, or a file list (parquet or CSV) → an ordered list of paths.

The order is the job's identity (shard ``i`` is always the same inputs), so it
is deterministic: folders and globs sorted, list files in their row order.

A list file has a ``path`` column (any case); a CSV without one is read as one
path per line with no header. Relative paths in a list are relative to the list
file's folder, as in the dataset manifests (:mod:`recog.data.manifest`).

Example:
    >>> list_inputs(["photos/**/*.jpg"])        # doctest: +SKIP
    ['photos/a/1.jpg', 'photos/b/2.jpg']
"""

from __future__ import annotations

import csv
from pathlib import Path

from recog.errors import DatasetError

LIST_SUFFIXES = (".parquet", ".csv")


def list_inputs(items: list[str]) -> list[str]:
    """Every input as a path string, in job order.

    Raises:
        DatasetError: an input matched nothing, or a list file cannot be read; or no inputs at all.
    """
    paths: list[str] = []
    plain: list[str] = []
    for item in items:
        if Path(item).is_file() and Path(item).suffix.lower() in LIST_SUFFIXES:
            paths += _flush(plain) + read_list(Path(item))
            plain = []
        else:
            plain.append(item)
    paths += _flush(plain)
    if not paths:
        raise DatasetError(f"no inputs in {' '.join(items)}.", hint="give a folder, a glob in quotes, or a file list")
    return paths


def _flush(items: list[str]) -> list[str]:
    from recog.cli.inputs import expand_inputs

    if not items:
        return []
    found, missing = expand_inputs(items)
    if missing:
        item, reason = missing[0]
        raise DatasetError(f"{item}: {reason}.", hint="check the path; quote globs so the shell leaves them to recog")
    return [str(p) for p in found]


def read_list(path: Path) -> list[str]:
    """Paths listed in a ``.parquet`` or ``.csv`` file (see the module docstring)."""
    if path.suffix.lower() == ".parquet":
        column = _parquet_paths(path)
    else:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
        header = [c.strip().lower() for c in rows[0]] if rows else []
        if "path" in header:
            at = header.index("path")
            column = [r[at].strip() if at < len(r) else "" for r in rows[1:]]
        else:
            column = [r[0].strip() for r in rows]
    if not column:
        raise DatasetError(f"{path}: the file list is empty.")
    empty = [i for i, p in enumerate(column) if not p]
    if empty:
        raise DatasetError(f"{path}: row {empty[0] + 1} has an empty path.")
    return [p if Path(p).is_absolute() else str(path.parent / p) for p in column]


def _parquet_paths(path: Path) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(f"{path}: reading a Parquet file list needs pyarrow.",
                           hint="pip install 'recog[parquet]', or give a CSV list") from None
    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError) as exc:  # pyarrow: ArrowInvalid (a ValueError) or OSError on a damaged file
        raise DatasetError(f"{path}: not a readable Parquet file ({exc}).") from None
    names = {n.lower(): n for n in schema.names}
    if "path" not in names:
        raise DatasetError(f"{path}: expected a 'path' column, got {schema.names}.",
                           hint="name the column of image paths 'path'")
    return [str(p) for p in pq.read_table(path, columns=[names["path"]]).column(0).to_pylist()]


__all__ = ["LIST_SUFFIXES", "list_inputs", "read_list"]
