"""Classification: one label per image, calibrated probabilities, top-k results.

The network is any image classifier with a ``classifier`` head (transformers
``*ForImageClassification``, or a native module such as EfficientNet-Lite);
its raw output is ``(N, classes)`` logits. Training uses (mixed)
cross-entropy with label smoothing and optional class weights; after each
epoch a softmax temperature is fitted on the validation logits and saved as
``calibration`` (see :mod:`recog.metrics.temperature`).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from recog.errors import DatasetError
from recog.tasks.base import EvaluationResult, Task, evaluation_outputs, register_task
from recog.types import Classification, Label

if TYPE_CHECKING:
    import torch

    from recog.models.bundle import BundleManifest


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, C)`` logits, numerically stable."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``(N, C)`` logits → calibrated class probabilities (softmax of logits / temperature)."""
    return softmax(np.asarray(logits, dtype=np.float64) / temperature)


def top_k_labels(probs: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[Label, ...]]:
    """Top-k ``Label`` tuples per row of ``(N, C)`` probabilities, best first."""
    k = max(1, min(k, probs.shape[1]))
    idx = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [tuple(Label(labels[j], int(j), float(row[j])) for j in order) for row, order in zip(probs, idx)]


class AccuracyMetric:
    """Streaming cross-entropy and top-1 accuracy over ``(N, C)`` logits and ``(N,)`` labels.

    Example:
        >>> m = AccuracyMetric()
        >>> m.update(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 0]))
        >>> m.compute()["acc"]
        0.5
    """

    def __init__(self, *, keep_outputs: bool = False) -> None:
        self.keep_outputs = keep_outputs
        self.reset()

    def reset(self) -> None:
        self.nll = 0.0
        self.correct = 0
        self.count = 0
        self.outputs: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []

    def update(self, output: np.ndarray, target: np.ndarray) -> None:
        logits = np.asarray(output, dtype=np.float64)
        y = np.asarray(target)
        z = logits - logits.max(axis=1, keepdims=True)
        self.nll += float((np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]).sum())
        self.correct += int((logits.argmax(1) == y).sum())
        self.count += len(y)
        if self.keep_outputs:
            self.outputs.append(np.asarray(output, dtype=np.float32))
            self.targets.append(y)

    def compute(self) -> dict[str, float]:
        if not self.count:
            return {"loss": float("nan"), "acc": float("nan")}
        return {"loss": self.nll / self.count, "acc": self.correct / self.count}


@register_task
class Classify(Task):
    """Image classification (the ``classify`` task)."""

    name = "classify"
    result = Classification
    output = "logits"
    monitor = "acc"
    linear_probe = True

    def build(self, source: str, labels: Sequence[str], *, weights: str | None = None,
              image_size: int | None = None):
        from recog.models.registry import create_model

        return create_model(source, list(labels), weights=weights, image_size=image_size)

    def forward(self, model: "torch.nn.Module", x: "torch.Tensor") -> "torch.Tensor":
        out = model(pixel_values=x) if _is_transformers(model) else model(x)
        return out.logits if hasattr(out, "logits") else out

    def forward_features(self, model: "torch.nn.Module", x: "torch.Tensor"
                         ) -> tuple["torch.Tensor", "torch.Tensor | None"]:
        """``(logits, features)`` from one forward pass: the features are what the ``classifier`` head
        receives, flattened and L2-normalised (what the ``embed`` task returns for the same weights);
        None when the network has no ``classifier`` module to tap."""
        tap = _feature_tap(model)
        logits = self.forward(model, x)
        if tap is None:
            return logits, None
        features = tap.taken().flatten(1).float()
        return logits, features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def target_layer(self, model: "torch.nn.Module") -> "torch.nn.Module":
        """The last convolutional stage, for Grad-CAM (:mod:`recog.explain`): found generically.

        One probing forward pass records every module's output in completion order; the answer is
        the last module whose output has the shape of the last ``Conv2d``'s output (ResNet and
        ConvNeXt: the last stage; EfficientNet, MobileNet, EfficientNet-Lite: the head conv's
        BN/activation). A model that turns the feature map into tokens after its last convolution
        (ViT, DINOv2: the conv is the patch embedding) has no convolutional stage to explain.

        Raises:
            ConfigError: no such stage (no Conv2d, or a transformer); names the methods that work.
        """
        import torch

        from recog.errors import ConfigError

        cached = _TARGET_LAYERS.get(model)
        if cached is not None:
            return cached
        size = getattr(getattr(model, "config", None), "image_size", None) or 64
        size = int(size[0] if isinstance(size, (list, tuple)) else size)
        seen: list[tuple[torch.nn.Module, Any]] = []
        hooks = [m.register_forward_hook(lambda mod, _i, out: seen.append((mod, out))) for m in model.modules()]
        try:
            with torch.no_grad():
                p = next(model.parameters())
                self.forward(model, torch.zeros(1, 3, size, size, dtype=p.dtype, device=p.device))
        finally:
            for h in hooks:
                h.remove()
        convs = [i for i, (m, _) in enumerate(seen) if isinstance(m, torch.nn.Conv2d)]
        tokens = convs and any(isinstance(o, torch.Tensor) and o.dim() == 3 for _, o in seen[convs[-1]:])
        if not convs or tokens:
            why = "turns its feature map into tokens (a transformer)" if convs else "has no convolution"
            raise ConfigError(f"Grad-CAM needs a convolutional stage, and {type(model).__name__} {why}.",
                              hint="use --method ig (integrated gradients) or --method occlusion")
        shape = seen[convs[-1]][1].shape
        layer = [m for m, o in seen[convs[-1]:] if isinstance(o, torch.Tensor) and o.shape == shape][-1]
        _TARGET_LAYERS[model] = layer
        return layer

    # ------------------------------------------------------------------ training
    def decode_split(self, samples: Sequence[Any], labels: Sequence[str], prep: Any, **options: Any) -> Any:
        """The base class's batch source; the training split's files are kept for the drift reference
        (:meth:`setup_training` draws its input statistics from them, not from a second read of the data)."""
        data = super().decode_split(samples, labels, prep, **options)
        if samples and getattr(samples[0], "split", None) == "train":
            self._train_paths = [s.path for s in data.samples]
        return data

    def setup_training(self, config: Any, labels: Sequence[str], targets: np.ndarray, prep: Any,
                       device: str) -> None:
        import torch

        from recog.data.augment import Augmenter

        self.augment = Augmenter(config.augment, prep.size, hflip=config.hflip)
        self.mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1)
        self.label_smoothing = config.label_smoothing
        self.input_stats = _input_stats(getattr(self, "_train_paths", None))
        self.class_weight = None
        if config.balance == "loss" or (config.balance == "sampler" and config.strategy == "linear"):
            counts = np.bincount(targets, minlength=len(labels)).astype(np.float64)
            w = counts.sum() / (len(labels) * np.maximum(counts, 1))
            self.class_weight = torch.tensor(w, dtype=torch.float32, device=device)

    def inputs(self, images: "torch.Tensor", targets: "torch.Tensor", *, train: bool = True):
        if train:
            images, targets = self.augment(images, targets)
        return (images - self.mean) / self.std, targets

    def loss(self, model: "torch.nn.Module", x: "torch.Tensor", target: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        from recog.data.augment import mixed_cross_entropy

        logits = self.forward(model, x)
        loss = mixed_cross_entropy(logits.float(), target, weight=self.class_weight,
                                   label_smoothing=self.label_smoothing)
        return {"loss": loss, "output": logits}

    def probe_loss(self, logits: "torch.Tensor", target: "torch.Tensor") -> "torch.Tensor":
        """Plain cross-entropy (class-weighted with ``--balance``): the probe's scores are calibrated after."""
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), target, weight=self.class_weight)

    def metric(self, *, keep_outputs: bool = False) -> AccuracyMetric:
        return AccuracyMetric(keep_outputs=keep_outputs)

    def checkpoint_extras(self, metric: AccuracyMetric) -> dict[str, Any]:
        """Temperature scaling fitted on this epoch's validation logits (nothing without them)."""
        from recog.metrics.temperature import fit_temperature

        if not metric.outputs:
            return {}
        from recog.monitor.reference import fit_reference

        logits, targets = np.concatenate(metric.outputs), np.concatenate(metric.targets)
        temperature = round(fit_temperature(logits, targets), 4)
        return {"calibration": {"method": "temperature", "temperature": temperature,
                                "fitted_on": f"val ({len(targets)} images)"},
                "reference": fit_reference(logits, targets, temperature, inputs=getattr(self, "input_stats", None))}

    def finish_bundle(self, bundle: Path, *, train: Sequence[Path], val: Sequence[Path], device: str) -> None:
        """Store the embedding-distance reference in ``bundle`` (:mod:`recog.monitor.features`): pooled
        features of up to ``MAX_FEATURES`` training images, and the kNN statistics of the validation
        images, both from the saved weights. Nothing without validation images or a head to tap."""
        from recog.models.bundle import update_bundle
        from recog.monitor import features as F
        from recog.monitor.reference import combined, reference_of
        from recog.runtime.predictor import load

        model = load(bundle, backend="torch", device=device)
        ref = reference_of(model.manifest)
        if ref is None or not val or getattr(model.backend, "infer_features", None) is None:
            return
        bank, _, _ = model.outputs_many(F.draw(train), batch_size=64, infer=model.infer_wide)
        raw, _, _ = model.outputs_many(list(val), batch_size=64, infer=model.infer_wide)
        c = len(model.labels)
        if bank.shape[1] <= c or len(raw) == 0:
            return
        logit_score = combined(raw[:, :c], ref["detector"], model.manifest.temperature)
        record = {"file": F.write_bank(bundle, bank[:, c:]), **F.fit_features(bank[:, c:], raw[:, c:], logit_score)}
        update_bundle(bundle, add_files=[F.FEATURES_FILE], updates={"reference": {**ref, "features": record}})

    def evaluate(self, predictor: Any, data: Any, *, split: str | None, out: Path, batch_size: int,
                 progress_factory: Callable[[str, int], Any] | None, explain: int = 0) -> EvaluationResult:
        """Accuracy, top-5, per-class P/R/F1, confusion matrix, ROC/PR, calibration, per-group gaps;
        ``explain`` > 0 adds heatmaps of that many confident mistakes (and correct ones per class)."""
        import json

        from recog.data import load_dataset
        from recog.data.dataset import require_model_labels
        from recog.metrics import write_report

        dataset = load_dataset(data)
        samples, split_name = choose_split(dataset, split)
        require_model_labels(samples, predictor.labels, data)
        logits, kept, failures = evaluation_outputs(predictor, [s.path for s in samples], data, batch_size=batch_size,
                                                    progress_factory=progress_factory)
        probs = probabilities(logits, predictor.manifest.temperature)
        index = {name: i for i, name in enumerate(predictor.labels)}
        kept_samples = [samples[i] for i in kept]
        y_true = np.array([index[s.label] for s in kept_samples])
        groups = [s.group or "(none)" for s in kept_samples] if dataset.has_groups else None
        bundle = predictor.path
        info = {**predictor.info.to_dict(), "backend": predictor.backend.name, "bundle": str(bundle),
                "data": str(data), "split": split_name, "skipped_files": len(failures)}
        cards = None
        if explain > 0:
            from recog.explain.panel import explanation_cards

            cards = explanation_cards(predictor, [s.path for s in kept_samples], y_true, probs, explain)
        report = write_report(out, y_true, probs, list(predictor.labels), sources=[str(s.path) for s in kept_samples],
                              groups=groups, explanations=cards, title=f"recog evaluation: {_model_name(bundle)} on {data} ({split_name})",
                              model_info=info)
        m = json.loads((out / "metrics.json").read_text())
        summary = [f"{m['num_samples']} images ({split_name}): accuracy {m['accuracy']:.4f}, "
                   f"top-5 {m['top5_accuracy']:.4f}, macro F1 {m['macro']['f1']:.4f}, ECE {m['ece']:.4f}"]
        if m.get("largest_gap"):
            g = m["largest_gap"]
            summary.append(f"largest group gap ({g['metric']}): {g['gap']:.4f} ({g['best_group']} vs {g['worst_group']})")
        return EvaluationResult(m, report, out, split_name, failures, summary)

    # ------------------------------------------------------------------ inference
    def postprocess(self, raw: np.ndarray, manifest: "BundleManifest", *, sources: Sequence[str | None],
                    top_k: int = 5, **options: Any) -> list[Classification]:
        from recog.monitor.ood import ood_results

        from recog.monitor.ood import split_outputs

        probs = probabilities(split_outputs(raw, manifest)[0], manifest.temperature)
        return [Classification(top=t, source=s, ood=o) for t, s, o in
                zip(top_k_labels(probs, manifest.labels, top_k), sources, ood_results(raw, manifest, probs))]

    # ------------------------------------------------------------------ export
    def parity(self, reference: np.ndarray, candidate: np.ndarray, y: np.ndarray | None) -> dict[str, Any]:
        """``images``, ``top1_agreement`` (fraction), ``max_abs_logit_diff``, ``logit_scale`` (largest
        absolute reference logit) and, with labels, ``accuracy_reference``, ``accuracy`` and
        ``accuracy_drop_points`` (percentage points; positive = worse)."""
        ref_top = reference.argmax(axis=1)
        cand_top = candidate.argmax(axis=1)
        out = {
            "images": int(len(reference)),
            "top1_agreement": round(float((ref_top == cand_top).mean()), 6) if len(reference) else 1.0,
            "max_abs_logit_diff": float(np.abs(reference - candidate).max()) if reference.size else 0.0,
            "logit_scale": float(np.abs(reference).max()) if reference.size else 0.0,
        }
        if y is not None:
            acc_ref = float((ref_top == y).mean())
            acc = float((cand_top == y).mean())
            out.update(accuracy_reference=round(acc_ref, 6), accuracy=round(acc, 6),
                       accuracy_drop_points=round(100.0 * (acc_ref - acc), 4))
        return out

    def judge(self, parity: dict[str, Any], *, max_drop: float, atol_rel: float | None) -> str | None:
        """Refuse an accuracy drop above ``max_drop`` points (or, unlabelled, that share of top-1
        disagreement: it bounds the accuracy loss from above), and logits off by more than
        ``atol_rel x max(1, largest |logit|)`` when ``atol_rel`` is given."""
        if "accuracy_drop_points" in parity:
            if parity["accuracy_drop_points"] > max_drop:
                return (f"accuracy drops {parity['accuracy_drop_points']:.2f} points "
                        f"({100 * parity['accuracy_reference']:.2f}% → {100 * parity['accuracy']:.2f}%) on "
                        f"{parity['images']} images, more than --max-drop {max_drop:g}")
        else:
            disagree = 100.0 * (1.0 - parity["top1_agreement"])
            if disagree > max_drop:
                return (f"top-1 agrees with the original on only {100 * parity['top1_agreement']:.2f}% of "
                        f"{parity['images']} unlabelled images (more than --max-drop {max_drop:g} points differ)")
        if atol_rel is not None:
            tol = atol_rel * max(1.0, parity["logit_scale"])
            if parity["max_abs_logit_diff"] > tol:
                return f"largest logit difference {parity['max_abs_logit_diff']:.3g} is above the tolerance {tol:.3g}"
        return None


class _Tap:
    """The input of a network's ``classifier`` head in the last forward pass of this thread."""

    def __init__(self, head: Any) -> None:
        import threading

        self.local = threading.local()
        head.register_forward_pre_hook(self.hook)

    def hook(self, _module: Any, args: tuple) -> None:
        self.local.value = args[0]

    def taken(self) -> "torch.Tensor":
        value, self.local.value = self.local.value, None
        return value


#: model → the tap on its head (installed once, on the first forward_features).
_TAPS: "weakref.WeakKeyDictionary[Any, _Tap | None]" = weakref.WeakKeyDictionary()


def _feature_tap(model: Any) -> _Tap | None:
    import torch

    if model not in _TAPS:
        head = getattr(model, "classifier", None)
        _TAPS[model] = _Tap(head) if isinstance(head, torch.nn.Module) else None
    return _TAPS[model]


def _input_stats(paths: Sequence[Path] | None) -> np.ndarray | None:
    """Input statistics of a sample of the engine's training images (None when it decoded no split)."""
    from recog.monitor.reference import input_reference

    return input_reference(paths) if paths else None


def choose_split(dataset: Any, split: str | None) -> tuple[list, str]:
    """The samples to evaluate: ``split`` if given; else test, else val, else everything."""
    if split is not None:
        samples = dataset.split(split) if dataset.has_splits else []
        if not samples:
            raise DatasetError(f"{dataset.root}: has no {split!r} split.",
                               hint="omit --split to use test/ (or every image when there are no splits)")
        return samples, split
    for name in ("test", "val"):
        if dataset.split(name):
            return dataset.split(name), name
    return list(dataset.samples), "all"


def _model_name(bundle: Path) -> str:
    """``runs/pets/best`` → ``pets/best``: the run's name says more than ``best``."""
    path = Path(bundle).resolve()
    return f"{path.parent.name}/{path.name}" if path.name in ("best", "last") else path.name


#: model → its Grad-CAM layer (found once per loaded model by :meth:`Classify.target_layer`).
_TARGET_LAYERS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def hidden_states(model: Any, x: "torch.Tensor") -> tuple:
    """Every hidden state of a transformers backbone for the batch ``x`` (feature extractors use it)."""
    return model(pixel_values=x, output_hidden_states=True).hidden_states


def _is_transformers(model: Any) -> bool:
    return hasattr(model, "config") and hasattr(model, "save_pretrained")
