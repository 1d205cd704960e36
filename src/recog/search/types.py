"""Typed results of visual search: hits with their metadata, and what an index is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recog.types import with_source


@dataclass(frozen=True)
class SearchHit:
    """One item close to a query.

    Attributes:
        id: the item's id (a SKU, a file's relative path).
        score: cosine similarity of the query to the item's closest image, in ``[-1, 1]``.
        metadata: the item's metadata fields (from ``--meta items.csv`` or the API).
        source: the indexed image that matched (its path relative to the indexed folder).
    """

    id: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "score": round(float(self.score), 6), "metadata": self.metadata}
        return with_source(out, self.source)


@dataclass(frozen=True)
class SearchHits:
    """The best items for one query, best first.

    Example:
        >>> hits = SearchHits(index="shop", hits=(SearchHit("sku-1", 0.93, {"category": "shoes"}),))
        >>> hits.to_dict()["hits"][0]["id"]
        'sku-1'
    """

    index: str
    hits: tuple[SearchHit, ...]
    source: str | None = None
    exact: bool = True

    def __post_init__(self) -> None:
        scores = [h.score for h in self.hits]
        if scores != sorted(scores, reverse=True):
            raise ValueError("SearchHits.hits must be sorted by score, best first")

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self):
        return iter(self.hits)

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "exact": self.exact, "hits": [h.to_dict() for h in self.hits]}
        return with_source(out, self.source)


@dataclass(frozen=True)
class ModelRef:
    """Which model made an index's vectors: two refs match when their weights and input size match.

    Attributes:
        name: what the user named (a preset such as ``efficientnet-lite0`` or a bundle folder).
        weights: sha256 of the bundle's weights file (its identity).
        dim: embedding length.
        size: input ``[height, width]``.
    """

    name: str
    weights: str
    dim: int
    size: tuple[int, int]

    def same_model(self, other: "ModelRef") -> bool:
        return self.weights == other.weights and tuple(self.size) == tuple(other.size) and self.dim == other.dim

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weights": self.weights, "dim": self.dim, "size": list(self.size)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelRef":
        return cls(str(d["name"]), str(d["weights"]), int(d["dim"]), tuple(int(v) for v in d["size"]))  # type: ignore[arg-type]

    def describe(self) -> str:
        return f"{self.name} (weights {self.weights[:12]}, {self.dim}-d, {self.size[0]}x{self.size[1]})"


@dataclass(frozen=True)
class IndexInfo:
    """An index's name, model, size and how it is served."""

    name: str
    model: ModelRef
    items: int
    vectors: int
    kind: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model.to_dict(), "items": self.items, "vectors": self.vectors,
                "kind": self.kind, "created_at": self.created_at}
