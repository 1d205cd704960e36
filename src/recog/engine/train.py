"""The training loop.

``train(config)`` reads the dataset, builds the model from the registry,
decodes images once, and runs AdamW with a warm-up + cosine schedule. Every
epoch it evaluates on the validation split, appends to ``metrics.csv``, saves
``last/`` (bundle + optimizer state) and, when validation accuracy improves,
``best/``. Ctrl-C saves ``last/`` and raises :class:`TrainingInterrupted`;
``resume(run_dir)`` continues from it.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recog.engine.config import TrainConfig, load_config, read_yaml, write_yaml
from recog.errors import ConfigError, DatasetError, TrainingInterrupted

METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s", "seconds")


@dataclass
class TrainResult:
    run_dir: Path
    best: Path
    last: Path
    epochs_run: int
    best_val_acc: float | None
    history: list[dict[str, float]]
    skipped_files: list[tuple[str, str]]
    train_seconds: float


class Reporter:
    """Receives progress events; the CLI supplies a rich progress bar, tests a silent one."""

    def stage(self, name: str, total: int) -> Callable[[int], None]:
        return lambda n: None

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, loss: float, acc: float, images_per_s: float) -> None: ...

    def epoch_end(self, row: dict[str, float], improved: bool) -> None: ...

    def message(self, text: str) -> None: ...


def pick_device(name: str) -> str:
    import torch

    if name != "auto":
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but CUDA is not available on this machine.",
                              hint="use --device cpu or --device auto")
        return name
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _head_and_backbone(model: Any) -> tuple[list[Any], list[Any]]:
    head = getattr(model, "classifier", None)
    if head is None:
        raise ConfigError(f"{type(model).__name__} has no `classifier` head; cannot split head from backbone.")
    head_ids = {id(p) for p in head.parameters()}
    return list(head.parameters()), [p for p in model.parameters() if id(p) not in head_ids]


class _Session:
    """State of one run; methods are the steps of the loop."""

    def __init__(self, config: TrainConfig, reporter: Reporter, run_dir: Path) -> None:
        import torch

        from recog.data.dataset import load_dataset
        from recog.models.registry import create_model

        self.cfg, self.rep, self.run_dir = config, reporter, run_dir
        self.device = pick_device(config.device)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)

        ds = load_dataset(config.data)
        if len(ds.labels) < 2:
            raise DatasetError(f"{config.data}: found one class ({ds.labels[0]!r}); training a classifier needs "
                               "at least 2.", hint="add one sub-folder (or manifest label) per class")
        if not ds.has_splits or not ds.split("val"):
            ds = ds.with_splits(val=config.val_split, test=config.test_split, seed=config.seed)
        self.dataset = ds
        # once per run: the fingerprint stats every file
        self.dataset_record = {"fingerprint": ds.fingerprint(), "source": str(config.data), "counts": ds.counts()}
        if not ds.split("train"):
            raise DatasetError(f"{config.data}: no training samples after splitting.")
        self.labels = list(ds.labels)
        created = create_model(config.model, self.labels, weights=config.weights, image_size=config.image_size)
        self.model, self.prep, self.created = created.model.to(self.device), created.preprocessing, created

        from recog.engine.data import load_split

        def decode(split: str):
            samples = ds.split(split)
            tick = reporter.stage(f"decoding {split}", len(samples))
            return load_split(samples, self.labels, self.prep, strict=config.strict, threads=config.workers,
                              cache_gb=config.cache_gb, progress=tick)

        self.train_data = decode("train")
        self.val_data = decode("val") if ds.split("val") else None
        self._reported = 0
        self.report_skipped()
        if len(self.train_data) == 0:
            raise DatasetError(f"{config.data}: every training image failed to load.")

        from recog.data.augment import Augmenter

        self.augment = Augmenter(config.augment, self.prep.size, hflip=config.hflip)
        self.mean = torch.tensor(self.prep.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.prep.std, device=self.device).view(1, 3, 1, 1)
        counts = np.bincount(self.train_data.targets, minlength=len(self.labels)).astype(np.float64)
        self.class_weight = None
        if config.balance == "loss":
            w = counts.sum() / (len(self.labels) * np.maximum(counts, 1))
            self.class_weight = torch.tensor(w, dtype=torch.float32, device=self.device)
        self.sample_p = None
        if config.balance == "sampler":
            p = 1.0 / np.maximum(counts, 1)
            self.sample_p = p[self.train_data.targets] / p[self.train_data.targets].sum()

        head, backbone = _head_and_backbone(self.model)
        self.head_params, self.backbone_params = head, backbone
        backbone_lr = config.lr * (config.backbone_lr_mult if config.strategy != "full" else 1.0)
        self.optimizer = torch.optim.AdamW(
            [{"params": head, "lr": config.lr, "base_lr": config.lr},
             {"params": backbone, "lr": backbone_lr, "base_lr": backbone_lr}],
            weight_decay=config.weight_decay)
        self.steps_per_epoch = max(1, len(self.train_data) // config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = int(round(config.warmup_epochs * self.steps_per_epoch))
        self.step = 0
        self.epoch = 0  # epochs completed
        self.best_acc: float | None = None
        self.best_loss = float("inf")
        self.stale = 0
        self.history: list[dict[str, float]] = []
        self.val_logits: tuple[np.ndarray, np.ndarray] | None = None
        self.rng = np.random.default_rng(config.seed)
        self.use_amp = config.amp and self.device.startswith("cuda")
        self.amp_dtype = (torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Files left out so far: not images, or failed to decode (streamed data adds to it as it goes)."""
        return (list(self.dataset.skipped) + self.train_data.failures
                + (self.val_data.failures if self.val_data else []))

    def report_skipped(self) -> None:
        """Tell the reporter about files skipped since the last call."""
        skipped = self.skipped
        for path, reason in skipped[self._reported:]:
            self.rep.message(f"skipped {path}: {reason}")
        self._reported = len(skipped)

    # ------------------------------------------------------------------ state
    def backbone_frozen(self, epoch: int) -> bool:
        return self.cfg.strategy == "linear" or (self.cfg.strategy == "staged" and epoch < self.cfg.freeze_epochs)

    def state(self) -> dict[str, Any]:
        import torch

        return {"optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "numpy_rng": self.rng.bit_generator.state, "step": self.step, "epoch": self.epoch,
                "best_acc": self.best_acc, "best_loss": self.best_loss, "stale": self.stale,
                "history": self.history}

    def load_state(self, st: dict[str, Any]) -> None:
        import torch

        self.optimizer.load_state_dict(st["optimizer"])
        torch.set_rng_state(st["torch_rng"])
        self.rng.bit_generator.state = st["numpy_rng"]
        self.step, self.epoch, self.stale = int(st["step"]), int(st["epoch"]), int(st["stale"])
        self.best_acc, self.best_loss = st["best_acc"], float(st["best_loss"])
        self.history = list(st["history"])

    def save(self, name: str, extra_metrics: dict[str, Any] | None = None,
             calibration: dict[str, Any] | None = None) -> Path:
        from recog.engine.state import save_state
        from recog.models.bundle import save_bundle

        manifest_extra = {
            "weights": self.created.weights,
            "training": self.cfg.to_dict(),
            "dataset": {**self.dataset_record, "skipped_files": len(self.skipped)},
            "metrics": {"epoch": self.epoch, **(extra_metrics or {})},
        }
        if calibration:
            manifest_extra["calibration"] = calibration
        return save_bundle(self.run_dir / name, self.model, labels=self.labels, preprocessing=self.prep,
                           source_model=self.cfg.model, extra=manifest_extra,
                           write_extra=(lambda d: save_state(d, self.state())) if name == "last" else None)

    # ------------------------------------------------------------------ loop
    def _to_input(self, images: np.ndarray):
        import torch

        x = torch.from_numpy(images).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        return x

    def train_epoch(self, epoch: int) -> dict[str, float]:
        import torch

        from recog.data.augment import mixed_cross_entropy

        frozen = self.backbone_frozen(epoch)
        self.model.train()
        for p in self.backbone_params:
            p.requires_grad_(not frozen)
        if frozen:  # a frozen backbone keeps its batch-norm statistics too
            head_modules = set(self.model.classifier.modules())
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m not in head_modules:
                    m.eval()
        n = len(self.train_data)
        if self.sample_p is not None:
            order = self.rng.choice(n, size=n, replace=True, p=self.sample_p)
        else:
            order = self.rng.permutation(n)
        self.rep.epoch_start(epoch, self.cfg.epochs, self.steps_per_epoch)
        tot_loss = tot_correct = tot_seen = 0.0
        t0 = time.perf_counter()
        for images, targets in self.train_data.batches(self.cfg.batch_size, order=order, drop_last=True):
            factor = lr_factor(self.step, self.total_steps, self.warmup_steps)
            for g in self.optimizer.param_groups:
                g["lr"] = g["base_lr"] * factor
            x = self._to_input(images)
            y = torch.from_numpy(targets).to(self.device)
            x, y_aug = self.augment(x, y)
            x = (x - self.mean) / self.std
            with torch.autocast(device_type="cuda", dtype=self.amp_dtype, enabled=self.use_amp):
                logits = self.model(pixel_values=x).logits
                loss = mixed_cross_entropy(logits.float(), y_aug, weight=self.class_weight,
                                           label_smoothing=self.cfg.label_smoothing)
            if not torch.isfinite(loss):
                raise TrainingInterrupted(f"the loss became {loss.item()} at step {self.step}.",
                                          hint="lower --lr, or check the data for broken labels")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            bs = len(targets)
            tot_loss += loss.item() * bs
            tot_correct += (logits.argmax(1) == y).sum().item()
            tot_seen += bs
            self.rep.step(tot_loss / tot_seen, tot_correct / tot_seen, tot_seen / (time.perf_counter() - t0))
        secs = time.perf_counter() - t0
        return {"train_loss": tot_loss / max(1, tot_seen), "train_acc": tot_correct / max(1, tot_seen),
                "images_per_s": tot_seen / max(secs, 1e-9), "seconds": secs,
                "lr": self.optimizer.param_groups[0]["lr"]}

    def validate(self) -> tuple[float, float]:
        """Validation loss and accuracy; keeps the logits for temperature fitting."""
        import torch
        import torch.nn.functional as F

        self.val_logits = None
        if self.val_data is None or len(self.val_data) == 0:
            return float("nan"), float("nan")
        self.model.eval()
        all_logits, all_targets = [], []
        with torch.inference_mode():
            for images, targets in self.val_data.batches(256):
                x = (self._to_input(images) - self.mean) / self.std
                all_logits.append(self.model(pixel_values=x).logits.float().cpu())
                all_targets.append(torch.from_numpy(targets))
        if not all_logits:  # every validation image failed to decode
            return float("nan"), float("nan")
        logits, y = torch.cat(all_logits), torch.cat(all_targets)
        self.val_logits = (logits.numpy(), y.numpy())
        return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()

    def calibration(self) -> dict[str, Any]:
        """Temperature scaling fitted on this epoch's validation logits (empty without validation data)."""
        from recog.engine.calibration import fit_temperature

        if self.val_logits is None:
            return {}
        logits, targets = self.val_logits
        return {"method": "temperature", "temperature": round(fit_temperature(logits, targets), 4),
                "fitted_on": f"val ({len(targets)} images)"}

    def append_metrics(self, row: dict[str, float]) -> None:
        path = self.run_dir / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
            if new:
                w.writeheader()
            w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})

    def run(self) -> TrainResult:
        start = time.perf_counter()
        try:
            while self.epoch < self.cfg.epochs:
                epoch = self.epoch
                row: dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(epoch)}
                row["val_loss"], row["val_acc"] = self.validate()
                self.epoch = epoch + 1
                self.history.append(row)
                self.report_skipped()
                improved = self._improved(row["val_acc"], row["val_loss"])
                self.append_metrics(row)
                metrics = {"val_accuracy": row["val_acc"], "val_loss": row["val_loss"]}
                calibration = self.calibration()
                if improved:
                    self.save("best", metrics, calibration)
                self.save("last", metrics, calibration)
                self.rep.epoch_end(row, improved)
                if self.cfg.patience and self.stale >= self.cfg.patience:
                    self.rep.message(f"early stopping: no better validation accuracy for {self.stale} epochs")
                    break
        except KeyboardInterrupt:
            self.save("last")
            raise TrainingInterrupted(
                f"training stopped by the user after {self.epoch} completed epoch(s); saved {self.run_dir / 'last'}.",
                hint=f"resume with `recog train --resume {self.run_dir}`") from None
        best = self.run_dir / "best"
        return TrainResult(self.run_dir, best, self.run_dir / "last", self.epoch, self.best_acc, self.history,
                           self.skipped, time.perf_counter() - start)

    def _improved(self, acc: float, loss: float) -> bool:
        if math.isnan(acc):  # no validation data: the newest epoch is the best
            self.best_acc = None
            return True
        if self.best_acc is None or acc > self.best_acc or (acc == self.best_acc and loss < self.best_loss):
            self.best_acc, self.best_loss, self.stale = acc, loss, 0
            return True
        self.stale += 1
        return False


def fit(data: str | Path, reporter: Reporter | None = None, **options: Any) -> TrainResult:
    """Train a classifier from Python: the options are :class:`TrainConfig` fields.

    Example:
        >>> import recog
        >>> result = recog.train("data/", model="resnet-18", epochs=10, out="runs/pets")  # doctest: +SKIP
        >>> recog.load(result.best).predict("photo.jpg")                                 # doctest: +SKIP
    """
    return train(load_config({"data": str(data), **options}), reporter)


def train(config: TrainConfig, reporter: Reporter | None = None) -> TrainResult:
    """Train a classifier as ``config`` says; returns where the bundles are.

    Example:
        >>> from recog.engine.config import load_config
        >>> train(load_config({"data": "data/", "model": "resnet-18", "epochs": 5}))  # doctest: +SKIP
    """
    run_dir = Path(config.out)
    if (run_dir / "last").exists():
        raise ConfigError(f"{run_dir} already holds a run.",
                          hint=f"resume it with `recog train --resume {run_dir}`, or pick another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(run_dir / "config.yaml", config)
    (run_dir / "metrics.csv").unlink(missing_ok=True)
    session = _Session(config, reporter or Reporter(), run_dir)
    return session.run()


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
        config = replace(config, epochs=epochs)
        write_yaml(run_dir / "config.yaml", config)
    rep = reporter or Reporter()
    manifest = read_manifest(last)
    # the model comes from last/ (its weights and preprocessing), whatever --model first named
    session = _Session(replace(config, model=str(last), weights=None), rep, run_dir)
    session.cfg = config
    if manifest.raw.get("dataset", {}).get("fingerprint") != session.dataset_record["fingerprint"]:
        rep.message("warning: the dataset changed since this run started")
    session.load_state(load_state(last))
    if session.epoch >= config.epochs:
        rep.message(f"run already completed {session.epoch} epochs; pass --epochs N to train longer")
    return session.run()
