"""Typed results. Every result has ``to_dict()``; its field names are the JSON
names used by the CLI, the Python API and the HTTP API alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def with_source(out: dict[str, Any], source: str | None) -> dict[str, Any]:
    """``out`` with ``"source"`` (the input's path or name) added when it is known."""
    if source is not None:
        out["source"] = source
    return out


@dataclass(frozen=True)
class Label:
    """One class and its probability."""

    label: str
    index: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "index": self.index, "score": round(float(self.score), 6)}


@dataclass(frozen=True)
class OutOfDistribution:
    """How unlike the training data an input is (see :mod:`recog.monitor.ood`).

    Attributes:
        score: calibrated when ``threshold`` is set: the share of held-out in-distribution images
            that scored lower (0 to 1); else ``1 - top probability``, uncalibrated.
        unknown: ``score > threshold``; None when the bundle has no reference to decide with.
        method: how the score was computed.
    """

    score: float
    unknown: bool | None
    threshold: float | None
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {"score": round(float(self.score), 6), "unknown": self.unknown,
                "threshold": self.threshold, "method": self.method}


@dataclass(frozen=True)
class Classification:
    """Top-k classes of one image, best first.

    Example:
        >>> c = Classification(top=(Label("cat", 0, 0.9), Label("dog", 1, 0.1)))
        >>> c.label, c.score
        ('cat', 0.9)
    """

    top: tuple[Label, ...]
    source: str | None = None
    ood: OutOfDistribution | None = None

    def __post_init__(self) -> None:
        if not self.top:
            raise ValueError("Classification needs at least one label")
        scores = [t.score for t in self.top]
        if scores != sorted(scores, reverse=True):
            raise ValueError("Classification.top must be sorted by score, best first")

    @property
    def label(self) -> str:
        return self.top[0].label

    @property
    def score(self) -> float:
        return self.top[0].score

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "score": round(float(self.score), 6),
                               "top": [t.to_dict() for t in self.top]}
        if self.ood is not None:
            out["ood"] = self.ood.to_dict()
        return with_source(out, self.source)


@dataclass(frozen=True)
class Embedding:
    """An L2-normalised feature vector of one image: cosine similarity is a dot product.

    Example:
        >>> Embedding(vector=(0.6, 0.8)).dim
        2
    """

    vector: tuple[float, ...]
    source: str | None = None

    @property
    def dim(self) -> int:
        return len(self.vector)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"embedding": [round(float(v), 7) for v in self.vector], "dim": self.dim}
        return with_source(out, self.source)


@dataclass(frozen=True)
class PredictionFailure:
    """An input that could not be classified, and why."""

    source: str
    code: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "error": {"code": self.code, "detail": self.detail}}


@dataclass(frozen=True)
class Preprocessing:
    """How raw RGB images become model input; saved beside the weights.

    Attributes:
        size: (height, width) of the model input in pixels.
        resize: ``"shorter_crop"`` (resize the shorter side to size/crop_pct,
            then center crop), ``"stretch"`` (resize to size, aspect not kept)
            or ``"letterbox"`` (fit inside, pad with the mean colour).
        crop_pct: fraction of the resized image kept by the center crop.
        mean, std: per-channel normalization on [0, 1] RGB values.
    """

    size: tuple[int, int] = (224, 224)
    resize: str = "shorter_crop"
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    RESIZE_POLICIES = ("shorter_crop", "stretch", "letterbox")

    def __post_init__(self) -> None:
        if self.resize not in self.RESIZE_POLICIES:
            raise ValueError(f"resize policy must be one of {self.RESIZE_POLICIES}, got {self.resize!r}")
        if not (0.1 <= self.crop_pct <= 1.0):
            raise ValueError(f"crop_pct must be in [0.1, 1], got {self.crop_pct}")
        if len(self.size) != 2 or min(self.size) < 8:
            raise ValueError(f"size must be (height, width) of at least 8 px, got {self.size}")

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "resize": self.resize, "crop_pct": self.crop_pct,
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        return cls(size=tuple(d["size"]), resize=d.get("resize", "shorter_crop"),
                   crop_pct=float(d.get("crop_pct", 0.875)), mean=tuple(d["mean"]), std=tuple(d["std"]))


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is: its task, labels, preprocessing and provenance."""

    task: str
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    source_model: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "labels": list(self.labels),
                "preprocessing": self.preprocessing.to_dict(),
                "source_model": self.source_model, "metrics": self.metrics}


@dataclass(frozen=True)
class AnomalyResult:
    """Visual quality control of one image: a score against the threshold, a verdict, defect regions.

    Attributes:
        score: the image's anomaly score (largest heatmap value; distance units of the model).
        threshold: the score above which an image fails (from the bundle, or the request's
            ``threshold=``); None only for a network saved without fitting (verdict ``"unknown"``).
        normalized_score: ``score / threshold``; 1.0 is the threshold, above fails.
        verdict: ``"pass"``, ``"fail"`` (or ``"unknown"`` without a threshold).
        boxes: ``[x1, y1, x2, y2]`` of each region above the threshold, pixels of the original
            image (as a detection gives them); ``scores`` their peak normalized score, ``labels``
            ``"defect"``; highest first.
        image_size: ``(width, height)`` of the frame the boxes are in (the original image, or
            the model input when the original size was not known).
        heatmap: ``(H, W)`` float32 anomaly map at the model input size, normalized (1.0 =
            threshold) when there is a threshold; not in :meth:`to_dict` (``recog predict --draw``
            draws it).

    Example:
        >>> r = AnomalyResult(score=2.0, threshold=1.6, boxes=((10, 10, 20, 20),), scores=(1.3,))
        >>> r.verdict, r.normalized_score, r.to_dict()["labels"]
        ('fail', 1.25, ['defect'])
    """

    score: float
    threshold: float | None
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    scores: tuple[float, ...] = ()
    image_size: tuple[int, int] | None = None
    source: str | None = None
    heatmap: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.threshold is not None and not self.threshold > 0:
            raise ValueError(f"AnomalyResult.threshold must be > 0, got {self.threshold}")
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"AnomalyResult has {len(self.boxes)} boxes but {len(self.scores)} scores")
        if any(len(b) != 4 or b[2] < b[0] or b[3] < b[1] for b in self.boxes):
            raise ValueError("AnomalyResult.boxes must be [x1, y1, x2, y2] with x2 >= x1 and y2 >= y1")

    @property
    def normalized_score(self) -> float | None:
        return None if self.threshold is None else self.score / self.threshold

    @property
    def verdict(self) -> str:
        if self.threshold is None:
            return "unknown"
        return "fail" if self.score > self.threshold else "pass"

    @property
    def labels(self) -> tuple[str, ...]:
        return ("defect",) * len(self.boxes)

    def to_dict(self) -> dict[str, Any]:
        def num(v: float | None) -> float | None:
            return None if v is None else round(float(v), 6)

        out: dict[str, Any] = {"verdict": self.verdict, "score": num(self.score),
                               "normalized_score": num(self.normalized_score), "threshold": num(self.threshold),
                               "boxes": [[round(float(v), 1) for v in b] for b in self.boxes],
                               "scores": [num(s) for s in self.scores], "labels": list(self.labels)}
        if self.image_size is not None:
            out["image_size"] = [int(v) for v in self.image_size]
        return with_source(out, self.source)
