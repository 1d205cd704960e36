"""``recog monitor`` (drift report), ``recog ood threshold``, ``recog feedback add|export``, ``recog retrain``,
``recog compare``."""

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

    ood_app = typer.Typer(help="The out-of-distribution (unknown) verdict of classifiers.", no_args_is_help=True)

    @ood_app.command("threshold")
    def ood_threshold(
        bundle: Path = typer.Argument(..., help="Classifier bundle (runs/NAME/best)."),
        ood: list[Path] = typer.Option([], "--ood", help="Folder of images the model should call unknown "
                                       "(repeatable). Without it the threshold stays the in-distribution quantile."),
        data: Optional[Path] = typer.Option(None, "--data", help="Labelled in-distribution data [the bundle's "
                                            "training data, from recog.json]."),
        split: Optional[str] = typer.Option(None, help="Split of --data to use; default test, else val, else all."),
        max_false_alarm: float = typer.Option(0.05, help="Largest share of held-out in-distribution images "
                                              "flagged unknown."),
    ) -> None:
        """Choose the `unknown` threshold on held-out images plus a stated OOD set and record it in the
        bundle (a new bundle version); prints AUROC and the threshold's TPR (OOD flagged) / FPR."""
        from recog.cli.progress import bar
        from recog.monitor.threshold import calibrate_bundle

        res = calibrate_bundle(bundle, ood, data=data, split=split, max_false_alarm=max_false_alarm,
                               progress_factory=bar)
        if res["ood_set"] is None:
            typer.echo(f"no OOD set: threshold {res['threshold']:g} is the in-distribution quantile (chosen without "
                       f"any out-of-distribution image; pass --ood DIR to choose one); false alarms "
                       f"{100 * res['fpr']:.1f}% on {res['in_distribution']}")
        else:
            typer.echo(f"threshold {res['threshold']:g}: AUROC {res['auroc']:.4f}; TPR {100 * res['tpr']:.1f}% of "
                       f"{res['ood_images']} OOD image(s) flagged unknown, FPR {100 * res['fpr']:.1f}% of "
                       f"{res['in_distribution']}")
        if res["includes_training_images"]:
            typer.echo("warning: the data has no test/val split, so training images were scored and the false-alarm "
                       "rate is optimistic; pass held-out images with --data", err=True)
        typer.echo(f"score: {res['score']}; recorded in {res['bundle']} (version {res['version']})")

    app.add_typer(ood_app, name="ood")

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

    @app.command("retrain")
    def retrain_cmd(
        bundle: Path = typer.Argument(..., help="The bundle to improve (runs/NAME/best)."),
        add: Path = typer.Option(..., "--add", help="New labelled images: class folders (e.g. from `recog feedback export`)."),
        out: Path = typer.Option(..., "--out", "-o", help="New run folder."),
        data: Optional[Path] = typer.Option(None, "--data", help="The original training data, when it moved [from recog.json]."),
        new_labels: bool = typer.Option(False, "--new-labels", help="Accept classes the bundle does not know (the head grows)."),
        epochs: int = typer.Option(5, min=1, help="Fine-tuning epochs."),
        lr: Optional[float] = typer.Option(None, help="Learning rate [a third of the original run's]."),
    ) -> None:
        """Fine-tune BUNDLE on its original data plus --add; the new bundle records its lineage."""
        from recog.cli.progress import RichReporter
        from recog.monitor.retrain import retrain

        reporter = RichReporter()
        try:
            res = retrain(bundle, add, out, data=data, new_labels=new_labels, epochs=epochs, lr=lr, reporter=reporter)
        finally:
            reporter.close()
        acc = "n/a" if res.best_val_acc is None else f"{res.best_val_acc:.4f}"
        typer.echo(f"retrained {res.epochs_run} epoch(s): best val acc {acc}; bundle: {res.best}")
        typer.echo(f"next: recog compare {bundle} {res.best} TEST_DATA")

    @app.command("compare")
    def compare_cmd(
        champion: Path = typer.Argument(..., help="The bundle in service."),
        challenger: Path = typer.Argument(..., help="The candidate (e.g. from `recog retrain`)."),
        data: Path = typer.Argument(..., help="Labelled test images (class folders or CSV; a group column adds per-group gaps)."),
        split: Optional[str] = typer.Option(None, help="train | val | test; default test, else val, else all."),
        margin: float = typer.Option(0.0, min=0, help="Accuracy points the challenger may lose and still be promoted."),
        alpha: float = typer.Option(0.05, help="Significance level of McNemar's test."),
        max_group_drop: float = typer.Option(5.0, min=0, help="Accuracy points any group may lose."),
        promote: bool = typer.Option(False, "--promote-if-better", help="When the rule passes, put the challenger "
                                     "where the champion is (the champion is kept as CHAMPION.previous-VERSION)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write compare.json here."),
    ) -> None:
        """Champion vs challenger on the same test set: accuracy, McNemar's exact test, per-group gaps,
        and the promotion rule. Exit code 0 when the challenger passes, 4 when it does not."""
        import json

        from recog.cli.progress import bar
        from recog.monitor.compare import compare_bundles, promote as promote_bundle, promotion

        res = compare_bundles(champion, challenger, data, split=split, progress_factory=bar)
        ok, reasons = promotion(res, margin=margin, alpha=alpha, max_group_drop=max_group_drop)
        res["promotion"] = {"promote": ok, "reasons": reasons, "margin": margin, "alpha": alpha,
                            "max_group_drop": max_group_drop}
        m = res["mcnemar"]
        typer.echo(f"{res['images']} images ({res['split']}): champion {res['champion']['accuracy']:.4f}, "
                   f"challenger {res['challenger']['accuracy']:.4f} ({100 * res['difference']:+.2f} points); "
                   f"McNemar: {m['only_champion']} only champion right, {m['only_challenger']} only challenger "
                   f"right, p = {m['p_value']:.3g}")
        for g, v in res["groups"].items():
            typer.echo(f"  group {g}: {v['champion']:.4f} -> {v['challenger']:.4f} ({v['images']} images)")
        typer.echo(f"{'promote' if ok else 'keep the champion'}: {'; '.join(reasons)}")
        if ok and promote:
            backup = promote_bundle(challenger, champion)
            res["promotion"]["previous"] = str(backup)
            typer.echo(f"promoted: {challenger} is now at {champion} (previous: {backup}); reload a running "
                       f"service with POST /v1/models/NAME:reload")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "compare.json").write_text(json.dumps(res, indent=1))
        if not ok:
            raise typer.Exit(4)
