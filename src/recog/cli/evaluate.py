"""``recog evaluate``: metrics, plots and a self-contained report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        bundle: Path = typer.Argument(..., help="Model bundle folder (runs/NAME/best)."),
        data: str = typer.Argument(..., help="Labelled images: class folders or CSV manifest (a `group` column adds per-group metrics)."),
        split: Optional[str] = typer.Option(None, help="train | val | test; default test, else val, else all."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder. [default: BUNDLE/report]"),
        backend: str = typer.Option("auto", help="auto | torch | onnx | onnx-int8"),
        batch_size: int = typer.Option(64, "--batch-size", "-b", min=1),
        explain: int = typer.Option(0, "--explain", min=0, help="Add heatmaps of the N most confident mistakes "
                                    "(detect: false positives, each box outlined) and a few correct predictions "
                                    "per class to report.html."),
        baseline: Optional[Path] = typer.Option(None, "--baseline", help="Another classifier bundle (e.g. from "
                                                "--model hog-svm) to compare on the same split: a Baseline section "
                                                "in report.html and baseline.json."),
    ) -> None:
        """The task's metrics, plots and report.html (classify: accuracy, top-5, per-class P/R/F1, confusion
        matrix, ROC/PR, calibration, per-group gaps)."""
        from recog.cli.progress import bar, console
        from recog.engine.evaluate import evaluate

        if baseline is not None:
            from recog.features.baseline import check_baseline

            check_baseline(bundle, baseline)
        res = evaluate(bundle, data, split=split, out=out, backend=backend, batch_size=batch_size,
                       progress_factory=bar, explain=explain)
        for path, reason in res.failures:
            console.print(f"[yellow]skipped[/] {path}: {reason}")
        summary = list(res.summary)
        if baseline is not None:
            from recog.features.baseline import add_baseline, summary_line

            same = None if res.split == "all" else res.split
            summary.append(summary_line(add_baseline(bundle, baseline, data, split=same, report=res.report,
                                                     batch_size=batch_size, progress_factory=bar)))
        for line in summary:
            typer.echo(line)
        typer.echo(f"report: {res.report}")
