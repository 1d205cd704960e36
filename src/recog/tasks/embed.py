"""Embeddings: a backbone's pooled features, L2-normalised, one vector per image.

The network is a classifier whose head is replaced by a flatten, so the
model's output is the pooled feature the head would have seen (ResNet,
ConvNeXt, EfficientNet: global-average-pooled; ViT: the class token;
EfficientNet-Lite: the pooled head-conv features). The same network
therefore gives embeddings from any preset, Hub id or trained bundle, and
exports to ONNX like a classifier. Cosine similarity of two embeddings is
their dot product; search, near-duplicates, audits and anomaly detection
build on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from recog.errors import ConfigError
from recog.tasks.base import Task, register_task
from recog.types import Embedding

if TYPE_CHECKING:
    import torch

    from recog.models.bundle import BundleManifest


def as_embedder(model: "torch.nn.Module") -> "torch.nn.Module":
    """Replace ``model.classifier`` with a flatten (in place) so the model returns pooled features."""
    import torch

    if not isinstance(getattr(model, "classifier", None), torch.nn.Module):
        raise ConfigError(f"{type(model).__name__} has no `classifier` head to take embeddings in front of.",
                          hint="use an image classifier preset (recog models), Hub id or bundle")
    model.classifier = torch.nn.Flatten(1)
    return model


class SimilarityMetric:
    """Not a training metric: embeddings are not trained by this task (yet). Counts the vectors seen."""

    def __init__(self, *, keep_outputs: bool = False) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0

    def update(self, output: np.ndarray, target: np.ndarray) -> None:
        self.count += len(output)

    def compute(self) -> dict[str, float]:
        return {"count": float(self.count)}


@register_task
class Embed(Task):
    """Image embeddings (the ``embed`` task): ``(N, D)`` unit vectors."""

    name = "embed"
    result = Embedding
    output = "embedding"
    monitor = "count"

    def build(self, source: str, labels: Sequence[str], **options: Any):
        """The classify network of ``source`` with its head replaced by a flatten (``options`` as in :meth:`Task.build`)."""
        from recog.tasks.classify import Classify

        created = Classify().build(source, list(labels) or ["feature"], **options)
        as_embedder(created.model)
        return created

    def load(self, manifest: "BundleManifest") -> "torch.nn.Module":
        """Any classify or embed bundle's network, with the head replaced by a flatten."""
        from recog.models.bundle import load_network

        return as_embedder(load_network(manifest))

    def forward(self, model: "torch.nn.Module", x: "torch.Tensor") -> "torch.Tensor":
        from recog.tasks.classify import Classify

        features = Classify().forward(model, x).flatten(1).float()
        return features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def inputs(self, images: "torch.Tensor", targets: Any, *, train: bool = True):
        raise ConfigError("the embed task is not trained directly.",
                          hint="train a classifier (recog train) and take embeddings from it with recog embed")

    def metric(self, *, keep_outputs: bool = False) -> SimilarityMetric:
        return SimilarityMetric()

    def postprocess(self, raw: np.ndarray, manifest: "BundleManifest", *, sources: Sequence[str | None],
                    **options: Any) -> list[Embedding]:
        return [Embedding(vector=tuple(float(v) for v in row), source=s) for row, s in zip(raw, sources)]

    def parity(self, reference: np.ndarray, candidate: np.ndarray, y: np.ndarray | None) -> dict[str, Any]:
        """``images`` and ``min_cosine``: the worst cosine similarity between matching vectors."""
        cos = (reference * candidate).sum(axis=1) if len(reference) else np.ones(1)
        return {"images": int(len(reference)), "min_cosine": round(float(cos.min()), 6),
                "mean_cosine": round(float(cos.mean()), 6)}

    def judge(self, parity: dict[str, Any], *, max_drop: float, atol_rel: float | None) -> str | None:
        """Refuse when any vector's cosine similarity to the original falls below 0.99 (0.999 for fp32
        exports, those checked with ``atol_rel``)."""
        floor = 0.999 if atol_rel is not None else 0.99
        if parity["min_cosine"] < floor:
            return f"an embedding's cosine similarity to the original is {parity['min_cosine']:.4f}, below {floor}"
        return None
