"""``recog embed``: L2-normalised image embeddings from any bundle or preset, to .npy + index or JSONL."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import List

import numpy as np
import typer

OUT_FORMATS = (".npy", ".jsonl", ".parquet")


def write_vectors(out: Path, sources: list[str], vectors: np.ndarray) -> list[Path]:
    """Write ``(N, D)`` vectors for ``sources``; returns the files written.

    ``.npy``: the float32 matrix, plus ``OUT.csv`` (row, path) beside it;
    ``.jsonl``: one ``{"path", "embedding"}`` per line; ``.parquet``: columns
    ``path`` and ``embedding`` (needs pyarrow).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, vectors.astype(np.float32))
        index = out.with_suffix(".csv")
        with open(index, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["row", "path"])
            w.writerows(enumerate(sources))
        return [out, index]
    if out.suffix == ".jsonl":
        with open(out, "w") as fh:
            for src, vec in zip(sources, vectors):
                fh.write(json.dumps({"path": src, "embedding": [round(float(v), 7) for v in vec]}) + "\n")
        return [out]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        from recog.errors import ConfigError

        raise ConfigError("writing .parquet needs pyarrow, which is not installed.",
                          hint="pip install pyarrow, or use --out vectors.npy (with an index CSV) or .jsonl") from exc
    pq.write_table(pa.table({"path": sources, "embedding": [v.astype(np.float32).tolist() for v in vectors]}), out)
    return [out]


def register(app: typer.Typer) -> None:
    @app.command("embed")
    def embed_cmd(
        args: List[str] = typer.Argument(..., help="MODEL (bundle folder or preset) then images, folders or globs."),
        out: Path = typer.Option(..., "--out", "-o", help="vectors.npy (+ vectors.csv index), vectors.jsonl or vectors.parquet"),
        batch_size: int = typer.Option(32, "--batch-size", "-b", min=1),
    ) -> None:
        """Embed images (L2-normalised backbone features). Exits 1 when any input failed, listing it on stderr."""
        from recog.cli.inputs import expand_inputs
        from recog.cli.progress import bar, console
        from recog.runtime.predictor import load

        if out.suffix not in OUT_FORMATS:
            raise typer.BadParameter(f"--out must end in one of {', '.join(OUT_FORMATS)}, got {out.name!r}")
        if len(args) < 2:
            raise typer.BadParameter("give a model and at least one image: recog embed MODEL IMAGE... --out v.npy")
        paths, missing = expand_inputs(args[1:])
        model = load(args[0], backend="torch").embedder()
        with bar("embedding", len(paths)) as advance:
            vectors, kept, failures = model.outputs_many(paths, batch_size=batch_size, progress=advance)
        written = write_vectors(out, [str(paths[i]) for i in kept], vectors) if kept else []
        dim = vectors.shape[1] if kept else 0
        console.print(f"{len(kept)} embedding(s) of dimension {dim} → {', '.join(str(p) for p in written) or 'nothing'}")
        problems = [(str(paths[i]), str(exc)) for i, exc in failures] + missing
        for source, reason in problems:
            console.print(f"[red]failed[/] {source}: {reason}")
        if problems:
            raise typer.Exit(1)
