"""Rich progress bars for long work (training, decoding, prediction)."""

from __future__ import annotations

from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from recog.engine.callbacks import Reporter, step_stats

console = Console(stderr=True)


def make_progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console, transient=False)


class RichReporter(Reporter):
    """Training progress: one bar per stage and per epoch with loss, accuracy, images/s and ETA."""

    def __init__(self) -> None:
        self.progress = make_progress()
        self.started = False
        self.task = None

    def _ensure_started(self) -> None:
        if not self.started:
            self.progress.start()
            self.started = True

    def close(self) -> None:
        if self.started:
            self.progress.stop()

    def stage(self, name: str, total: int) -> Callable[[int], None]:
        self._ensure_started()
        task = self.progress.add_task(name, total=total, stats="")
        return lambda n: self.progress.advance(task, n)

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self._ensure_started()
        self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, stats="")

    def step(self, loss: float, acc: float, images_per_s: float) -> None:
        self.progress.update(self.task, advance=1, stats=step_stats(loss, acc, images_per_s))

    def epoch_end(self, row: dict[str, float], improved: bool) -> None:
        # other tasks report other figures (a detector: val_map50, no accuracy)
        figures = " ".join(f"{k[4:]} {v:.4f}" for k, v in row.items() if k.startswith("val_") and v == v)
        val = f" | val {figures}" if figures else ""
        acc = f" acc {row['train_acc']:.3f}" if "train_acc" in row else ""
        self.progress.update(self.task, stats=(f"loss {row['train_loss']:.4f}{acc} "
                                               f"{row['images_per_s']:,.1f} img/s{val}{' *best' if improved else ''}"))

    def message(self, text: str) -> None:
        self.progress.console.print(text)


def bar(description: str, total: int):
    """A context-managed single progress bar; yields ``advance(n)``."""
    from contextlib import contextmanager

    @contextmanager
    def _cm():
        with make_progress() as p:
            task = p.add_task(description, total=total, stats="")
            yield lambda n=1: p.advance(task, n)

    return _cm()
