"""Dataset audit: corrupt files, duplicates and split leakage, likely label errors, outliers, class imbalance.

One pass over a labelled dataset (a class-folder tree with optional
``train/ val/ test/`` splits, or a CSV manifest; see :func:`recog.data.dataset.load_dataset`):

* corrupt files: every file the safe loader refuses (:func:`recog.data.decode.find_bad_files`);
* exact duplicates (sha256) and near duplicates (embeddings, threshold chosen on
  the data: :mod:`recog.search.dedup`), each group marked as within one split or
  across splits (*leakage*: the same picture in train and test inflates the
  test score) and whether its copies carry different labels;
* likely label errors: confident learning on out-of-sample probabilities from
  cross-validated logistic regression on the embeddings (:mod:`recog.search.labels`);
* outliers: images far from their neighbours in embedding space: score =
  1 - mean cosine similarity to the 10 nearest images, flagged above
  median + 4 MAD (robust z-score > 4 / 1.4826);
* class imbalance: counts per split and class, the largest/smallest ratio, and
  classes whose share differs between splits.

Outputs: ``report.html`` (self-contained, thumbnails inline) and ``audit.json``.

Example:
    >>> result = audit_dataset("data/")                         # doctest: +SKIP
    >>> write_report(result, "audit/")                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recog.search.dedup import DedupResult, find_duplicates, relative_to

#: (paths) -> (vectors for the kept paths, kept indices, [(index, reason)]): how images become features.
EmbedFn = Callable[[Sequence[Path]], tuple[np.ndarray, list[int], list[tuple[int, str]]]]
OUTLIER_K = 10
OUTLIER_Z = 4.0


@dataclass
class AuditResult:
    """Everything :func:`write_report` renders; :meth:`to_dict` is ``audit.json``."""

    root: str
    images: int
    labels: list[str]
    counts: dict[str, dict[str, int]]
    corrupt: list[dict[str, str]] = field(default_factory=list)
    duplicate_groups: list[dict[str, Any]] = field(default_factory=list)
    near_threshold: dict[str, Any] | None = None
    label_issues: list[dict[str, Any]] = field(default_factory=list)
    label_method: dict[str, Any] = field(default_factory=dict)
    outliers: list[dict[str, Any]] = field(default_factory=list)
    outlier_rule: dict[str, Any] = field(default_factory=dict)
    imbalance: dict[str, Any] = field(default_factory=dict)
    model: str | None = None

    @property
    def leaks(self) -> list[dict[str, Any]]:
        return [g for g in self.duplicate_groups if g["across_splits"]]

    def summary(self) -> dict[str, Any]:
        return {"images": self.images, "classes": len(self.labels), "corrupt_files": len(self.corrupt),
                "duplicate_groups": len(self.duplicate_groups),
                "exact_duplicate_groups": sum(g["kind"] == "exact" for g in self.duplicate_groups),
                "cross_split_groups": len(self.leaks),
                "conflicting_label_groups": sum(g["conflicting_labels"] for g in self.duplicate_groups),
                "label_issues": len(self.label_issues), "outliers": len(self.outliers),
                "imbalance_ratio": self.imbalance.get("ratio")}

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "model": self.model, "summary": self.summary(), "labels": self.labels,
                "counts": self.counts, "corrupt": self.corrupt, "duplicates": {
                    "near_threshold": self.near_threshold, "groups": self.duplicate_groups},
                "label_issues": {"method": self.label_method, "items": self.label_issues},
                "outliers": {"rule": self.outlier_rule, "items": self.outliers}, "imbalance": self.imbalance}


def outlier_scores(vectors: np.ndarray, k: int = OUTLIER_K) -> np.ndarray:
    """``1 -`` mean cosine similarity of each unit vector to its ``k`` nearest others, ``(n,)``."""
    from recog.search.pairs import nearest_neighbours

    if len(vectors) < 3:
        return np.zeros(len(vectors), np.float32)
    scores, idx = nearest_neighbours(vectors, k)
    scores = np.where(idx >= 0, scores, np.nan)
    return (1.0 - np.nanmean(scores, axis=1)).astype(np.float32)


def robust_cutoff(scores: np.ndarray, z: float = OUTLIER_Z) -> float:
    """``median + z * 1.4826 * MAD``: a score above it is an outlier."""
    med = float(np.median(scores))
    mad = float(np.median(np.abs(scores - med))) * 1.4826
    return med + z * max(mad, 1e-6)


def imbalance_report(counts: dict[str, dict[str, int]], labels: Sequence[str]) -> dict[str, Any]:
    """Per split: the largest / smallest class ratio and the classes under half the mean;
    across splits: a chi-square test of whether class shares differ (scipy)."""
    out: dict[str, Any] = {"per_split": {}}
    totals = {lab: sum(c.get(lab, 0) for c in counts.values()) for lab in labels}
    present = [v for v in totals.values()]
    out["ratio"] = round(max(present) / max(1, min(present)), 3) if present else 1.0
    mean = float(np.mean(present)) if present else 0.0
    out["small_classes"] = [lab for lab, v in totals.items() if v < 0.5 * mean]
    for split, per in counts.items():
        vals = [per.get(lab, 0) for lab in labels]
        out["per_split"][split] = {"ratio": round(max(vals) / max(1, min(vals)), 3),
                                   "missing_classes": [lab for lab, v in zip(labels, vals) if v == 0]}
    if len(counts) >= 2:
        from scipy.stats import chi2_contingency

        table = np.array([[per.get(lab, 0) for lab in labels] for per in counts.values()], dtype=np.float64)
        keep = table.sum(axis=0) > 0
        if keep.sum() >= 2:
            chi2, p, _, _ = chi2_contingency(table[:, keep])
            out["splits_differ"] = {"test": "chi-square on split x class counts", "chi2": round(float(chi2), 3),
                                    "p_value": float(f"{p:.3g}"), "differ_at_0.01": bool(p < 0.01)}
    return out


def _model_embed(model: Any, progress: Callable[[int], None] | None) -> EmbedFn:
    def embed(paths: Sequence[Path]):
        raw, kept, failures = model.outputs_many(list(paths), progress=progress)
        return raw, kept, [(i, str(exc)) for i, exc in failures]
    return embed


def audit_dataset(data: Any, *, model: Any = None, model_name: str | None = None, embed: EmbedFn | None = None,
                  near_threshold: float | None = None, folds: int = 5, progress: Callable[[int], None] | None = None,
                  on_stage: Callable[[str, int], None] | None = None) -> AuditResult:
    """Audit a labelled dataset.

    Args:
        data: a folder / CSV path or a :class:`recog.data.dataset.Dataset`.
        model: an embedder (default: ``model_name`` or efficientnet-lite0, loaded here).
        embed: features for the images instead of a model (tests, precomputed features). Near-duplicate
            calibration then needs ``near_threshold``, or it falls back to the model.
        near_threshold: cosine similarity for near duplicates (None: chosen on the data).
        folds: cross-validation folds for the out-of-sample probabilities.
        progress, on_stage: progress callbacks (``on_stage(name, total)`` starts a stage).
    """
    from recog.data.dataset import Dataset, load_dataset
    from recog.data.decode import find_bad_files
    from recog.search.labels import find_label_issues, out_of_sample_probs

    ds = data if isinstance(data, Dataset) else load_dataset(data)
    root = ds.root if ds.root.is_dir() else ds.root.parent
    samples = list(ds.samples)
    paths = [s.path for s in samples]

    def rel(p: Path) -> str:
        return relative_to(p, root)

    def stage(name: str, total: int) -> None:
        if on_stage:
            on_stage(name, total)

    stage("checking files", len(paths))
    bad = find_bad_files(paths, progress=progress)
    bad_set = {b for b, _ in bad}
    corrupt = [{"path": rel(Path(b)), "reason": r.replace(str(b), Path(b).name)} for b, r in bad]
    good = [i for i, p in enumerate(paths) if str(p) not in bad_set]
    if embed is None:
        if model is None:
            from recog.search.images import embedder

            model_name = model_name or "efficientnet-lite0"
            model = embedder(model_name)
        embed = _model_embed(model, progress)
    stage("embedding", len(good))
    vecs, kept, failures = embed([paths[i] for i in good])
    corrupt += [{"path": rel(paths[good[i]]), "reason": r.replace(str(paths[good[i]]), paths[good[i]].name)}
                for i, r in failures]
    rows = [good[i] for i in kept]  # sample index of each vector
    vecs = np.asarray(vecs, np.float32)

    # duplicates: exact + near, within / across splits
    stage("duplicates", 0)
    dedup: DedupResult = find_duplicates([paths[i] for i in rows], method="embedding", threshold=near_threshold,
                                         model=model, root=root, vectors=vecs)
    by_rel = {rel(paths[i]): i for i in rows}
    groups = []
    for g in dedup.to_dict()["groups"]:
        members = []
        for m in g["members"]:
            s = samples[by_rel[m["path"]]]
            members.append({**m, "label": s.label, "split": s.split or "all"})
        splits = sorted({m["split"] for m in members})
        groups.append({"group": g["group"], "kind": g["kind"], "members": members, "splits": splits,
                       "across_splits": len(splits) > 1,
                       "conflicting_labels": len({m["label"] for m in members}) > 1})
    groups.sort(key=lambda g: (not g["across_splits"], not g["conflicting_labels"], g["group"]))

    # label issues (confident learning on out-of-sample probabilities)
    stage("label issues", 0)
    y = np.array([ds.label_index(samples[i].label) for i in rows], np.int64)
    issues: list[dict[str, Any]] = []
    method: dict[str, Any] = {}
    present = np.bincount(y, minlength=len(ds.labels)) if len(y) else np.zeros(0, np.int64)
    if len(y) and (present[present > 0] >= 2).all() and (present > 0).sum() >= 2:
        probs = out_of_sample_probs(vecs, y, folds=folds)
        mask = find_label_issues(probs, y)
        accuracy = float((probs.argmax(axis=1) == y).mean())
        method = {"method": "confident learning, prune by noise rate (Northcutt et al. 2021)",
                  "probabilities": f"out-of-sample, {min(folds, int(present[present > 0].min()))}-fold "
                                   "cross-validated logistic regression on the embeddings",
                  "cross_validated_accuracy": round(accuracy, 4)}
        for r in np.flatnonzero(mask)[np.argsort(probs[mask, y[mask]], kind="stable")]:
            s = samples[rows[r]]
            issues.append({"path": rel(s.path), "split": s.split or "all", "given": s.label,
                           "suggested": ds.labels[int(probs[r].argmax())],
                           "p_given": round(float(probs[r, y[r]]), 4),
                           "p_suggested": round(float(probs[r].max()), 4)})
    else:
        method = {"skipped": "needs at least 2 classes with 2 readable images each"}

    # outliers
    stage("outliers", 0)
    scores = outlier_scores(vecs)
    outliers: list[dict[str, Any]] = []
    rule: dict[str, Any] = {}
    if len(scores) >= 3:
        cutoff = robust_cutoff(scores)
        rule = {"score": f"1 - mean cosine similarity to the {OUTLIER_K} nearest images",
                "cutoff": round(cutoff, 4), "rule": f"median + {OUTLIER_Z} x 1.4826 x MAD"}
        for r in np.flatnonzero(scores > cutoff)[np.argsort(-scores[scores > cutoff])]:
            s = samples[rows[r]]
            outliers.append({"path": rel(s.path), "label": s.label, "split": s.split or "all",
                             "score": round(float(scores[r]), 4)})

    counts = ds.counts()
    return AuditResult(root=str(root), images=len(samples), labels=list(ds.labels), counts=counts,
                       corrupt=corrupt, duplicate_groups=groups,
                       near_threshold=dedup.thresholds[0].to_dict() if dedup.thresholds else None,
                       label_issues=issues, label_method=method, outliers=outliers, outlier_rule=rule,
                       imbalance=imbalance_report(counts, ds.labels), model=model_name)


def write_report(result: AuditResult, out: str | Path, *, max_rows: int = 200) -> list[Path]:
    """``report.html`` (self-contained) and ``audit.json`` in ``out``."""
    import json

    from recog.search.report import render_html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit.json").write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
    (out / "report.html").write_text(render_html(result, max_rows=max_rows), encoding="utf-8")
    return [out / "report.html", out / "audit.json"]
