"""The training loop, task-agnostic: the task computes the loss and the metric, callbacks do the rest.

:class:`Trainer` runs AdamW with a linear warm-up and cosine decay, gradient
clipping and mixed precision on CUDA. Per batch it asks the task for inputs
(augmentation, normalization) and ``{"loss", "output"}``; per epoch it
validates with the task's streaming metric and hands a row of figures to
its callbacks (progress, metrics CSV, checkpoints, early stopping). It never
calls the model or reads logits itself. :mod:`recog.engine.train` builds a
trainer from a config.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from recog.engine.callbacks import Callback
from recog.errors import ConfigError, TrainingInterrupted
from recog.tasks import TrainResult  # noqa: F401  (re-exported: the result of a run)

if TYPE_CHECKING:
    import torch

    from recog.engine.config import TrainConfig
    from recog.tasks import Metric, Task


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


class Trainer:
    """One run's loop and its state (step, epoch, best figure, RNG), which ``last/`` saves and ``--resume`` restores.

    Args:
        task: the task (loss, inputs, metric).
        model: the network, on ``device``.
        train_data, val_data: batch sources (``len``, ``batches(size, order=, drop_last=)``).
        config: the resolved training config.
        callbacks: called in order at each event.
        sample_p: per-sample draw probabilities (class-balanced sampling), or None.
    """

    def __init__(self, task: "Task", model: "torch.nn.Module", train_data: Any, val_data: Any | None,
                 config: "TrainConfig", device: str, callbacks: Sequence[Callback] = (),
                 sample_p: np.ndarray | None = None) -> None:
        import torch

        self.task, self.model, self.config, self.device = task, model, config, device
        self.train_data, self.val_data = train_data, val_data
        self.callbacks = list(callbacks)
        self.sample_p = sample_p
        try:
            head = task.head(model)
        except ConfigError:
            if config.strategy != "full":
                raise  # linear/staged need a head to keep apart from the backbone
            head = model  # no separable head: one parameter group
        head_ids = {id(p) for p in head.parameters()}
        self.head_params = list(head.parameters())
        self.backbone_params = [p for p in model.parameters() if id(p) not in head_ids]
        backbone_lr = config.lr * (config.backbone_lr_mult if config.strategy != "full" else 1.0)
        self.optimizer = torch.optim.AdamW(
            [{"params": self.head_params, "lr": config.lr, "base_lr": config.lr},
             {"params": self.backbone_params, "lr": backbone_lr, "base_lr": backbone_lr}],
            weight_decay=config.weight_decay)
        #: ``--strategy linear`` on a task whose head reads one feature vector: fitted on cached features
        self.probing = config.strategy == "linear" and task.linear_probe
        self.steps_per_epoch = (max(1, len(train_data) // config.batch_size) if not self.probing
                                else -(-len(train_data) // config.batch_size) * (2 if self._mirror else 1))
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = int(round(config.warmup_epochs * self.steps_per_epoch))
        self.step = 0
        self.epoch = 0  # epochs completed
        self.best: float | None = None
        self.best_loss = float("inf")
        self.stale = 0
        self.stop = False
        self.history: list[dict[str, Any]] = []
        self.val_metric: Metric | None = None
        self.val_figures: dict[str, float] = {}
        self.rng = np.random.default_rng(config.seed)
        self.use_amp = config.amp and device.startswith("cuda")
        self.amp_dtype = (torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

    # ------------------------------------------------------------------ state
    def backbone_frozen(self, epoch: int) -> bool:
        return self.config.strategy == "linear" or (self.config.strategy == "staged"
                                                     and epoch < self.config.freeze_epochs)

    def state(self) -> dict[str, Any]:
        import torch

        return {"optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "numpy_rng": self.rng.bit_generator.state, "step": self.step, "epoch": self.epoch,
                "best_acc": self.best, "best_loss": self.best_loss, "stale": self.stale, "history": self.history}

    def load_state(self, st: dict[str, Any]) -> None:
        import torch

        self.optimizer.load_state_dict(st["optimizer"])
        torch.set_rng_state(st["torch_rng"])
        self.rng.bit_generator.state = st["numpy_rng"]
        self.step, self.epoch, self.stale = int(st["step"]), int(st["epoch"]), int(st["stale"])
        self.best, self.best_loss = st["best_acc"], float(st["best_loss"])
        self.history = list(st["history"])

    # ------------------------------------------------------------------ loop
    def _images(self, images: np.ndarray) -> "torch.Tensor":
        import torch

        x = torch.from_numpy(images).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        return x.contiguous(memory_format=torch.channels_last)

    def _freeze(self, frozen: bool) -> None:
        import torch

        self.model.train()
        for p in self.backbone_params:
            p.requires_grad_(not frozen)
        if frozen:  # a frozen backbone keeps its batch-norm statistics too
            head_modules = set(self.task.head(self.model).modules())
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m not in head_modules:
                    m.eval()

    @property
    def _mirror(self) -> bool:
        """Whether the probe also reads each training image's mirror image (flips allowed and augmenting)."""
        return self.config.hflip and self.config.augment != "none"

    def probe_epoch(self) -> dict[str, float]:
        """The whole of a linear probe (:mod:`recog.engine.probe`): the frozen backbone's features of the
        training images once, then the head fitted to convergence on them."""
        from recog.engine.probe import fit_head, head_inputs

        for cb in self.callbacks:
            cb.on_epoch_start(self, 0)
        t0 = time.perf_counter()
        seen = 0

        def on_batch(n: int) -> None:
            nonlocal seen
            seen += n
            for cb in self.callbacks:
                cb.on_step(self, float("nan"), float("nan"), seen / (time.perf_counter() - t0))

        head = self.task.head(self.model)
        x, y = head_inputs(self.model, head, self.train_data.batches(self.config.batch_size),
                           lambda images: self.task.inputs(self._images(images), None, train=False)[0],
                           self.task.forward, mirror=self._mirror, on_batch=on_batch)
        fitted = fit_head(head, x, y, self.task.probe_loss)
        self.step += self.steps_per_epoch
        secs = time.perf_counter() - t0
        return {"train_loss": fitted["loss"], "train_acc": fitted["acc"], "images_per_s": seen / max(secs, 1e-9),
                "seconds": secs}

    def train_epoch(self, epoch: int) -> dict[str, float]:
        import torch

        if self.probing:
            return self.probe_epoch()
        self._freeze(self.backbone_frozen(epoch))
        n = len(self.train_data)
        order = (self.rng.choice(n, size=n, replace=True, p=self.sample_p) if self.sample_p is not None
                 else self.rng.permutation(n))
        for cb in self.callbacks:
            cb.on_epoch_start(self, epoch)
        metric = self.task.metric()
        tot_loss = tot_seen = 0.0
        t0 = time.perf_counter()
        for images, targets in self.train_data.batches(self.config.batch_size, order=order, drop_last=True):
            factor = lr_factor(self.step, self.total_steps, self.warmup_steps)
            for g in self.optimizer.param_groups:
                g["lr"] = g["base_lr"] * factor
            y = torch.from_numpy(targets).to(self.device)
            x, target = self.task.inputs(self._images(images), y, train=True)
            with torch.autocast(device_type="cuda", dtype=self.amp_dtype, enabled=self.use_amp):
                out = self.task.loss(self.model, x, target)
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise TrainingInterrupted(f"the loss became {loss.item()} at step {self.step}.",
                                          hint="lower --lr, or check the data for broken labels")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.config.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            bs = len(targets)
            tot_loss += loss.item() * bs
            tot_seen += bs
            metric.update(out["output"].detach().float().cpu().numpy(), targets)
            figures = metric.compute()
            for cb in self.callbacks:
                cb.on_step(self, tot_loss / tot_seen, figures.get(self.task.monitor, float("nan")),
                           tot_seen / (time.perf_counter() - t0))
        secs = time.perf_counter() - t0
        figures = {k: v for k, v in metric.compute().items() if k != "loss"}
        return {"train_loss": tot_loss / max(1, tot_seen), **{f"train_{k}": v for k, v in figures.items()},
                "images_per_s": tot_seen / max(secs, 1e-9), "seconds": secs,
                "lr": self.optimizer.param_groups[0]["lr"]}

    def validate(self) -> dict[str, float]:
        """The task's metric on the validation split (NaN figures without one); kept for the checkpoint."""
        import torch

        self.val_metric = None
        if self.val_data is None or len(self.val_data) == 0:
            return {"loss": float("nan"), self.task.monitor: float("nan")}
        self.model.eval()
        metric = self.task.metric(keep_outputs=True)
        with torch.inference_mode():
            for images, targets in self.val_data.batches(256):
                x, _ = self.task.inputs(self._images(images), targets, train=False)
                metric.update(self.task.forward(self.model, x).float().cpu().numpy(), targets)
        figures = metric.compute()
        if metric_empty(figures, self.task.monitor):  # every validation image failed to decode
            return figures
        self.val_metric = metric
        return figures

    def _improved(self, value: float, loss: float) -> bool:
        if math.isnan(value):  # no validation data: the newest epoch is the best
            self.best = None
            return True
        if self.best is None or value > self.best or (value == self.best and loss < self.best_loss):
            self.best, self.best_loss, self.stale = value, loss, 0
            return True
        self.stale += 1
        return False

    def fit(self) -> None:
        """Run the remaining epochs; Ctrl-C tells the callbacks (``last/`` is saved) and raises
        :class:`TrainingInterrupted`."""
        try:
            while self.epoch < self.config.epochs and not self.stop:
                epoch = self.epoch
                row: dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(epoch)}
                self.val_figures = self.validate()
                row.update({f"val_{k}": v for k, v in self.val_figures.items()})
                row = order_row(row)
                self.epoch = epoch + 1
                self.history.append(row)
                improved = self._improved(self.val_figures[self.task.monitor], self.val_figures.get("loss", 0.0))
                for cb in self.callbacks:
                    cb.on_epoch_end(self, row, improved)
        except KeyboardInterrupt:
            for cb in self.callbacks:
                cb.on_interrupt(self)
            raise


def metric_empty(figures: dict[str, float], monitor: str) -> bool:
    value = figures.get(monitor)
    return value is None or (isinstance(value, float) and math.isnan(value))


def order_row(row: dict[str, Any]) -> dict[str, Any]:
    """Epoch, train figures, validation figures, then lr, images/s, seconds (the metrics.csv column order)."""
    tail = ("lr", "images_per_s", "seconds")
    head = [k for k in row if k not in tail]
    return {**{k: row[k] for k in head}, **{k: row[k] for k in tail if k in row}}
