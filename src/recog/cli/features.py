"""``recog features``: classical feature vectors (HOG, LBP, colour, edges, corners) for images, to a file.

Outputs: ``.npy`` (an ``(N, D)`` float32 array) with a ``.csv`` index beside it
(``row,path``), or ``.parquet`` (columns ``path`` and ``features``, a list of
float32; needs pyarrow). Unreadable images are skipped and listed, like
everywhere else. ``--draw`` writes one overlay PNG per image into
``OUT_draw/`` (or ``--draw-dir``).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def write_features(out: Path, paths: list[str], vectors, kind: str) -> list[Path]:
    """Write ``(N, D)`` vectors for ``paths``; returns the files written (the format from ``out``'s suffix)."""
    import csv

    import numpy as np

    from recog.errors import ConfigError

    out.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(vectors, dtype=np.float32)
    if out.suffix == ".npy":
        np.save(out, arr)
        index = out.with_suffix(".csv")
        with open(index, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["row", "path", "kind"])
            w.writerows([i, p, kind] for i, p in enumerate(paths))
        return [out, index]
    if out.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError(f"{out}: writing Parquet needs pyarrow, which is not installed.",
                              hint="pip install 'recog[parquet]' (pyarrow), or write --out FILE.npy (with a CSV index)") from None
        table = pa.table({"path": paths, "kind": [kind] * len(paths),
                          "features": pa.array(list(arr), type=pa.list_(pa.float32()))})
        pq.write_table(table, out)
        return [out]
    raise ConfigError(f"--out {out}: expected a .npy or .parquet file.")


def register(app: typer.Typer) -> None:
    @app.command("features")
    def features_cmd(
        inputs: List[str] = typer.Argument(..., help="Images, folders or globs."),
        kind: str = typer.Option("hog", "--kind", "-k", help="hog | lbp | color | edges | corners"),
        out: Path = typer.Option(..., "--out", "-o", help="FILE.npy (+ FILE.csv index) or FILE.parquet"),
        size: int = typer.Option(128, "--size", min=16, max=1024, help="Images are resized to SIZE x SIZE first."),
        corners: str = typer.Option("shi-tomasi", "--corners", help="Corner detector: shi-tomasi | harris"),
        draw_: bool = typer.Option(False, "--draw", help="Also write an overlay PNG per image."),
        draw_dir: Optional[Path] = typer.Option(None, "--draw-dir", help="Where --draw writes (default OUT_draw/)."),
        threads: int = typer.Option(4, "--threads", min=1),
    ) -> None:
        """Compute one classical feature vector per image; exits 1 when any image was unreadable."""
        from recog.cli.inputs import expand_inputs
        from recog.cli.progress import bar, console
        from recog.data.decode import decode_many
        from recog.features import draw, extract
        from recog.features.classical import check_kind
        from recog.io import load_image

        check_kind(kind)
        paths, missing = expand_inputs(inputs)
        options = {"method": corners} if kind == "corners" else {}
        folder = (draw_dir or out.with_name(out.stem + "_draw")) if draw_ else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

        def one(path):
            image = load_image(path)
            if folder is not None:
                draw(image, kind, size=size, **options).save(folder / f"{Path(path).stem}_{kind}.png")
            return extract(image, kind, size=size, **options)

        with bar(f"features ({kind})", len(paths)) as advance:
            done = decode_many(paths, one, threads=threads, progress=advance)
        kept = [str(paths[i]) for i in done.kept]
        if not kept:
            raise typer.BadParameter("no readable images among the inputs.")
        written = write_features(out, kept, done.items, kind)
        failed = done.report(paths) + list(missing)
        for path, reason in failed:
            console.print(f"[red]skipped[/] {path}: {reason}")
        typer.echo(f"wrote {len(kept)} x {len(done.items[0])} {kind} features to {', '.join(map(str, written))}"
                   + (f"; overlays in {folder}" if folder else ""))
        if failed:
            raise typer.Exit(1)
