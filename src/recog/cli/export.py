"""``recog export``, ``recog prune``, ``recog bench``: fast inference artifacts and their measurement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def _csv(value: str, kind=str) -> list:
    try:
        return [kind(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected a comma-separated list, got {value!r}") from None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        bundle: Path = typer.Argument(..., help="Model bundle folder (e.g. runs/pets/best)."),
        fmt: str = typer.Option("onnx", "--format", "-f", help="Export format: onnx."),
        quantize: Optional[str] = typer.Option(None, "--quantize", "-q", help="int8: also write a static int8 model."),
        calibration: Optional[Path] = typer.Option(None, "--calibration", help="Labelled folder (DIR/<label>/*.jpg) for int8 calibration; its train split if it has one."),
        validation: Optional[Path] = typer.Option(None, "--validation", help="Labelled folder for the parity/accuracy check. [default: the val/test split of --calibration, else --calibration]"),
        max_drop: float = typer.Option(1.0, "--max-drop", help="Refuse an export that loses more than this many accuracy points."),
        calibration_size: int = typer.Option(256, "--calibration-size", help="At most this many calibration images (stratified)."),
        calibration_method: str = typer.Option("minmax", "--calibration-method", help="minmax | entropy | percentile."),
        per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="int8 weight scales per output channel."),
        exporter: str = typer.Option("dynamo", "--exporter", help="dynamo (torch.export) | torchscript."),
        threads: Optional[int] = typer.Option(None, "--threads", help="Threads for checks and timing. [default: all CPUs]"),
        as_json: bool = typer.Option(False, "--json", help="Print the recorded export entries as JSON."),
    ) -> None:
        """Export to ONNX (and int8), check each export's accuracy, record it in recog.json."""
        from recog.cli.progress import console
        from recog.runtime.export import export_bundle

        if fmt != "onnx":
            raise typer.BadParameter(f"--format must be onnx, got {fmt!r}")
        result = export_bundle(bundle, quantize=quantize, calibration=calibration, validation=validation,
                               max_drop=max_drop, calibration_size=calibration_size,
                               calibration_method=calibration_method, per_channel=per_channel, exporter=exporter,
                               threads=threads, log=lambda m: console.print(m, markup=False))
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2))
            return
        for name, ms in sorted(result.latency_ms.items(), key=lambda kv: kv[1]):
            console.print(f"  {name:10s} {ms:8.3f} ms at batch 1", markup=False)
        if result.latency_ms:
            fastest = min(result.latency_ms, key=result.latency_ms.get)
            console.print(f"recorded in {bundle / 'recog.json'}; `recog.load` / predict / serve will use "
                          f"{fastest} by default", markup=False)

    @app.command("prune")
    def prune_cmd(
        bundle: Path = typer.Argument(..., help="Model bundle folder (left unchanged)."),
        amount: float = typer.Option(0.5, "--amount", help="Fraction of weights (or channels) to zero, in [0, 1)."),
        method: str = typer.Option("unstructured", "--method", help="unstructured | channel."),
        data: Optional[Path] = typer.Option(None, "--data", help="Labelled folder: train split fine-tunes, val/test split measures accuracy."),
        epochs: float = typer.Option(1.0, "--epochs", help="Fine-tune epochs over --data (0 = none)."),
        lr: float = typer.Option(3e-4, "--lr", help="Fine-tune learning rate (AdamW)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Pruned bundle folder. [default: BUNDLE-pruned]"),
        threads: Optional[int] = typer.Option(None, "--threads"),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Magnitude-prune a bundle, fine-tune briefly, report sparsity, size, accuracy and speed."""
        from recog.cli.progress import console
        from recog.runtime.prune import prune_bundle

        out = out or bundle.with_name(f"{bundle.name}-pruned")
        result = prune_bundle(bundle, out, amount=amount, method=method, data=data, epochs=epochs, lr=lr,
                              threads=threads, log=lambda m: console.print(m, markup=False))
        r = result.report
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2))
            return
        acc = r["accuracy"]

        def pct(v):
            return "n/a" if v is None else f"{100 * v:.2f}%"

        size = r["size"]
        typer.echo(f"pruned bundle: {out}")
        typer.echo(f"sparsity: {100 * r['sparsity']['prunable']:.1f}% of prunable weights "
                   f"({100 * r['sparsity']['overall']:.1f}% of all parameters), method {method}")
        typer.echo(f"size: {size['dense_bytes_after'] / 1e6:.2f} MB dense (unchanged); compressed "
                   f"{size['compressed_bytes_before'] / 1e6:.2f} MB → {size['compressed_bytes_after'] / 1e6:.2f} MB")
        typer.echo(f"accuracy: {pct(acc['before'])} before, {pct(acc['after_pruning'])} after pruning, "
                   f"{pct(acc['after_finetune'])} after fine-tune")
        typer.echo(f"speed: {r['speed_note']}")

    @app.command("bench")
    def bench_cmd(
        bundle: Path = typer.Argument(..., help="Model bundle folder."),
        backends: str = typer.Option("torch,onnx,onnx-int8", "--backends", help="Comma-separated backends."),
        batch: str = typer.Option("1,8", "--batch", help="Comma-separated batch sizes."),
        data: Optional[Path] = typer.Option(None, "--data", help="Labelled folder for agreement and accuracy (its test split if any). [default: synthetic images, no accuracy]"),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="JSON file. [default: BUNDLE/report/bench.json]"),
        threads: Optional[int] = typer.Option(None, "--threads", help="Threads for every backend. [default: all CPUs]"),
        seconds: Optional[float] = typer.Option(None, "--seconds", help="Timed seconds per backend and batch. [default: 3, --quick 0.2]"),
        quick: bool = typer.Option(False, "--quick", help="A few runs on a few images: a smoke check, not a measurement."),
    ) -> None:
        """Latency (p50, p95), images/s, top-1 agreement, accuracy and share of the machine's ceiling."""
        from rich.console import Console

        from recog.cli.progress import console
        from recog.runtime.bench import format_table, run_bench

        report = run_bench(bundle, backends=_csv(backends), batches=_csv(batch, int), data=data, quick=quick,
                           threads=threads, budget_s=seconds, log=lambda m: console.print(m, markup=False))
        Console(width=160).print(format_table(report))
        for name, why in report.skipped.items():
            typer.echo(f"skipped {name}: {why}")
        path = out or bundle / "report" / "bench.json"
        _write_json(path, report.to_dict())
        typer.echo(f"wrote {path}")
