"""The task seam: what differs between kinds of recognition, behind one interface.

A task (``classify``, ``embed``; next ``detect``, ``anomaly``...) owns the
model's head, the single place a model is called (:meth:`Task.forward`), the
training loss and its per-batch inputs, the streaming validation metric,
postprocessing into typed results, and the export parity verdict. The
trainer (:mod:`recog.engine`), the predictor, export, pruning and benchmarks
(:mod:`recog.runtime`), the service and the CLI look the task up by the
bundle's ``task`` field with :func:`get_task` and never call a model or read
logits themselves.

Where this differs from the sketch in the design notes, and why:

* :meth:`Task.forward` returns **one** tensor with the batch first, not a
  dict. Backends (torch, ONNX Runtime), the service's micro-batcher and the
  ONNX export all move one array per batch; a task with several outputs
  packs them (a detector: ``(N, anchors, 4 + classes)``) and unpacks them in
  :meth:`Task.postprocess`. One array keeps every backend and the batcher
  task-agnostic.
* Training state that depends on the data (class weights, augmentation) is
  set once per run by :meth:`Task.setup_training`, so :meth:`Task.loss` keeps
  the sketch's signature.
* Parity is split in two: :meth:`Task.parity` computes figures (recorded in
  ``recog.json``), :meth:`Task.judge` turns them into a verdict.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol, Sequence

import numpy as np

from recog.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    import torch

    from recog.models.bundle import BundleManifest
    from recog.models.registry import CreatedModel


@dataclass
class TrainResult:
    """Where a training run put its bundles, and how it went."""

    run_dir: Path
    best: Path
    last: Path
    epochs_run: int
    best_val_acc: float | None
    history: list[dict[str, float]]
    skipped_files: list[tuple[str, str]]
    train_seconds: float


@dataclass
class EvaluationResult:
    """What ``recog evaluate`` produced: figures, the report, and one-line summaries for the terminal."""

    metrics: dict[str, Any]
    report: Path
    out_dir: Path
    split: str
    failures: list[tuple[str, str]]
    summary: list[str] = field(default_factory=list)


class Metric(Protocol):
    """A streaming metric: ``update`` per batch, ``compute`` at the end, ``reset`` to reuse."""

    def update(self, output: np.ndarray, target: np.ndarray) -> None: ...

    def compute(self) -> dict[str, float]: ...

    def reset(self) -> None: ...


class Task(ABC):
    """One kind of recognition. Subclasses register themselves with :func:`register_task`.

    Attributes:
        name: the bundle's ``task`` field (``"classify"``).
        result: the typed result :meth:`postprocess` returns per image.
        output: name of the raw output (the ONNX graph's output name).
        monitor: the validation figure (a key of :meth:`metric`'s ``compute``)
            that picks the best checkpoint; higher is better.
    """

    name: ClassVar[str]
    result: ClassVar[type]
    output: ClassVar[str]
    monitor: ClassVar[str] = "acc"
    #: False for tasks fitted without gradient steps (a memory bank, a classical detector): they
    #: implement :meth:`fit` and the trainer is not used.
    trains_by_gradient: ClassVar[bool] = True
    #: fewest classes a training set may have (a detector of one kind of object is common).
    min_labels: ClassVar[int] = 2
    #: True when the head reads one feature vector and :meth:`probe_loss` is its loss: ``--strategy linear``
    #: then fits the head once on cached features (:mod:`recog.engine.probe`) instead of training by epochs.
    linear_probe: ClassVar[bool] = False
    #: training options whose default differs for this task (applied by ``load_config`` under the user's).
    defaults: ClassVar[dict[str, Any]] = {}

    # ------------------------------------------------------------------ model
    @abstractmethod
    def build(self, source: str, labels: Sequence[str], *, weights: str | None = None,
              image_size: int | None = None) -> "CreatedModel":
        """A trainable network for ``labels`` from a preset, Hub id or folder."""

    def load(self, manifest: "BundleManifest") -> "torch.nn.Module":
        """The bundle's network in eval mode, ready for :meth:`forward`."""
        from recog.models.bundle import load_network

        return load_network(manifest)

    @abstractmethod
    def forward(self, model: "torch.nn.Module", x: "torch.Tensor") -> "torch.Tensor":
        """The one place a model is called: normalized ``(N, 3, H, W)`` → the raw output ``(N, ...)``."""

    def head(self, model: "torch.nn.Module") -> "torch.nn.Module":
        """The task head (trained from scratch; the rest is the backbone, frozen by ``--strategy linear``)."""
        head = getattr(model, "classifier", None)
        if head is None:
            raise ConfigError(f"{type(model).__name__} has no `classifier` head; cannot split head from backbone.",
                              hint="use --strategy full with this model")
        return head

    # ------------------------------------------------------------------ training
    def open_dataset(self, path: Any) -> Any:
        """The task's data format: a :class:`recog.data.Dataset` (labels, splits, fingerprint)."""
        from recog.data import load_dataset

        return load_dataset(path)

    def decode_split(self, samples: Sequence[Any], labels: Sequence[str], prep: Any, *, strict: bool, threads: int,
                     cache_gb: float, progress: Any = None) -> Any:
        """A batch source for one split: ``len``, ``targets``, ``failures``, ``batches(size, order=, drop_last=)``."""
        from recog.data.batches import load_split

        return load_split(samples, labels, prep, strict=strict, threads=threads, cache_gb=cache_gb, progress=progress)

    def setup_training(self, config: Any, labels: Sequence[str], targets: np.ndarray, prep: Any,
                       device: str) -> None:
        """Per-run training state from the resolved config, the labels and the training targets."""

    @abstractmethod
    def inputs(self, images: "torch.Tensor", targets: Any, *, train: bool = True) -> tuple["torch.Tensor", Any]:
        """A batch (float ``[0, 1]`` images on the device, targets) → ``(x, target)``: augmented when
        ``train``, normalized always."""

    def loss(self, model: "torch.nn.Module", x: "torch.Tensor", target: Any) -> dict[str, "torch.Tensor"]:
        """``{"loss": scalar, "output": raw output}`` for one training batch."""
        raise ConfigError(f"the {self.name} task cannot be trained.")

    def probe_loss(self, logits: "torch.Tensor", target: "torch.Tensor") -> "torch.Tensor":
        """The loss a linear probe minimises on the head's outputs (tasks with ``linear_probe``)."""
        raise ConfigError(f"the {self.name} task has no linear probe.", hint="use --strategy full or staged")

    @abstractmethod
    def metric(self, *, keep_outputs: bool = False) -> Metric:
        """A fresh streaming metric; ``keep_outputs`` keeps the outputs for :meth:`checkpoint_extras`."""

    def checkpoint_extras(self, metric: Metric) -> dict[str, Any]:
        """Manifest fields derived from the validation metric (classify: the fitted temperature)."""
        return {}

    def finish_bundle(self, bundle: Path, *, train: Sequence[Path], val: Sequence[Path], device: str) -> None:
        """After training: add to the best ``bundle`` what needs its final weights and the training and
        validation images (classify: the embedding-distance OOD reference). Nothing by default."""

    def fit(self, config: Any, run_dir: Path, reporter: Any) -> TrainResult:
        """A whole run for tasks that do not train by gradient (``trains_by_gradient = False``)."""
        raise ConfigError(f"the {self.name} task trains through the trainer, not fit().")

    def evaluate(self, predictor: Any, data: Any, *, split: str | None, out: Path,
                 batch_size: int, progress_factory: Callable[[str, int], Any] | None) -> EvaluationResult:
        """Metrics, plots and ``report.html`` for ``predictor`` (a loaded bundle of this task) on ``data``."""
        raise ConfigError(f"`recog evaluate` does not support {self.name!r} models yet.")

    # ------------------------------------------------------------------ inference
    @abstractmethod
    def postprocess(self, raw: np.ndarray, manifest: "BundleManifest", *, sources: Sequence[str | None],
                    **options: Any) -> list[Any]:
        """Raw outputs ``(N, ...)`` → one typed result per image."""

    # ------------------------------------------------------------------ export
    @abstractmethod
    def parity(self, reference: np.ndarray, candidate: np.ndarray, y: np.ndarray | None) -> dict[str, Any]:
        """Figures comparing an export's outputs with the PyTorch model's on the same inputs."""

    @abstractmethod
    def judge(self, parity: dict[str, Any], *, max_drop: float, atol_rel: float | None) -> str | None:
        """None when an export passes, else the reason it is refused."""


def evaluation_outputs(predictor: Any, paths: Sequence[Any], data: Any, *, batch_size: int,
                       progress_factory: Callable[[str, int], Any] | None,
                       infer: Callable[[np.ndarray], np.ndarray] | None = None
                       ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Raw outputs of ``predictor`` on ``paths`` (of ``infer``, default ``predictor.infer``) for an
    evaluation, with a progress bar when given one.

    Returns:
        ``(raw, kept, failures)``: outputs for the ``kept`` indices and ``(path, reason)`` per refused file.

    Raises:
        DatasetError: none of the images could be read.
    """
    from recog.errors import DatasetError

    if progress_factory is None:
        raw, kept, refused = predictor.outputs_many(paths, batch_size=batch_size, infer=infer)
    else:
        with progress_factory(f"evaluating ({predictor.backend.name})", len(paths)) as advance:
            raw, kept, refused = predictor.outputs_many(paths, batch_size=batch_size, progress=advance, infer=infer)
    if not kept:
        raise DatasetError(f"{data}: none of the {len(paths)} images could be read.")
    return raw, kept, [(str(paths[i]), str(exc)) for i, exc in refused]


_TASKS: dict[str, type[Task]] = {}
#: tasks registered on first use, so that looking one up imports only its module.
_BUILTIN = {"classify": "recog.tasks.classify", "embed": "recog.tasks.embed", "anomaly": "recog.tasks.anomaly", "hog-svm": "recog.features.hog_svm",
            "detect": "recog.tasks.detect"}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` available under ``cls.name``; a name registers once."""
    if cls.name in _TASKS and _TASKS[cls.name] is not cls:
        raise ConfigError(f"task {cls.name!r} is already registered.")
    _TASKS[cls.name] = cls
    return cls


def task_names() -> list[str]:
    return sorted(set(_TASKS) | set(_BUILTIN))


def get_task(name: str) -> Task:
    """A task object for the bundle ``task`` field ``name``; an unknown name lists the known ones."""
    if name not in _TASKS and name in _BUILTIN:
        import importlib

        importlib.import_module(_BUILTIN[name])
    if name not in _TASKS:
        hint = did_you_mean(name, task_names()) or f"known tasks: {', '.join(task_names())}"
        raise ConfigError(f"unknown task {name!r}.", hint=hint)
    return _TASKS[name]()


def require_task(manifest: "BundleManifest", *names: str, command: str) -> None:
    """Refuse a bundle whose task is not one of ``names`` with a one-line reason naming both."""
    if manifest.task not in names:
        raise ConfigError(f"{manifest.path} is a {manifest.task!r} model; `{command}` needs a "
                          f"{' or '.join(repr(n) for n in names)} model.",
                          hint=f"pass a bundle trained for {names[0]}")
