"""``recog train``: from a config to a run folder, through the task seam.

:func:`prepare` does the one-time work of a run, one step per function: seed,
open the dataset and draw missing splits, build the network for the task,
decode the splits, set up the task's training state, and wire a
:class:`~recog.engine.trainer.Trainer` with its callbacks. :func:`train`
starts a run, :func:`resume` continues one from ``last/``.

A run folder holds ``config.yaml`` (resolved config), ``metrics.csv``,
``train.log`` (a plain line per epoch), ``best/`` and ``last/``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from recog.engine.callbacks import (Checkpoint, EarlyStopping, LogLines, MetricsCSV, Progress, Reporter,
                                    stderr_lines)
from recog.engine.config import TrainConfig, load_config, read_yaml, write_yaml
from recog.engine.trainer import Trainer, pick_device
from recog.tasks import TrainResult
from recog.errors import ConfigError, DatasetError, TrainingInterrupted

__all__ = ["Reporter", "Run", "TrainResult", "fit", "prepare", "resume", "train"]


@dataclass
class Run:
    """A prepared run: its trainer and what the run folder needs besides it."""

    trainer: Trainer
    run_dir: Path
    skips: "_SkipReport"
    record: dict[str, Any]
    log_file: Any


@dataclass
class _Data:
    dataset: Any
    record: dict[str, Any]
    train: Any
    val: Any | None


def _open_dataset(config: TrainConfig, task) -> tuple[Any, dict[str, Any]]:
    ds = task.open_dataset(config.data)
    if len(ds.labels) < task.min_labels:
        raise DatasetError(f"{config.data}: found {len(ds.labels)} class(es) ({', '.join(map(repr, ds.labels))}); "
                           f"training for {task.name} needs at least {task.min_labels}.",
                           hint="add one sub-folder (or manifest label) per class")
    if not ds.has_splits or not ds.split("val"):
        ds = ds.with_splits(val=config.val_split, test=config.test_split, seed=config.seed)
    if not ds.split("train"):
        raise DatasetError(f"{config.data}: no training samples after splitting.")
    # once per run: the fingerprint stats every file
    return ds, {"fingerprint": ds.fingerprint(), "source": str(config.data), "counts": ds.counts()}


def _warn_about_leakage(config: TrainConfig, ds: Any, reporter: Reporter) -> None:
    """Say when identical files sit in two splits: the validation and test figures would be optimistic."""
    from recog.data.dataset import SPLITS, cross_split_copies

    copies = cross_split_copies({split: [s.path for s in ds.split(split)] for split in SPLITS})
    if copies:
        a, b = copies[0]
        reporter.message(f"warning: {len(copies)} image(s) appear in two splits with identical bytes (e.g. {a} and {b}); "
                         f"validation and test figures will be optimistic. `recog audit {config.data}` also finds "
                         "near-duplicates across splits.")


def _decode(config: TrainConfig, task, ds, labels, prep, reporter: Reporter) -> tuple[Any, Any | None]:
    def decode(split: str):
        samples = ds.split(split)
        return task.decode_split(samples, labels, prep, strict=config.strict, threads=config.workers,
                                 cache_gb=config.cache_gb, progress=reporter.stage(f"decoding {split}", len(samples)))

    train_data = decode("train")
    val_data = decode("val") if ds.split("val") else None
    return train_data, val_data


def _sample_p(config: TrainConfig, targets: np.ndarray, n_labels: int) -> np.ndarray | None:
    """Class-balanced draw probabilities for ``--balance sampler``."""
    if config.balance != "sampler":
        return None
    counts = np.bincount(targets, minlength=n_labels).astype(np.float64)
    p = 1.0 / np.maximum(counts, 1)
    return p[targets] / p[targets].sum()


class _SkipReport:
    """Reports files skipped so far (listing) and counts them for the manifest."""

    def __init__(self, data: _Data, reporter: Reporter) -> None:
        self.data, self.reporter, self.reported = data, reporter, 0

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Files left out so far: not images, or failed to decode (streamed data adds to it as it goes)."""
        return (list(self.data.dataset.skipped) + self.data.train.failures
                + (self.data.val.failures if self.data.val is not None else []))

    def flush(self) -> None:
        skipped = self.skipped
        for path, reason in skipped[self.reported:]:
            self.reporter.message(f"skipped {path}: {reason}")
        self.reported = len(skipped)


def prepare(config: TrainConfig, reporter: Reporter, run_dir: Path) -> Run:
    """Everything a run needs before its first step: a ready :class:`Trainer` and its run folder."""
    import torch

    from recog.tasks import get_task

    task = get_task(config.task)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    ds, record = _open_dataset(config, task)
    _warn_about_leakage(config, ds, reporter)
    labels = list(ds.labels)
    created = task.build(config.model, labels, weights=config.weights, image_size=config.image_size)
    # channels-last: depthwise and grouped convolutions train 2-5x faster on CPU (benchmarks/train_speed.py)
    model, prep = created.model.to(device, memory_format=torch.channels_last), created.preprocessing
    train_data, val_data = _decode(config, task, ds, labels, prep, reporter)
    data = _Data(ds, record, train_data, val_data)
    skips = _SkipReport(data, reporter)
    skips.flush()
    if len(train_data) == 0:
        raise DatasetError(f"{config.data}: every training image failed to load.")
    task.setup_training(config, labels, train_data.targets, prep, device)

    def save(name: str, metrics: dict[str, Any], extras: dict[str, Any]) -> Path:
        from recog.engine.state import save_state
        from recog.models.bundle import save_bundle

        skips.flush()
        manifest_extra = {"weights": created.weights, "training": trainer.config.to_dict(),
                          "dataset": {**record, "skipped_files": len(skips.skipped)},
                          "metrics": {"epoch": trainer.epoch, **metrics}, **extras}
        return save_bundle(run_dir / name, model, labels=labels, preprocessing=prep, task=task.name,
                           source_model=trainer.config.model, extra=manifest_extra,
                           write_extra=(lambda d: save_state(d, trainer.state())) if name == "last" else None)

    log_file = open(run_dir / "train.log", "a")  # closed by _run
    try:
        trainer = Trainer(task, model, train_data, val_data, config, device,
                          callbacks=[Progress(reporter), LogLines(log_file), *stderr_lines(),
                                     MetricsCSV(run_dir / "metrics.csv"), Checkpoint(save),
                                     EarlyStopping(config.patience, reporter)],
                          sample_p=_sample_p(config, train_data.targets, len(labels)))
    except BaseException:
        log_file.close()
        raise
    return Run(trainer, run_dir, skips, record, log_file)


def _run(run: Run) -> TrainResult:
    start = time.perf_counter()
    trainer, run_dir = run.trainer, run.run_dir
    try:
        trainer.fit()
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"training stopped by the user after {trainer.epoch} completed epoch(s); saved {run_dir / 'last'}.",
            hint=f"resume with `recog train --resume {run_dir}`") from None
    finally:
        run.log_file.close()
    run.skips.flush()
    data = run.skips.data
    if (run_dir / "best" / "recog.json").is_file():
        trainer.task.finish_bundle(run_dir / "best", train=[s.path for s in data.train.samples],
                                   val=[s.path for s in data.val.samples] if data.val is not None else [],
                                   device=str(trainer.device))
    return TrainResult(run_dir, run_dir / "best", run_dir / "last", trainer.epoch, trainer.best, trainer.history,
                       run.skips.skipped, time.perf_counter() - start)


def fit(data: str | Path, reporter: Reporter | None = None, **options: Any) -> TrainResult:
    """Train from Python: the options are :class:`TrainConfig` fields.

    Example:
        >>> import recog
        >>> result = recog.train("data/", epochs=10, out="runs/pets")  # doctest: +SKIP
        >>> recog.load(result.best).predict("photo.jpg")                                 # doctest: +SKIP
    """
    return train(load_config({"data": str(data), **options}), reporter)


def train(config: TrainConfig, reporter: Reporter | None = None) -> TrainResult:
    """Train as ``config`` says; returns where the bundles are.

    Example:
        >>> from recog.engine.config import load_config
        >>> train(load_config({"data": "data/", "model": "resnet-18", "epochs": 5}))  # doctest: +SKIP
    """
    from recog.runtime.allocator import keep_freed_memory

    keep_freed_memory()
    run_dir = Path(config.out)
    if (run_dir / "last").exists():
        raise ConfigError(f"{run_dir} already holds a run.",
                          hint=f"resume it with `recog train --resume {run_dir}`, or pick another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(run_dir / "config.yaml", config)
    (run_dir / "metrics.csv").unlink(missing_ok=True)
    (run_dir / "train.log").unlink(missing_ok=True)
    from recog.models.registry import fitting_task
    from recog.tasks import get_task

    task = get_task(fitting_task(config.model) or config.task)   # a preset may name its (non-gradient) task
    if not task.trains_by_gradient:
        return task.fit(config, run_dir, reporter or Reporter())
    return _run(prepare(config, reporter or Reporter(), run_dir))


def resume(run_dir: str | Path, reporter: Reporter | None = None, *, epochs: int | None = None) -> TrainResult:
    """Continue a run from its ``last/`` checkpoint (model, optimizer, RNG, counters).

    Args:
        epochs: a new total epoch count, to extend a finished run.
    """
    from recog.engine.state import STATE_JSON, load_state
    from recog.models.bundle import read_manifest

    run_dir = Path(run_dir)
    last = run_dir / "last"
    if not (run_dir / "config.yaml").is_file() or not (last / STATE_JSON).is_file():
        raise ConfigError(f"{run_dir}: not a resumable run (needs config.yaml and last/{STATE_JSON}).",
                          hint="pass the run folder given as --out to `recog train`")
    config = load_config(read_yaml(run_dir / "config.yaml"))
    if epochs is not None:
        config = load_config({**config.to_dict(), "epochs": epochs})  # a linear probe stays one epoch
        write_yaml(run_dir / "config.yaml", config)
    rep = reporter or Reporter()
    manifest = read_manifest(last)
    # the model comes from last/ (its weights and preprocessing), whatever --model first named
    run = prepare(replace(config, model=str(last), weights=None), rep, run_dir)
    run.trainer.config = config
    if manifest.dataset.get("fingerprint") != run.record["fingerprint"]:
        rep.message("warning: the dataset changed since this run started")
    run.trainer.load_state(load_state(last))
    if run.trainer.epoch >= config.epochs:
        rep.message("a linear probe is fitted in one pass: nothing left to train" if run.trainer.probing else
                    f"run already completed {run.trainer.epoch} epochs; pass --epochs N to train longer")
    return _run(run)
