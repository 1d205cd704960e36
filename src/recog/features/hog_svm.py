"""``hog-svm``: a classical baseline (HOG features + a linear SVM) trained through the task seam.

Why a preset (``recog train data/ --model hog-svm``) and not a new bundle task:
the fitted model *is* a classifier, so its bundle is a plain ``classify``
bundle (``config.json`` + ``model.safetensors`` of the native
:class:`~recog.features.hog_net.HogLinear` network, no pickle): predict,
evaluate, serve, ONNX export and int8 need no new code, and a user compares
the baseline with a CNN by changing one flag. What differs is only *how it is
trained*: the preset's registry entry names this non-gradient task
(``Preset.task = "hog-svm"``), and :func:`recog.engine.train.train` hands the
run to :meth:`HogSvm.fit` instead of the trainer. ``--task hog-svm`` works too.

The fit: decode train/val at the input size (default 64x64, ``--image-size``
to change), compute HOG with the same torch module the bundle runs, fit
scikit-learn's ``LinearSVC`` (one-vs-rest, squared hinge, ``C`` =
:data:`DEFAULT_C`), copy its coefficients into the linear head, fit a softmax
temperature on the validation scores (so probabilities are calibrated like
every classifier's) and write ``best/`` and ``last/`` (the same model).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recog.errors import DatasetError, TrainingInterrupted
from recog.tasks.base import TrainResult, register_task
from recog.tasks.classify import Classify
from recog.types import Preprocessing

#: Input size when neither ``--image-size`` nor a bundle says otherwise.
DEFAULT_SIZE = 64
#: SVM regularisation (liblinear's C); HOG vectors are block-normalised, so one value fits most data.
DEFAULT_C = 0.5


def hog_preprocessing(size: int = DEFAULT_SIZE) -> Preprocessing:
    """Whole image stretched to ``size x size``, values in [0, 1] (mean 0, std 1: HOG normalises itself)."""
    return Preprocessing(size=(size, size), resize="stretch", crop_pct=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def hog_features(model: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 images → ``(N, D)`` float32 HOG vectors through ``model.features``."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).permute(0, 3, 1, 2).float() / 255.0
            out.append(model.features(x).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.classifier.in_features), np.float32)


def fit_linear_svm(x: np.ndarray, y: np.ndarray, n_classes: int, *, c: float = DEFAULT_C,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest linear SVM on ``(N, D)`` features → ``(weight (C, D), bias (C,))`` scoring every class.

    A class missing from ``y`` gets a constant very low score. Two classes: the
    single decision function ``f`` becomes scores ``(-f/2, f/2)``.
    """
    from sklearn.svm import LinearSVC

    present = np.unique(y)
    weight = np.zeros((n_classes, x.shape[1]), np.float32)
    bias = np.full(n_classes, -1e3, np.float32)
    if len(present) < 2:
        raise DatasetError(f"the SVM needs at least 2 classes with training images, got {len(present)}.")
    svm = LinearSVC(C=c, dual="auto", max_iter=5000, random_state=seed).fit(x, y)
    if len(present) == 2:
        coef, icpt = svm.coef_[0], svm.intercept_[0]
        weight[present[0]], bias[present[0]] = -coef / 2, -icpt / 2
        weight[present[1]], bias[present[1]] = coef / 2, icpt / 2
    else:
        weight[present], bias[present] = svm.coef_, svm.intercept_
    return weight, bias


@register_task
class HogSvm(Classify):
    """Fits the ``hog-svm`` preset (see the module docstring); its bundles are ``classify`` bundles."""

    name = "hog-svm"
    trains_by_gradient = False

    def build(self, source: str, labels: Sequence[str], *, weights: str | None = None,
              image_size: int | None = None):
        from recog.features.hog_net import build_hog_linear
        from recog.models.registry import CreatedModel

        size = image_size or DEFAULT_SIZE
        return CreatedModel(build_hog_linear(len(labels), size, size).eval(), hog_preprocessing(size), "hog-svm", "none")

    def fit(self, config: Any, run_dir: Path, reporter: Any) -> TrainResult:
        """Decode, HOG, LinearSVC, temperature; writes ``RUN/best`` and ``RUN/last``.

        Uses ``data``, ``image_size``, ``val_split``, ``test_split``, ``seed``,
        ``workers``, ``strict`` and ``cache_gb`` of the config.
        """
        import torch

        from recog.metrics.temperature import fit_temperature
        from recog.models.bundle import save_bundle

        start = time.perf_counter()
        torch.manual_seed(config.seed)
        ds = self.open_dataset(config.data)
        if len(ds.labels) < 2:
            raise DatasetError(f"{config.data}: found one class; a classifier needs at least 2.",
                               hint="add one sub-folder (or manifest label) per class")
        if not ds.has_splits or not ds.split("val"):
            ds = ds.with_splits(val=config.val_split, test=config.test_split, seed=config.seed)
        labels = list(ds.labels)
        created = self.build("hog-svm", labels, image_size=config.image_size)
        model, prep = created.model, created.preprocessing
        skipped = list(ds.skipped)

        def decode(split: str) -> Any:
            samples = ds.split(split)
            data = self.decode_split(samples, labels, prep, strict=config.strict, threads=config.workers,
                                     cache_gb=1e9, progress=reporter.stage(f"decoding {split}", len(samples)))
            skipped.extend(data.failures)
            return data

        try:
            train = decode("train")
            val = decode("val") if ds.split("val") else None
            for path, reason in skipped:
                reporter.message(f"skipped {path}: {reason}")
            if len(train) == 0:
                raise DatasetError(f"{config.data}: every training image failed to load.")
            x = hog_features(model, train.images)
            weight, bias = fit_linear_svm(x, train.targets, len(labels), seed=config.seed)
        except KeyboardInterrupt:
            raise TrainingInterrupted("fitting stopped by the user; nothing was saved.",
                                      hint="run the same command again") from None
        with torch.no_grad():
            model.classifier.weight.copy_(torch.from_numpy(weight))
            model.classifier.bias.copy_(torch.from_numpy(bias))
        train_acc = float(((x @ weight.T + bias).argmax(1) == train.targets).mean())
        metrics: dict[str, Any] = {"epoch": 1, "train_acc": round(train_acc, 6)}
        extras: dict[str, Any] = {}
        if val is not None and len(val):
            scores = hog_features(model, val.images) @ weight.T + bias
            metrics["acc"] = round(float((scores.argmax(1) == val.targets).mean()), 6)
            extras["calibration"] = {"method": "temperature", "fitted_on": f"val ({len(val)} images)",
                                     "temperature": round(fit_temperature(scores, val.targets), 4)}
        record = {"fingerprint": ds.fingerprint(), "source": str(config.data), "counts": ds.counts(),
                  "skipped_files": len(skipped)}
        extra = {"weights": "fitted: LinearSVC on HOG", "training": config.to_dict(), "dataset": record,
                 "metrics": metrics, "classical": {"features": "hog", "svm_c": DEFAULT_C,
                                                   "feature_size": int(x.shape[1])}, **extras}
        best = save_bundle(run_dir / "best", model, labels=labels, preprocessing=prep, task="classify",
                           source_model="hog-svm", extra=extra)
        last = save_bundle(run_dir / "last", model, labels=labels, preprocessing=prep, task="classify",
                           source_model="hog-svm", extra=extra)
        seconds = time.perf_counter() - start
        reporter.message(f"hog-svm: {len(train)} training images, {x.shape[1]} HOG features, train accuracy "
                         f"{train_acc:.4f}" + (f", val accuracy {metrics['acc']:.4f}" if "acc" in metrics else "")
                         + f" ({seconds:.1f} s)")
        history = [{k: float(v) for k, v in metrics.items()}]
        return TrainResult(run_dir, best, last, 1, metrics.get("acc"), history, skipped, seconds)
