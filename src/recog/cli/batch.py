"""``recog batch-predict``: predictions for many files into resumable parquet shards, locally or on Ray Data."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("batch-predict")
    def batch_predict_cmd(
        bundle: Path = typer.Argument(..., help="Bundle folder (runs/NAME/best)."),
        inputs: List[str] = typer.Argument(..., help="Folders, globs (quoted), images, or .parquet/.csv file lists (a 'path' column)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder of parquet shards; rerun with the same inputs to resume."),
        ray: bool = typer.Option(False, "--ray", help="Run on Ray Data (needs recog's 'ray' extra); $RAY_ADDRESS names a cluster."),
        workers: int = typer.Option(1, "--workers", "-w", min=1, help="Model copies at once: processes locally, actors on Ray."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference threads per worker [CPUs / workers]."),
        shard_size: int = typer.Option(1000, "--shard-size", min=1, help="Inputs per shard (the unit of resume)."),
        top_k: int = typer.Option(5, "--top-k", "-k", min=1),
        backend: str = typer.Option("auto", help="auto | torch | onnx | onnx-int8"),
    ) -> None:
        """Predict every input into OUT/part-*.parquet (one row per input; unreadable files get an error row).

        A job that was stopped continues from its last complete shard when run again with the same arguments.
        """
        from recog.cli.progress import console, make_progress
        from recog.scale.batch import batch_predict

        with make_progress() as progress:
            task = progress.add_task("batch-predict", total=None, stats="")

            def planned(todo: int, total: int) -> None:
                resumed = f" (resuming: {total - todo} of {total} already done)" if todo < total else ""
                progress.update(task, total=todo, description=f"batch-predict{' on Ray' if ray else ''}{resumed}")

            summary = batch_predict(bundle, list(inputs), out, ray=ray, workers=workers, threads=threads,
                                    backend=backend, shard_size=shard_size, top_k=top_k,
                                    progress=lambda n: progress.advance(task, n), on_plan=planned)
        console.print(f"{summary.rows} rows ({summary.failures} unreadable) in {summary.seconds:.1f} s; "
                      f"{summary.shards} shard(s) in {summary.out}, {summary.resumed_shards} were already complete")
