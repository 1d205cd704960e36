"""CSV manifests and data sources: the one reader every dataset kind shares.

A manifest is a UTF-8 CSV (a BOM is fine) whose header names its columns in
any case; paths in it are relative to the manifest's folder unless absolute.
Readers above this (classification, anomaly, detection) only say which
columns they need and what each row means.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator, Sequence

from recog.errors import DatasetError


def open_source(data: str | Path, *, hint: str) -> tuple[Path, bool]:
    """``(path, is_manifest)`` for a folder or a ``.csv`` manifest given by a user.

    Raises:
        DatasetError: the path does not exist (with ``hint``), or is a file that is not a ``.csv``.
    """
    path = Path(data)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder.", hint=hint)
    if path.is_file() and path.suffix.lower() != ".csv":
        raise DatasetError(f"{path}: expected a folder or a .csv manifest, got a {path.suffix or 'plain'} file.",
                           hint=hint)
    return path, path.is_file()


def read_rows(path: Path, *, required: Sequence[str], hint: str) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for each data row: header names lower-cased, values stripped.

    Raises:
        DatasetError: a required column is missing from the header (with ``hint``: the expected
            first line), a required cell is empty (naming the line), or there are no rows.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        missing = [c for c in required if c not in fields]
        if missing:
            raise DatasetError(f"{path}: the header must name the column(s) {', '.join(map(repr, required))}, "
                               f"got {fields}.", hint=hint)
        reader.fieldnames = fields
        seen = False
        for lineno, raw in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
            empty = [c for c in required if not row.get(c)]
            if empty:
                raise DatasetError(f"{path}:{lineno}: empty {' and '.join(empty)}.")
            seen = True
            yield lineno, row
    if not seen:
        raise DatasetError(f"{path}: the manifest has a header but no rows.")


def resolve(manifest: Path, value: str) -> Path:
    """A path cell of ``manifest``: relative to the manifest's folder unless absolute."""
    p = Path(value)
    return p if p.is_absolute() else manifest.parent / p
