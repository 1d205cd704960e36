"""``recog predict``: run a bundle (or a ready preset) on files, folders and globs, or send them to a server."""

from __future__ import annotations

import csv
import json
import sys
from typing import List, Optional

import typer

FORMATS = ("table", "jsonl", "csv")


def _emit(results, fmt: str, top_k: int) -> None:
    from recog.types import Classification, PredictionFailure

    if not all(isinstance(r, (Classification, PredictionFailure)) for r in results):
        fmt = "jsonl"  # tables and CSV are laid out for labels; other tasks' results print as JSON lines
    if fmt == "jsonl":
        for r in results:
            sys.stdout.write(json.dumps(r.to_dict()) + "\n")
        return
    if fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(["source", "rank", "label", "score", "error"])
        for r in results:
            if isinstance(r, PredictionFailure):
                w.writerow([r.source, "", "", "", f"{r.code}: {r.detail}"])
            else:
                for rank, t in enumerate(r.top, 1):
                    w.writerow([r.source, rank, t.label, f"{t.score:.6f}", ""])
        return
    from rich.console import Console
    from rich.table import Table

    ood = any(getattr(r, "ood", None) is not None for r in results)
    table = Table("source", *[f"#{i}" for i in range(1, top_k + 1)], *(["ood"] if ood else []))
    for r in results:
        if isinstance(r, PredictionFailure):
            table.add_row(r.source, f"[red]{r.code}[/]", *[""] * (top_k - 1 + ood))
        else:
            cells = [f"{t.label} {t.score:.3f}" for t in r.top] + [""] * (top_k - len(r.top))
            if ood:  # out-of-distribution score (recog.monitor.ood): "unknown" past the bundle's threshold
                cells.append("" if r.ood is None else f"{r.ood.score:.3f}" + (" [red]unknown[/]" if r.ood.unknown else ""))
            table.add_row(r.source, *cells)
    Console(width=max(100, 24 * (top_k + 2))).print(table)


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        args: List[str] = typer.Argument(..., help="BUNDLE then images, folders or globs; with --server only images."),
        top_k: int = typer.Option(5, "--top-k", "-k", min=1),
        fmt: str = typer.Option("table", "--format", "-f", help="table | jsonl | csv"),
        batch_size: int = typer.Option(32, "--batch-size", "-b", min=1),
        backend: str = typer.Option("auto", help="auto | torch | onnx | onnx-int8"),
        server: Optional[str] = typer.Option(None, "--server", help="Send images to a running `recog serve` at this URL."),
        model_name: Optional[str] = typer.Option(None, "--model", help="Model name on the server (with --server)."),
        api_key: Optional[str] = typer.Option(None, "--api-key", envvar="RECOG_API_KEY", help="API key for --server."),
        draw: Optional[str] = typer.Option(None, "--draw", help="Anomaly models: write a heatmap + defect-box overlay PNG; detect models: the image with its boxes (a folder for several images)."),
        min_score: Optional[float] = typer.Option(None, "--min-score", min=0.0, max=1.0, help="Detect models: lowest box score kept. [default: 0.3]"),
        threshold: Optional[float] = typer.Option(None, "--threshold", help="Anomaly models: score above which an image fails. [default: the bundle's]"),
    ) -> None:
        """Predict: labels (classify) or the task's results. Exits 1 when any input failed, listing them on stderr."""
        from recog.cli.inputs import expand_inputs
        from recog.cli.progress import bar, console
        from recog.types import PredictionFailure

        if fmt not in FORMATS:
            raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
        if server is None:
            if len(args) < 2:
                raise typer.BadParameter("give a model bundle and at least one image: recog predict BUNDLE IMAGE...")
            bundle, items = args[0], args[1:]
        else:
            bundle, items = None, args
            if draw is not None:
                raise typer.BadParameter("--draw works on a local bundle; predict locally")
        paths, missing = expand_inputs(items)
        results: list = []
        if paths:
            if server is not None:
                from recog.client import Client

                client = Client(server, api_key=api_key)
                _check_served_task(client, model_name, server, min_score=min_score, threshold=threshold)
                results = client.predict_many(paths, model=model_name, top_k=top_k, min_score=min_score,
                                              threshold=threshold)
            else:
                import recog

                from recog.tasks import require_task

                model = recog.load(bundle, backend=backend)
                if draw is not None:
                    require_task(model.manifest, "anomaly", "detect", command="recog predict --draw")
                options = {} if min_score is None else {"min_score": min_score}
                if options:
                    require_task(model.manifest, "detect", command="recog predict --min-score")
                if threshold is not None:
                    require_task(model.manifest, "anomaly", command="recog predict --threshold")
                    options["threshold"] = threshold
                with bar(f"predicting ({model.backend.name})", len(paths)) as advance:
                    results = model.predict_many(paths, top_k=top_k, batch_size=batch_size, progress=advance,
                                                 **options)
                if draw is not None:
                    from recog.anomaly.draw import draw_result, overlay_paths
                    from recog.detect.draw import draw_detections

                    drawer = draw_detections if model.manifest.task == "detect" else draw_result
                    for path, result, target in zip(paths, results, overlay_paths(paths, draw)):
                        if not isinstance(result, PredictionFailure):
                            console.print(f"overlay: {drawer(path, result, target)}")
        results += [PredictionFailure(item, "not_found", reason) for item, reason in missing]
        _emit(results, fmt, top_k)
        failures = [r for r in results if isinstance(r, PredictionFailure)]
        if failures:
            for f in failures:
                console.print(f"[red]failed[/] {f.source}: {f.detail}")
            console.print(f"{len(failures)} of {len(results)} input(s) failed")
            raise typer.Exit(1)


def _check_served_task(client, model_name: str | None, server: str, **options) -> None:
    """``--min-score`` / ``--threshold`` against a served model of another task: one line before any upload."""
    from types import SimpleNamespace

    from recog.tasks import require_task

    if all(v is None for v in options.values()):
        return
    served = {m["name"]: m for m in client.models()}
    name = model_name or next((n for n, m in served.items() if m.get("default")), next(iter(served), None))
    if name not in served:
        return  # the request names the model the service does not have: its answer says so
    info = SimpleNamespace(task=served[name].get("task"), path=f"{server} model {name!r}")
    for option, task, flag in (("min_score", "detect", "--min-score"), ("threshold", "anomaly", "--threshold")):
        if options[option] is not None:
            require_task(info, task, command=f"recog predict --server {flag}")
