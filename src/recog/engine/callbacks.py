"""Trainer callbacks: everything around the loop that is not the loop.

Each callback is small and does one thing: show progress, append the metrics
CSV, write a plain log line per epoch, save ``best/`` and ``last/``, stop
early. The trainer calls them at fixed points (:class:`Callback`); a
callback that needs trainer state reads it from the trainer passed in.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO

if TYPE_CHECKING:
    from recog.engine.trainer import Trainer


class Reporter:
    """Receives progress events; the CLI supplies a rich progress bar, tests a silent one."""

    def stage(self, name: str, total: int) -> Callable[[int], None]:
        return lambda n: None

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, loss: float, acc: float, images_per_s: float) -> None: ...

    def epoch_end(self, row: dict[str, float], improved: bool) -> None: ...

    def message(self, text: str) -> None: ...


class Callback:
    """Hooks the trainer calls; override the ones you need."""

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None: ...

    def on_step(self, trainer: "Trainer", loss: float, acc: float, images_per_s: float) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any], improved: bool) -> None: ...

    def on_interrupt(self, trainer: "Trainer") -> None: ...


class Progress(Callback):
    """Forwards the loop's events to a :class:`Reporter` (rich bars on a terminal)."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None:
        self.reporter.epoch_start(epoch, trainer.config.epochs, trainer.steps_per_epoch)

    def on_step(self, trainer: "Trainer", loss: float, acc: float, images_per_s: float) -> None:
        self.reporter.step(loss, acc, images_per_s)

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any], improved: bool) -> None:
        self.reporter.epoch_end(row, improved)


def step_stats(loss: float, acc: float, images_per_s: float) -> str:
    """``loss 0.4123 acc 0.912 38.5 img/s``, leaving out what a step does not have (a probe's feature pass)."""
    parts = [f"loss {loss:.4f}" if loss == loss else "", f"acc {acc:.3f}" if acc == acc else "",
             f"{images_per_s:,.1f} img/s"]
    return " ".join(p for p in parts if p)


def format_row(row: dict[str, Any]) -> str:
    """One plain line for an epoch: ``epoch 3/10 train_loss 0.41 ... val_acc 0.97 (best)``."""
    parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "epoch"]
    return " ".join(parts)


class LogLines(Callback):
    """A plain progress line per epoch, and every ``every`` steps on long epochs, to a text stream.

    Used for ``RUN/train.log`` always, and for stderr when it is not a
    terminal (``recog train ... > log 2>&1`` shows progress as it goes).
    """

    def __init__(self, stream: TextIO, *, every: int = 50) -> None:
        self.stream = stream
        self.every = every
        self.steps = 0

    def _write(self, text: str) -> None:
        self.stream.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        self.stream.flush()

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None:
        self.steps = 0

    def on_step(self, trainer: "Trainer", loss: float, acc: float, images_per_s: float) -> None:
        self.steps += 1
        if self.every and self.steps % self.every == 0 and self.steps < trainer.steps_per_epoch:
            self._write(f"epoch {trainer.epoch + 1}/{trainer.config.epochs} step {self.steps}/"
                        f"{trainer.steps_per_epoch} {step_stats(loss, acc, images_per_s)}")

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any], improved: bool) -> None:
        self._write(f"epoch {row['epoch']}/{trainer.config.epochs} {format_row(row)}"
                    + (" (best)" if improved else ""))

    def on_interrupt(self, trainer: "Trainer") -> None:
        self._write(f"interrupted after {trainer.epoch} completed epoch(s)")


def stderr_lines() -> list[Callback]:
    """:class:`LogLines` on stderr when stderr is not a terminal (a redirected run), else nothing."""
    return [] if sys.stderr.isatty() else [LogLines(sys.stderr)]


class MetricsCSV(Callback):
    """Appends one row per epoch to ``metrics.csv`` (header written once)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any], improved: bool) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})


class Checkpoint(Callback):
    """Saves ``last/`` after every epoch (with the training state) and ``best/`` when the monitor improves;
    on Ctrl-C saves ``last/`` so that ``--resume`` continues from the last completed epoch."""

    def __init__(self, save: Callable[[str, dict[str, Any], dict[str, Any]], Path]) -> None:
        self.save = save

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any], improved: bool) -> None:
        metrics = {f"val_{k}": v for k, v in trainer.val_figures.items()}
        metrics = {"val_accuracy" if k == "val_acc" else k: v for k, v in metrics.items()}
        extras = trainer.task.checkpoint_extras(trainer.val_metric) if trainer.val_metric else {}
        if improved:
            self.save("best", metrics, extras)
        self.save("last", metrics, extras)

    def on_interrupt(self, trainer: "Trainer") -> None:
        self.save("last", {}, {})


class EarlyStopping(Callback):
    """Stops after ``patience`` epochs without a better validation figure (0 = never)."""

    def __init__(self, patience: int, reporter: Reporter) -> None:
        self.patience = patience
        self.reporter = reporter

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any], improved: bool) -> None:
        if self.patience and trainer.stale >= self.patience:
            self.reporter.message(f"early stopping: no better validation {trainer.task.monitor} "
                                  f"for {trainer.stale} epochs")
            trainer.stop = True


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
