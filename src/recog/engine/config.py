"""Training configuration: one frozen dataclass; YAML files are only an input.

:func:`load_config` turns a mapping (from YAML or CLI flags) into a
:class:`TrainConfig`, rejecting unknown keys with suggestions. Each run writes
its resolved config to ``RUN/config.yaml``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from recog.errors import ConfigError, did_you_mean

STRATEGIES = ("full", "linear", "staged")
BALANCE = ("none", "loss", "sampler")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run.

    Attributes:
        data: class-folder tree or CSV manifest.
        task: the kind of recognition (``classify``); see :mod:`recog.tasks`.
        model: preset name, Hub id, or local folder.
        weights: ``pretrained``, ``none`` or a path; None = the preset's default.
        out: run folder (``config.yaml``, ``metrics.csv``, ``best/``, ``last/``).
        strategy: ``full`` fine-tune; ``linear`` probe (backbone frozen
            throughout; for classification the head is fitted once, to
            convergence, on cached features, so ``epochs`` is 1 and ``lr``,
            ``augment`` other than flips and ``label_smoothing`` do not
            apply: :mod:`recog.engine.probe`); ``staged`` (backbone frozen
            for ``freeze_epochs``, then trained at ``lr * backbone_lr_mult``).
        balance: ``loss`` (class-weighted cross-entropy), ``sampler``
            (class-balanced sampling) or ``none``.
        warmup_epochs: linear warm-up length before the cosine decay.
        patience: early stopping after this many epochs without a better
            validation accuracy (0 = off).
        val_split, test_split: fractions drawn (stratified, seeded) when the
            data has no val/test split of its own.
        workers: threads that decode images.
        cache_gb: a split whose decoded images (at the model's input size)
            fit in this many GB is decoded once and kept in memory; a larger
            one is decoded from disk every epoch, one batch ahead.
    """

    data: str
    task: str = "classify"
    model: str = "efficientnet-lite1"
    weights: str | None = None
    out: str = "runs/train"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    augment: str = "standard"
    hflip: bool = True
    balance: str = "none"
    strategy: str = "full"
    freeze_epochs: int = 0
    backbone_lr_mult: float = 1.0
    grad_clip: float = 1.0
    patience: int = 0
    val_split: float = 0.1
    test_split: float = 0.0
    image_size: int | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    workers: int = 2
    cache_gb: float = 8.0
    strict: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.strategy in STRATEGIES, f"strategy must be one of {', '.join(STRATEGIES)}"),
            (self.balance in BALANCE, f"balance must be one of {', '.join(BALANCE)}"),
            (0 <= self.val_split < 1 and 0 <= self.test_split < 1 and self.val_split + self.test_split < 1,
             "val_split and test_split must be fractions in [0, 1) summing below 1"),
            (self.freeze_epochs >= 0 and self.patience >= 0, "freeze_epochs and patience must be >= 0"),
            (self.backbone_lr_mult > 0, "backbone_lr_mult must be > 0"),
            (self.image_size is None or self.image_size >= 8, "image_size must be at least 8"),
            (self.workers >= 1, "workers must be >= 1"),
            (self.cache_gb >= 0, "cache_gb must be >= 0"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.grad_clip >= 0, "grad_clip must be >= 0 (0 turns clipping off)"),
        ]
        from recog.data.augment import PRESETS

        checks.append((self.augment in PRESETS, f"augment must be one of {', '.join(PRESETS)}"))
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"invalid training config: {msg}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(values: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig`; unknown keys are rejected with close matches."""
    known = {f.name for f in fields(TrainConfig)}
    for key in values:
        if key not in known:
            raise ConfigError(f"unknown training option {key!r}.",
                              hint=did_you_mean(key, known, n=2) or f"known options: {', '.join(sorted(known))}")
    if "data" not in values or not values["data"]:
        raise ConfigError("training needs a dataset (data: DIR or CSV).")
    from recog.tasks import get_task

    if values.get("task"):  # the task's own defaults (a detector: epochs, batch size...), under the user's values
        values = {**get_task(values["task"]).defaults, **values}
    values = {**_transfer_defaults(values), **values}
    if values.get("strategy") == "linear" and get_task(values.get("task") or TrainConfig.task).linear_probe:
        values = {**values, "epochs": 1}  # the probe is fitted in one pass (recog.engine.probe)
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"invalid training config: {exc}.") from exc


def _transfer_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """The preset's measured transfer-learning options (strategy with its learning rate), for
    classification from its pretrained weights, unless the user chose a strategy."""
    from recog.models.registry import list_presets

    model = values.get("model", TrainConfig.model)
    preset = next((p for p in list_presets() if p.name == model), None)
    if (preset is None or "strategy" in values or values.get("task", "classify") != "classify"
            or values.get("weights") not in (None, "pretrained")):
        return {}
    return dict(preset.transfer_defaults)


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value, got {type(data).__name__}.")
    return {k.replace("-", "_"): v for k, v in data.items()}


def write_yaml(path: str | Path, config: TrainConfig) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
