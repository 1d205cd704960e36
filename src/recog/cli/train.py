"""``recog train``: from a folder of labelled images to a model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        data: Optional[str] = typer.Argument(None, help="Class-folder tree (optionally train/ val/ test/) or CSV manifest."),
        task: Optional[str] = typer.Option(None, "--task", help="classify (default), or another task (see recog.tasks)."),
        model: str = typer.Option(None, "--model", "-m", help="Preset (see `recog models`), Hub id or local folder. [default: efficientnet-lite1]"),
        weights: Optional[str] = typer.Option(None, help="pretrained | none | PATH (.safetensors or folder). Default: pretrained when the preset has weights."),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="Run folder. [default: runs/train]"),
        epochs: Optional[int] = typer.Option(None, help="Epochs. [default: 10; 1 for a linear probe, fitted in one pass]"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="[default: 32]"),
        lr: Optional[float] = typer.Option(None, help="Peak learning rate (AdamW; a linear probe has none). [default: 1e-3]"),
        augment: Optional[str] = typer.Option(None, help="none | light | standard | strong. [default: standard]"),
        no_flip: bool = typer.Option(False, "--no-flip", help="No horizontal flips (digits, text)."),
        strategy: Optional[str] = typer.Option(None, help="full | linear (the head fitted once on the frozen backbone's features) | staged (frozen backbone for --freeze-epochs). [default: linear for the pretrained efficientnet-lite presets (measured best), else full]"),
        freeze_epochs: Optional[int] = typer.Option(None, "--freeze-epochs"),
        backbone_lr_mult: Optional[float] = typer.Option(None, "--backbone-lr-mult", help="Backbone lr = lr x this (linear/staged)."),
        balance: Optional[str] = typer.Option(None, help="none | loss | sampler: class balancing."),
        label_smoothing: Optional[float] = typer.Option(None, "--label-smoothing"),
        patience: Optional[int] = typer.Option(None, help="Early stopping patience in epochs (0 = off)."),
        image_size: Optional[int] = typer.Option(None, "--image-size", help="Square input size override."),
        val_split: Optional[float] = typer.Option(None, "--val-split", help="Validation fraction drawn when the data has no val/. [default: 0.1]"),
        seed: Optional[int] = typer.Option(None),
        device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps."),
        cache_gb: Optional[float] = typer.Option(None, "--cache-gb", help="Decode into memory up to this many GB; larger data streams from disk. [default: 8]"),
        workers: Optional[int] = typer.Option(None, "--workers", help="Image decoding threads. [default: 2]"),
        strict: bool = typer.Option(False, "--strict", help="Fail on any unreadable image instead of skipping it."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of options; flags override it."),
        resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder from last/."),
    ) -> None:
        """Train a model; writes RUN/best, RUN/last, metrics.csv, train.log and config.yaml."""
        from recog.cli.progress import RichReporter, console
        from recog.engine.config import load_config, read_yaml
        from recog.engine.train import resume as resume_run
        from recog.engine.train import train

        flags = dict(data=data, task=task, model=model, weights=weights, out=out, epochs=epochs, batch_size=batch_size, lr=lr,
                     augment=augment, strategy=strategy, freeze_epochs=freeze_epochs,
                     backbone_lr_mult=backbone_lr_mult, balance=balance, label_smoothing=label_smoothing,
                     patience=patience, image_size=image_size, val_split=val_split, seed=seed, device=device,
                     cache_gb=cache_gb, workers=workers)
        flags = {k: v for k, v in flags.items() if v is not None}
        if no_flip:
            flags["hflip"] = False
        if strict:
            flags["strict"] = True
        reporter = RichReporter()
        try:
            if resume is not None:
                ignored = sorted(k for k in flags if k != "epochs") + (["--config"] if config else [])
                if ignored:
                    raise typer.BadParameter(f"--resume continues with the run's saved config.yaml; only --epochs "
                                             f"may change (got {', '.join(ignored)}).")
                result = resume_run(resume, reporter, epochs=epochs)
            else:
                values = {**(read_yaml(config) if config else {}), **flags}
                if not values.get("data"):
                    raise typer.BadParameter("give a dataset: recog train DATA_DIR (or data: in --config)")
                result = train(load_config(values), reporter)
        finally:
            reporter.close()
        from recog.models.bundle import read_manifest
        from recog.tasks import get_task

        monitor = get_task(read_manifest(result.best, verify=False).task).monitor  # what picked the best epoch
        acc = "n/a (no validation split)" if result.best_val_acc is None else f"{result.best_val_acc:.4f}"
        console.print(f"trained {result.epochs_run} epochs in {result.train_seconds:.0f} s; best val "
                      f"{ {'acc': 'accuracy', 'map50': 'mAP@0.5'}.get(monitor, monitor)} {acc}")
        if result.skipped_files:
            console.print(f"[yellow]{len(result.skipped_files)} file(s) skipped[/] (listed above)")
        console.print(f"best model: {result.best}\nlast model: {result.last}")
