"""``recog monitor`` (drift report), ``recog feedback add|export``, ``recog retrain``, ``recog compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("monitor")
    def monitor_cmd(
        db: Path = typer.Argument(..., help="Prediction log written by `recog serve --log-predictions`."),
        model: str = typer.Option(..., "--model", "-m", help="Served model name, as in the log."),
        out: Path = typer.Option(Path("drift"), "--out", "-o", help="Report folder (report.html, drift.json, PNGs)."),
        window: str = typer.Option("500", help="Window: a count of predictions (500) or a time span (30m, 1h, 1d)."),
        alpha: float = typer.Option(0.05, help="False-alarm rate of one window (all tests together)."),
        resamples: int = typer.Option(500, min=50, help="Permutations of the embedding (MMD) test."),
    ) -> None:
        """Drift of logged predictions against the bundle's training reference: inputs, embeddings,
        predicted classes, confidence, OOD rate; window by window. Exit code 0 either way."""
        from recog.cli.progress import bar
        from recog.monitor.report import monitor_log

        report, summary = monitor_log(db, model, out, window=window, alpha=alpha, resamples=resamples,
                                      progress_factory=bar)
        typer.echo(f"{model}: {summary['drifted']} of {summary['windows']} window(s) drifted; last window: "
                   f"{summary['last']}")
        typer.echo(f"report: {report}")

    feedback_app = typer.Typer(help="True labels for logged predictions; images worth labelling.",
                               no_args_is_help=True)

    @feedback_app.command("add")
    def feedback_add(db: Path = typer.Argument(..., help="Prediction log."),
                     prediction_id: str = typer.Argument(..., help="The prediction_id a :predict answer returned."),
                     label: str = typer.Argument(..., help="The true label."),
                     model: Optional[str] = typer.Option(None, "--model", "-m", help="Check the prediction is this model's.")
                     ) -> None:
        """Attach the true label to one logged prediction (as POST /v1/models/NAME:feedback does)."""
        from recog.monitor.feedback import add_feedback

        res = add_feedback(db, prediction_id, label, model=model, source="cli")
        typer.echo(f"{prediction_id}: predicted {res['predicted']}, true {res['label']} "
                   f"({'correct' if res['correct'] else 'corrected'})")

    @feedback_app.command("export")
    def feedback_export(
        db: Path = typer.Argument(..., help="Prediction log (images are there only with --log-images)."),
        model: str = typer.Option(..., "--model", "-m", help="Served model name."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder: LABEL/ (with feedback), .to-label/{ood,uncertain}/ (to sort by hand)."),
        uncertain_below: float = typer.Option(0.6, help="Top-1 probability under which a prediction is uncertain."),
        limit: int = typer.Option(1000, min=1, help="Most images exported (corrected first, then OOD, then least sure)."),
    ) -> None:
        """Write the logged images most worth labelling, in the class-folder layout `recog train` reads."""
        from recog.monitor.feedback import export_for_labelling

        res = export_for_labelling(db, model, out, uncertain_below=uncertain_below, limit=limit)
        from recog.monitor.feedback import TO_LABEL

        typer.echo(f"{res.out}: {res.corrected} corrected and {res.confirmed} confirmed image(s) under LABEL/; "
                   f"{res.ood} OOD and {res.uncertain} uncertain to label in {res.out / TO_LABEL}/ "
                   "(move each into its LABEL/ folder; `recog train` skips that hidden folder)")
        if res.without_image:
            typer.echo(f"{res.without_image} prediction(s) worth labelling were logged without their image "
                       "(serve with --log-images to keep them)", err=True)

    app.add_typer(feedback_app, name="feedback")
